"""Hook names and per-call hooks: the only place hook names are spelled; hooks run under the model's lock.

Masks are applied by hooks built per call (`mask_hooks`) on `blocks.L.attn.hook_z` (per-head outputs before the
output projection, [batch, pos, head, d_head]) and `blocks.L.mlp.hook_post` (MLP hidden units, [batch, pos, d_mlp]).
Nothing is ever left installed on the model: the app shares one model between sessions.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence

import torch
from transformer_lens.model_bridge import TransformerBridge

HEAD_HOOK = "blocks.{layer}.attn.hook_z"
NEURON_HOOK = "blocks.{layer}.mlp.hook_post"
HOOKS_BY_KIND = {"head": HEAD_HOOK, "neuron": NEURON_HOOK}
Hook = tuple[str, Callable]
Hooks = Sequence[Hook]

_MODEL_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_MODEL_LOCKS_GUARD = threading.Lock()


def hook_name(kind: str, layer: int) -> str:
    """The hook point of a layer's heads (kind "head") or neurons (kind "neuron")."""
    return HOOKS_BY_KIND[kind].format(layer=layer)


def model_lock(model: TransformerBridge) -> threading.RLock:
    """The re-entrant lock that serialises hooked runs of one shared model (hooks live on the model)."""
    with _MODEL_LOCKS_GUARD:
        lock = _MODEL_LOCKS.get(model)
        if lock is None:
            lock = _MODEL_LOCKS[model] = threading.RLock()
        return lock


@contextlib.contextmanager
def hooked(model: TransformerBridge, hooks: Hooks = ()) -> Iterator[TransformerBridge]:
    """Run with `hooks` installed, holding the model's lock so other threads never see them."""
    with model_lock(model), model.hooks(fwd_hooks=list(hooks)):
        yield model


def forward_logits(model, ids: torch.Tensor, attn: torch.Tensor, hooks: Hooks) -> torch.Tensor:
    """fp32 logits of a padded batch with `hooks` active for this call only (no KV cache)."""
    with hooked(model, hooks):
        return model(ids, attention_mask=attn, return_type="logits", use_cache=False).float()


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
            hooks.append((hook_name("head", layer), _scale_hook(head_keep[layer][:, None], mean)))
    if neuron_keep is not None:
        for layer in range(neuron_keep.shape[0]):
            if _is_all_ones(neuron_keep[layer]):
                continue
            mean = None if neuron_mean is None else neuron_mean[layer]
            hooks.append((hook_name("neuron", layer), _scale_hook(neuron_keep[layer], mean)))
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
