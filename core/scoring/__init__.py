"""Layer 4, scoring: every method that scores components for a scenario (learned masks, attribution, magnitude,
random) and turning scores into component sets; scenarios say what removal should change. It may import core.model,
core.data and core.circuit."""
