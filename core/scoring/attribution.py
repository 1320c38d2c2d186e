"""Attribution scores (SNIP-style gradient x activation): the first-order change of the discovery objective when a
component is removed, i.e. -dL/d(removal) at the full model, on the same scenario."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from core.data.batches import teacher_forced_batch
from core.model.generate import encode_prompts, generate_ids
from core.model.hooks import mask_hooks
from core.model.load import model_shape
from core.scoring.objective import answer_logits, behaviour_ce
from core.scoring.scenario import Scenario
from core.scoring.select import Scores


def attribution_scores(model, scenario: Scenario, batch_size: int = 16, answer_tokens: int = 12
                       ) -> Scores:
    """-dL/d(removal) for every head and neuron, L = behaviour CE + retain KL, averaged over all prompts."""
    n_layers, n_heads, d_mlp = model_shape(model)
    device = model.cfg.device
    tok = model.tokenizer
    head_removal = torch.zeros(n_layers, n_heads, device=device, requires_grad=True)
    neuron_removal = torch.zeros(n_layers, d_mlp, device=device, requires_grad=True)
    hooks = mask_hooks(1 - head_removal, 1 - neuron_removal)
    b_heads = encode_prompts(tok, scenario.behaviour_prompts)
    for start in range(0, len(b_heads), batch_size):
        sl = slice(start, start + batch_size)
        ids, attn, labels = teacher_forced_batch(b_heads[sl], scenario.behaviour_answers[sl], tok.pad_token_id,
                                                 device)
        (behaviour_ce(answer_logits(model, ids, attn, labels, hooks), labels) / len(b_heads)).backward()
    r_heads = encode_prompts(tok, scenario.retain_prompts)
    r_answers = generate_ids(model, scenario.retain_prompts, max_new_tokens=answer_tokens)
    for start in range(0, len(r_heads), batch_size):
        sl = slice(start, start + batch_size)
        answers = [a or [tok.eos_token_id] for a in r_answers[sl]]
        ids, attn, labels = teacher_forced_batch(r_heads[sl], answers, tok.pad_token_id, device)
        # Nothing is removed yet, so the hooked forward is the full model's (keep = 1 exactly): its detached
        # log-probabilities are the full model's, without a second forward.
        masked = F.log_softmax(answer_logits(model, ids, attn, labels, hooks), dim=-1)
        # The KL's gradient is zero at the full model; its second-order curvature is what protects retain
        # behaviour, so we use the CE of the full model's answers, whose gradient is informative there.
        loss = -(masked.detach().exp() * masked).sum()
        (loss / len(r_heads)).backward()
    return -head_removal.grad.detach().cpu(), -neuron_removal.grad.detach().cpu()
