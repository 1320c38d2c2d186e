"""Magnitude scores (Wanda-style): activation magnitude times output-weight norm, on the behaviour prompts."""

from __future__ import annotations

import torch

from core.circuit.ablate import activation_moments
from core.scoring.scenario import Scenario
from core.scoring.select import Scores


def magnitude_scores(model, scenario: Scenario, batch_size: int = 32) -> Scores:
    """Wanda-style: RMS activation of each head / neuron on the behaviour prompts times the norm of its output
    weights."""
    n_layers = model.cfg.n_layers
    head_sq, neuron_sq, count = activation_moments(model, scenario.behaviour_prompts, power=2, batch_size=batch_size)
    head_rms, neuron_rms = (head_sq.sum(-1) / count).sqrt(), (neuron_sq / count).sqrt()
    w_o = torch.stack([model.blocks[i].attn.W_O.detach().float().cpu() for i in range(n_layers)])  # [L,H,dh,dm]
    w_out = torch.stack([model.blocks[i].mlp.W_out.detach().float().cpu() for i in range(n_layers)])  # [L,D,dm]
    return head_rms * w_o.flatten(2).norm(dim=-1), neuron_rms * w_out.norm(dim=-1)
