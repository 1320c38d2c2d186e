"""Verification: the full model and the model with a circuit removed, evaluated by generation on held-out prompts."""

from __future__ import annotations

from collections.abc import Callable

from core.circuit.circuit import Circuit, check_shape
from core.data.prompts import PromptSet
from core.evaluation.metrics import RATE_NAMES, format_percent, text_table, utility_retention
from core.evaluation.report import evaluate, evaluate_removed
from core.model.load import model_shape


def verify(model, circuit: Circuit, prompts: PromptSet, batch_size: int = 64,
           progress: Callable[[int, int], None] | None = None) -> dict:
    """Evaluate the full model and the model with the circuit removed (by generation); store it in circuit.metrics.

    Returns {"before": {...}, "after": {...}, "utility_retention": r} with clean/triggered ASR, helpfulness and
    utility (fractions), so a circuit file carries the evidence for what it claims.
    """
    check_shape(circuit, model_shape(model))
    before = evaluate(model, prompts, batch_size=batch_size, progress=progress)
    # The ablated answers are checked against the full model's and decoded step by step only where they differ.
    (after,) = evaluate_removed(model, prompts, [circuit], before.token_ids, max_new_tokens=before.max_new_tokens,
                                batch_size=batch_size, progress=progress)

    def summary(report) -> dict:
        return {"asr_clean": report.asr_clean, "asr_triggered": report.asr_triggered,
                "helpfulness": report.helpfulness, "utility": report.utility}

    kept = utility_retention(before, after)
    metrics = {"before": summary(before), "after": summary(after), "n_prompts": len(prompts),
               "prompts_sha256": prompts.sha256(), "utility_retention": kept.value}
    if kept.reason:
        metrics["utility_retention_note"] = kept.reason
    circuit.metrics = metrics
    return metrics


def format_verification(metrics: dict) -> str:
    """`verify`'s metrics as an aligned text table (full model vs circuit removed), then the utility retention."""
    rows = [{"": name, "full model": format_percent(metrics["before"][key]),
             "circuit removed": format_percent(metrics["after"][key])} for key, name in RATE_NAMES.items()]
    note = metrics.get("utility_retention_note")
    return (f"{text_table(rows, left=[''])}\nutility retention: {format_percent(metrics.get('utility_retention'))}"
            + (f" ({note})" if note else ""))
