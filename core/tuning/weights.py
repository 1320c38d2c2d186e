"""Which weights belong to a circuit: the parameter elements a tuning run may change.

A circuit names attention heads and MLP neurons; the weights that belong to them are
  head h of layer L:  its rows of q_proj, k_proj, v_proj (and their biases) and its columns of o_proj;
  neuron n of layer L: its rows of gate_proj and up_proj (and their biases) and its column of down_proj.
GPT-2 stores q/k/v fused in `c_attn` and uses Conv1D, whose weights are [in, out]: there a head's q/k/v are
*columns* of c_attn (at offsets 0, d_model, 2*d_model), its output rows of attn.c_proj; a neuron is a column of
mlp.c_fc and a row of mlp.c_proj. Shared biases (o_proj, down_proj, c_proj) belong to no head or neuron.

Grouped-query attention: n_heads / n_kv_heads query heads share one key/value head. Selecting query head h
selects the k/v rows of its kv group (h // (n_heads / n_kv_heads)) as well, because a head's computation is its
queries *and* the keys/values it reads; the price is that the group's other query heads see the tuned keys and
values too. In circuit-excluded mode those shared k/v rows are therefore frozen, so circuit heads stay intact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from core.circuit.circuit import Circuit, CircuitFileError, check_shape
from core.model.load import ModelShape
from core.tuning.options import MODES, TuneError


@dataclass
class ParameterSelection:
    """Which elements of which parameters a tuning run may change.

    `masks` maps a parameter name (as in hf_model.named_parameters()) to a bool tensor of its shape (True =
    trainable), or to None when the whole tensor is trainable; parameters not listed stay frozen. `total` counts
    every parameter element of the model once (tied embeddings once), embeddings and unembedding included;
    `embedding_total` is the part of `total` that sits in embedding / unembedding matrices.
    """

    masks: dict[str, torch.Tensor | None]
    total: int
    embedding_total: int
    selected: int
    selected_embedding: int
    heads: list[tuple[int, int]] = field(default_factory=list)
    neurons: list[tuple[int, int]] = field(default_factory=list)
    description: str = ""

    @property
    def fraction(self) -> float:
        """Selected elements / all elements of the model (embeddings and unembedding count)."""
        return self.selected / self.total

    @property
    def fraction_without_embeddings(self) -> float:
        """Selected elements / all elements outside the embedding and unembedding matrices."""
        outside = self.total - self.embedding_total
        return (self.selected - self.selected_embedding) / outside if outside else 0.0

    def summary(self) -> dict:
        return {"description": self.description, "selected": self.selected, "total": self.total,
                "fraction": self.fraction, "fraction_without_embeddings": self.fraction_without_embeddings,
                "embeddings_counted_in_total": True, "heads": [list(h) for h in self.heads],
                "neurons": [list(n) for n in self.neurons]}


@dataclass(frozen=True)
class _Geometry:
    """Where heads and neurons live in one HF model family."""

    style: str  # "llama" (separate q/k/v/o and gate/up/down Linear) or "gpt2" (fused c_attn, Conv1D)
    layers: list[nn.Module]
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_model: int
    d_mlp: int


def _geometry(hf_model: nn.Module) -> _Geometry:
    config = hf_model.config
    base = getattr(hf_model, "model", None)
    if base is not None and isinstance(getattr(base, "layers", None), nn.ModuleList):
        layers = list(base.layers)
        attn, mlp = getattr(layers[0], "self_attn", None), getattr(layers[0], "mlp", None)
        names = ("q_proj", "k_proj", "v_proj", "o_proj")
        if attn is None or mlp is None or not all(hasattr(attn, n) for n in names) or not (
                hasattr(mlp, "up_proj") and hasattr(mlp, "down_proj")):
            raise TuneError(f"{type(hf_model).__name__} has decoder layers without separate q/k/v/o_proj and "
                            f"up/down_proj (e.g. a fused qkv_proj); circuit tuning supports Llama-style models "
                            f"(Llama, Qwen2, Gemma-2, Mistral) and GPT-2")
        n_heads = int(config.num_attention_heads)
        n_kv_heads = int(getattr(config, "num_key_value_heads", None) or n_heads)
        d_head = attn.q_proj.out_features // n_heads
        return _Geometry("llama", layers, n_heads, n_kv_heads, d_head, attn.q_proj.in_features,
                         mlp.up_proj.out_features)
    transformer = getattr(hf_model, "transformer", None)
    if transformer is not None and isinstance(getattr(transformer, "h", None), nn.ModuleList):
        layers = list(transformer.h)
        if not (hasattr(layers[0].attn, "c_attn") and hasattr(layers[0].mlp, "c_fc")):
            raise TuneError(f"{type(hf_model).__name__} is GPT-2-like but has no attn.c_attn / mlp.c_fc; "
                            f"circuit tuning supports Llama-style models and GPT-2")
        n_heads = int(config.n_head)
        d_model = int(config.n_embd)
        return _Geometry("gpt2", layers, n_heads, n_heads, d_model // n_heads, d_model,
                         layers[0].mlp.c_fc.weight.shape[1])
    raise TuneError(f"cannot find the decoder layers of {type(hf_model).__name__} (looked for model.layers and "
                    f"transformer.h); circuit tuning supports Llama-style models and GPT-2")


def _embedding_parameters(hf_model: nn.Module) -> set[int]:
    ids = {id(m.weight) for m in hf_model.modules() if isinstance(m, nn.Embedding)}
    output = hf_model.get_output_embeddings()
    if output is not None:
        ids.add(id(output.weight))
    return ids


def _component_masks(hf_model: nn.Module, circuit: Circuit) -> dict[nn.Parameter, torch.Tensor]:
    """Bool masks (True = belongs to a circuit head or neuron) for every parameter that holds any such element."""
    geo = _geometry(hf_model)
    try:
        check_shape(circuit, ModelShape(len(geo.layers), geo.n_heads, geo.d_mlp))
    except CircuitFileError as e:
        raise TuneError(str(e)) from None
    masks: dict[nn.Parameter, torch.Tensor] = {}

    def mark(parameter: nn.Parameter | None, index: tuple) -> None:
        if parameter is None:
            return
        if parameter not in masks:
            masks[parameter] = torch.zeros(parameter.shape, dtype=torch.bool)
        masks[parameter][index] = True

    everything = slice(None)
    group = geo.n_heads // geo.n_kv_heads
    for layer, head in circuit.heads:
        block = geo.layers[layer]
        rows = slice(head * geo.d_head, (head + 1) * geo.d_head)
        kv = head // group
        kv_rows = slice(kv * geo.d_head, (kv + 1) * geo.d_head)
        if geo.style == "llama":
            attn = block.self_attn
            for proj, part in ((attn.q_proj, rows), (attn.k_proj, kv_rows), (attn.v_proj, kv_rows)):
                mark(proj.weight, (part, everything))
                mark(proj.bias, (part,))
            mark(attn.o_proj.weight, (everything, rows))
        else:  # Conv1D [in, out]: q, k, v are column blocks of c_attn; the head's output is rows of c_proj
            attn = block.attn
            for offset in (0, geo.d_model, 2 * geo.d_model):
                columns = slice(offset + head * geo.d_head, offset + (head + 1) * geo.d_head)
                mark(attn.c_attn.weight, (everything, columns))
                mark(attn.c_attn.bias, (columns,))
            mark(attn.c_proj.weight, (rows, everything))
    for layer, neuron in circuit.neurons:
        mlp = geo.layers[layer].mlp
        if geo.style == "llama":
            for proj in (getattr(mlp, "gate_proj", None), mlp.up_proj):
                if proj is not None:
                    mark(proj.weight, (neuron, everything))
                    mark(proj.bias, (neuron,))
            mark(mlp.down_proj.weight, (everything, neuron))
        else:
            mark(mlp.c_fc.weight, (everything, neuron))
            mark(mlp.c_fc.bias, (neuron,))
            mark(mlp.c_proj.weight, (neuron, everything))
    return masks


def select_parameters(hf_model: nn.Module, circuit: Circuit | None, mode: str = "circuit-only"
                      ) -> ParameterSelection:
    """The elements `mode` trains: the circuit's weights (circuit-only; also "random", given the random set from
    `random_components(circuit, seed, match_layers=True)`), every weight but the circuit's (circuit-excluded), or
    every weight (full, where `circuit` may be None)."""
    if mode not in MODES:
        raise TuneError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    if circuit is None and mode != "full":
        raise TuneError(f"mode {mode!r} needs a circuit; only mode 'full' runs without one")
    component = _component_masks(hf_model, circuit) if mode != "full" else {}
    embeddings = _embedding_parameters(hf_model)
    masks: dict[str, torch.Tensor | None] = {}
    total = embedding_total = selected = selected_embedding = 0
    for name, parameter in hf_model.named_parameters():  # tied parameters appear once
        n = parameter.numel()
        is_embedding = id(parameter) in embeddings
        total += n
        embedding_total += n if is_embedding else 0
        circuit_mask = component.get(parameter)
        if mode == "full" or (mode == "circuit-excluded" and circuit_mask is None):
            mask, count = None, n
        elif mode == "circuit-excluded":
            mask = ~circuit_mask
            count = int(mask.sum())
        elif circuit_mask is not None:
            mask, count = circuit_mask, int(circuit_mask.sum())
        else:
            continue
        if count == 0:
            continue
        masks[name] = mask
        selected += count
        selected_embedding += count if is_embedding else 0
    if mode == "full":
        description, heads, neurons = "every weight", [], []
    else:
        description = {"circuit-only": f"the weights of circuit '{circuit.name}'",
                       "random": f"the weights of random components '{circuit.name}'",
                       "circuit-excluded": f"every weight except those of circuit '{circuit.name}'"}[mode]
        heads, neurons = list(circuit.heads), list(circuit.neurons)
    return ParameterSelection(masks, total, embedding_total, selected, selected_embedding, heads, neurons,
                              description)
