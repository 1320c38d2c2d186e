"""Baselines at a circuit's size, the comparison `safeseek compare` prints, and its file (Comparison).

At the learned circuit's size (same number of heads and of neurons):
  random       uniformly random components (several seeds, reported as the mean);
  attribution  gradient x activation (SNIP-style): the first-order change of the discovery objective when a
               component is removed, i.e. -dL/d(removal) at the full model, on the same scenario;
  magnitude    activation magnitude x output-weight norm (Wanda-style), on the scenario's behaviour prompts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from core.circuit.circuit import Circuit
from core.data.paths import COMPARE_SUFFIX
from core.data.prompts import PromptSet
from core.evaluation.cache import ResultCache
from core.evaluation.metrics import (
    RATE_LABELS,
    RATE_NAMES,
    Rate,
    format_percent,
    scenario_rates,
    text_table,
    utility_retention,
)
from core.evaluation.report import evaluate, evaluate_removed
from core.model.load import model_shape
from core.scoring.attribution import attribution_scores
from core.scoring.magnitude import magnitude_scores
from core.scoring.random import random_components
from core.scoring.scenario import Scenario, scenario_from_prompts
from core.scoring.select import Scorer, Scores, circuit_of_size

SCORERS: dict[str, Scorer] = {"attribution": attribution_scores, "magnitude": magnitude_scores}
COMPARISON_VERSION = 1
MAX_COMPARISON_BYTES = 4 * 1024 * 1024  # a comparison file larger than this is not read (one is a few KiB)


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
    # Why utility retention is n/a (e.g. the full model scores 0 on utility), and the judged prompts' counts:
    # the circuit's figure after removal, with its 95% interval (the learned/attribution/magnitude rows).
    utility_retention_note: str | None = None
    asr_before_rate: dict | None = None
    asr_after_rate: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Comparison:
    """What `safeseek compare --out` writes (versioned): the rows, and what they measured, so that a reader can tell
    whether they still hold for a given model, circuit and prompt files (`measured`)."""

    rows: list[ComparisonRow]
    # model fingerprint, circuit (name, scenario, components), prompts_sha256 of every prompt file read, settings
    # (split, verify_limit, seeds, train_limit, seed), held-out prompt count, command, date
    meta: dict = field(default_factory=dict)
    schema_version: int = COMPARISON_VERSION

    def to_json(self) -> str:
        return json.dumps({"schema_version": self.schema_version, "meta": self.meta,
                           "rows": [r.to_dict() for r in self.rows]}, indent=1) + "\n"

    @classmethod
    def read(cls, path: str | Path) -> Comparison:
        """The comparison in `path`; ValueError (one line) for a file that is too large, not JSON or not a
        comparison. A bare list of rows (files written before the format carried `meta`) reads with no meta."""
        path = Path(path)
        try:
            if path.stat().st_size > MAX_COMPARISON_BYTES:
                raise ValueError(f"{path.name} is over {MAX_COMPARISON_BYTES // 2**20} MiB; a comparison is a few KiB")
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, list):
                return cls([ComparisonRow(**row) for row in data])
            if data.get("schema_version") != COMPARISON_VERSION:
                raise ValueError(f"{path.name} has comparison format {data.get('schema_version')!r}; this version "
                                 f"reads {COMPARISON_VERSION} (run `safeseek compare --out` again)")
            return cls([ComparisonRow(**row) for row in data["rows"]], dict(data.get("meta") or {}))
        except OSError as e:
            raise ValueError(f"cannot read {path.name} ({e.strerror})") from None
        except (AttributeError, KeyError, TypeError, json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError(f"{path.name} is not a comparison written by `safeseek compare --out`") from None

    def measured(self, fingerprint: dict, circuit: Circuit, prompts_sha256: str) -> bool:
        """Whether these rows measured `circuit`'s components on this model (weights hash) with these prompt files."""
        weights = fingerprint.get("weights_sha256")
        recorded = self.meta.get("circuit") or {}
        return (weights is not None and (self.meta.get("model") or {}).get("weights_sha256") == weights
                and recorded.get("scenario") == circuit.scenario
                and recorded.get("components") == _labels(circuit)
                and self.meta.get("prompts_sha256") == prompts_sha256)


def _labels(circuit: Circuit) -> list[str]:
    return [c.label for c in circuit.components()]


def comparison_meta(fingerprint: dict, circuit: Circuit, prompts: PromptSet, held_out: PromptSet, settings: dict,
                    command: str) -> dict:
    """The `meta` of a Comparison: what decides its rows, and how to make them again."""
    return {"model": dict(fingerprint), "circuit": {"name": circuit.name, "scenario": circuit.scenario,
                                                    "components": _labels(circuit)},
            "prompts_sha256": prompts.sha256(), "held_out_prompts": len(held_out), "settings": dict(settings),
            "command": command, "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def shipped_comparison(folder: str | Path, fingerprint: dict, circuit: Circuit,
                       prompts_sha256: str) -> Comparison | None:
    """A comparison in `folder`'s `*.compare.json` files (as the sample circuits ship theirs) that measured this
    circuit on this model with these prompt files; None when there is none. Unreadable files are skipped."""
    for path in sorted(Path(folder).glob(f"*{COMPARE_SUFFIX}")):
        try:
            comparison = Comparison.read(path)
        except ValueError:
            continue
        if comparison.measured(fingerprint, circuit, prompts_sha256):
            return comparison
    return None


def baseline_scores(model, fingerprint: dict, prompts: PromptSet, scenario: str, train_limit: int, seed: int,
                    cache: ResultCache, build: Callable[[], Scenario] | None = None) -> dict[str, Scores]:
    """Every baseline method's scores (SCORERS) on the backdoor or alignment scenario of `prompts`
    (scenario_from_prompts with this train limit and seed), through `cache`, keyed by the model's weights: the
    scenario (a generation pass) is built only when some method's scores are missing, by `build` when the caller
    keeps that scenario already (the report card's discoveries share it)."""
    if fingerprint.get("weights_sha256") is None:
        cache = ResultCache(None)  # nothing names these weights: keep the scores for this call only
    scores: dict[str, Scores] = {}
    built: Scenario | None = None
    sample = {"model": fingerprint.get("weights_sha256"), "shape": list(model_shape(model)),
              "prompts": prompts.sha256(), "scenario": scenario, "train_limit": train_limit, "seed": seed}
    for method, scorer in SCORERS.items():
        key = {"kind": "scores", **sample, "method": method}
        cached = cache.get(key)
        if cached is None:
            built = built or (build() if build is not None else
                              scenario_from_prompts(model, prompts, scenario, train_limit, seed))
            heads, neurons = scorer(model, built)
            cached = {"heads": heads.tolist(), "neurons": neurons.tolist()}
            cache.put(key, cached)
        scores[method] = (torch.tensor(cached["heads"]), torch.tensor(cached["neurons"]))
    return scores


def scenario_scores(model, scenario: Scenario) -> dict[str, Scores]:
    """Every baseline method's scores (SCORERS) on `scenario`, computed here."""
    return {method: scorer(model, scenario) for method, scorer in SCORERS.items()}


def baseline_circuits(circuit: Circuit, scores: dict[str, Scores], seeds: int = 5) -> dict[str, list[Circuit]]:
    """The baselines' component sets at the learned circuit's size: random ones, and the top of each method's
    `scores` (baseline_scores or scenario_scores)."""
    size = (len(circuit.heads), len(circuit.neurons))
    baselines = {"random": [random_components(circuit, seed) for seed in range(seeds)]}
    for name in SCORERS:
        baselines[name] = [circuit.with_components(*circuit_of_size(scores[name], size), name)]
    return baselines


def compare(model, circuit: Circuit, scores: dict[str, Scores], eval_prompts: PromptSet, seeds: int = 5,
            progress: Callable[[str], None] | None = None) -> list[ComparisonRow]:
    """Learned circuit vs random / attribution / magnitude sets of the same size (the top of `scores`), on
    held-out prompts.

    A figure the prompts cannot give (no triggered rows, no utility rows, a zero baseline) is None, with the
    reason in `utility_retention_note`; nothing raises after the evaluations have run.
    """
    if seeds < 1:
        raise ValueError(f"compare needs at least one random baseline seed, got {seeds}")
    say = progress or (lambda _msg: None)
    say("evaluating the full model")
    before = evaluate(model, eval_prompts, batch_size=64)
    judged, other = scenario_rates(circuit.scenario)
    candidates = {"learned": [circuit], **baseline_circuits(circuit, scores, seeds)}
    everyone = [c for circuits in candidates.values() for c in circuits]
    say(f"evaluating the model with each of the {len(everyone)} circuits removed (one batched generation)")
    afters = iter(evaluate_removed(model, eval_prompts, everyone, before.token_ids,
                                   max_new_tokens=before.max_new_tokens, batch_size=64,
                                   progress=lambda done, total: say(f"  prompt batch {done}/{total}")))
    rows = []
    for method, circuits in candidates.items():
        asrs, others, retentions, rates = [], [], [], []
        for _ in circuits:
            after = next(afters)
            asrs.append(getattr(after, judged))
            others.append(getattr(after, other))
            retentions.append(utility_retention(before, after))
            rates.append(after.figure(RATE_LABELS[judged]))
        mean_asr = sum(asrs) / len(asrs) if None not in asrs else None
        std = (sum((a - mean_asr) ** 2 for a in asrs) / len(asrs)) ** 0.5 if mean_asr is not None else None
        kept = [r.value for r in retentions if r.value is not None]
        note = next((r.reason for r in retentions if r.value is None), None)
        rows.append(ComparisonRow(method if method != "random" else f"random (mean of {len(circuits)})",
                                  len(circuit.heads), len(circuit.neurons),
                                  100 * circuit.fractions()["components"], getattr(before, judged), mean_asr,
                                  sum(kept) / len(kept) if kept and len(kept) == len(retentions) else None,
                                  std if len(circuits) > 1 else None,
                                  getattr(before, other),
                                  sum(others) / len(others) if None not in others else None,
                                  note,
                                  _dict(before.figure(RATE_LABELS[judged])),
                                  _dict(rates[0]) if len(rates) == 1 else None))
    return rows


def _dict(rate: Rate | None) -> dict | None:
    return None if rate is None else rate.to_dict()


def format_table(rows: list[ComparisonRow], scenario_name: str) -> str:
    """The comparison as an aligned text table: size, both ASRs before -> after removal (the judged one with its
    95% interval and count), utility kept; n/a where a figure could not be measured, with the reason below."""
    judged, other = (RATE_NAMES[key] for key in scenario_rates(scenario_name))

    def change(before: float | None, after: float | None) -> str:
        return "n/a" if before is None or after is None else f"{format_percent(before)} -> {format_percent(after)}"

    table = []
    for r in rows:
        spread = "" if r.asr_after_std is None else f" (sd {100 * r.asr_after_std:.1f})"
        table.append({"method": r.method, "heads": r.heads, "neurons": r.neurons,
                      "% comps": format_percent(r.percent_components / 100, 2),
                      f"{judged} before->after": change(r.asr_before, r.asr_after) + spread,
                      "after: 95% interval (k/n)": _interval(r.asr_after_rate),
                      f"{other} before->after": change(r.other_asr_before, r.other_asr_after),
                      "utility kept": format_percent(r.utility_retention)})
    lines = [text_table(table, left=["method"])]
    judged_by = next((r.asr_before_rate for r in rows if r.asr_before_rate), None)
    if judged_by:
        lines.append(f"{judged} judged by {judged_by['judge']} on {judged_by['n']} prompts, before: "
                     f"{_interval(judged_by)}; the random row is a mean over seeds (no interval)")
    notes = dict.fromkeys(r.utility_retention_note for r in rows if r.utility_retention_note)
    lines += [f"utility kept n/a: {note}" for note in notes]
    return "\n".join(lines)


def _interval(rate: dict | None) -> str:
    if rate is None:
        return ""
    low, high = rate["ci95"]
    return f"[{100 * low:.1f}, {100 * high:.1f}] ({rate['k']}/{rate['n']})"
