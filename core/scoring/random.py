"""Random component sets: the control every circuit is compared against."""

from __future__ import annotations

import random

from core.circuit.circuit import Circuit


def random_components(circuit: Circuit, seed: int) -> Circuit:
    """A circuit of the same size with uniformly random heads and neurons."""
    rng = random.Random(seed)
    heads = rng.sample([(layer, h) for layer in range(circuit.n_layers) for h in range(circuit.n_heads)],
                       len(circuit.heads))
    neurons = rng.sample(range(circuit.n_layers * circuit.d_mlp), len(circuit.neurons))
    return circuit.with_components(heads, [divmod(i, circuit.d_mlp) for i in neurons], name=f"random-{seed}")


def random_circuit(circuit: Circuit, seed: int = 0) -> Circuit:
    """Random heads and neurons, as many per layer as `circuit` has there, disjoint from `circuit`.

    Matching the per-layer counts keeps the number of tuned weights equal (under GQA the shared k/v rows can
    differ) and the layer position comparable, so only *which* components are tuned differs.
    """
    rng = random.Random(f"random-circuit:{seed}")
    taken_heads, taken_neurons = set(circuit.heads), set(circuit.neurons)
    heads: list[tuple[int, int]] = []
    neurons: list[tuple[int, int]] = []
    for layer in range(circuit.n_layers):
        want = sum(1 for h in circuit.heads if h[0] == layer)
        free = [(layer, h) for h in range(circuit.n_heads) if (layer, h) not in taken_heads]
        if want > len(free):
            raise ValueError(f"layer {layer} has too few heads outside the circuit for a disjoint random set; "
                            f"the circuit holds {want} of its {circuit.n_heads} heads")
        heads += rng.sample(free, want)
        want = sum(1 for n in circuit.neurons if n[0] == layer)
        free = [(layer, n) for n in range(circuit.d_mlp) if (layer, n) not in taken_neurons]
        if want > len(free):
            raise ValueError(f"layer {layer} has too few neurons outside the circuit for a disjoint random set")
        neurons += rng.sample(free, want)
    return circuit.with_components(heads, neurons, name=f"random-like-{circuit.name}-seed{seed}")
