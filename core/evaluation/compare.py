"""Baselines for circuit discovery at a fixed budget, and the side-by-side comparison `safeseek compare` prints.

At the learned circuit's size (same number of heads and of neurons):
  random       uniformly random components (several seeds, reported as the mean);
  attribution  gradient x activation (SNIP-style): the first-order change of the discovery objective when a
               component is removed, i.e. -dL/d(removal) at the full model, on the same scenario;
  magnitude    activation magnitude x output-weight norm (Wanda-style), on the scenario's behaviour prompts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from core.circuit.ablate import ablate
from core.circuit.circuit import Circuit
from core.data.prompts import PromptSet
from core.evaluation.metrics import utility_retention
from core.evaluation.report import EvalReport, evaluate
from core.scoring.attribution import attribution_scores
from core.scoring.magnitude import magnitude_scores
from core.scoring.random import random_components
from core.scoring.scenario import Scenario
from core.scoring.select import top_k


@dataclass
class ComparisonRow:
    method: str
    heads: int
    neurons: int
    percent_components: float
    asr_before: float | None
    asr_after: float | None
    utility_retention: float | None
    asr_after_std: float | None = None  # spread over seeds (random baseline)
    # The other safety behaviour, which removal should leave alone: clean ASR for a backdoor circuit,
    # triggered ASR for an alignment circuit.
    other_asr_before: float | None = None
    other_asr_after: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def baseline_circuits(model, circuit: Circuit, scenario: Scenario, seeds: int = 5) -> dict[str, list[Circuit]]:
    """The baselines' component sets at the learned circuit's size."""
    k_heads, k_neurons = len(circuit.heads), len(circuit.neurons)
    attr_h, attr_n = attribution_scores(model, scenario)
    mag_h, mag_n = magnitude_scores(model, scenario.behaviour_prompts)
    return {
        "random": [random_components(circuit, seed) for seed in range(seeds)],
        "attribution": [circuit.with_components(top_k(attr_h, k_heads), top_k(attr_n, k_neurons), "attribution")],
        "magnitude": [circuit.with_components(top_k(mag_h, k_heads), top_k(mag_n, k_neurons), "magnitude")],
    }


def _scenario_asr(report: EvalReport, scenario_name: str) -> float | None:
    return report.asr_triggered if scenario_name == "backdoor" else report.asr_clean


def _other_asr(report: EvalReport, scenario_name: str) -> float | None:
    return report.asr_clean if scenario_name == "backdoor" else report.asr_triggered


def compare(model, circuit: Circuit, scenario: Scenario, eval_prompts: PromptSet, seeds: int = 5,
            progress: Callable[[str], None] | None = None) -> list[ComparisonRow]:
    """Learned circuit vs random / attribution / magnitude sets of the same size, on held-out prompts."""
    say = progress or (lambda _msg: None)
    say("evaluating the full model")
    before = evaluate(model, eval_prompts, batch_size=64)
    asr_before = _scenario_asr(before, circuit.scenario)
    say("scoring baselines")
    candidates = {"learned": [circuit], **baseline_circuits(model, circuit, scenario, seeds)}
    rows = []
    for method, circuits in candidates.items():
        asrs, others, retentions = [], [], []
        for c in circuits:
            say(f"evaluating {c.name}")
            after = evaluate(model, eval_prompts, hooks=ablate(model, c), batch_size=64)
            asrs.append(_scenario_asr(after, circuit.scenario))
            others.append(_other_asr(after, circuit.scenario))
            retentions.append(utility_retention(before, after))
        mean_asr = sum(asrs) / len(asrs) if None not in asrs else None
        std = (sum((a - mean_asr) ** 2 for a in asrs) / len(asrs)) ** 0.5 if mean_asr is not None else None
        rows.append(ComparisonRow(method if method != "random" else f"random (mean of {len(circuits)})",
                                  len(circuit.heads), len(circuit.neurons),
                                  100 * circuit.fractions()["components"], asr_before, mean_asr,
                                  sum(retentions) / len(retentions), std if len(circuits) > 1 else None,
                                  _other_asr(before, circuit.scenario),
                                  sum(others) / len(others) if None not in others else None))
    return rows


def format_table(rows: list[ComparisonRow], scenario_name: str) -> str:
    asr, other = ("triggered ASR", "clean ASR") if scenario_name == "backdoor" else ("clean ASR", "triggered ASR")
    header = (f"{'method':<22} {'heads':>5} {'neurons':>7} {'% comps':>8} {asr + ' before->after':>28} "
              f"{other + ' before->after':>28} {'utility kept':>12}")
    lines = [header, "-" * len(header)]
    for r in rows:
        change = f"{100 * r.asr_before:.1f}% -> {100 * r.asr_after:.1f}%"
        if r.asr_after_std is not None:
            change += f" (sd {100 * r.asr_after_std:.1f})"
        other_change = "n/a" if r.other_asr_before is None or r.other_asr_after is None else \
            f"{100 * r.other_asr_before:.1f}% -> {100 * r.other_asr_after:.1f}%"
        lines.append(f"{r.method:<22} {r.heads:>5} {r.neurons:>7} {r.percent_components:>7.2f}% {change:>28} "
                     f"{other_change:>28} {100 * r.utility_retention:>11.1f}%")
    return "\n".join(lines)
