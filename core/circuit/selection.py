"""The set of components a user has switched off: its compact text form, toggles, clicks, table edits and presets."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from core.circuit.ablate import removal_hooks
from core.circuit.circuit import Circuit
from core.circuit.component import Component, ComponentError, components, labels, parse_labels
from core.model.hooks import Hook
from core.model.load import ModelShape


class SelectionError(ValueError):
    """A component list that cannot be applied to this model; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class Selection:
    """Heads (layer, head) and neurons (layer, index) that are switched off (zero-ablated)."""

    heads: frozenset[tuple[int, int]] = field(default_factory=frozenset)
    neurons: frozenset[tuple[int, int]] = field(default_factory=frozenset)

    @property
    def size(self) -> int:
        return len(self.heads) + len(self.neurons)

    def toggle_head(self, layer: int, head: int) -> Selection:
        return Selection(self.heads ^ {(int(layer), int(head))}, self.neurons)

    def toggle_neuron(self, layer: int, neuron: int) -> Selection:
        return Selection(self.heads, self.neurons ^ {(int(layer), int(neuron))})

    def with_heads(self, heads: Iterable[tuple[int, int]]) -> Selection:
        return Selection(frozenset((int(a), int(b)) for a, b in heads), self.neurons)

    def with_neurons(self, neurons: Iterable[tuple[int, int]]) -> Selection:
        return Selection(self.heads, frozenset((int(a), int(b)) for a, b in neurons))

    def components(self) -> list[Component]:
        """Every switched-off head, then every neuron, each sorted by layer and index."""
        return components("head", self.heads) + components("neuron", self.neurons)

    def heads_text(self) -> str:
        return labels(components("head", self.heads))

    def neurons_text(self) -> str:
        return labels(components("neuron", self.neurons))

    def text(self) -> str:
        """Every component, heads first: "L0H3,L2H7,L1N17" ("" when nothing is off)."""
        return ",".join(part for part in (self.heads_text(), self.neurons_text()) if part)

    def hooks(self, shape: ModelShape) -> list[Hook]:
        """Per-call zero-ablation hooks (core.model.hooks) removing exactly these components; [] when nothing is off."""
        return removal_hooks(Circuit(self.heads, self.neurons, shape.n_layers, shape.n_heads, shape.d_mlp))


def parse_components(text: str, shape: ModelShape | None = None) -> Selection:
    """Read "L0H3, L2H7 L1N17" (commas or spaces; heads and neurons mixed) into a Selection.

    With `shape`, components outside the model are refused.
    """
    try:
        parsed = parse_labels(text)
        for component in parsed if shape is not None else ():
            try:
                component.check(shape)
            except ComponentError as e:
                raise SelectionError(f"{e}; pick a component that exists, or load the model the link was made for"
                                     ) from None
    except ComponentError as e:
        raise SelectionError(str(e)) from None
    return Selection(frozenset(c.cell for c in parsed if c.kind == "head"),
                     frozenset(c.cell for c in parsed if c.kind == "neuron"))


# ---- clicks on the heatmap and edits in the fallback table ------------------------------------------------------
def toggle_points(selection: Selection, points: Sequence[Mapping], kind: str) -> Selection:
    """Toggle every clicked / box-selected cell of a component map.

    `points` are plotly selection points whose `customdata` is [layer, index] (the overlay scatter of
    figures.component_map); `kind` is "H" (head map) or "N" (neuron map). Points without customdata (the
    heatmap itself) are ignored.
    """
    cells = []
    for point in points:
        data = point.get("customdata")
        if data is None or len(data) < 2:
            continue
        cells.append((int(data[0]), int(data[1])))
    for layer, index in dict.fromkeys(cells):  # a box can report one cell twice
        selection = selection.toggle_head(layer, index) if kind == "H" else selection.toggle_neuron(layer, index)
    return selection


def head_grid(selection: Selection, shape: ModelShape) -> list[list[bool]]:
    """[layer][head] booleans, True where the head is off: the rows of the fallback table."""
    return [[(layer, head) in selection.heads for head in range(shape.n_heads)] for layer in range(shape.n_layers)]


def apply_grid_edits(selection: Selection, edited_rows: Mapping) -> Selection:
    """Apply st.data_editor's `edited_rows` ({row: {"H<head>": bool}}) of the head table (row = layer)."""
    heads = set(selection.heads)
    for row, changes in edited_rows.items():
        for column, off in changes.items():
            if not str(column).startswith("H"):
                continue
            cell = (int(row), int(str(column)[1:]))
            if off:
                heads.add(cell)
            else:
                heads.discard(cell)
    return selection.with_heads(heads)


def apply_table_edits(selection: Selection, neurons: Sequence[tuple[int, int]], edited_rows: Mapping) -> Selection:
    """Apply `edited_rows` ({row: {"off": bool}}) of a neuron table whose rows list `neurons` in order."""
    chosen = set(selection.neurons)
    for row, changes in edited_rows.items():
        if "off" not in changes:
            continue
        cell = neurons[int(row)]
        if changes["off"]:
            chosen.add(cell)
        else:
            chosen.discard(cell)
    return selection.with_neurons(chosen)
