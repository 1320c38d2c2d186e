"""One attention head or MLP neuron: its kind, layer and index, its label ("L3H5", "L0N12") and its hook point."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from core.model.hooks import hook_name
from core.model.load import ModelShape

LETTERS = {"head": "H", "neuron": "N"}
KINDS = {letter: kind for kind, letter in LETTERS.items()}
_LABEL = re.compile(r"^L(\d+)([HN])(\d+)$")
# A component list in text: labels separated by commas, semicolons or whitespace.
SEPARATORS = re.compile(r"[\s,;]+")


class ComponentError(ValueError):
    """A component name that cannot be read, or one outside the model; the message says how to fix it."""


@dataclass(frozen=True, order=True)
class Component:
    kind: str  # "head" or "neuron"
    layer: int
    index: int  # head number, or neuron number within the layer's MLP

    def __post_init__(self) -> None:
        if self.kind not in LETTERS:
            raise ComponentError(f"unknown component kind {self.kind!r}; use 'head' or 'neuron'")

    @property
    def label(self) -> str:
        """"L3H5" for head 5 of layer 3, "L0N12" for neuron 12 of layer 0."""
        return f"L{self.layer}{LETTERS[self.kind]}{self.index}"

    @property
    def hook_name(self) -> str:
        """The hook point whose activations this component is part of."""
        return hook_name(self.kind, self.layer)

    @property
    def cell(self) -> tuple[int, int]:
        """(layer, index): how circuits and selections store it."""
        return self.layer, self.index

    def fits(self, shape: ModelShape) -> bool:
        """Whether a model of `shape` has this component."""
        limit = shape.n_heads if self.kind == "head" else shape.d_mlp
        return 0 <= self.layer < shape.n_layers and 0 <= self.index < limit

    def check(self, shape: ModelShape, model: str = "this model") -> None:
        """Refuse a component that a model of `shape` does not have (`model` names that model in the message)."""
        if not self.fits(shape):
            what = f"{shape.n_heads} heads" if self.kind == "head" else f"{shape.d_mlp} neurons per layer"
            raise ComponentError(f"{self.label} is outside {model} ({shape.n_layers} layers, {what})")

    @classmethod
    def parse(cls, text: str) -> Component:
        """Read a label such as "L3H5" or "l0n12"."""
        match = _LABEL.match(text.strip().upper())
        if match is None:
            raise ComponentError(f"{text!r} is not a component name; write heads as L<layer>H<head> (e.g. L0H3) "
                                 f"and neurons as L<layer>N<index> (e.g. L1N17), separated by commas")
        return cls(KINDS[match[2]], int(match[1]), int(match[3]))


def components(kind: str, cells: Iterable[tuple[int, int]]) -> list[Component]:
    """Components of one kind from (layer, index) cells, sorted."""
    return sorted(Component(kind, int(layer), int(index)) for layer, index in cells)


def parse_labels(text: str) -> list[Component]:
    """Every label in "L0H3, L2H7 L1N17" (commas, semicolons or spaces; heads and neurons mixed)."""
    return [Component.parse(token) for token in SEPARATORS.split(text.strip()) if token]


def labels(items: Iterable[Component]) -> str:
    """Labels joined by commas, in the order given: "L0H3,L2H7,L1N17"."""
    return ",".join(component.label for component in items)
