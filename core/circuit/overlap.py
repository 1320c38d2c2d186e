"""How much two circuits share: common heads and neurons and their Jaccard index."""

from __future__ import annotations

from dataclasses import dataclass

from core.circuit.circuit import Circuit
from core.circuit.component import Component


@dataclass
class Overlap:
    shared_heads: list[tuple[int, int]]
    shared_neurons: list[tuple[int, int]]
    heads_jaccard: float | None  # None when neither circuit has heads
    neurons_jaccard: float | None
    components_jaccard: float | None


def jaccard(a: set, b: set) -> float | None:
    """|A ∩ B| / |A ∪ B|; None when both are empty."""
    return len(a & b) / len(a | b) if a | b else None


def overlap(a: Circuit, b: Circuit) -> Overlap:
    """Shared components of two circuits found on models of the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"circuits '{a.name}' and '{b.name}' belong to models of different shapes; compare "
                         f"circuits found on the same model")
    heads_a, heads_b = set(a.heads), set(b.heads)
    neurons_a, neurons_b = set(a.neurons), set(b.neurons)
    all_a = {("H", *h) for h in heads_a} | {("N", *n) for n in neurons_a}
    all_b = {("H", *h) for h in heads_b} | {("N", *n) for n in neurons_b}
    return Overlap(sorted(heads_a & heads_b), sorted(neurons_a & neurons_b), jaccard(heads_a, heads_b),
                   jaccard(neurons_a, neurons_b), jaccard(all_a, all_b))


def pairwise_jaccard(sets: list[set]) -> list[list[float | None]]:
    """The symmetric matrix of Jaccard indices between every two sets (1 on the diagonal of non-empty sets)."""
    return [[jaccard(a, b) for b in sets] for a in sets]


def core_components(sets: list[set[str]]) -> list[str]:
    """The component labels ("L2H9", "L0N134") in every set: heads first, then by layer and index."""
    return sorted(set.intersection(*sets), key=Component.parse) if sets else []

