"""A model's fingerprint: architecture, shape and a hash of its weights (tells whether a circuit belongs to it)."""

from __future__ import annotations

import hashlib

import torch
from transformer_lens.model_bridge import TransformerBridge

# Tensors up to this many elements are hashed whole; larger ones by an evenly strided sample of this size.
FINGERPRINT_SAMPLE = 1 << 20


def _hf_parameter_name(bridged_name: str) -> str:
    # The bridge wraps HF modules in place; dropping its wrapper segments gives back the HF names.
    return ".".join(part for part in bridged_name.split(".") if part != "_original_component")


def _tensor_digest_bytes(tensor: torch.Tensor) -> bytes:
    flat = tensor.detach().reshape(-1)
    if flat.numel() > FINGERPRINT_SAMPLE:
        stride = -(-flat.numel() // FINGERPRINT_SAMPLE)
        flat = flat[::stride]
    # bfloat16 values make the hash independent of the load dtype (a bf16 GPU load and an fp32 CPU load of
    # one checkpoint agree); int16 view because numpy has no bfloat16.
    return flat.to(torch.bfloat16).cpu().contiguous().view(torch.int16).numpy().tobytes()


def weights_sha256(model: TransformerBridge) -> str:
    """SHA-256 over every original_model parameter, in sorted HF-name order.

    Per parameter it hashes the name, the shape and the values rounded to bfloat16: all of them for tensors
    up to FINGERPRINT_SAMPLE elements (the whole of a small model), an evenly strided sample of
    FINGERPRINT_SAMPLE elements for larger ones (seconds, not minutes, for a 7B model). So it identifies a
    checkpoint across devices and load dtypes; an edit smaller than bfloat16 resolution, or one that only
    touches unsampled elements of a large tensor, is not seen.
    """
    return module_weights_sha256(model.original_model)


def module_weights_sha256(hf_model: torch.nn.Module) -> str:
    """weights_sha256 of a plain HF model, so a training script records the hash that circuit fingerprints hold."""
    from accelerate.utils import align_module_device

    named = {_hf_parameter_name(name): name for name, _ in hf_model.named_parameters()}
    digest = hashlib.sha256()
    for name in sorted(named):
        owner, _, leaf = named[name].rpartition(".")
        module = hf_model.get_submodule(owner)
        # Weights offloaded by a --device-map live on the meta device until their module's hook loads them.
        with align_module_device(module):
            tensor = getattr(module, leaf)
            digest.update(f"{name}:{tuple(tensor.shape)};".encode())
            digest.update(_tensor_digest_bytes(tensor))
    return digest.hexdigest()


def fingerprint(model: TransformerBridge) -> dict:
    """Architecture, shape and weight hash: enough to tell whether a saved circuit belongs to this model."""
    cfg = model.cfg
    return {
        "architecture": cfg.architecture,
        "n_layers": int(cfg.n_layers),
        "n_heads": int(cfg.n_heads),
        "d_model": int(cfg.d_model),
        "d_head": int(cfg.d_head),
        "d_mlp": int(cfg.d_mlp),
        "d_vocab": int(cfg.d_vocab),
        "weights_sha256": weights_sha256(model),
    }
