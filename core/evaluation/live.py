"""What switching components off does: ASR, utility and generations of the ablated model next to the full model's.

Everything here is a plain function of (model, selection, prompts) so the app, the tests and bench/toggle.py share it.
The full model's reports do not depend on the selection: callers compute them once (`full_reports`) and pass them in.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from core.circuit.circuit import Circuit, keep_masks
from core.circuit.selection import Selection, SelectionError
from core.data.prompts import PromptSet
from core.evaluation.metrics import METRICS
from core.evaluation.report import EvalReport, evaluate, judge_responses
from core.model.batching import Gatherer
from core.model.generate import decode, generate, generate_ids_per_mask
from core.model.load import ModelShape
from core.scoring.random import random_components
from core.scoring.select import top_k

FREE_TEXT_TOKENS = 32
RECENT_ANSWERS = 32  # selections whose answers are kept as drafts (each a few thousand token ids)
# Prompts per generation batch, for the full model and every ablation alike. A batch is left-padded to its longest
# prompt plus draft: smaller batches pad less, larger ones run fewer forwards (bench/toggle_batch.py weighs them).
BATCH_SIZE = 32
PRESETS = ("none", "whole circuit", "top-k", "random (same size)")


def rate_name(prompts: PromptSet) -> str:
    """What the success rate of a one-label set is called: ASR, helpfulness or exact match."""
    labels = {p.label for p in prompts}
    return METRICS[labels.pop()] if len(labels) == 1 else "success rate"


def success_rate(report: EvalReport) -> float:
    return sum(j.success for j in report.judgements) / len(report.judgements)


class RecentAnswers:
    """The answers (token ids) of the last selections measured on one prompt set, kept as drafts for the next
    measurement: a toggle switches one component, so once several are off the previous selection's answers are
    nearer the next one's than the full model's are. Shared by every session measuring on the same FullReports."""

    def __init__(self, size: int = RECENT_ANSWERS):
        self.size = size
        self._answers: OrderedDict[Selection, list[list[int]]] = OrderedDict()
        self._lock = threading.Lock()

    def nearest(self, selection: Selection) -> list[list[int]] | None:
        """The answers of the stored selection that switches the fewest components differently from `selection`, if
        it is nearer than the full model (which differs by every component `selection` switches off)."""
        def distance(other: Selection) -> int:
            return len(selection.heads ^ other.heads) + len(selection.neurons ^ other.neurons)

        with self._lock:
            if not self._answers:
                return None
            nearest = min(self._answers, key=distance)
            return self._answers[nearest] if distance(nearest) < selection.size else None

    def add(self, selection: Selection, answers: list[list[int]]) -> None:
        with self._lock:
            self._answers[selection] = answers
            self._answers.move_to_end(selection)
            while len(self._answers) > self.size:
                self._answers.popitem(last=False)


@dataclass
class FullReports:
    """The full model's answers: computed once per model and prompt set, reused by every toggle.

    The reports keep the answers' token ids: they are the drafts an ablated model's answers are checked against
    (core.model.generate.generate_ids_per_mask), as most ablations leave most answers as they were; `recent` adds the
    latest selections' answers, nearer drafts for the next toggle.
    """

    behaviour: EvalReport
    utility: EvalReport
    recent: RecentAnswers = field(default_factory=RecentAnswers, compare=False, repr=False)


def full_reports(model, behaviour: PromptSet, utility: PromptSet) -> FullReports:
    return FullReports(*(evaluate(model, prompts, batch_size=BATCH_SIZE) for prompts in (behaviour, utility)))


@dataclass
class GenerationPair:
    prompt: str
    category: str
    full: str
    ablated: str
    full_success: bool
    ablated_success: bool
    full_verdict: str  # Judgement.verdict: complied / refused / degenerate (why) / off-topic / correct / wrong
    ablated_verdict: str


@dataclass
class AblationResult:
    """The full and the ablated model on the judged set and the utility sample."""

    selection: str  # Selection.text()
    rate_name: str  # ASR / helpfulness
    rate_full: float
    rate_ablated: float
    utility_full: float | None
    utility_ablated: float | None
    helpfulness_full: float | None
    helpfulness_ablated: float | None
    pairs: list[GenerationPair]  # every judged prompt, in order; the first SHOWN are displayed
    seconds: float

    def csv_rows(self) -> list[dict]:
        """One row per judged prompt, for the results CSV."""
        return [{"switched_off": self.selection, "prompt": p.prompt, "category": p.category,
                 "full_answer": p.full, "full_verdict": p.full_verdict, "ablated_answer": p.ablated,
                 "ablated_verdict": p.ablated_verdict} for p in self.pairs]


def measure(model, shape: ModelShape, selection: Selection, full: FullReports) -> AblationResult:
    """Judge the model with `selection` switched off on the same prompts as `full` (generation at judging length)."""
    return measure_many(model, shape, [selection], full)[0]


def measure_many(model, shape: ModelShape, selections: Sequence[Selection], full: FullReports,
                 batch_size: int = BATCH_SIZE) -> list[AblationResult]:
    """`measure` for several selections at once: one batched generation, one zero-ablation mask per row.

    The judged set and the utility sample run as one generation, whose answers are checked against the full model's
    where that pays (core.model.generate.generate_ids_per_mask with drafts): the answers are the greedy ones each
    selection gives alone. Nothing off means the ablated model is the full model, so its reports are reused rather than
    recomputed. `seconds` is the whole batch's time.
    """
    start = time.perf_counter()
    masked = [s for s in dict.fromkeys(selections) if s.size]
    reports: dict[Selection, tuple[EvalReport, EvalReport]] = {Selection(): (full.behaviour, full.utility)}
    if masked:
        head_keeps, neuron_keeps = keep_masks([Circuit(s.heads, s.neurons, *shape) for s in masked])
        sets = [(PromptSet("behaviour", [j.prompt for j in full.behaviour.judgements]), full.behaviour.max_new_tokens),
                (PromptSet("utility", [j.prompt for j in full.utility.judgements]), full.utility.max_new_tokens)]
        # One generation at the longer length; a greedy answer cut to the shorter one is that length's answer.
        ids = generate_ids_per_mask(model, [p.prompt for prompts, _ in sets for p in prompts], head_keeps,
                                    neuron_keeps, max_new_tokens=max(length for _, length in sets),
                                    batch_size=batch_size, drafts=full.behaviour.token_ids + full.utility.token_ids,
                                    mask_drafts=[full.recent.nearest(s) for s in masked])
        split = len(sets[0][0])
        for selection, rows in zip(masked, ids, strict=True):
            full.recent.add(selection, rows)
            reports[selection] = tuple(
                judge_responses(prompts, decode(model, [answer[:length] for answer in answers]),
                                max_new_tokens=length)
                for (prompts, length), answers in zip(sets, (rows[:split], rows[split:]), strict=True))
    seconds = time.perf_counter() - start
    return [_result(selection, full, *reports[selection], seconds) for selection in selections]


def _result(selection: Selection, full: FullReports, behaviour: EvalReport, utility: EvalReport,
            seconds: float) -> AblationResult:
    pairs = [GenerationPair(f.prompt.prompt, f.prompt.category, f.response, a.response, f.success, a.success,
                            f.verdict, a.verdict)
             for f, a in zip(full.behaviour.judgements, behaviour.judgements, strict=True)]
    return AblationResult(
        selection=selection.text(),
        rate_name=rate_name(PromptSet("behaviour", [j.prompt for j in full.behaviour.judgements])),
        rate_full=success_rate(full.behaviour),
        rate_ablated=success_rate(behaviour),
        utility_full=full.utility.utility,
        utility_ablated=utility.utility,
        helpfulness_full=full.utility.helpfulness,
        helpfulness_ablated=utility.helpfulness,
        pairs=pairs,
        seconds=seconds,
    )


class ToggleServer:
    """Serves every session's toggles on one model and prompt set, batching concurrent ones (core.model.batching).

    The sessions of a workshop room toggle at the same time; one batched generation with a mask per row costs
    far less than their turns one after another under the model lock, and gives each exactly its own result.
    """

    def __init__(self, model, shape: ModelShape, full: FullReports, *, window_s: float = 0.02, max_batch: int = 16,
                 max_queue: int = 64):
        self.gatherer: Gatherer[Selection, AblationResult] = Gatherer(
            lambda selections: measure_many(model, shape, selections, full),
            window_s=window_s, max_batch=max_batch, max_queue=max_queue, name="toggle-server")

    def measure(self, selection: Selection) -> AblationResult:
        """The result of switching `selection` off (blocks while the batch it joined runs)."""
        return self.gatherer.submit(selection)


def answer(model, shape: ModelShape, prompt: str, selection: Selection,
           max_new_tokens: int = FREE_TEXT_TOKENS) -> str:
    """The model's greedy answer to one typed prompt, with `selection` switched off."""
    if not prompt.strip():
        raise ValueError("type a prompt first")
    return generate(model, [prompt], max_new_tokens=max_new_tokens, hooks=selection.hooks(shape))[0]


def preset(name: str, circuit: Circuit | None, k: int = 5, seed: int = 0) -> Selection:
    """A preset selection: nothing, the whole circuit, the top-k heads and neurons by gate score, or a random set of
    the circuit's size (core.scoring.random.random_components)."""
    if name == "none":
        return Selection()
    if circuit is None:
        raise SelectionError(f"the {name!r} preset needs a circuit; load one on the Circuit page first")
    if name == "whole circuit":
        return Selection(frozenset(circuit.heads), frozenset(circuit.neurons))
    if name == "top-k":
        if circuit.head_scores is None and circuit.neuron_scores is None:
            raise SelectionError(f"circuit '{circuit.name}' has no gate scores to rank; use 'whole circuit' instead")
        return Selection(frozenset(top_k(circuit.head_scores, k)), frozenset(top_k(circuit.neuron_scores, k)))
    if name == "random (same size)":
        sampled = random_components(circuit, seed)
        return Selection(frozenset(sampled.heads), frozenset(sampled.neurons))
    raise SelectionError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
