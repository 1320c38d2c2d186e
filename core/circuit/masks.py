"""Learnable removal gates over attention heads and MLP neurons (applied by core.model.hooks.mask_hooks).

A gate says how much a component is *removed* (1 = removed), because a SafeSeek circuit is the set of components
whose removal changes the safety behaviour. Two gate kinds, both binary at read-out and differentiable while
learning:
  * "sigmoid-ste" (default; SafeSeek's own choice): the forward pass uses the binary gate sigmoid(z) > 0.5, the
    backward pass the sigmoid's gradient (straight-through). The model the loss sees is exactly a binary circuit,
    and every gate gets a gradient at every step, so a component that only matters for the last few percent of
    prompts still gets pulled in. On the bundled organism's backdoor (`safeseek discover --scenario backdoor
    --head-budget 0.016 --neuron-budget 0.002 [--gate hard-concrete]`, val split) removal left 3.2% triggered ASR
    with these gates and 15.1% with hard-concrete ones; at the larger budget of the sample circuit both reach 0.0%.
  * "hard-concrete" (Louizos et al., 2018): stochastic gates stretched to (-0.1, 1.1) and clamped, exactly 0 or 1
    most of the time, with a closed-form expected L0 norm. Principled and robust to noise, but a gate that sits at
    0 gets a gradient only when its noise lifts it off 0, so rarely-needed components are found late.
In both, the expected fraction removed (`expected_fraction`) is the differentiable sparsity the budget constrains.

The gates become per-call hooks (`RemovalMasks.hooks`); nothing is ever installed on the model.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from core.model.hooks import Hook, mask_hooks

# Hard-concrete stretch interval and temperature (Louizos et al.): gates land exactly on 0 or 1 with high probability.
GAMMA, ZETA, BETA = -0.1, 1.1, 2.0 / 3.0


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


class SigmoidSTEGates(nn.Module):
    """Gates sigmoid(z) > 0.5 in the forward pass, sigmoid(z)'s gradient in the backward pass (z kept in fp32)."""

    def __init__(self, shape: tuple[int, ...], init_log_alpha: float = -3.0):
        super().__init__()
        self.log_alpha = nn.Parameter(torch.full(shape, float(init_log_alpha), dtype=torch.float32))

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        soft = torch.sigmoid(self.log_alpha)
        return (soft > 0.5).float() + soft - soft.detach()

    def deterministic(self) -> torch.Tensor:
        return (self.log_alpha > 0).float()

    def probability_nonzero(self) -> torch.Tensor:
        """The soft gate sigmoid(z): the removal score, and what the sparsity term counts."""
        return torch.sigmoid(self.log_alpha)


GATE_KINDS = {"sigmoid-ste": SigmoidSTEGates, "hard-concrete": HardConcreteGates}


class RemovalMasks(nn.Module):
    """Learnable removal gates over heads [n_layers, n_heads] and/or neurons [n_layers, d_mlp]."""

    def __init__(self, n_layers: int, n_heads: int, d_mlp: int, heads: bool = True, neurons: bool = True,
                 init_log_alpha: float = -3.0, gate: str = "sigmoid-ste"):
        super().__init__()
        if not (heads or neurons):
            raise ValueError("a mask needs heads, neurons or both; enable at least one granularity")
        if gate not in GATE_KINDS:
            raise ValueError(f"unknown gate kind {gate!r}; use one of {', '.join(GATE_KINDS)}")
        kind = GATE_KINDS[gate]
        self.heads = kind((n_layers, n_heads), init_log_alpha) if heads else None
        self.neurons = kind((n_layers, d_mlp), init_log_alpha) if neurons else None

    def removal(self, sample: bool, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Removal gates (1 = removed) for heads and neurons: sampled while learning, deterministic otherwise."""
        def gate(g: nn.Module | None) -> torch.Tensor | None:
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
