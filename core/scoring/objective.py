"""The discovery objective's terms on teacher-forced batches: behaviour CE and the retain KL (their one home).

    behaviour  CE of what the model should answer once the circuit is removed (teacher-forced)
  + retain     KL(full model || masked model) on the full model's own answers to retain prompts
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from core.data.batches import answer_tokens, predicts_answer, teacher_forced_batch
from core.model.hooks import Hooks, forward_logits


def answer_logits(model, ids: torch.Tensor, attn: torch.Tensor, labels: torch.Tensor, hooks: Hooks) -> torch.Tensor:
    """Logits [answer tokens, vocab] at the positions that predict answer tokens (predicts_answer), `hooks` active."""
    return forward_logits(model, ids, attn, hooks, at=predicts_answer(labels))


def behaviour_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the answer tokens, summed over every answer token of the batch; `logits` from
    answer_logits."""
    return F.cross_entropy(logits, answer_tokens(labels), reduction="sum")


def answer_log_probs(model, ids: torch.Tensor, attn: torch.Tensor, labels: torch.Tensor, hooks: Hooks,
                     full: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token log-probabilities at the positions that predict answer tokens: the full model's (no gradient;
    `full` when already known, see full_answer_log_probs) and the model's with `hooks` active."""
    predicts = predicts_answer(labels)
    if full is None:
        with torch.no_grad():
            full = F.log_softmax(forward_logits(model, ids, attn, (), at=predicts), dim=-1)
    masked = F.log_softmax(forward_logits(model, ids, attn, hooks, at=predicts), dim=-1)
    return full, masked


def retain_kl(full: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """KL(full || masked), summed over the answer positions (see answer_log_probs)."""
    return F.kl_div(masked, full, log_target=True, reduction="sum")


def full_answer_log_probs(model, heads: list[list[int]], answers: list[list[int]], pad_id: int,
                          batch_size: int) -> list[torch.Tensor]:
    """The full model's log-probabilities at each prompt's answer-predicting positions ([answer length, vocab] per
    prompt, in answer_log_probs' order), computed once so that a training loop need not rerun the full model."""
    rows: list[torch.Tensor] = []
    with torch.no_grad():
        for start in range(0, len(heads), batch_size):
            ids, attn, labels = teacher_forced_batch(heads[start:start + batch_size], answers[start:start + batch_size],
                                                     pad_id, model.cfg.device)
            predicts = predicts_answer(labels)
            log_probs = F.log_softmax(forward_logits(model, ids, attn, (), at=predicts), dim=-1)
            rows += list(log_probs.split(predicts.sum(1).tolist()))
    return rows
