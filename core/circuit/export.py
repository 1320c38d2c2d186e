"""Bake a circuit's zero ablation into the weights of an ordinary HF checkpoint, for any inference engine.

Zero-ablating head h of layer L (its `blocks.L.attn.hook_z` slice set to 0) is the same function as zeroing the
input columns [h*d_head:(h+1)*d_head] of that layer's attention output projection; zero-ablating neuron i
(`blocks.L.mlp.hook_post[..., i]` = 0) is zeroing input column i of the MLP down projection. Under grouped-query
attention the heads are query heads, as in hook_z. GPT-2's Conv1D stores weights as [in, out], so there the inputs
are rows. Biases of these projections are shared by all heads/neurons and stay. Mean ablation adds a constant and
is no pure weight edit, so it is refused.

The result is written with `save_pretrained` (model and tokenizer) and nothing else: no note, no circuit file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from core.circuit.circuit import Circuit, CircuitFileError, check_shape
from core.circuit.component import components, labels
from core.data.files import replacing_dir
from core.model.load import ModelLoadError, ModelShape, resolve_checkpoint_dir


class ExportError(ValueError):
    """An export request that cannot run as given; the message names the problem and the fix."""


@dataclass(frozen=True)
class Layout:
    """Where one HF family keeps its decoder layers, head output projection and MLP down projection."""

    layers: str  # attribute path of the decoder layer list
    head_out: str  # attribute path, within a layer, of the projection whose input is the concatenated heads
    neuron_in: str  # attribute path, within a layer, of the projection whose input is the MLP hidden units
    conv1d: bool = False  # weights stored [in, out] (GPT-2's Conv1D): inputs are rows, not columns


_LLAMA_LIKE = Layout("model.layers", "self_attn.o_proj", "mlp.down_proj")
# By config.model_type. Phi-3 fuses q/k/v and gate/up, but its o_proj and down_proj are separate.
LAYOUTS: dict[str, Layout] = {
    **dict.fromkeys(("llama", "qwen2", "qwen3", "mistral", "gemma", "gemma2", "gemma3_text", "olmo2", "phi3"),
                    _LLAMA_LIKE),
    "gpt_neox": Layout("gpt_neox.layers", "attention.dense", "mlp.dense_4h_to_h"),
    "gpt2": Layout("transformer.h", "attn.c_proj", "mlp.c_proj", conv1d=True),
}


@dataclass
class ExportPlan:
    """A validated export: what will be read and written, checked before any weight is loaded."""

    model_dir: Path
    out_dir: Path
    circuit: Circuit
    model_type: str
    layout: Layout


def _config_shape(config) -> ModelShape:
    n_layers = int(config.num_hidden_layers)
    n_heads = int(config.num_attention_heads)
    d_mlp = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None)
    if d_mlp is None:  # GPT-2 leaves n_inner unset: 4 x the width
        d_mlp = 4 * int(config.hidden_size)
    return ModelShape(n_layers, n_heads, int(d_mlp))


def _owned_or_empty(path: Path) -> bool:
    """True for an empty folder or an HF checkpoint folder (config.json and only plain files, no subfolders):
    the only kinds of folder --overwrite may replace, so a typo never swaps away a home directory."""
    entries = list(path.iterdir())
    if not entries:
        return True
    return (path / "config.json").is_file() and all(e.is_file() and not e.is_symlink() for e in entries)


def _check_writable(out_dir: Path) -> None:
    parent = out_dir.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write into {parent} (no write permission); pick another --out")


def plan_export(model_dir: str | Path, circuit: Circuit, out_dir: str | Path, method: str = "zero",
                overwrite: bool = False) -> ExportPlan:
    """Check everything an export needs (method, architecture, circuit shape, output folder) from config.json
    alone, so a bad request fails in a second with one line, before gigabytes of weights are read."""
    from transformers import AutoConfig

    if method != "zero":
        raise ExportError(f"{method} ablation replaces a component by a constant, which is not a pure weight edit; "
                          f"export zero ablation (--ablation zero), or evaluate {method} ablation with hooks "
                          f"(safeseek eval/compare)")
    try:
        checkpoint = resolve_checkpoint_dir(model_dir)
    except ModelLoadError as e:
        raise ExportError(str(e)) from None
    try:
        config = AutoConfig.from_pretrained(checkpoint, trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise ExportError(f"cannot read {checkpoint / 'config.json'} ({e}); pass an HF checkpoint folder") from None
    model_type = str(getattr(config, "model_type", ""))
    layout = LAYOUTS.get(model_type)
    if layout is None:
        raise ExportError(f"cannot export a {model_type or 'unknown'!r} model: weight-baked ablation knows "
                          f"{', '.join(sorted(LAYOUTS))}; evaluate this model with hooks instead "
                          f"(safeseek eval/compare), or add its layout to core/circuit/export.py LAYOUTS")
    try:
        check_shape(circuit, _config_shape(config))
    except CircuitFileError as e:
        raise ExportError(f"{e} (model: {checkpoint}; pass the right one with --model)") from None
    out = Path(out_dir).expanduser()
    if out.resolve() == checkpoint.resolve():
        raise ExportError(f"--out {out} is the source checkpoint itself; write the export to a new folder")
    if out.exists():
        if not out.is_dir():
            raise ExportError(f"--out {out} is a file; pass a folder path")
        if not overwrite:
            raise ExportError(f"--out {out} already exists; pass another folder or --overwrite to replace it")
        if not _owned_or_empty(out):
            raise ExportError(f"--out {out} is neither empty nor a checkpoint folder (it has subfolders or no "
                              f"config.json); refusing to replace it, pass a new folder")
    _check_writable(out)
    return ExportPlan(checkpoint, out, circuit, model_type, layout)


def _module(root: nn.Module, path: str) -> nn.Module:
    for part in path.split("."):
        root = getattr(root, part)
    return root


@torch.no_grad()
def ablate_weights(hf_model: nn.Module, circuit: Circuit, layout: Layout) -> None:
    """Zero, in place, the output-projection inputs of the circuit's heads and the down-projection inputs of its
    neurons (see the module docstring)."""
    layers = _module(hf_model, layout.layers)
    for layer, head in circuit.heads:
        weight = _module(layers[layer], layout.head_out).weight
        width = (weight.shape[0] if layout.conv1d else weight.shape[1]) // circuit.n_heads
        part = slice(head * width, (head + 1) * width)
        if layout.conv1d:
            weight[part, :] = 0
        else:
            weight[:, part] = 0
    for layer, neuron in circuit.neurons:
        weight = _module(layers[layer], layout.neuron_in).weight
        if layout.conv1d:
            weight[neuron, :] = 0
        else:
            weight[:, neuron] = 0


def export_ablated(model_dir: str | Path, circuit: Circuit, out_dir: str | Path, method: str = "zero",
                   overwrite: bool = False) -> ExportPlan:
    """Write `model_dir` with `circuit` zero-ablated into its weights to `out_dir` (an ordinary HF checkpoint:
    what save_pretrained writes for the model and its tokenizer, nothing else), atomically.

    Loads with plain transformers in the checkpoint's own dtype (trust_remote_code off) on CPU, so it needs
    about the checkpoint's size in RAM. Only shapes are checked: the circuit's weight fingerprint is taken
    through the bridge, whose parameter names differ from plain HF ones on some families (GPT-2).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    plan = plan_export(model_dir, circuit, out_dir, method, overwrite)
    try:
        hf_model = AutoModelForCausalLM.from_pretrained(plan.model_dir, dtype="auto", trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(plan.model_dir, trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise ExportError(f"could not load {plan.model_dir} with transformers: {e}") from None
    ablate_weights(hf_model, circuit, plan.layout)
    with replacing_dir(plan.out_dir) as tmp:
        hf_model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return plan


def provenance(plan: ExportPlan, circuit_file: str | Path | None = None) -> str:
    """What was exported from what, as printed lines (the checkpoint itself carries no note)."""
    c = plan.circuit
    lines = [f"exported {plan.out_dir}: {plan.model_dir} ({plan.model_type}) with circuit '{c.name}' zero-ablated "
             f"in its weights ({c.summary()})"]
    if circuit_file is not None:
        lines.append(f"circuit file: {circuit_file}")
    heads = components("head", c.heads)
    neurons = components("neuron", c.neurons)
    lines.append(f"heads: {labels(heads) or 'none'}")
    lines.append(f"neurons: {len(neurons)} ({labels(neurons[:8]) or 'none'}{', ...' if len(neurons) > 8 else ''})")
    return "\n".join(lines)
