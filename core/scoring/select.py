"""From component scores to component sets: the one home of top-k.

Every scoring method has the signature `score(model, scenario, **options) -> Scores`: a (head scores
[n_layers, n_heads], neuron scores [n_layers, d_mlp]) pair in which a higher score means "more part of the circuit".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

Scores = tuple[torch.Tensor | None, torch.Tensor | None]  # (heads [n_layers, n_heads], neurons [n_layers, d_mlp])
Scorer = Callable[..., Scores]
Cells = list[tuple[int, int]]


def top_k(scores: torch.Tensor | Sequence[Sequence[float]] | None, k: int, above: float | None = None) -> Cells:
    """The k highest-scoring (layer, index) cells, ties broken by lower layer then lower index; with `above`, only
    cells scoring more than that."""
    if scores is None or k <= 0 or len(scores) == 0:
        return []
    scores = torch.as_tensor(scores, dtype=torch.float64 if not torch.is_tensor(scores) else None)
    flat = scores.flatten()
    order = torch.argsort(flat, descending=True, stable=True)[:k]
    cols = scores.shape[1]
    return [(int(i) // cols, int(i) % cols) for i in order if above is None or flat[i] > above]


def budget_size(budget: float, total: int) -> int:
    """How many of `total` components a budget (a fraction of them) allows."""
    return int(budget * total + 1e-9)


def circuit_from_scores(scores: Scores, budget: tuple[float | None, float | None],
                        above: float | None = None) -> tuple[Cells, Cells]:
    """(heads, neurons) of a circuit: the highest scores within each budget (a fraction of all heads / all neurons;
    None or no scores: none of that kind), only scores above `above` when given."""
    return tuple(top_k(kind_scores, budget_size(kind_budget, kind_scores.numel()), above)
                 if kind_scores is not None and kind_budget is not None else []
                 for kind_scores, kind_budget in zip(scores, budget, strict=True))


def circuit_of_size(scores: Scores, size: tuple[int, int]) -> tuple[Cells, Cells]:
    """(heads, neurons): the `size` = (number of heads, number of neurons) highest-scoring components."""
    return tuple(top_k(kind_scores, k) for kind_scores, k in zip(scores, size, strict=True))
