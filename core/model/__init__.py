"""Layer 1, model: loading any HF causal LM as a frozen TransformerBridge, its fingerprint, hook names and per-call
hooks (the only place hook names are spelled), batched greedy generation, the library patches load_model applies,
and estimates of what a run will need. It imports nothing else from core; every other layer may import it."""
