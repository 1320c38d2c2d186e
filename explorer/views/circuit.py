"""Circuit page: a circuit's head and neuron maps, component table, overlap with another circuit, report card."""

from __future__ import annotations

import streamlit as st

from core.circuit import overlap
from core.circuit.circuit import Circuit
from core.circuit.component import Component
from core.evaluation.metrics import format_percent
from core.scoring.select import top_k
from explorer import figures, state, ui
from explorer.access import md
from explorer.views import report


def render() -> None:
    st.title("Circuit")
    loaded = state.require_model()
    current = state.current_circuit(loaded)
    chosen, ref = ui.pick_circuit(loaded, key="circuit", label="Circuit (used by every page)")
    if chosen is not None and chosen is not current:
        state.set_circuit(chosen, ref)
        current = chosen
    if current is None:
        st.info("No circuit yet: pick a sample circuit above, upload one, or find one on the **Discover** page.")
        return
    _summary(current)
    _head_view(loaded, current)
    _neuron_view(loaded, current)
    _component_table(current)
    _overlap(loaded, current)
    with st.expander("Report card (necessity, sufficiency, stability, cost curve; also on the **Report** page)"):
        report.card_section(loaded, current, key="circuit-card", show_shipped=False)


def _summary(circuit: Circuit) -> None:
    st.subheader(f"{md(repr(circuit.name))} ({md(circuit.scenario)})")
    fractions = circuit.fractions()
    columns = st.columns(4)
    columns[0].metric("Heads", len(circuit.heads), help=f"{fractions['heads']:.2%} of all heads")
    columns[1].metric("Neurons", len(circuit.neurons), help=f"{fractions['neurons']:.2%} of all neurons")
    columns[2].metric("Share of all components", f"{fractions['components']:.2%}")
    retention = circuit.metrics.get("utility_retention") if circuit.metrics else None
    columns[3].metric("Utility kept (verified)", format_percent(retention),
                      help="The utility score (utility-task exact match and benign helpfulness) with the circuit "
                      "removed, divided by the full model's, on the verification prompts. Above 100% means the model "
                      "without the circuit answered a few more of them well: within noise, nothing was lost.")
    if circuit.metrics.get("before"):
        before, after = circuit.metrics["before"], circuit.metrics["after"]
        st.dataframe([{"metric": name, "full model": format_percent(before.get(key)),
                       "circuit removed": format_percent(after.get(key))}
                      for key, name in (("asr_clean", "clean ASR"), ("asr_triggered", "triggered ASR"),
                                        ("helpfulness", "helpfulness"), ("utility", "utility"))],
                     hide_index=True, width=560)
    else:
        st.caption("This circuit carries no verification results (run discovery with verification to add them).")
    ui.circuit_download(circuit, key="circuit-file")


def _head_view(loaded: state.LoadedModel, circuit: Circuit) -> None:
    st.subheader("Heads")
    shape = loaded.shape
    what = "gate score" if circuit.head_scores is not None else "membership (the file has no scores)"
    fig = figures.component_map(circuit.head_scores, circuit.heads, (), "H", shape.n_layers, shape.n_heads,
                                f"Attention heads: {what}, circuit outlined")
    st.plotly_chart(fig, key="circuit-head-map", width="stretch")
    ui.figure_downloads(fig, f"{circuit.name}-heads", key="circuit-heads")


def _neuron_view(loaded: state.LoadedModel, circuit: Circuit) -> None:
    st.subheader("Neurons")
    shape = loaded.shape
    fig = figures.component_map(circuit.neuron_scores, circuit.neurons, (), "N", shape.n_layers, shape.d_mlp,
                                "MLP neurons: gate score, circuit outlined")
    st.plotly_chart(fig, key="circuit-neuron-map", width="stretch")
    ui.figure_downloads(fig, f"{circuit.name}-neurons", key="circuit-neurons")
    k = st.slider("Top-k neurons by gate score", min_value=5, max_value=min(500, shape.n_layers * shape.d_mlp),
                  value=min(25, shape.n_layers * shape.d_mlp), key="circuit-topk")
    members = set(circuit.neurons)
    cells = top_k(circuit.neuron_scores, k) if circuit.neuron_scores else sorted(circuit.neurons)[:k]
    rows = [{"neuron": Component("neuron", layer, i).label, "layer": layer, "index": i,
             "gate score": _score(circuit.neuron_scores, layer, i), "in circuit": (layer, i) in members}
            for layer, i in cells]
    st.caption("Click a column header to sort.")
    st.dataframe(rows, hide_index=True, key="circuit-neuron-table", width=640)


def _score(scores, layer: int, index: int) -> float | None:
    return None if scores is None else round(float(scores[layer][index]), 4)


def component_rows(circuit: Circuit) -> list[dict]:
    """One row per circuit component: name, kind, layer, index, gate score."""
    rows = [{"component": Component("head", layer, h).label, "kind": "head", "layer": layer, "index": h,
             "gate score": _score(circuit.head_scores, layer, h)} for layer, h in circuit.heads]
    rows += [{"component": Component("neuron", layer, n).label, "kind": "neuron", "layer": layer, "index": n,
              "gate score": _score(circuit.neuron_scores, layer, n)} for layer, n in circuit.neurons]
    return rows


def _component_table(circuit: Circuit) -> None:
    st.subheader("Components")
    rows = component_rows(circuit)
    if not rows:
        st.info("This circuit is empty: discovery removed nothing within its budget.")
        return
    st.dataframe(rows, hide_index=True, key="circuit-components", width=640)
    ui.csv_download(rows, f"{circuit.name}-components", key="circuit-components", label="Download components CSV")


def _overlap(loaded: state.LoadedModel, circuit: Circuit) -> None:
    st.subheader("Overlap with another circuit")
    other, _ = ui.pick_circuit(loaded, key="overlap", label="Compare with", include_current=False)
    if other is None:
        return
    with ui.guard("comparing the circuits"):
        shared = overlap.overlap(circuit, other)
        columns = st.columns(4)
        columns[0].metric("Shared heads", len(shared.shared_heads))
        columns[1].metric("Shared neurons", len(shared.shared_neurons))
        columns[2].metric("Jaccard (heads)", _fraction(shared.heads_jaccard))
        columns[3].metric("Jaccard (all components)", _fraction(shared.components_jaccard))
        names = (circuit.name, other.name)
        shape = loaded.shape
        fig = figures.overlap_map(circuit.heads, other.heads, shape.n_layers, shape.n_heads, "H", names)
        st.plotly_chart(fig, key="overlap-heads", width="stretch")
        ui.figure_downloads(fig, f"overlap-{names[0]}-{names[1]}", key="overlap-heads")
        listed = [Component("head", a, b).label for a, b in shared.shared_heads]
        listed += [Component("neuron", a, b).label for a, b in shared.shared_neurons]
        st.write("Shared components: " + (", ".join(listed) if listed else "none"))


def _fraction(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
