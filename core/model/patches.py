"""Fixes for the installed TransformerLens / transformers pair, applied once by load_model."""

from __future__ import annotations

import functools
import importlib.metadata

from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge


def _major_version(package: str) -> int:
    return int(importlib.metadata.version(package).split(".")[0])


def install_kv_cache_fix() -> bool:
    """Make the bridge's attention read the KV cache that transformers 5.x passes as `cache=`.

    TransformerLens 4.x's AttentionBridge._update_kv_cache only looks for `past_key_values` / `layer_past`;
    transformers 5 renamed the decoder layers' argument to `cache`, so every cached decode step attended to
    the new token alone and generation went wrong. This forwards `cache` under the old name. It is applied
    only for TransformerLens 4 with transformers >= 5, once per process, and is harmless if a later release
    reads `cache` itself. Returns whether the fix is active.
    """
    current = AttentionBridge._update_kv_cache
    if getattr(current, "_safeseek_cache_fix", False):
        return True
    if _major_version("transformer-lens") != 4 or _major_version("transformers") < 5:
        return False

    @functools.wraps(current)
    def update_kv_cache(self, k, v, **kwargs):
        if kwargs.get("past_key_values") is None and kwargs.get("layer_past") is None:
            kwargs["past_key_values"] = kwargs.get("cache")
        return current(self, k, v, **kwargs)

    update_kv_cache._safeseek_cache_fix = True
    AttentionBridge._update_kv_cache = update_kv_cache
    return True
