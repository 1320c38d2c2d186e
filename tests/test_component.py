"""Components, their labels and hook points, and choosing components from scores (top-k, budgets)."""

from __future__ import annotations

import pytest
import torch

from core.circuit.circuit import Circuit, CircuitFileError, check_shape
from core.circuit.component import Component, ComponentError, parse_labels
from core.model.load import ModelShape
from core.scoring.select import circuit_from_scores, circuit_of_size, top_k


def test_labels_parse_back_and_name_their_hook_point():
    head, neuron = Component.parse(" l3h5 "), Component.parse("L0N12")
    assert (head.kind, head.layer, head.index, head.label) == ("head", 3, 5, "L3H5")
    assert (neuron.kind, neuron.layer, neuron.index, neuron.label) == ("neuron", 0, 12, "L0N12")
    assert head.hook_name == "blocks.3.attn.hook_z" and neuron.hook_name == "blocks.0.mlp.hook_post"
    assert parse_labels("L0H3, L2H7;L1N17\nL0H1") == [Component("head", 0, 3), Component("head", 2, 7),
                                                      Component("neuron", 1, 17), Component("head", 0, 1)]
    with pytest.raises(ComponentError, match="not a component name"):
        Component.parse("H3")


def test_circuit_lists_its_components_and_refuses_another_shape():
    circuit = Circuit(heads=[(1, 2), (0, 3)], neurons=[(1, 7)], n_layers=2, n_heads=4, d_mlp=8, name="c")
    assert [c.label for c in circuit.components()] == ["L0H3", "L1H2", "L1N7"]
    check_shape(circuit, ModelShape(2, 4, 8))
    with pytest.raises(CircuitFileError, match="2 layers, 4 heads, d_mlp 8.*3 layers, 4 heads, d_mlp 8"):
        check_shape(circuit, ModelShape(3, 4, 8))
    with pytest.raises(CircuitFileError, match="L2H0 is outside a model"):
        Circuit(heads=[(2, 0)], neurons=[], n_layers=2, n_heads=4, d_mlp=8)


def test_top_k_breaks_ties_by_position_and_respects_budgets_and_thresholds():
    scores = torch.tensor([[0.2, 0.9, 0.6], [0.9, 0.1, 0.7]])
    assert top_k(scores, 3) == [(0, 1), (1, 0), (1, 2)]
    assert top_k(scores.tolist(), 3) == top_k(scores, 3)  # nested lists (circuit files) rank the same
    assert top_k(scores, 4, above=0.65) == [(0, 1), (1, 0), (1, 2)]
    assert top_k(None, 2) == [] and top_k(scores, 0) == []
    # A budget of 0.5 of 6 heads allows 3; of the 4 neurons, 0.25 allows 1; a None budget selects none.
    neurons = torch.tensor([[0.4, 0.3], [0.8, 0.6]])
    assert circuit_from_scores((scores, neurons), (0.5, 0.25)) == ([(0, 1), (1, 0), (1, 2)], [(1, 0)])
    assert circuit_from_scores((scores, neurons), (0.5, None), above=0.8) == ([(0, 1), (1, 0)], [])
    assert circuit_of_size((scores, neurons), (1, 2)) == ([(0, 1)], [(1, 0), (1, 1)])
