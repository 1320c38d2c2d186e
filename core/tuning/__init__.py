"""Layer 6, tuning: Safety Circuit Tuning — options, which weights belong to a circuit, training examples, the one
masked-gradient training loop (the organism uses it too) and a run end to end. It may import every layer above it."""
