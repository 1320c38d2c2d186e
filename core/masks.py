"""Masks over attention heads and MLP neurons: learnable hard-concrete gates and the per-call hooks that apply them.

Why hard-concrete (L0) gates (Louizos et al., 2018) rather than SafeSeek's sigmoid straight-through gates:
  * the gate is *exactly* 0 or 1 for most samples while learning, so the model the loss sees is close to the binary
    circuit we read out at the end (a soft sigmoid lets the optimiser hide behaviour in half-open gates);
  * the expected number of active gates (the expected L0 norm) has a closed form, so a component budget becomes a
    differentiable constraint we can drive to a target with a Lagrange multiplier;
  * the noise acts as a built-in robustness check: a component only gets a confident score if removing it helps
    across many random contexts of other removals.
Here a gate says how much a component is *removed* (1 = removed), because a SafeSeek circuit is the set of
components whose removal changes the safety behaviour.

Masks are applied by hooks built per call (`mask_hooks`) on `blocks.L.attn.hook_z` (per-head outputs before the
output projection, [batch, pos, head, d_head]) and `blocks.L.mlp.hook_post` (MLP hidden units, [batch, pos, d_mlp]).
Nothing is ever installed on the model: the app shares one model between sessions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

HEAD_HOOK = "blocks.{layer}.attn.hook_z"
NEURON_HOOK = "blocks.{layer}.mlp.hook_post"

Hook = tuple[str, Callable]

# Hard-concrete stretch interval and temperature (Louizos et al.): gates land exactly on 0 or 1 with high probability.
GAMMA, ZETA, BETA = -0.1, 1.1, 2.0 / 3.0


def mask_hooks(head_keep: torch.Tensor | None = None, neuron_keep: torch.Tensor | None = None,
               head_mean: torch.Tensor | None = None, neuron_mean: torch.Tensor | None = None) -> list[Hook]:
    """Hooks that scale each head's output by `head_keep[layer, head]` and each neuron by `neuron_keep[layer, i]`.

    keep = 1 leaves a component as it is, 0 removes it. Removal is zero ablation, or mean ablation when
    `head_mean` [n_layers, n_heads, d_head] / `neuron_mean` [n_layers, d_mlp] are given (the removed part is
    replaced by its mean over a reference set). Fractional keeps interpolate, so gradients reach the masks.
    """
    hooks: list[Hook] = []
    if head_keep is not None:
        for layer in range(head_keep.shape[0]):
            if _is_all_ones(head_keep[layer]):
                continue
            mean = None if head_mean is None else head_mean[layer]
            hooks.append((HEAD_HOOK.format(layer=layer), _scale_hook(head_keep[layer][:, None], mean)))
    if neuron_keep is not None:
        for layer in range(neuron_keep.shape[0]):
            if _is_all_ones(neuron_keep[layer]):
                continue
            mean = None if neuron_mean is None else neuron_mean[layer]
            hooks.append((NEURON_HOOK.format(layer=layer), _scale_hook(neuron_keep[layer], mean)))
    return hooks


def _is_all_ones(keep: torch.Tensor) -> bool:
    # A layer with nothing removed needs no hook; but a tensor that needs grad must stay in the graph.
    return not keep.requires_grad and bool((keep == 1).all())


def _scale_hook(keep: torch.Tensor, mean: torch.Tensor | None) -> Callable:
    def hook(activation: torch.Tensor, hook=None) -> torch.Tensor:
        k = keep.to(device=activation.device, dtype=activation.dtype)
        if mean is None:
            return activation * k
        return activation * k + mean.to(device=activation.device, dtype=activation.dtype) * (1 - k)

    return hook


class HardConcreteGates(nn.Module):
    """A tensor of hard-concrete gates; `log_alpha` (kept in fp32) is what the optimiser learns."""

    def __init__(self, shape: tuple[int, ...], init_log_alpha: float = -2.0):
        super().__init__()
        self.log_alpha = nn.Parameter(torch.full(shape, float(init_log_alpha), dtype=torch.float32))

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """A stochastic gate in [0, 1] (exactly 0 or 1 most of the time), differentiable in log_alpha."""
        u = torch.rand(self.log_alpha.shape, generator=generator, device="cpu").to(self.log_alpha.device)
        u = u.clamp(1e-6, 1 - 1e-6)
        s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + self.log_alpha) / BETA)
        return (s * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)

    def deterministic(self) -> torch.Tensor:
        """The noise-free gate used at read-out."""
        return (torch.sigmoid(self.log_alpha) * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)

    def probability_nonzero(self) -> torch.Tensor:
        """P(gate != 0) per gate; its sum is the expected L0 norm."""
        return torch.sigmoid(self.log_alpha - BETA * math.log(-GAMMA / ZETA))


class RemovalMasks(nn.Module):
    """Learnable removal gates over heads [n_layers, n_heads] and/or neurons [n_layers, d_mlp]."""

    def __init__(self, n_layers: int, n_heads: int, d_mlp: int, heads: bool = True, neurons: bool = True,
                 init_log_alpha: float = -2.0):
        super().__init__()
        if not (heads or neurons):
            raise ValueError("a mask needs heads, neurons or both; enable at least one granularity")
        self.heads = HardConcreteGates((n_layers, n_heads), init_log_alpha) if heads else None
        self.neurons = HardConcreteGates((n_layers, d_mlp), init_log_alpha) if neurons else None

    def removal(self, sample: bool, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Removal gates (1 = removed) for heads and neurons: sampled while learning, deterministic otherwise."""
        def gate(g: HardConcreteGates | None) -> torch.Tensor | None:
            if g is None:
                return None
            return g.sample(generator) if sample else g.deterministic()

        return gate(self.heads), gate(self.neurons)

    def hooks(self, sample: bool, generator: torch.Generator | None = None, complement: bool = False,
              head_mean: torch.Tensor | None = None, neuron_mean: torch.Tensor | None = None) -> list[Hook]:
        """Hooks removing the gated components, or (complement=True) removing everything else."""
        heads, neurons = self.removal(sample, generator)
        if complement:
            return mask_hooks(heads, neurons, head_mean, neuron_mean)
        return mask_hooks(None if heads is None else 1 - heads, None if neurons is None else 1 - neurons,
                          head_mean, neuron_mean)

    def expected_fraction(self) -> dict[str, torch.Tensor]:
        """Expected fraction of heads / neurons removed (differentiable): the sparsity the budget constrains."""
        out = {}
        if self.heads is not None:
            out["heads"] = self.heads.probability_nonzero().mean()
        if self.neurons is not None:
            out["neurons"] = self.neurons.probability_nonzero().mean()
        return out
