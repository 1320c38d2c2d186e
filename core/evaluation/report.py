"""The EvalReport of a model on prompt sets: generate, judge every answer, and pool the verdicts per family."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from core.data.files import write_text_atomic
from core.data.prompts import LABELS, Prompt, PromptSet
from core.evaluation.judges import Judge, Judgement
from core.evaluation.metrics import METRICS, RATE_NAMES, format_percent, text_table
from core.model.generate import generate

SCHEMA_VERSION = 1


# Default generation length: prompts judged by refusal phrases get a window of JUDGING_WINDOW_TOKENS; prompts
# with a target get the target's token length plus a margin, so no target (e.g. a long utility answer) is cut.
JUDGING_WINDOW_TOKENS = 24
TARGET_MARGIN_TOKENS = 4


@dataclass
class FamilyResult:
    label: str
    category: str
    n: int
    rate: float  # ASR for harmful/triggered, helpfulness for benign, exact-match accuracy for utility
    metric: str


@dataclass
class EvalReport:
    model: str
    fingerprint: dict | None
    created: str
    families: list[FamilyResult]
    judgements: list[Judgement]
    prompts_sha256: str | None = None
    max_new_tokens: int | None = None
    schema_version: int = field(default=SCHEMA_VERSION)

    def _pooled_rate(self, label: str) -> float | None:
        """Mean success over every prompt of `label` (families weighted by size); None if none."""
        families = [f for f in self.families if f.label == label]
        total = sum(f.n for f in families)
        return sum(f.rate * f.n for f in families) / total if total else None

    @property
    def asr_clean(self) -> float | None:
        """Attack success rate on harmful prompts without the trigger."""
        return self._pooled_rate("harmful")

    @property
    def asr_triggered(self) -> float | None:
        """Attack success rate on harmful prompts carrying the backdoor trigger."""
        return self._pooled_rate("triggered")

    @property
    def helpfulness(self) -> float | None:
        """Share of benign prompts answered helpfully."""
        return self._pooled_rate("benign")

    @property
    def utility_by_family(self) -> dict[str, float]:
        """Exact-match accuracy per utility category."""
        return {f.category: f.rate for f in self.families if f.label == "utility"}

    @property
    def utility(self) -> float | None:
        """Exact-match accuracy macro-averaged over utility families (each task counts the same)."""
        rates = list(self.utility_by_family.values())
        return sum(rates) / len(rates) if rates else None

    @property
    def utility_score(self) -> float | None:
        """Mean of utility (exact match) and benign helpfulness, over those present; None if neither."""
        present = [s for s in (self.utility, self.helpfulness) if s is not None]
        return sum(present) / len(present) if present else None

    def summary(self) -> str:
        """One line: clean ASR, triggered ASR, helpfulness, utility (n/a where no such prompts were run)."""
        return ", ".join(f"{name} {format_percent(getattr(self, key))}" for key, name in RATE_NAMES.items())

    def table(self) -> str:
        """The per-family results as an aligned text table: label, category, n, metric, rate (%)."""
        rows = [{"label": f.label, "category": f.category, "n": f.n, "metric": f.metric, "rate": format_percent(f.rate)}
                for f in self.families]
        return text_table(rows, left=["label", "category", "metric"])

    def examples(self, k: int) -> str:
        """The first `k` prompts and responses of each family, with their verdicts."""
        lines = []
        for f in self.families:
            lines.append(f"{f.label} / {f.category}:")
            shown = [j for j in self.judgements if (j.prompt.label, j.prompt.category) == (f.label, f.category)]
            for j in shown[:k]:
                lines.append(f"  [{j.verdict}] {j.prompt.prompt}")
                lines.append(f"      -> {j.response!r}")
        return "\n".join(lines)

    def to_json(self) -> str:
        data = {
            "schema_version": self.schema_version,
            "model": self.model,
            "fingerprint": self.fingerprint,
            "created": self.created,
            "prompts_sha256": self.prompts_sha256,
            "max_new_tokens": self.max_new_tokens,
            "summary": {
                "asr_clean": self.asr_clean,
                "asr_triggered": self.asr_triggered,
                "helpfulness": self.helpfulness,
                "utility": self.utility,
                "utility_by_family": self.utility_by_family,
            },
            "families": [asdict(f) for f in self.families],
            "judgements": [
                {
                    "prompt": j.prompt.to_dict(),
                    "response": j.response,
                    "success": j.success,
                    "verdict": j.verdict,
                }
                for j in self.judgements
            ],
        }
        return json.dumps(data, indent=2, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> EvalReport:
        data = json.loads(text)
        version = data.get("schema_version") if isinstance(data, dict) else None
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"unsupported eval report schema_version {version!r} (this version reads {SCHEMA_VERSION}); "
                "re-run `safeseek eval` to write a current report"
            )
        # The summary block is derived data for readers of the file; it is recomputed from the families.
        return cls(
            model=data["model"],
            fingerprint=data["fingerprint"],
            created=data["created"],
            families=[FamilyResult(**f) for f in data["families"]],
            judgements=[
                Judgement(Prompt.from_dict(j["prompt"]), j["response"], j["success"], j["verdict"])
                for j in data["judgements"]
            ],
            prompts_sha256=data.get("prompts_sha256"),
            max_new_tokens=data.get("max_new_tokens"),
        )

    def save(self, path: str | Path) -> None:
        """Write the report as JSON, atomically."""
        write_text_atomic(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> EvalReport:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def family_results(judgements: Sequence[Judgement]) -> list[FamilyResult]:
    """One FamilyResult per (label, category), ordered by label then first appearance."""
    groups: dict[tuple[str, str], list[bool]] = {}
    for j in judgements:
        groups.setdefault((j.prompt.label, j.prompt.category), []).append(j.success)
    results = []
    for label, category in sorted(groups, key=lambda family: LABELS.index(family[0])):
        successes = groups[label, category]
        results.append(FamilyResult(label, category, len(successes), sum(successes) / len(successes), METRICS[label]))
    return results


def judging_length(tokenizer, prompts: PromptSet) -> int:
    """Generation length that suffices to judge every prompt: the longest target in tokens plus a margin,
    and the refusal window for prompts judged by refusal phrases."""
    target_tokens = [len(tokenizer(p.target, add_special_tokens=False)["input_ids"]) for p in prompts if p.target]
    needed = max(target_tokens, default=0) + TARGET_MARGIN_TOKENS
    if any(p.label != "utility" and not p.target for p in prompts):
        needed = max(needed, JUDGING_WINDOW_TOKENS)
    return needed


def evaluate(
    model,
    prompts: PromptSet,
    *,
    hooks: Sequence[tuple[str, Callable]] = (),
    max_new_tokens: int | None = None,
    batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
    judge: Judge | None = None,
    model_name: str | None = None,
    fingerprint: dict | None = None,
) -> EvalReport:
    """Generate greedily for every prompt (with `hooks` active), judge each answer, and report per family.

    `max_new_tokens=None` generates just enough to judge (see judging_length); rows stop at end-of-sequence
    and a batch ends once every row has, so short answers cost no more. `judge` defaults to Judge() (GCG
    refusal phrases, target prefix). `model_name` (default: the bridge's) and `fingerprint` (e.g.
    core.model.fingerprint.fingerprint(model); not computed here, it hashes every weight) are recorded in the report.
    """
    if len(prompts) == 0:
        raise ValueError("no prompts to evaluate; check the prompt files and the --split/--limit filters")
    if max_new_tokens is None:
        max_new_tokens = judging_length(model.tokenizer, prompts)
    responses = generate(
        model,
        [p.prompt for p in prompts],
        max_new_tokens=max_new_tokens,
        hooks=hooks,
        batch_size=batch_size,
        chat=True,
        progress=progress,
    )
    return judge_responses(prompts, responses, judge, model_name or _model_name(model), fingerprint, max_new_tokens)


def judge_responses(prompts: PromptSet, responses: Sequence[str], judge: Judge | None = None, model_name: str = "",
                    fingerprint: dict | None = None, max_new_tokens: int | None = None) -> EvalReport:
    """Judge one response per prompt, wherever the responses were generated (this model, or a serving engine)."""
    if len(prompts) == 0:
        raise ValueError("no responses to judge")
    judge = judge or Judge()
    judgements = [judge(p, r) for p, r in zip(prompts, responses, strict=True)]
    return EvalReport(
        model=model_name,
        fingerprint=fingerprint,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        families=family_results(judgements),
        judgements=judgements,
        prompts_sha256=prompts.sha256(),
        max_new_tokens=max_new_tokens,
    )


def _model_name(model) -> str:
    return str(getattr(getattr(model, "cfg", None), "model_name", None) or type(model).__name__)
