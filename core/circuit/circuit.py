"""The Circuit dataclass and its versioned JSON file format (atomic writes, validation against a model)."""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.circuit.component import Component, ComponentError, components
from core.data.files import oversize, write_text_atomic
from core.model.load import ModelShape

SCHEMA_VERSION = 1
SCENARIOS = ("backdoor", "alignment", "custom")


class CircuitFileError(ValueError):
    """A circuit file that cannot be used: unreadable, malformed, or made for another model."""


def counted(n: int, noun: str) -> str:
    """'1 head', '2 heads', '0 heads'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@dataclass
class Circuit:
    """A set of attention heads and MLP neurons, with what produced it and how it was verified."""

    heads: list[tuple[int, int]]  # (layer, head)
    neurons: list[tuple[int, int]]  # (layer, neuron index)
    n_layers: int
    n_heads: int
    d_mlp: int
    name: str = "circuit"
    scenario: str = "custom"
    model: dict[str, Any] = field(default_factory=dict)  # fingerprint of the model it was found on, plus "path"
    prompt_hashes: dict[str, str] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    head_scores: list[list[float]] | None = None  # [n_layers][n_heads], removal gate score in [0, 1]
    neuron_scores: list[list[float]] | None = None  # [n_layers][d_mlp]
    metrics: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        self.heads = sorted({(int(a), int(b)) for a, b in self.heads})
        self.neurons = sorted({(int(a), int(b)) for a, b in self.neurons})
        for component in self.components():
            try:
                component.check(self.shape, model="a model")
            except ComponentError as e:
                raise CircuitFileError(f"{component.kind} {e}") from None

    @property
    def shape(self) -> ModelShape:
        """The shape of the model the circuit was found on."""
        return ModelShape(self.n_layers, self.n_heads, self.d_mlp)

    def components(self) -> list[Component]:
        """Every head, then every neuron, each sorted by layer and index."""
        return components("head", self.heads) + components("neuron", self.neurons)

    # ---- sizes ------------------------------------------------------------------------------------------------
    @property
    def n_components(self) -> int:
        return len(self.heads) + len(self.neurons)

    def fractions(self) -> dict[str, float]:
        """Share of all heads, all neurons and all components that the circuit holds."""
        total_heads, total_neurons = self.n_layers * self.n_heads, self.n_layers * self.d_mlp
        return {"heads": len(self.heads) / total_heads, "neurons": len(self.neurons) / total_neurons,
                "components": self.n_components / (total_heads + total_neurons)}

    def summary(self) -> str:
        f = self.fractions()
        return (f"{counted(len(self.heads), 'head')} ({f['heads']:.2%}), "
                f"{counted(len(self.neurons), 'neuron')} ({f['neurons']:.2%}), {f['components']:.2%} of all components")

    # ---- masks ------------------------------------------------------------------------------------------------
    def removal_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """0/1 tensors [n_layers, n_heads] and [n_layers, d_mlp]: 1 where the component belongs to the circuit."""
        heads = torch.zeros(self.n_layers, self.n_heads)
        neurons = torch.zeros(self.n_layers, self.d_mlp)
        for layer, head in self.heads:
            heads[layer, head] = 1.0
        for layer, idx in self.neurons:
            neurons[layer, idx] = 1.0
        return heads, neurons

    def with_components(self, heads: list[tuple[int, int]], neurons: list[tuple[int, int]],
                        name: str | None = None) -> Circuit:
        """A copy on the same model with another component set (scores kept, metrics dropped)."""
        data = asdict(self)
        data.update(heads=heads, neurons=neurons, metrics={}, name=name or self.name)
        return Circuit(**data)

    # ---- files ------------------------------------------------------------------------------------------------
    def to_json(self) -> str:
        data = asdict(self)
        data["heads"] = [list(h) for h in self.heads]
        data["neurons"] = [list(n) for n in self.neurons]
        for key in ("head_scores", "neuron_scores"):
            if data[key] is not None:
                data[key] = [[round(float(v), 4) for v in row] for row in data[key]]
        return json.dumps(data, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "<string>") -> Circuit:
        try:
            data = json.loads(text.removeprefix("\ufeff"))  # the byte-order mark some editors write
        except json.JSONDecodeError as e:
            raise CircuitFileError(f"{source} is not valid JSON ({e}); a circuit file is the JSON that "
                                   f"`safeseek discover` or the explorer writes") from e
        if not isinstance(data, dict) or "heads" not in data or "n_layers" not in data:
            raise CircuitFileError(f"{source} is not a SafeSeek circuit file (no 'heads' / 'n_layers' keys)")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise CircuitFileError(f"{source} has schema_version {version!r}; this SafeSeek reads version "
                                   f"{SCHEMA_VERSION}. Re-run discovery with this version to regenerate it.")
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise CircuitFileError(f"{source} has unknown fields {sorted(unknown)}")
        _check_integers(data, source)
        try:
            return cls(**data)
        except (TypeError, ValueError) as e:
            raise CircuitFileError(f"{source} is malformed: {e}") from e

    def save(self, path: str | Path) -> Path:
        """Write atomically: a temp file in the same folder, then rename over the target."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, self.to_json())
        return path


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true/1.0 must not pass as indices


def _check_integers(data: dict, source: str) -> None:
    """Sizes and component indices must be JSON integers: 1.5 or true would otherwise be truncated silently."""
    for key in ("n_layers", "n_heads", "d_mlp"):
        if key in data and not _is_int(data[key]):
            raise CircuitFileError(f"{source}: '{key}' must be an integer, got {data[key]!r}")
    for key in ("heads", "neurons"):
        items = data.get(key, [])
        if not isinstance(items, list):
            raise CircuitFileError(f"{source}: '{key}' must be a list of [layer, index] pairs, got {items!r}")
        for i, item in enumerate(items):
            if not (isinstance(item, list) and len(item) == 2 and all(_is_int(v) for v in item)):
                raise CircuitFileError(f"{source}: '{key}'[{i}] must be two integers [layer, index], got "
                                       f"{json.dumps(item)}")


def load_circuit(path: str | Path, max_bytes: int | None = None) -> Circuit:
    """Read a circuit file; errors name the file and what is wrong with it. A file larger than `max_bytes` is
    refused before it is read."""
    path = Path(path)
    if not path.is_file():
        raise CircuitFileError(f"no circuit file at {path}; pass the path of a JSON file written by "
                               f"`safeseek discover` (see sample_circuits/)")
    if (problem := oversize(path, max_bytes)) is not None:
        raise CircuitFileError(f"{path} {problem}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise CircuitFileError(f"{path} is not UTF-8 text ({e.reason}); re-save it as UTF-8") from None
    return Circuit.from_json(text, source=str(path))


def check_shape(circuit: Circuit, shape: ModelShape) -> None:
    """Refuse a circuit found on a model of another shape (the check everything that applies a circuit makes)."""
    if circuit.shape != tuple(shape):
        raise CircuitFileError(
            f"circuit '{circuit.name}' was found on a model with {circuit.shape.describe()}, but this model has "
            f"{ModelShape(*shape).describe()}. Load the model it was made for "
            f"({circuit.model.get('path', 'see the circuit file')}) or discover a circuit on this one.")


def check_compatible(circuit: Circuit, fingerprint: dict[str, Any]) -> list[str]:
    """Refuse a circuit made for another shape of model; warn (and return the warning) for other weights."""
    check_shape(circuit, ModelShape(fingerprint.get("n_layers"), fingerprint.get("n_heads"), fingerprint.get("d_mlp")))
    notes = []
    arch = circuit.model.get("architecture")
    if arch and fingerprint.get("architecture") and arch != fingerprint["architecture"]:
        raise CircuitFileError(f"circuit '{circuit.name}' was found on a {arch} model, this is a "
                               f"{fingerprint['architecture']}; discover a circuit on this model instead")
    digest = circuit.model.get("weights_sha256")
    if digest and fingerprint.get("weights_sha256") and digest != fingerprint["weights_sha256"]:
        notes.append(f"circuit '{circuit.name}' was found on a model of the same shape but different weights "
                     f"(weights sha256 {digest[:12]}, {circuit.model.get('path', 'path not recorded')}; this model's "
                     f"is {fingerprint['weights_sha256'][:12]}: another fine-tune, or a rebuild on another machine); "
                     "its components may not mean the same here: rediscover it on this model")
        warnings.warn(notes[-1], stacklevel=2)
    return notes


def keep_masks(circuits: list[Circuit]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-ablation keep masks of removing each circuit (1 = keep): [M, n_layers, n_heads] and [M, n_layers, d_mlp],
    as core.model.generate.generate_ids_per_mask takes them."""
    removed = [circuit.removal_tensors() for circuit in circuits]
    return 1 - torch.stack([heads for heads, _ in removed]), 1 - torch.stack([neurons for _, neurons in removed])
