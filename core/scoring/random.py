"""Random component sets: the control every circuit is compared against."""

from __future__ import annotations

import random

from core.circuit.circuit import Circuit


def random_components(circuit: Circuit, seed: int = 0, *, match_layers: bool = False) -> Circuit:
    """A circuit of the same size as `circuit` with random heads and neurons, drawn by `seed`.

    Uniformly over the model by default. With `match_layers`, as many per layer as `circuit` has there and disjoint
    from it: the number of tuned weights then stays equal (under GQA the shared k/v rows can differ) and the layer
    positions comparable, so only *which* components are tuned differs (the control for circuit tuning).
    """
    if not match_layers:
        rng = random.Random(seed)
        heads = rng.sample([(layer, h) for layer in range(circuit.n_layers) for h in range(circuit.n_heads)],
                           len(circuit.heads))
        neurons = rng.sample(range(circuit.n_layers * circuit.d_mlp), len(circuit.neurons))
        return circuit.with_components(heads, [divmod(i, circuit.d_mlp) for i in neurons], name=f"random-{seed}")
    rng = random.Random(f"random-circuit:{seed}")
    chosen: dict[str, list[tuple[int, int]]] = {"heads": [], "neurons": []}
    for layer in range(circuit.n_layers):
        for kind, taken, width in (("heads", circuit.heads, circuit.n_heads), ("neurons", circuit.neurons,
                                                                                circuit.d_mlp)):
            want = sum(1 for c in taken if c[0] == layer)
            taken_here = {c for c in taken if c[0] == layer}
            free = [(layer, i) for i in range(width) if (layer, i) not in taken_here]
            if want > len(free):
                raise ValueError(f"layer {layer} has too few {kind} outside the circuit for a disjoint random set; "
                                 f"the circuit holds {want} of its {width} {kind}")
            chosen[kind] += rng.sample(free, want)
    return circuit.with_components(chosen["heads"], chosen["neurons"],
                                  name=f"random-like-{circuit.name}-seed{seed}")
