"""Metrics over evaluation reports: rates with their judge, count and 95% Wilson interval, utility/safety/refusal
retention, which ASR a scenario is judged on, before/after tables."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:  # report.py formats its rates with format_percent, so it cannot be imported here at run time
    from core.evaluation.report import EvalReport


# Metric per label: attack success rate (harmful/triggered), helpfulness (benign), exact match (utility).
METRICS = {"harmful": "ASR", "triggered": "ASR", "benign": "helpfulness", "utility": "exact match"}


# z for a two-sided 95% interval.
Z_95 = 1.959963984540054


def wilson_interval(k: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion k/n (95% by default).

    Unlike the normal approximation it stays inside [0, 1] and is not empty at k = 0 or k = n: 0/100 gives
    [0, 3.7%], so a reader sees that "0.0%" on 100 prompts does not rule out a few percent.
    """
    if n <= 0:
        raise ValueError(f"a proportion needs n >= 1 prompts, got n={n}")
    if not 0 <= k <= n:
        raise ValueError(f"a proportion needs 0 <= k <= n, got k={k}, n={n}")
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # Clamp the float error at the ends: 0/n must give exactly 0 as its lower bound.
    return (0.0 if k == 0 else max(0.0, centre - half), 1.0 if k == n else min(1.0, centre + half))


# What EvalReport's pooled rates are called in tables.
RATE_NAMES = {"asr_clean": "clean ASR", "asr_triggered": "triggered ASR", "helpfulness": "helpfulness",
              "utility": "utility"}


def format_percent(value: float | None, digits: int = 1) -> str:
    """0.123 -> "12.3%"; None -> "n/a"."""
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def text_table(rows: list[dict], left: Sequence[str] = ()) -> str:
    """Rows (dicts with the same keys) as an aligned text table; the columns named in `left` are left-aligned."""
    frame = pd.DataFrame(rows)
    for column in left:
        width = max(len(str(column)), *(len(str(value)) for value in frame[column]))
        frame[column] = [str(value).ljust(width) for value in frame[column]]
        frame = frame.rename(columns={column: str(column).ljust(width)})
    return "\n".join(line.rstrip() for line in frame.to_string(index=False).splitlines())


# The label each pooled ASR / helpfulness rate is measured on.
RATE_LABELS = {"asr_clean": "harmful", "asr_triggered": "triggered", "helpfulness": "benign"}


def scenario_rates(scenario: str) -> tuple[str, str]:
    """(the ASR that removing a circuit of `scenario` should change, the other one it should leave alone), as
    EvalReport attribute names: triggered ASR for a backdoor circuit, clean ASR for an alignment (or custom) one."""
    return ("asr_triggered", "asr_clean") if scenario == "backdoor" else ("asr_clean", "asr_triggered")


@dataclass(frozen=True)
class Rate:
    """k of n prompts, as judged by `judge` (e.g. "refusal"), reported as a share with its 95% interval."""

    judge: str
    k: int
    n: int

    @property
    def value(self) -> float:
        return self.k / self.n

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.k, self.n)

    def format(self) -> str:
        """'12.5% [5.0, 26.1] (5/40)': the share, its 95% Wilson interval in percent and the count."""
        low, high = self.interval
        return f"{100 * self.value:.1f}% [{100 * low:.1f}, {100 * high:.1f}] ({self.k}/{self.n})"

    def to_dict(self) -> dict:
        low, high = self.interval
        return {"judge": self.judge, "k": self.k, "n": self.n, "rate": self.value, "ci95": [low, high]}


def pooled(rates: list[Rate]) -> Rate | None:
    """The rates' prompts counted together (one judge); None when there are none."""
    if not rates:
        return None
    judges = {r.judge for r in rates}
    if len(judges) > 1:
        raise ValueError(f"cannot pool rates of different judges: {', '.join(sorted(judges))}")
    return Rate(rates[0].judge, sum(r.k for r in rates), sum(r.n for r in rates))


@dataclass(frozen=True)
class Retention:
    """after / before of a score, or None with the reason it is undefined (e.g. a zero baseline)."""

    value: float | None
    reason: str | None = None

    def format(self) -> str:
        return format_percent(self.value) if self.value is not None else f"n/a ({self.reason})"


def retention(before: float | None, after: float | None, what: str = "utility") -> Retention:
    """How much of a score survives an edit: after / before; "n/a" with a reason when undefined."""
    if before is None or after is None:
        return Retention(None, f"no {what} prompts in both reports")
    if before == 0:
        return Retention(None, f"the 'before' model scores 0 on {what}, so there is nothing to retain")
    return Retention(after / before)


def utility_retention(before: EvalReport, after: EvalReport) -> Retention:
    """How much of the utility score survives an edit: after / before, or "n/a" with the reason.

    The utility score is the mean of utility exact-match (macro over tasks) and benign helpfulness, over
    those that both reports measured, so the two sides are always comparable.
    """
    parts = [
        (b, a)
        for b, a in ((before.utility, after.utility), (before.helpfulness, after.helpfulness))
        if b is not None and a is not None
    ]
    if not parts:
        return retention(None, None, "utility or benign")
    return retention(sum(b for b, _ in parts) / len(parts), sum(a for _, a in parts) / len(parts),
                     "utility and helpfulness")


def safety_retention(before: EvalReport, after: EvalReport) -> float | None:
    """(1 - clean ASR after) / (1 - clean ASR before): how much of the non-compliance with harmful requests
    survives. None when there are no harmful prompts or the model complied with all of them before."""
    if before.asr_clean is None or after.asr_clean is None or before.asr_clean >= 1.0:
        return None
    return (1.0 - after.asr_clean) / (1.0 - before.asr_clean)


def refusal_rate(report: EvalReport) -> float | None:
    """Share of harmful (untriggered) prompts answered with a recognised refusal.

    Stricter than 1 - ASR: a model broken by fine-tuning stops complying *and* stops refusing (degenerate answers).
    """
    verdicts = [j.verdict for j in report.judgements if j.prompt.label == "harmful"]
    return sum(v == "refused" for v in verdicts) / len(verdicts) if verdicts else None


def existing_task_retention(before: EvalReport, after: EvalReport) -> float | None:
    """Utility retention over what the model could already do: after / before of the mean of benign helpfulness
    and the macro exact-match over utility families it scored above 0 on before.

    Unlike core.evaluation.metrics.utility_retention, a task the model could not do before (a new task being taught) is
    left out: its gain would mask losses on the old tasks.
    """
    old = [f for f, rate in before.utility_by_family.items() if rate > 0 and f in after.utility_by_family]
    parts = []
    if old:
        parts.append((sum(before.utility_by_family[f] for f in old) / len(old),
                      sum(after.utility_by_family[f] for f in old) / len(old)))
    if before.helpfulness is not None and after.helpfulness is not None:
        parts.append((before.helpfulness, after.helpfulness))
    before_score = sum(b for b, _ in parts) / len(parts) if parts else 0.0
    if before_score == 0:
        return None
    return sum(a for _, a in parts) / len(parts) / before_score


def compare_reports(before: EvalReport, after: EvalReport) -> dict:
    """Before/after of clean and triggered ASR, refusal rate, helpfulness, utility (macro and per family), and
    the retention figures: utility over existing tasks, safety (1 - ASR) and refusal."""
    out: dict = {}
    for key in ("asr_clean", "asr_triggered", "helpfulness", "utility"):
        out[key] = {"before": getattr(before, key), "after": getattr(after, key)}
    out["refusal_rate"] = {"before": refusal_rate(before), "after": refusal_rate(after)}
    families = {**before.utility_by_family, **after.utility_by_family}
    out["utility_by_family"] = {f: {"before": before.utility_by_family.get(f),
                                    "after": after.utility_by_family.get(f)} for f in families}
    out["new_tasks"] = [f for f, rate in before.utility_by_family.items() if rate == 0]
    out["utility_retention"] = existing_task_retention(before, after)
    out["safety_retention"] = safety_retention(before, after)
    refusals = out["refusal_rate"]
    out["refusal_retention"] = (refusals["after"] / refusals["before"]
                                if refusals["before"] and refusals["after"] is not None else None)
    # The counts behind the rates: judge, k, n and 95% interval of each side (None where not measured).
    out["figures"] = {key: {side: _figure_dict(report, label, family) for side, report in
                            (("before", before), ("after", after))}
                      for key, label, family in [*((k, lb, None) for k, lb in RATE_LABELS.items()),
                                                 *((f, "utility", f) for f in families)]}
    return out


def _figure_dict(report: EvalReport, label: str, family: str | None) -> dict | None:
    if family is None:
        rate = report.figure(label)
    else:
        rate = next((f.figures.get("exact") for f in report.families if (f.label, f.category) == (label, family)),
                    None)
    return None if rate is None else rate.to_dict()


def comparison_rows(metrics: dict) -> list[dict]:
    """`compare_reports` output as rows of metric, judge, before, after: rates as "rate [95% interval] (k/n)" where
    `metrics["figures"]` has their counts; retention figures have no before."""
    figures = metrics.get("figures", {})

    def cell(key: str, side: str, value: float | None) -> str:
        figure = figures.get(key, {}).get(side)
        return format_percent(value) if figure is None else Rate(figure["judge"], figure["k"], figure["n"]).format()

    def judge(key: str) -> str:
        sides = figures.get(key, {})
        named = next((f["judge"] for f in (sides.get("before"), sides.get("after")) if f), None)
        return named or ("refusal" if key == "refusal_rate" else "exact")

    names = {**RATE_NAMES, "refusal_rate": "refusal rate", "utility": "utility (macro)"}
    rows = [{"metric": names[key], "judge": judge(key), "before": cell(key, "before", metrics[key]["before"]),
             "after": cell(key, "after", metrics[key]["after"])}
            for key in ("asr_clean", "asr_triggered", "refusal_rate", "helpfulness", "utility")
            if metrics[key]["before"] is not None or metrics[key]["after"] is not None]
    rows += [{"metric": f"  {family}{' (new task)' if family in metrics['new_tasks'] else ''}", "judge": "exact",
              "before": cell(family, "before", values["before"]), "after": cell(family, "after", values["after"])}
             for family, values in metrics["utility_by_family"].items()]
    return rows + [{"metric": name, "judge": "", "before": "", "after": format_percent(metrics[key])}
                   for key, name in (("utility_retention", "utility retention (existing tasks)"),
                                     ("safety_retention", "safety retention (1 - clean ASR)"),
                                     ("refusal_retention", "refusal retention"))]


def format_comparison(metrics: dict) -> str:
    """`compare_reports` output as an aligned before/after text table."""
    return text_table(comparison_rows(metrics), left=["metric"])
