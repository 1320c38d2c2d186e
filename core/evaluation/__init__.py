"""Layer 5, evaluation: judging generations, EvalReport, metrics and retention figures, verification of a circuit,
the comparison against baselines, and what the explorer's toggles measure. It may import every layer above it
(model, data, circuit, scoring)."""
