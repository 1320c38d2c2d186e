"""The circuit report card: necessity, sufficiency, seed stability, cost curve and location of one circuit."""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

import torch

from core.circuit.ablate import ablate, component_means, prompt_activations, resample_hooks, resample_pairing
from core.circuit.circuit import Circuit, counted
from core.circuit.component import Component
from core.circuit.overlap import core_components, jaccard, pairwise_jaccard
from core.data.paths import CARD_SUFFIX, recorded_path
from core.data.prompts import PromptSet, select_split
from core.data.record import checkpoint_record
from core.evaluation.cache import ResultCache
from core.evaluation.compare import SCORERS, baseline_scores
from core.evaluation.judges import Judgement
from core.evaluation.metrics import RATE_LABELS, Rate, scenario_rates
from core.evaluation.report import EvalReport, evaluate, evaluate_removed, judging_length
from core.model.generate import encode_prompts
from core.model.load import parameter_count
from core.scoring.learned import DiscoveryConfig, LatestRetainTargets, discover
from core.scoring.processes import DiscoveryJob, ModelLoader, discover_in_processes, worker_count
from core.scoring.random import random_components
from core.scoring.scenario import DEFAULT_TRAIN_LIMIT, scenario_from_prompts
from core.scoring.select import circuit_of_size

ABLATIONS = ("zero", "mean", "resample")
SCENARIOS = ("backdoor", "alignment")
UTILITY_LABELS = ("benign", "utility")
# 8 circuit sizes, evenly spaced on a log axis from 0.05% to 3% of all components.
DEFAULT_BUDGETS = tuple(round(0.0005 * (0.03 / 0.0005) ** (i / 7), 6) for i in range(8))
BASELINES = ("attribution", "magnitude", "random")
MAX_CARD_BYTES = 16 * 1024 * 1024  # a card file larger than this is not read (a card with its figures is far smaller)
DISAGREEMENT = 0.10  # the badge: ablation types whose results differ by more than this many points / 100

Progress = Callable[[str, int, int], None]  # (part, done, total)


class ReportError(ValueError):
    """A report card request that cannot run as given."""


@dataclass
class Outcome:
    """One evaluation: behaviour ASR (with refusals and off-target answers) and pooled utility."""

    asr: Rate
    refused: Rate
    off_target: Rate
    utility: Rate  # share of benign and utility-task prompts answered well (pooled)

    @classmethod
    def from_judgements(cls, judgements: list[Judgement], behaviour_label: str) -> Outcome:
        behaviour = [j for j in judgements if j.prompt.label == behaviour_label]
        utility = [j for j in judgements if j.prompt.label in UTILITY_LABELS]
        if not behaviour or not utility:
            raise ReportError(f"the evaluation set needs '{behaviour_label}' prompts and benign or utility prompts")
        n = len(behaviour)
        # The card's behaviour is the row's target when it has one (a backdoor's payload), else not refusing.
        hits = [bool(j.outcomes.get("target")) if j.prompt.target else j.success for j in behaviour]
        refused = [j.verdict == "refused" for j in behaviour]
        return cls(Rate("behaviour", sum(hits), n), Rate("refusal", sum(refused), n),
                   Rate("neither", sum(not h and not r for h, r in zip(hits, refused, strict=True)), n),
                   Rate("utility", sum(j.success for j in utility), len(utility)))

    @classmethod
    def from_dict(cls, data: dict) -> Outcome:
        return cls(**{key: Rate(**value) for key, value in data.items()})


# ---- component sets ---------------------------------------------------------------------------------------------
def component_set(heads, neurons) -> set[str]:
    """Labels ("L2H9", "L0N134") of a circuit's heads and neurons, comparable across circuits of one model."""
    return {Component("head", *h).label for h in heads} | {Component("neuron", *n).label for n in neurons}


def component_labels(heads, neurons) -> list[str]:
    """component_set in reading order, as cards list components."""
    return sorted(component_set(heads, neurons), key=Component.parse)


# ---- what a card holds ------------------------------------------------------------------------------------------
@dataclass
class CardConfig:
    per_family: int = 32  # held-out prompts per (label, category) family
    split: str = "test"
    reference_per_family: int = 8  # train prompts per family for mean / resample ablation
    seed: int = 0  # held-out and reference samples, resample pairing
    seeds: int = 5  # discoveries in the stability part, the circuit's own run included
    budgets: tuple[float, ...] = DEFAULT_BUDGETS
    random_seeds: int = 3  # random circuits per budget (their mean is plotted)
    steps: int | None = None  # discovery steps; None: the circuit's recorded steps
    train_limit: int | None = None  # training prompts per family; None: the circuit's recorded command
    batch_size: int = 64
    workers: int | None = None  # processes for the discoveries (seeds, curve); None: see core.scoring.processes

    def check(self) -> None:
        """Raise ReportError naming the first bad setting (before any model is loaded)."""
        for name in ("per_family", "reference_per_family", "seeds", "random_seeds", "batch_size"):
            if getattr(self, name) < 1:
                raise ReportError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.steps is not None and self.steps < 1:
            raise ReportError(f"--steps must be at least 1, got {self.steps}")
        if self.workers is not None and self.workers < 1:
            raise ReportError(f"--workers must be at least 1, got {self.workers}")
        if self.train_limit is not None and self.train_limit < 1:
            raise ReportError(f"--train-limit must be at least 1, got {self.train_limit}")
        if not self.budgets or not all(0 < b < 1 for b in self.budgets):
            raise ReportError(f"budgets must be fractions of all components between 0 and 1, got {self.budgets}")


@dataclass
class StabilityRun:
    seed: int
    components: list[str]
    removal_asr: Rate
    removal_utility: Rate
    source: str  # "this circuit" or "discovered"


@dataclass
class Stability:
    runs: list[StabilityRun]
    jaccard: list[list[float | None]]
    core: list[str]  # in every run

    @property
    def mean_jaccard(self) -> float | None:
        values = [v for i, row in enumerate(self.jaccard) for j, v in enumerate(row) if i < j and v is not None]
        return sum(values) / len(values) if values else None


@dataclass
class CurvePoint:
    method: str
    budget: float  # the fraction of all components asked for
    size: int  # components in the circuit (learned circuits may be smaller than the budget)
    asr: float  # behaviour ASR with the circuit removed (mean over seeds for random)
    utility: float
    n: int  # behaviour prompts behind each ASR


@dataclass
class Location:
    per_layer: list[dict]  # layer, heads, neurons, share of the circuit
    overlaps: list[dict]  # name, size, heads/neurons inside, share of the circuit inside, jaccard


@dataclass
class ReportCard:
    name: str
    scenario: str
    behaviour_label: str
    components: list[str]
    summary: str
    meta: dict  # model fingerprint, prompt hashes, commands, date, settings
    full: Outcome
    necessity: dict[str, Outcome]
    sufficiency: dict[str, Outcome]
    stability: Stability
    curve: list[CurvePoint]
    location: Location

    # ---- derived readings -------------------------------------------------------------------------------------
    def disagreement(self) -> str | None:
        """The badge: which measure the three ablation types disagree on by more than 10 points, if any."""
        notes = []
        for what in ("asr", "utility"):
            values = {m: getattr(o, what).value for m, o in self.necessity.items()}
            spread = max(values.values()) - min(values.values())
            if spread > DISAGREEMENT:
                name = "behaviour ASR" if what == "asr" else "utility"
                notes.append(f"{name} differs by {100 * spread:.0f} points between ablation types ("
                             + ", ".join(f"{m} {100 * v:.1f}%" for m, v in values.items()) + ")")
        return "; ".join(notes) or None

    def sufficiency_reading(self, method: str) -> str:
        """A plain-language reading of the keep-only-the-circuit result for one ablation type."""
        kept, full = self.sufficiency[method], self.full
        if self.scenario == "backdoor":
            what, before, after = "triggered requests complied with", full.asr.value, kept.asr.value
        else:
            what, before, after = "harmful requests refused", full.refused.value, kept.refused.value
        share = after / before if before > 0 else 0.0
        verdict = ("carries the behaviour on its own" if share >= 0.8 else
                   "carries part of the behaviour on its own" if share >= 0.2 else
                   "does not carry the behaviour on its own; it needs the rest of the model")
        broken = (f"; {100 * kept.off_target.value:.0f}% of the answers are neither a compliance nor a refusal"
                  if kept.off_target.value >= 0.2 else "")
        return (f"With every other component removed ({method} ablation) the circuit {verdict}: {what} "
                f"{100 * after:.1f}% (full model {100 * before:.1f}%){broken}; "
                f"utility {100 * kept.utility.value:.1f}%.")

    def curve_summary(self) -> dict:
        """The area between the learned curve and the best baseline's, as the mean ASR gap in points over the
        log-size axis (positive: removing the learned circuits changes the behaviour more), and the same for
        utility against that baseline (positive: the learned circuits leave more of it)."""
        sign = 1.0 if self.scenario == "backdoor" else -1.0  # a backdoor circuit lowers ASR, alignment raises it
        by_method: dict[str, list[CurvePoint]] = {}
        for point in self.curve:
            by_method.setdefault(point.method, []).append(point)
        learned = by_method.get("learned", [])
        if len(learned) < 2:
            return {"best_baseline": None, "area": None, "utility_area": None}
        xs = [math.log10(p.budget) for p in learned]

        def mean_gap(method: str, gap: Callable[[CurvePoint, CurvePoint], float]) -> float:
            gaps = [gap(a, b) for a, b in zip(learned, by_method[method], strict=True)]
            area = sum((xs[i + 1] - xs[i]) * (gaps[i] + gaps[i + 1]) / 2 for i in range(len(xs) - 1))
            return 100 * area / (xs[-1] - xs[0])

        gaps = {m: mean_gap(m, lambda a, b: sign * (b.asr - a.asr)) for m in BASELINES if m in by_method}
        best = min(gaps, key=gaps.get)  # the baseline closest to (or beyond) the learned curve
        return {"best_baseline": best, "area": gaps[best], "per_baseline": gaps,
                "utility_area": mean_gap(best, lambda a, b: a.utility - b.utility)}

    # ---- files ------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        data = _with_intervals(asdict(self))
        data["disagreement"] = self.disagreement()
        data["sufficiency_readings"] = {m: self.sufficiency_reading(m) for m in self.sufficiency}
        data["stability"]["mean_jaccard"] = self.stability.mean_jaccard
        data["curve_summary"] = self.curve_summary()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ReportCard:
        """The card that to_dict (or a card JSON's "card") holds; the derived readings it added are dropped."""
        def rate(value: dict) -> Rate:
            return Rate(value["judge"], value["k"], value["n"])

        def outcome(value: dict) -> Outcome:
            return Outcome(**{name: rate(item) for name, item in value.items()})

        stability = data["stability"]
        runs = [StabilityRun(run["seed"], run["components"], rate(run["removal_asr"]), rate(run["removal_utility"]),
                             run["source"]) for run in stability["runs"]]
        return cls(data["name"], data["scenario"], data["behaviour_label"], data["components"], data["summary"],
                   data["meta"], outcome(data["full"]),
                   {method: outcome(value) for method, value in data["necessity"].items()},
                   {method: outcome(value) for method, value in data["sufficiency"].items()},
                   Stability(runs, stability["jaccard"], stability["core"]),
                   [CurvePoint(**point) for point in data["curve"]],
                   Location(data["location"]["per_layer"], data["location"]["overlaps"]))

    def measured(self, fingerprint: dict, circuit: Circuit, prompts_sha256: str) -> bool:
        """Whether this card measured `circuit` (name, scenario, components) on this model (weights hash) with these
        prompt files."""
        weights = fingerprint.get("weights_sha256")
        return (weights is not None and (self.meta.get("model") or {}).get("weights_sha256") == weights
                and (self.name, self.scenario, self.components) == (circuit.name, circuit.scenario,
                                                                    component_labels(circuit.heads, circuit.neurons))
                and (self.meta.get("prompt_hashes") or {}).get("all prompts") == prompts_sha256)

    @classmethod
    def read(cls, path: str | Path) -> ReportCard:
        """The card in a card JSON (`safeseek report --json`); ValueError (one line) for a file that is too large,
        unreadable or not a card."""
        path = Path(path)
        try:
            if path.stat().st_size > MAX_CARD_BYTES:
                raise ValueError(f"{path.name} is over {MAX_CARD_BYTES // 2**20} MiB; a card is far smaller")
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8"))["card"])
        except OSError as e:
            raise ValueError(f"cannot read {path.name} ({e.strerror})") from None
        except (AttributeError, KeyError, TypeError, json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError(f"{path.name} is not a card written by `safeseek report --json`") from None

    def text(self) -> str:
        """Every figure of the card as plain text (what `safeseek report` prints)."""
        asr = f"{self.behaviour_label} ASR"
        lines = [f"Report card: '{self.name}' ({self.scenario}), {self.summary}",
                 f"model {self.meta['model'].get('weights_sha256', '?')[:12]}, {self.meta['date']}",
                 "", f"1. Necessity (circuit removed; {self.full.asr.n} {self.behaviour_label} prompts, "
                 f"{self.full.utility.n} utility prompts, 95% intervals)",
                 f"   {'full model':<10} {asr} {self.full.asr.format():<26} utility {self.full.utility.format()}"]
        for m, o in self.necessity.items():
            lines.append(f"   {m:<10} {asr} {o.asr.format():<26} utility {o.utility.format()}")
        lines.append(f"   ! ablation types disagree: {self.disagreement()}" if self.disagreement() else
                     "   zero, mean and resample ablation agree within 10 points")
        lines += ["", "2. Sufficiency (only the circuit kept)"]
        for m, o in self.sufficiency.items():
            lines.append(f"   {m:<10} {asr} {o.asr.format():<26} refused {100 * o.refused.value:.1f}%  "
                         f"off-target {100 * o.off_target.value:.1f}%  utility {100 * o.utility.value:.1f}%")
            lines.append(f"      {self.sufficiency_reading(m)}")
        st = self.stability
        mean = "n/a" if st.mean_jaccard is None else f"{st.mean_jaccard:.2f}"
        lines += ["", f"3. Stability across {len(st.runs)} seeds: mean pairwise Jaccard {mean}; "
                  f"{len(st.core)} components in every run: {', '.join(st.core) or 'none'}"]
        for run in st.runs:
            lines.append(f"   seed {run.seed:<3} {len(run.components):>3} components  removal {asr} "
                         f"{run.removal_asr.format():<26} ({run.source})")
        for i, row in enumerate(st.jaccard):
            lines.append("   " + " ".join("  -  " if v is None else f"{v:5.2f}" for v in row)
                         + f"   seed {st.runs[i].seed}")
        summary = self.curve_summary()
        lines += ["", f"4. Cost curve: removal {asr} (utility), and c = components, by circuit size"]
        methods = list(dict.fromkeys(p.method for p in self.curve))
        lines.append("   " + f"{'budget':>8} " + " ".join(f"{m:>20}" for m in methods))
        for budget in dict.fromkeys(p.budget for p in self.curve):
            cells = {p.method: p for p in self.curve if p.budget == budget}
            lines.append("   " + f"{100 * budget:>7.2f}% " + " ".join(
                f"{100 * cells[m].asr:>6.1f}% ({100 * cells[m].utility:5.1f}%) {cells[m].size:>2}c" for m in methods))
        if summary["area"] is not None:
            lines.append(f"   area between learned and the best baseline ({summary['best_baseline']}): "
                         f"{summary['area']:+.1f} points of {asr} (mean over the log-size axis; + = learned better)")
            lines.append(f"   utility against the same baseline: {summary['utility_area']:+.1f} points (+ = the "
                         "learned circuits leave more of it)")
        n_heads = sum(row["heads"] for row in self.location.per_layer)
        n_neurons = sum(row["neurons"] for row in self.location.per_layer)
        lines += ["", f"5. Where it lives: {counted(n_heads, 'head')}, {counted(n_neurons, 'neuron')}"]
        for row in self.location.per_layer:
            lines.append(f"   layer {row['layer']}: {counted(row['heads'], 'head')}, "
                         f"{counted(row['neurons'], 'neuron')} ({100 * row['share']:.0f}% of the circuit)")
        for o in self.location.overlaps:
            j = "n/a" if o["jaccard"] is None else f"{o['jaccard']:.2f}"
            lines.append(f"   vs {o['name']}: heads inside {o['heads_inside']} of {o['heads']}, neurons inside "
                         f"{o['neurons_inside']} of {o['neurons']} ({100 * o['inside_share']:.0f}% of the circuit), "
                         f"Jaccard {j}")
        return "\n".join(lines)


def _with_intervals(value):
    """Every {judge, k, n} rate in `value` with its share and 95% interval added, for readers of the JSON."""
    if isinstance(value, dict):
        value = {key: _with_intervals(item) for key, item in value.items()}
        if set(value) == {"judge", "k", "n"}:
            rate = Rate(value["judge"], value["k"], value["n"])
            value.update(value=rate.value, interval=list(rate.interval))
        return value
    if isinstance(value, list):
        return [_with_intervals(item) for item in value]
    return value


# ---- the cache --------------------------------------------------------------------------------------------------
# ---- the organism's ground truth --------------------------------------------------------------------------------
def designated_components(checkpoint: str | Path) -> dict[str, tuple[list, list]]:
    """The components each training stage fine-tuned, when the checkpoint records them (organism.json)."""
    try:
        stages = checkpoint_record(checkpoint).get("designated_components") or {}
        return {str(name): ([tuple(map(int, h)) for h in s["heads"]], [tuple(map(int, n)) for n in s["neurons"]])
                for name, s in stages.items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        return {}  # not the organism's format: nothing to compare with


def location(circuit: Circuit, others: dict[str, tuple[list, list]]) -> Location:
    """Share of the circuit per layer and kind, and its overlap with other component sets."""
    total = max(1, circuit.n_components)
    per_layer = []
    for layer in range(circuit.n_layers):
        heads = sum(1 for h in circuit.heads if h[0] == layer)
        neurons = sum(1 for n in circuit.neurons if n[0] == layer)
        per_layer.append({"layer": layer, "heads": heads, "neurons": neurons, "share": (heads + neurons) / total})
    mine = component_set(circuit.heads, circuit.neurons)
    overlaps = []
    for name, (heads, neurons) in others.items():
        theirs = component_set(heads, neurons)
        overlaps.append({"name": name, "heads": len(circuit.heads), "neurons": len(circuit.neurons),
                         "heads_inside": len(set(circuit.heads) & set(map(tuple, heads))),
                         "neurons_inside": len(set(circuit.neurons) & set(map(tuple, neurons))),
                         "other_size": len(theirs), "inside_share": len(mine & theirs) / total,
                         "jaccard": jaccard(mine, theirs)})
    return Location(per_layer, overlaps)


# ---- measuring --------------------------------------------------------------------------------------------------
def recorded_train_limit(circuit: Circuit) -> int:
    """--train-limit of the circuit's recorded discover command (discover's default when absent)."""
    command = str(circuit.hyperparameters.get("command", ""))
    try:
        words = shlex.split(command)
    except ValueError:
        return DEFAULT_TRAIN_LIMIT
    for i, word in enumerate(words):
        if word == "--train-limit" and i + 1 < len(words) and words[i + 1].isdigit():
            return int(words[i + 1])
        if word.startswith("--train-limit=") and word.split("=", 1)[1].isdigit():
            return int(word.split("=", 1)[1])
    return DEFAULT_TRAIN_LIMIT


def recorded_config(circuit: Circuit, steps: int | None = None) -> DiscoveryConfig:
    """The DiscoveryConfig the circuit was found with (defaults for what the file does not record)."""
    known = {f.name for f in fields(DiscoveryConfig)}
    config = DiscoveryConfig(**{k: v for k, v in circuit.hyperparameters.items() if k in known})
    if steps is not None:
        config.steps = steps
    return config


def budget_sizes(circuit: Circuit, budget: float) -> tuple[int, int]:
    """(heads, neurons) of a circuit with `budget` of all components, split as the circuit's recorded budgets."""
    n_heads, n_neurons = circuit.n_layers * circuit.n_heads, circuit.n_layers * circuit.d_mlp
    config = recorded_config(circuit)
    head_room = (config.head_budget or 0.0) * n_heads
    neuron_room = (config.neuron_budget or 0.0) * n_neurons
    if head_room + neuron_room == 0:  # nothing recorded: split as the circuit itself is split
        head_room, neuron_room = len(circuit.heads), len(circuit.neurons) or 1
    k = max(1, round(budget * (n_heads + n_neurons)))
    k_heads = min(n_heads, round(k * head_room / (head_room + neuron_room)))
    return k_heads, min(n_neurons, k - k_heads)


class CardBuilder:
    """Measures one circuit on one model; every expensive result goes through the cache."""

    def __init__(self, model, circuit: Circuit, prompts: PromptSet, config: CardConfig, cache: ResultCache,
                 fingerprint: dict, progress: Progress | None = None, checkpoint: str | Path | None = None,
                 against: Circuit | None = None, command: str = "", model_loader: ModelLoader | None = None):
        """`model_loader`: a picklable callable that loads the same model again, which lets discoveries run in
        worker processes (None: they run here, one after another)."""
        config.check()
        if circuit.scenario not in SCENARIOS:
            raise ReportError(f"circuit '{circuit.name}' has scenario {circuit.scenario!r}; the report card "
                              f"measures backdoor and alignment circuits")
        self.model, self.circuit, self.prompts, self.config = model, circuit, prompts, config
        self.cache, self.fingerprint, self.checkpoint, self.against = cache, fingerprint, checkpoint, against
        self.say = progress or (lambda part, done, total: None)
        self.command, self.model_loader = command, model_loader
        self.label = RATE_LABELS[scenario_rates(circuit.scenario)[0]]
        held_out = select_split(prompts, config.split, config.per_family, config.seed)
        self.eval_set = PromptSet("eval", [p for p in held_out if p.label in (self.label, *UTILITY_LABELS)])
        if not any(p.label == self.label for p in self.eval_set):
            raise ReportError(f"the prompt files have no '{self.label}' prompts in the {config.split} split; a "
                              f"{circuit.scenario} circuit is judged on them")
        if not any(p.label in UTILITY_LABELS for p in self.eval_set):
            raise ReportError(f"the prompt files have no benign or utility prompts in the {config.split} split")
        self.reference = select_split(prompts, "train", config.reference_per_family, config.seed)
        self.train_limit = config.train_limit or recorded_train_limit(circuit)
        self.discovery = recorded_config(circuit, config.steps)
        self.max_new_tokens = judging_length(model.tokenizer, self.eval_set)
        self._means = self._activations = None
        self._full_report: EvalReport | None = None  # see _full()
        self._scenarios: dict[int, object] = {}
        self._retain = LatestRetainTargets()  # the cost curve's discoveries share one seed's
        self._scores: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._base_key = {"model": fingerprint.get("weights_sha256"), "shape": [circuit.n_layers, circuit.n_heads,
                                                                              circuit.d_mlp]}

    # ---- evaluation -------------------------------------------------------------------------------------------
    def _outcome_key(self, heads, neurons, method: str = "zero", keep_only: bool = False) -> dict:
        key = {"kind": "eval", **self._base_key, "eval": self.eval_set.sha256(), "label": self.label,
               "components": component_labels(heads, neurons), "method": method,
               "keep_only": keep_only}
        if method != "zero":
            key.update(reference=self.reference.sha256(), seed=self.config.seed)
        return key

    def prefetch(self, sets: list[tuple[list, list]], part: str) -> None:
        """Measure the zero-ablation outcomes of many (heads, neurons) sets in one batched generation
        (core.evaluation.report.evaluate_removed, the full model's answers as drafts) and cache them for outcome()."""
        todo = {}
        for heads, neurons in sets:
            key = self._outcome_key(heads, neurons)
            if (heads or neurons) and self.cache.get(key) is None:
                todo[json.dumps(key, sort_keys=True, default=str)] = (key, heads, neurons)
        if not todo:
            return
        circuits = [self.circuit.with_components(list(h), list(n)) for _, h, n in todo.values()]
        reports = evaluate_removed(self.model, self.eval_set, circuits, self._full().token_ids,
                                   max_new_tokens=self.max_new_tokens, batch_size=self.config.batch_size,
                                   progress=lambda done, total: self.say(part, done, total))
        for (key, _, _), report in zip(todo.values(), reports, strict=True):
            self.cache.put(key, asdict(Outcome.from_judgements(report.judgements, self.label)))

    def _full(self) -> EvalReport:
        """The full model's report on the evaluation set, with its answers' token ids (computed once)."""
        if self._full_report is None:
            self._full_report = evaluate(self.model, self.eval_set, max_new_tokens=self.max_new_tokens,
                                         batch_size=self.config.batch_size)
        return self._full_report

    def outcome(self, heads, neurons, method: str = "zero", keep_only: bool = False) -> Outcome:
        """Behaviour and utility with the components removed (or, keep_only, everything else removed)."""
        key = self._outcome_key(heads, neurons, method, keep_only)
        cached = self.cache.get(key)
        if cached is not None:
            return Outcome.from_dict(cached)
        circuit = self.circuit.with_components(list(heads), list(neurons))
        if not heads and not neurons and not keep_only:
            judgements = self._full().judgements
        elif method == "resample":
            judgements = self._evaluate_resampled(circuit, keep_only)
        else:
            means = self.means() if method == "mean" else None
            judgements = self._evaluate(ablate(self.model, circuit, method, means, keep_only))
        result = Outcome.from_judgements(judgements, self.label)
        self.cache.put(key, asdict(result))
        return result

    def _evaluate(self, hooks, prompts: PromptSet | None = None) -> list[Judgement]:
        prompts = prompts if prompts is not None else self.eval_set
        batch = max(self.config.batch_size, len(prompts)) if prompts is not self.eval_set else self.config.batch_size
        return evaluate(self.model, prompts, hooks=hooks, max_new_tokens=self.max_new_tokens,
                        batch_size=batch).judgements

    def _evaluate_resampled(self, circuit: Circuit, keep_only: bool) -> list[Judgement]:
        # Per-row hooks must know which prompt each batch row holds. Generation orders a batch by token length
        # (stably), so each call gets batch_size prompts already in that order and keeps them as given.
        prompts = list(self.eval_set)
        pairing = resample_pairing([p.prompt for p in prompts], [p.prompt for p in self.reference],
                                   self.config.seed)
        lengths = [len(ids) for ids in encode_prompts(self.model.tokenizer, [p.prompt for p in prompts])]
        order = sorted(range(len(prompts)), key=lambda i: lengths[i])
        judged: dict[int, Judgement] = {}
        activations = self.activations()
        for start in range(0, len(order), self.config.batch_size):
            rows = order[start: start + self.config.batch_size]
            hooks = resample_hooks(circuit, activations, [pairing[i] for i in rows], keep_only)
            judged.update(zip(rows, self._evaluate(hooks, PromptSet("batch", [prompts[i] for i in rows])),
                              strict=True))
        return [judged[i] for i in range(len(prompts))]

    def means(self):
        if self._means is None:
            self._means = component_means(self.model, [p.prompt for p in self.reference])
        return self._means

    def activations(self):
        if self._activations is None:
            self._activations = prompt_activations(self.model, [p.prompt for p in self.reference])
        return self._activations

    # ---- discovery and scores ---------------------------------------------------------------------------------
    def scenario(self, seed: int):
        if seed not in self._scenarios:
            self._scenarios[seed] = scenario_from_prompts(self.model, self.prompts, self.circuit.scenario,
                                                          self.train_limit, seed)
        return self._scenarios[seed]

    def _discover_key(self, config: DiscoveryConfig) -> dict:
        return {"kind": "discover", **self._base_key, "prompts": self.prompts.sha256(), "scenario":
                self.circuit.scenario, "train_limit": self.train_limit, "config": asdict(config)}

    def discovered(self, config: DiscoveryConfig, label: str) -> tuple[list, list]:
        """(heads, neurons) that `safeseek discover` finds with this config (seed = its data sampling seed too)."""
        key = self._discover_key(config)
        cached = self.cache.get(key)
        if cached is None:
            part = f"  discovery ({label})"
            found = discover(self.model, self.scenario(config.seed), config,
                             progress=lambda log: self.say(part, log.step, config.steps),
                             retain=self._retain.get(self.model, self.scenario(config.seed), config,
                                                     (config.seed,)))
            cached = self._put_discovery(key, found.heads, found.neurons)
        return [tuple(h) for h in cached["heads"]], [tuple(n) for n in cached["neurons"]]

    def _put_discovery(self, key: dict, heads, neurons) -> dict:
        value = {"heads": [list(h) for h in heads], "neurons": [list(n) for n in neurons]}
        self.cache.put(key, value)
        return value

    def discover_ahead(self, planned: list[tuple[DiscoveryConfig, str]]) -> None:
        """Run the uncached ones of the planned (config, label) discoveries side by side in worker processes when
        that is faster (a small model on a multi-core CPU, see core.scoring.processes) and a model loader was
        given; discovered() then finds them in the cache."""
        todo = [(c, label) for c, label in planned if self.cache.peek(self._discover_key(c)) is None]
        workers = self.config.workers or worker_count(len(todo), torch.device(self.model.cfg.device).type,
                                                      parameter_count(self.model))
        if self.model_loader is None or workers < 2 or len(todo) < 2:
            return
        jobs = [DiscoveryJob(self.prompts, self.circuit.scenario, self.train_limit, c) for c, _ in todo]
        found = discover_in_processes(self.model_loader, jobs, min(workers, len(todo)),
                                      progress=lambda i, step, total: self.say(f"  discovery ({todo[i][1]})", step,
                                                                               total))
        for (config, _), circuit in zip(todo, found, strict=True):
            self._put_discovery(self._discover_key(config), circuit.heads, circuit.neurons)

    def _checkpoint(self) -> str:
        """The checkpoint as the card records it (recorded_path: relative to the checkout when inside it)."""
        return recorded_path(self.checkpoint) if self.checkpoint else ""

    def planned_discoveries(self) -> tuple[dict[int, DiscoveryConfig], dict[float, tuple[DiscoveryConfig, str]]]:
        """The discoveries the card needs: the stability runs' (other seeds) and the cost curve's (one per budget,
        the circuit's recorded settings otherwise, with the budget's head and neuron sizes)."""
        c, first = self.circuit, self.discovery.seed
        seeds = {first + i: DiscoveryConfig(**{**asdict(self.discovery), "seed": first + i})
                 for i in range(1, self.config.seeds)}
        n_heads, n_neurons = c.n_layers * c.n_heads, c.n_layers * c.d_mlp
        budgets = {}
        for budget in sorted(self.config.budgets):
            k_heads, k_neurons = budget_sizes(c, budget)
            # (k + 0.5) / count: discovery keeps int(budget * count) components, exactly k.
            config = DiscoveryConfig(**{**asdict(self.discovery),
                                        "head_budget": (k_heads + 0.5) / n_heads if k_heads else None,
                                        "neuron_budget": (k_neurons + 0.5) / n_neurons if k_neurons else None})
            budgets[budget] = (config, f"{counted(k_heads, 'head')}, {counted(k_neurons, 'neuron')}")
        return seeds, budgets

    def scores(self, method: str) -> tuple[torch.Tensor, torch.Tensor]:
        if not self._scores:
            seed = self.discovery.seed
            self._scores = baseline_scores(self.model, self.fingerprint, self.prompts, self.circuit.scenario,
                                           self.train_limit, seed, self.cache, build=lambda: self.scenario(seed))
        return self._scores[method]

    # ---- the five parts ---------------------------------------------------------------------------------------
    def stability(self) -> Stability:
        c = self.circuit
        first = self.discovery.seed
        seeds = [first + i for i in range(self.config.seeds)]
        configs = self.planned_discoveries()[0]
        found = []
        for done, seed in enumerate(seeds):
            self.say("stability", done, len(seeds))
            if seed == first:
                found.append((c.heads, c.neurons, "this circuit"))
            else:
                found.append((*self.discovered(configs[seed], f"seed {seed}"), "discovered"))
        self.prefetch([(heads, neurons) for heads, neurons, _ in found], "stability: removal")
        runs = []
        for seed, (heads, neurons, source) in zip(seeds, found, strict=True):
            removed = self.outcome(heads, neurons)
            runs.append(StabilityRun(seed, component_labels(heads, neurons), removed.asr,
                                     removed.utility, source))
        self.say("stability", len(seeds), len(seeds))
        sets = [set(r.components) for r in runs]
        return Stability(runs, pairwise_jaccard(sets), core_components(sets))

    def curve(self) -> list[CurvePoint]:
        c = self.circuit
        planned = self.planned_discoveries()[1]
        budgets = list(planned)
        by_budget: dict[float, dict[str, list[tuple[list, list]]]] = {}
        for done, budget in enumerate(budgets):
            self.say("cost curve: circuits", done, len(budgets))
            k_heads, k_neurons = budget_sizes(c, budget)
            candidates: dict[str, list[tuple[list, list]]] = {}
            candidates["learned"] = [self.discovered(*planned[budget])]
            for method in SCORERS:
                candidates[method] = [circuit_of_size(self.scores(method), (k_heads, k_neurons))]
            # random_components draws as many heads and neurons as the circuit it is given has: any k of each.
            sized = c.with_components(*circuit_of_size((torch.zeros(c.n_layers, c.n_heads),
                                                        torch.zeros(c.n_layers, c.d_mlp)), (k_heads, k_neurons)))
            candidates["random"] = [(r.heads, r.neurons) for r in
                                    (random_components(sized, seed) for seed in range(self.config.random_seeds))]
            by_budget[budget] = candidates
        self.say("cost curve: circuits", len(budgets), len(budgets))
        self.prefetch([s for candidates in by_budget.values() for sets in candidates.values() for s in sets],
                      "cost curve: removal")
        points: list[CurvePoint] = []
        for budget, candidates in by_budget.items():
            for method, sets in candidates.items():
                outcomes = [self.outcome(heads, neurons) for heads, neurons in sets]
                points.append(CurvePoint(method, budget, len(sets[0][0]) + len(sets[0][1]),
                                         sum(o.asr.value for o in outcomes) / len(outcomes),
                                         sum(o.utility.value for o in outcomes) / len(outcomes),
                                         outcomes[0].asr.n))
        return points

    def build(self) -> ReportCard:
        c = self.circuit
        self.say("necessity and sufficiency", 0, 7)
        full = self.outcome([], [])
        necessity, sufficiency = {}, {}
        for i, method in enumerate(ABLATIONS):
            necessity[method] = self.outcome(c.heads, c.neurons, method)
            self.say("necessity and sufficiency", 2 * i + 2, 7)
            sufficiency[method] = self.outcome(c.heads, c.neurons, method, keep_only=True)
            self.say("necessity and sufficiency", 2 * i + 3, 7)
        seeds, budgets = self.planned_discoveries()
        self.discover_ahead([(config, f"seed {seed}") for seed, config in seeds.items()] + list(budgets.values()))
        stability = self.stability()
        curve = self.curve()
        meta = {"model": dict(self.fingerprint), "checkpoint": self._checkpoint(),
                "prompt_hashes": self._prompt_hashes(), "command": self.command,
                "discover_command": c.hyperparameters.get("command"),
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "settings": self._settings(),
                "cache": {"reused": self.cache.reused, "computed": self.cache.computed}}
        return ReportCard(c.name, c.scenario, self.label, component_labels(c.heads, c.neurons), c.summary(), meta,
                          full, necessity, sufficiency, stability, curve, self._location())

    # ---- what decides the figures, and cards built before with the same ---------------------------------------
    def _prompt_hashes(self) -> dict[str, str]:
        return {"all prompts": self.prompts.sha256(), "evaluation": self.eval_set.sha256(),
                "reference": self.reference.sha256(),
                **{f"circuit {k}": v for k, v in self.circuit.prompt_hashes.items()}}

    def _settings(self) -> dict:
        return {**asdict(self.config), "train_limit": self.train_limit, "steps": self.discovery.steps,
                "max_new_tokens": self.max_new_tokens, "evaluation_prompts": len(self.eval_set),
                "reference_prompts": len(self.reference)}

    def _location(self) -> Location:
        others = {f"designated ({stage})": sets for stage, sets in
                  (designated_components(self.checkpoint) if self.checkpoint else {}).items()}
        if self.against is not None:
            others[f"circuit '{self.against.name}'"] = (self.against.heads, self.against.neurons)
        return location(self.circuit, others)

    def built_before(self, card: ReportCard) -> bool:
        """Whether `card` measured this circuit on this model and these prompts with these settings (worker count
        aside, which changes no figure), so that building it again would print the same figures."""
        c, meta = self.circuit, card.meta

        def comparable(settings: dict) -> dict:  # as JSON has them (tuples become lists); worker count aside
            return {k: v for k, v in json.loads(json.dumps(settings)).items() if k != "workers"}

        same_settings = comparable(meta.get("settings", {})) == comparable(self._settings())
        return (card.measured(self.fingerprint, c, self.prompts.sha256())
                and meta.get("discover_command") == c.hyperparameters.get("command")
                and meta.get("prompt_hashes") == self._prompt_hashes() and same_settings)

    def prebuilt(self, folder: str | Path) -> ReportCard | None:
        """A card in `folder`'s `*.card.json` files (`safeseek report --json`, as the sample circuits ship theirs)
        that was built with exactly this builder's inputs (built_before), with this builder's checkpoint path and
        overlaps; None when there is none. Files that are too large or unreadable are skipped."""
        for path in sorted(Path(folder).glob(f"*{CARD_SUFFIX}")):
            try:
                card = ReportCard.read(path)
            except ValueError:
                continue
            if self.built_before(card):
                # Same weights, maybe another folder: name this builder's checkpoint, and its designated components.
                card.meta = {**card.meta, "checkpoint": self._checkpoint()}
                card.location = self._location()
                return card
        return None
