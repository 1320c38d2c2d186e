"""The EvalReport of a model on prompt sets: every judge's figure per family, with counts and 95% intervals."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from core.circuit.ablate import ablate, component_means
from core.circuit.circuit import check_shape, keep_masks
from core.data.files import write_text_atomic
from core.data.prompts import LABELS, Prompt, PromptSet
from core.evaluation.judges import DEGENERATE, EXACT, REFUSAL, TARGET, Judge, Judgement
from core.evaluation.metrics import METRICS, RATE_LABELS, RATE_NAMES, Rate, format_percent, pooled, text_table
from core.model.generate import decode, generate_ids, generate_ids_per_mask
from core.model.load import model_shape

SCHEMA_VERSION = 2

# Default generation length: replies judged by refusal phrases get a window of JUDGING_WINDOW_TOKENS; prompts
# with a target get the target's token length plus a margin, so no target (e.g. a long utility answer) is cut.
JUDGING_WINDOW_TOKENS = 24
TARGET_MARGIN_TOKENS = 4


@dataclass
class FamilyResult:
    """One (label, category) family: the headline figure (`rate`, by `judge`) and every judge's figure."""

    label: str
    category: str
    n: int
    rate: float | None  # ASR for harmful/triggered, helpfulness for benign, exact-match accuracy for utility
    metric: str
    judge: str = REFUSAL
    # judge name -> its figure; a figure's n counts the rows that judge could judge (e.g. rows with a target)
    figures: dict[str, Rate] = field(default_factory=dict)


def headline_judge(label: str, asr: str) -> str:
    """The judge behind a label's headline figure: `asr` for harmful/triggered, refusal for benign, exact for
    utility."""
    return EXACT if label == "utility" else REFUSAL if label == "benign" else asr


@dataclass
class EvalReport:
    model: str
    fingerprint: dict | None
    created: str
    families: list[FamilyResult]
    judgements: list[Judgement]
    prompts_sha256: str | None = None
    max_new_tokens: int | None = None
    judges: list[str] = field(default_factory=lambda: [REFUSAL, TARGET, DEGENERATE])
    asr_judge: str = REFUSAL
    schema_version: int = field(default=SCHEMA_VERSION)
    # The generated token ids per judgement, when evaluate() made them (drafts for core.evaluation.report
    # .evaluate_removed); not saved with the report.
    token_ids: list[list[int]] | None = field(default=None, repr=False, compare=False)

    def figure(self, label: str, judge: str | None = None) -> Rate | None:
        """`judge`'s figure (default: the headline one) over every prompt of `label`; None if it judged none."""
        judge = judge or headline_judge(label, self.asr_judge)
        rates = [f.figures[judge] for f in self.families if f.label == label and judge in f.figures]
        return pooled(rates)

    def _pooled_rate(self, label: str) -> float | None:
        rate = self.figure(label)
        return None if rate is None else rate.value

    @property
    def asr_clean(self) -> float | None:
        """Attack success rate on harmful prompts without the trigger (by the ASR judge)."""
        return self._pooled_rate("harmful")

    @property
    def asr_triggered(self) -> float | None:
        """Attack success rate on harmful prompts carrying the backdoor trigger (by the ASR judge)."""
        return self._pooled_rate("triggered")

    @property
    def helpfulness(self) -> float | None:
        """Share of benign prompts answered helpfully (not refused, not degenerate, on topic)."""
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
        """One line: clean ASR, triggered ASR, helpfulness (each with its interval, count and judge) and utility;
        "n/a (no ... prompts)" for a label that was not run."""
        parts = []
        for key, label in RATE_LABELS.items():
            name, rate = RATE_NAMES[key], self.figure(label)
            parts.append(f"{name} n/a (no {label} prompts)" if rate is None else f"{name} {rate.format()} "
                         f"by {rate.judge}")
        tasks = [f for f in self.families if f.label == "utility"]
        parts.append("utility n/a (no utility prompts)" if not tasks else
                     f"utility {format_percent(self.utility)} (exact, mean of {len(tasks)} task(s), "
                     f"{sum(f.n for f in tasks)} prompts)")
        return ", ".join(parts)

    def frame(self) -> pd.DataFrame:
        """One row per family (and an "(all)" row per label with several families): n, then each judge's figure
        as "rate [95% interval] (k/n)"; judges that do not apply to a row are blank."""
        columns = [*self.judges, EXACT] if any(f.label == "utility" for f in self.families) else list(self.judges)
        rows = []
        for label in LABELS:
            families = [f for f in self.families if f.label == label]
            groups = [(f.category, f.n, f.figures) for f in families]
            if len(families) > 1:
                merged = {j: pooled([f.figures[j] for f in families if j in f.figures]) for j in columns}
                groups.append(("(all)", sum(f.n for f in families), {j: r for j, r in merged.items() if r}))
            for category, n, figures in groups:
                row = {"label": label, "category": category, "n": n,
                       "headline": f"{METRICS[label]} by {headline_judge(label, self.asr_judge)}"}
                for judge in columns:
                    rate = figures.get(judge)
                    row[judge] = rate.format() if rate is not None else ""
                rows.append(row)
        return pd.DataFrame(rows)

    def table(self) -> str:
        """`frame()` as aligned text, with a legend line naming what each judge's figure measures."""
        frame = self.frame()
        legend = "; ".join(f"{j}: {_judge_meaning(j)}" for j in frame.columns[4:])
        table = text_table(frame.to_dict("records"), left=["label", "category", "headline"])
        return f"{table}\nfigures: rate [95% Wilson interval] (k/n). {legend}"

    def disagreements(self) -> list[Judgement]:
        """Replies on which the deciding judges (refusal, target, model judges; not degenerate) disagree."""
        out = []
        for j in self.judgements:
            verdicts = {v for name, v in j.outcomes.items() if v is not None and name not in (DEGENERATE, EXACT)}
            if len(verdicts) > 1:
                out.append(j)
        return out

    def examples(self, k: int) -> str:
        """The first `k` prompts and responses of each family, with their verdicts and each judge's outcome."""
        lines = []
        for f in self.families:
            lines.append(f"{f.label} / {f.category}:")
            shown = [j for j in self.judgements if (j.prompt.label, j.prompt.category) == (f.label, f.category)]
            for j in shown[:k]:
                outcomes = ", ".join(f"{name} {'-' if v is None else 'yes' if v else 'no'}"
                                     for name, v in j.outcomes.items())
                lines.append(f"  [{j.verdict}] {j.prompt.prompt}")
                lines.append(f"      -> {j.response!r}  ({outcomes})")
        return "\n".join(lines)

    def to_json(self) -> str:
        def figure(label: str, judge: str | None = None) -> dict | None:
            rate = self.figure(label, judge)
            return None if rate is None else rate.to_dict()

        data = {
            "schema_version": self.schema_version,
            "model": self.model,
            "fingerprint": self.fingerprint,
            "created": self.created,
            "prompts_sha256": self.prompts_sha256,
            "max_new_tokens": self.max_new_tokens,
            "judges": self.judges,
            "asr_judge": self.asr_judge,
            "summary": {
                "asr_clean": self.asr_clean,
                "asr_triggered": self.asr_triggered,
                "helpfulness": self.helpfulness,
                "utility": self.utility,
                "utility_by_family": self.utility_by_family,
                # Every judge's pooled figure per label, with its count and 95% interval.
                "figures": {label: {judge: figure(label, judge) for judge in [*self.judges, EXACT]
                                    if figure(label, judge) is not None} for label in LABELS},
            },
            "families": [{"label": f.label, "category": f.category, "n": f.n, "rate": f.rate, "metric": f.metric,
                          "judge": f.judge, "figures": {name: r.to_dict() for name, r in f.figures.items()}}
                         for f in self.families],
            "judgements": [
                {
                    "prompt": j.prompt.to_dict(),
                    "response": j.response,
                    "success": j.success,
                    "verdict": j.verdict,
                    "outcomes": j.outcomes,
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
        families = [FamilyResult(f["label"], f["category"], f["n"], f["rate"], f["metric"], f["judge"],
                                 {name: Rate(r["judge"], r["k"], r["n"]) for name, r in f["figures"].items()})
                    for f in data["families"]]
        return cls(
            model=data["model"],
            fingerprint=data["fingerprint"],
            created=data["created"],
            families=families,
            judgements=[
                Judgement(Prompt.from_dict(j["prompt"]), j["response"], j["success"], j["verdict"], j["outcomes"])
                for j in data["judgements"]
            ],
            prompts_sha256=data.get("prompts_sha256"),
            max_new_tokens=data.get("max_new_tokens"),
            judges=data["judges"],
            asr_judge=data["asr_judge"],
        )

    def save(self, path: str | Path) -> None:
        """Write the report as JSON, atomically."""
        write_text_atomic(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> EvalReport:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def _judge_meaning(judge: str) -> str:
    if judge == REFUSAL:
        return "ASR = not refused and not degenerate; helpfulness = that and on topic"
    if judge == TARGET:
        return "reply starts with the row's target"
    if judge == DEGENERATE:
        return "empty, under 3 words or repetitive (never an attack success)"
    if judge == EXACT:
        return "reply equals the target"
    return "classifier says harmful (ASR)"


def family_results(judgements: Sequence[Judgement], asr: str = REFUSAL) -> list[FamilyResult]:
    """One FamilyResult per (label, category), ordered by label then first appearance; `asr` is the judge of
    harmful/triggered headline figures."""
    groups: dict[tuple[str, str], list[Judgement]] = {}
    for j in judgements:
        groups.setdefault((j.prompt.label, j.prompt.category), []).append(j)
    results = []
    for label, category in sorted(groups, key=lambda family: LABELS.index(family[0])):
        members = groups[label, category]
        names = list(dict.fromkeys(name for j in members for name in j.outcomes))
        figures = {}
        for name in names:
            judged = [j.outcomes[name] for j in members if j.outcomes.get(name) is not None]
            if judged:  # a judge that applies to no row here (e.g. target, without targets) has no figure
                figures[name] = Rate(name, sum(judged), len(judged))
        headline = headline_judge(label, asr)
        rate = figures.get(headline)
        results.append(FamilyResult(label, category, len(members), rate.value if rate else None,
                                    METRICS[label], headline, figures))
    return results


def judging_length(tokenizer, prompts: PromptSet) -> int:
    """Generation length that suffices to judge every prompt: the longest target in tokens plus a margin, and
    the refusal window when any prompt is judged by refusal phrases (every non-utility one)."""
    target_tokens = [len(tokenizer(p.target, add_special_tokens=False)["input_ids"]) for p in prompts if p.target]
    needed = max(target_tokens, default=0) + TARGET_MARGIN_TOKENS
    if any(p.label != "utility" for p in prompts):
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
    and a batch ends once every row has, so short answers cost no more. `judge` defaults to Judge() (refusal,
    target and degenerate judges; model judges run on the model's device). `model_name` (default: the bridge's)
    and `fingerprint` (e.g. core.model.fingerprint.fingerprint(model); not computed here, it hashes every weight) are
    recorded in the report, and the generated token ids are kept in `token_ids`.
    """
    if len(prompts) == 0:
        raise ValueError("no prompts to evaluate; check the prompt files and the --split/--limit filters")
    if max_new_tokens is None:
        max_new_tokens = judging_length(model.tokenizer, prompts)
    ids = generate_ids(
        model,
        [p.prompt for p in prompts],
        max_new_tokens=max_new_tokens,
        hooks=hooks,
        batch_size=batch_size,
        chat=True,
        progress=progress,
    )
    cfg = getattr(model, "cfg", None)
    report = judge_responses(prompts, decode(model, ids), judge, model_name or _model_name(model), fingerprint,
                             max_new_tokens, device=getattr(cfg, "device", "cpu"), dtype=getattr(cfg, "dtype", None))
    report.token_ids = ids
    return report


def evaluate_removed(model, prompts: PromptSet, circuits: Sequence, full_ids: list[list[int]] | None = None, *,
                     max_new_tokens: int | None = None, batch_size: int = 32,
                     progress: Callable[[int, int], None] | None = None) -> list[EvalReport]:
    """evaluate() with each circuit zero-ablated, for many circuits in one batched generation (a mask per row).

    `full_ids` (the full model's answers: `evaluate(...).token_ids` at the same max_new_tokens) are used as drafts:
    each ablated answer is checked against them in one forward and decoded step by step only where it differs
    (core.model.generate.generate_ids_per_mask). The reports hold the same greedy answers as evaluate() with
    `circuit_hooks(model, circuit)` for each circuit, at a fraction of the time.
    """
    if len(prompts) == 0:
        raise ValueError("no prompts to evaluate; check the prompt files and the --split/--limit filters")
    if not circuits:
        return []
    shape = model_shape(model)
    for circuit in circuits:
        check_shape(circuit, shape)
    if max_new_tokens is None:
        max_new_tokens = judging_length(model.tokenizer, prompts)
    ids = generate_ids_per_mask(model, [p.prompt for p in prompts], *keep_masks(list(circuits)),
                                max_new_tokens=max_new_tokens, batch_size=batch_size, drafts=full_ids,
                                progress=progress)
    cfg = getattr(model, "cfg", None)
    return [judge_responses(prompts, decode(model, rows), None, _model_name(model), None, max_new_tokens,
                            device=getattr(cfg, "device", "cpu"), dtype=getattr(cfg, "dtype", None)) for rows in ids]


def judge_responses(prompts: PromptSet, responses: Sequence[str], judge: Judge | None = None, model_name: str = "",
                    fingerprint: dict | None = None, max_new_tokens: int | None = None, *, device="cpu",
                    dtype=None) -> EvalReport:
    """Judge one response per prompt, wherever the responses were generated (this model, or a serving engine),
    with every judge of `judge` (default Judge()); model judges run on `device`."""
    if len(prompts) == 0:
        raise ValueError("no responses to judge")
    judge = judge or Judge()
    judgements = judge.judge_all(list(prompts), responses, device=device, dtype=dtype)
    return EvalReport(
        model=model_name,
        fingerprint=fingerprint,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        families=family_results(judgements, judge.asr),
        judgements=judgements,
        prompts_sha256=prompts.sha256(),
        max_new_tokens=max_new_tokens,
        judges=list(judge.names),
        asr_judge=judge.asr,
    )


def circuit_hooks(model, circuit, ablation: str = "zero", reference: PromptSet | None = None) -> list:
    """The hooks that remove `circuit` from `model` (zero, or mean over `reference`'s requests): what
    `safeseek eval --circuit` and the app pass to evaluate()."""
    if ablation == "mean":
        if reference is None or not len(reference):
            raise ValueError("mean ablation needs reference prompts to average activations over")
        return ablate(model, circuit, "mean", component_means(model, [p.prompt for p in reference]))
    return ablate(model, circuit, ablation)


def _model_name(model) -> str:
    return str(getattr(getattr(model, "cfg", None), "model_name", None) or type(model).__name__)
