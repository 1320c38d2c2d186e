"""Ablation: per-call hooks that remove a set of heads and neurons (zero, mean or resample), or keep only that set."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Literal

import torch

from core.circuit.circuit import Circuit, check_shape
from core.model.generate import encode_prompts
from core.model.hooks import Hook, hook_name, hooked, mask_hooks, per_row_hook
from core.model.load import model_shape

Method = Literal["zero", "mean"]


def ablate(model, circuit: Circuit, method: Method = "zero", means: tuple[torch.Tensor, torch.Tensor] | None = None,
           keep_only: bool = False) -> list[Hook]:
    """Hooks that remove the circuit's components (or, with keep_only, every component *but* the circuit's).

    Pass the result as `hooks=` to generation or evaluation; nothing is installed on `model`. Mean ablation needs
    `means` from `component_means` (over a reference prompt set).
    """
    check_shape(circuit, model_shape(model))
    return removal_hooks(circuit, method, means, keep_only)


def removal_hooks(circuit: Circuit, method: Method = "zero", means: tuple[torch.Tensor, torch.Tensor] | None = None,
                  keep_only: bool = False) -> list[Hook]:
    """`ablate` without the model check: hooks for a model of the circuit's shape."""
    if method not in ("zero", "mean"):
        raise ValueError(f"unknown ablation method {method!r}; use 'zero' or 'mean'")
    if method == "mean" and means is None:
        raise ValueError("mean ablation needs reference means: means = component_means(model, prompts)")
    removed_heads, removed_neurons = circuit.removal_tensors()
    if keep_only:
        removed_heads, removed_neurons = 1 - removed_heads, 1 - removed_neurons
    head_mean, neuron_mean = means if method == "mean" else (None, None)
    return mask_hooks(1 - removed_heads if circuit.heads or keep_only else None,
                      1 - removed_neurons if circuit.neurons or keep_only else None, head_mean, neuron_mean)


@torch.inference_mode()
def activation_moments(model, prompts: list[str], power: int = 1, batch_size: int = 32
                       ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Sums of activation**power over every non-padding position of the chat-formatted prompts, in fp32.

    Returns (head sums [n_layers, n_heads, d_head], neuron sums [n_layers, d_mlp], number of positions).
    """
    cfg = model.cfg
    pad_id = model.tokenizer.pad_token_id
    head_sum = torch.zeros(cfg.n_layers, cfg.n_heads, cfg.d_head)
    neuron_sum = torch.zeros(cfg.n_layers, cfg.d_mlp)
    count = 0
    for start in range(0, len(prompts), batch_size):
        encoded = encode_prompts(model.tokenizer, prompts[start: start + batch_size])
        width = max(len(ids) for ids in encoded)
        input_ids = torch.tensor([ids + [pad_id] * (width - len(ids)) for ids in encoded], device=cfg.device)
        valid = torch.tensor([[True] * len(ids) + [False] * (width - len(ids)) for ids in encoded], device=cfg.device)
        stored: dict[str, torch.Tensor] = {}

        def store(name: str, valid=valid, stored=stored):
            # Bound by name: the bridge's hook_z is an alias, so `hook.name` is not the name we hooked.
            def hook(activation: torch.Tensor, hook=None) -> torch.Tensor:
                stored[name] = activation[valid].float().pow(power).sum(0).cpu()
                return activation
            return hook

        names = [hook_name(kind, layer) for kind in ("head", "neuron") for layer in range(cfg.n_layers)]
        hooks = [(name, store(name)) for name in names]
        with hooked(model, hooks):
            model(input_ids, attention_mask=valid.long(), return_type="logits", use_cache=False)
        for layer in range(cfg.n_layers):
            head_sum[layer] += stored[hook_name("head", layer)]
            neuron_sum[layer] += stored[hook_name("neuron", layer)]
        count += int(valid.sum())
    if count == 0:
        raise ValueError("activation statistics need at least one non-empty prompt")
    return head_sum, neuron_sum, count


def component_means(model, prompts: list[str], batch_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean head output [n_layers, n_heads, d_head] and neuron activation [n_layers, d_mlp] over a prompt set."""
    head_sum, neuron_sum, count = activation_moments(model, prompts, power=1, batch_size=batch_size)
    return head_sum / count, neuron_sum / count


# ---- resample ablation ------------------------------------------------------------------------------------------
# Replace a removed component's activation on a prompt by the same component's activation on *another* prompt of a
# reference set (causal-scrubbing / auto-circuit "resample" ablation). Prompts differ in length and generation adds
# positions one at a time, so the drawn prompt's activation is its mean over that prompt's own token positions: a
# constant per row, like mean ablation's, but drawn from one other prompt instead of averaged over all of them.
@torch.inference_mode()
def prompt_activations(model, prompts: list[str], batch_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Per prompt, each head's output [n_prompts, n_layers, n_heads, d_head] and each neuron's activation
    [n_prompts, n_layers, d_mlp], averaged over that prompt's token positions (fp32, on the CPU)."""
    cfg = model.cfg
    pad_id = model.tokenizer.pad_token_id
    heads = torch.zeros(len(prompts), cfg.n_layers, cfg.n_heads, cfg.d_head)
    neurons = torch.zeros(len(prompts), cfg.n_layers, cfg.d_mlp)
    for start in range(0, len(prompts), batch_size):
        encoded = encode_prompts(model.tokenizer, prompts[start: start + batch_size])
        width = max(len(ids) for ids in encoded)
        input_ids = torch.tensor([ids + [pad_id] * (width - len(ids)) for ids in encoded], device=cfg.device)
        valid = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in encoded], device=cfg.device)
        lengths = valid.sum(1).float()
        rows = slice(start, start + len(encoded))

        def store(layer: int, kind: str, valid=valid, lengths=lengths, rows=rows):
            def hook(activation: torch.Tensor, hook=None) -> torch.Tensor:
                mask = valid.to(activation.dtype).reshape(valid.shape + (1,) * (activation.dim() - 2))
                mean = ((activation * mask).sum(1).float() / lengths.reshape(-1, *[1] * (activation.dim() - 2)))
                (heads if kind == "head" else neurons)[rows, layer] = mean.cpu()
                return activation
            return hook

        hooks = [(hook_name("head", layer), store(layer, "head")) for layer in range(cfg.n_layers)]
        hooks += [(hook_name("neuron", layer), store(layer, "neuron")) for layer in range(cfg.n_layers)]
        with hooked(model, hooks):
            model(input_ids, attention_mask=valid, return_type="logits", use_cache=False)
    return heads, neurons


def resample_pairing(prompts: list[str], reference: list[str], seed: int) -> list[int]:
    """For each prompt, the index of a reference prompt drawn uniformly (seeded) among those with other text."""
    rng = random.Random(seed)
    pairing = []
    for text in prompts:
        others = [i for i, ref in enumerate(reference) if ref != text]
        if not others:
            raise ValueError("resample ablation needs a reference prompt that differs from each evaluated prompt; "
                             "give a larger reference set")
        pairing.append(rng.choice(others))
    return pairing


def resample_hooks(circuit: Circuit, activations: tuple[torch.Tensor, torch.Tensor], rows: list[int],
                   keep_only: bool = False) -> list[Hook]:
    """Hooks for one batch: row b's removed components take reference prompt `rows[b]`'s activations.

    `activations` come from `prompt_activations` over the reference prompts; the batch must hold len(rows) rows
    in that order (run one batch per call, e.g. through `generate` with batch_size >= len(rows)).
    """
    removed_heads, removed_neurons = circuit.removal_tensors()
    if keep_only:
        removed_heads, removed_neurons = 1 - removed_heads, 1 - removed_neurons
    index = torch.tensor(rows, dtype=torch.long)
    head_refs, neuron_refs = activations[0][index], activations[1][index]  # [B, L, H, dh], [B, L, D]
    hooks: list[Hook] = []
    for layer in range(circuit.n_layers):
        if removed_heads[layer].any():
            hooks.append((hook_name("head", layer),
                          _replace_hook(removed_heads[layer][:, None], head_refs[:, layer], len(rows))))
        if removed_neurons[layer].any():
            hooks.append((hook_name("neuron", layer),
                          _replace_hook(removed_neurons[layer], neuron_refs[:, layer], len(rows))))
    return hooks


def _replace_hook(removed: torch.Tensor, reference: torch.Tensor, n_rows: int) -> Callable:
    def hook(activation: torch.Tensor, hook=None) -> torch.Tensor:
        if activation.shape[0] != n_rows:
            raise ValueError(f"resample hooks were built for {n_rows} rows but the batch has {activation.shape[0]}")
        r = removed.to(device=activation.device, dtype=activation.dtype)
        ref = reference.to(device=activation.device, dtype=activation.dtype)[:, None]  # broadcast over positions
        return activation * (1 - r) + ref * r

    return per_row_hook(hook)
