"""The discovery objective's terms on teacher-forced batches: behaviour CE and the retain KL (their one home).

    behaviour  CE of what the model should answer once the circuit is removed (teacher-forced)
  + retain     KL(full model || masked model) on the full model's own answers to retain prompts
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from core.data.batches import predicts_answer
from core.model.hooks import Hooks, forward_logits


def behaviour_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the answer tokens, summed over every answer token of the batch."""
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), reduction="sum")


def answer_log_probs(model, ids: torch.Tensor, attn: torch.Tensor, labels: torch.Tensor, hooks: Hooks
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token log-probabilities at the positions that predict answer tokens: the full model's (no gradient) and
    the model's with `hooks` active."""
    predicts = predicts_answer(labels)
    with torch.no_grad():
        full = F.log_softmax(forward_logits(model, ids, attn, ())[predicts], dim=-1)
    masked = F.log_softmax(forward_logits(model, ids, attn, hooks)[predicts], dim=-1)
    return full, masked


def retain_kl(full: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """KL(full || masked), summed over the answer positions (see answer_log_probs)."""
    return F.kl_div(masked, full, log_target=True, reduction="sum")
