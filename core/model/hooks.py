"""Hook names and per-call hooks: the only place hook names are spelled; hooks run under the model's lock.

Masks are applied by hooks built per call (`mask_hooks`) on `blocks.L.attn.hook_z` (per-head outputs before the
output projection, [batch, pos, head, d_head]) and `blocks.L.mlp.hook_post` (MLP hidden units, [batch, pos, d_mlp]).
`example_mask_hooks` gives every row of a batch its own mask, so several users' requests share one forward pass.
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
UNEMBED_HOOK = "unembed.hook_in"  # the final residual stream, as the unembedding reads it
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


def forward_logits(model, ids: torch.Tensor, attn: torch.Tensor, hooks: Hooks,
                   at: torch.Tensor | None = None) -> torch.Tensor:
    """fp32 logits of a padded batch with `hooks` active for this call only (no KV cache): [batch, pos, vocab], or
    with `at` ([batch, pos] bool) [n, vocab] at those positions only, in row-major order."""
    if at is not None and UNEMBED_HOOK in model.hook_dict:
        # The unembedding then runs on the chosen positions alone: on a small model with a large vocabulary it is
        # a large share of a forward and backward (bench/discovery.py measures it).
        # (.to: with a device map the last layers, and so the unembedding, may sit on another device.)
        hooks = [*hooks, (UNEMBED_HOOK, lambda residual, hook: residual[at.to(residual.device)][None])]
        with hooked(model, hooks):
            return model(ids, attention_mask=attn, return_type="logits", use_cache=False)[0].float()
    with hooked(model, hooks):
        logits = model(ids, attention_mask=attn, return_type="logits", use_cache=False).float()
    return logits if at is None else logits[at]


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


def example_mask_hooks(head_keep: torch.Tensor | None = None, neuron_keep: torch.Tensor | None = None) -> list[Hook]:
    """Zero-ablation hooks with one mask per batch row: `head_keep` [batch, n_layers, n_heads] scales
    `hook_z` [batch, pos, n_heads, d_head], `neuron_keep` [batch, n_layers, d_mlp] scales `hook_post`.

    Row b of the batch sees exactly what `mask_hooks(head_keep[b], neuron_keep[b])` would give it alone: a keep of
    1 multiplies by 1.0 (exact), so a layer hooked for other rows leaves this row's activations bit-identical.
    The batch dimension must match the batch the hooks run on (left padding keeps rows independent).
    """
    return RowMasks(head_keep, neuron_keep).hooks()


def per_row_hook(hook: Callable) -> Callable:
    """Mark a hook that treats batch rows differently: generation then keeps every row in the batch to the end
    (core.model.generate drops finished rows only under hooks that act on all rows alike)."""
    hook.per_row = True
    return hook


def has_per_row_hooks(hooks: Hooks) -> bool:
    return any(getattr(fn, "per_row", False) for _, fn in hooks)


class RowMasks:
    """Per-row zero-ablation masks for a batch whose rows can leave it (`select`), as generation drops the rows
    that have finished; `hooks()` are example_mask_hooks that always apply the masks of the rows still there."""

    def __init__(self, head_keep: torch.Tensor | None = None, neuron_keep: torch.Tensor | None = None):
        for name, keep, last in (("head", head_keep, "n_heads"), ("neuron", neuron_keep, "d_mlp")):
            if keep is not None and keep.dim() != 3:
                raise ValueError(f"per-example {name} keeps need shape [batch, n_layers, {last}], got "
                                 f"{tuple(keep.shape)}")
        self.head_keep, self.neuron_keep = head_keep, neuron_keep

    def select(self, rows: torch.Tensor) -> None:
        """Keep only `rows` (indices into the current batch), in that order."""
        rows = rows.to("cpu")
        self.head_keep = None if self.head_keep is None else self.head_keep[rows]
        self.neuron_keep = None if self.neuron_keep is None else self.neuron_keep[rows]

    def hooks(self) -> list[Hook]:
        hooks: list[Hook] = []
        for keeps, name, view in ((self.head_keep, HEAD_HOOK, lambda k: k[:, None, :, None]),
                                  (self.neuron_keep, NEURON_HOOK, lambda k: k[:, None, :])):
            if keeps is None:
                continue
            for layer in range(keeps.shape[1]):
                if not _is_all_ones(keeps[:, layer]):
                    hooks.append((name.format(layer=layer), self._hook(name, layer, view)))
        return hooks

    def _hook(self, name: str, layer: int, view: Callable) -> Callable:
        def hook(activation: torch.Tensor, hook=None) -> torch.Tensor:
            keeps = self.head_keep if name == HEAD_HOOK else self.neuron_keep
            keep = view(keeps[:, layer])
            if activation.shape[0] != keep.shape[0]:
                raise ValueError(f"per-example masks for {keep.shape[0]} rows applied to a batch of "
                                 f"{activation.shape[0]}")
            return activation * keep.to(device=activation.device, dtype=activation.dtype)

        return per_row_hook(hook)


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
