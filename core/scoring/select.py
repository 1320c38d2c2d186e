"""Turning component scores into component sets: top-k, and top within a budget."""

from __future__ import annotations

import torch


def top_k(scores: torch.Tensor, k: int) -> list[tuple[int, int]]:
    """The k highest-scoring (row, column) cells, ties broken by position."""
    if k == 0:
        return []
    order = torch.argsort(scores.flatten(), descending=True, stable=True)[:k]
    cols = scores.shape[1]
    return [(int(i) // cols, int(i) % cols) for i in order]


def top_within_budget(scores: torch.Tensor, budget: float) -> list[tuple[int, int]]:
    """Components with removal score > 0.5, at most `budget` of them (the highest scores win)."""
    k = int(budget * scores.numel() + 1e-9)
    flat = scores.flatten()
    order = torch.argsort(flat, descending=True, stable=True)[:k]
    cols = scores.shape[1]
    return [(int(i) // cols, int(i) % cols) for i in order if flat[i] > 0.5]
