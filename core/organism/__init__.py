"""Layer 7, organism: the bundled model organism's synthetic corpus, tokenizer and staged training (it trains with
core.tuning's selection of circuit weights). It may import every layer above it; only core.cli imports it."""
