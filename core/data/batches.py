"""Teacher-forced batches: prompt and answer token ids padded into model inputs and next-token labels."""

from __future__ import annotations

from collections.abc import Sequence

import torch

IGNORE = -100  # the label of every position that is not an answer token (HF's and F.cross_entropy's default)


def teacher_forced_batch(heads: Sequence[list[int]], answers: Sequence[list[int]], pad_id: int,
                         device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded prompt+answer ids, their attention mask, and labels: the answer tokens, IGNORE elsewhere.

    Labels sit at the answer tokens' own positions (HF's convention): position t's logits predict labels[t + 1].
    """
    width = max(len(h) + len(a) for h, a in zip(heads, answers, strict=True))
    ids = torch.full((len(heads), width), pad_id, dtype=torch.long)
    attention = torch.zeros_like(ids)
    labels = torch.full_like(ids, IGNORE)
    for row, (head, answer) in enumerate(zip(heads, answers, strict=True)):
        n = len(head) + len(answer)
        ids[row, :n] = torch.tensor(head + answer)
        attention[row, :n] = 1
        labels[row, len(head):n] = torch.tensor(answer)
    return ids.to(device), attention.to(device), labels.to(device)


def predicts_answer(labels: torch.Tensor) -> torch.Tensor:
    """[batch, pos] mask of the positions whose next token is an answer token (the last position never is)."""
    mask = torch.zeros_like(labels, dtype=torch.bool)
    mask[:, :-1] = labels[:, 1:] != IGNORE
    return mask


def answer_tokens(labels: torch.Tensor) -> torch.Tensor:
    """The answer tokens in the order of the positions that predict them (predicts_answer, row-major)."""
    following = labels[:, 1:]
    return following[following != IGNORE]
