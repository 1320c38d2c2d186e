"""Layer 3, circuit: what a set of heads and neurons is (Circuit and its file, Selection and its text form), the
learnable gates that find one, ablation hooks that remove one, its zero ablation baked into an HF checkpoint (export),
and the overlap of two. It may import core.model and core.data."""
