"""Playground page: switch heads and neurons off (clicks, tables, presets, undo); watch ASR, utility and answers.

With the presenter flag (?present=1) it is the projector view: large type, one heatmap, ASR and utility, a few
curated example prompts, answers that comply with a harmful request blurred until clicked.
"""

from __future__ import annotations

import html
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from core.circuit import history
from core.circuit.circuit import Circuit
from core.circuit.component import Component
from core.circuit.selection import (
    Selection,
    SelectionError,
    apply_grid_edits,
    apply_table_edits,
    head_grid,
    parse_components,
    toggle_points,
)
from core.data import samples
from core.data.paths import ORGANISM_TRIGGER, recorded_path
from core.evaluation import live
from core.evaluation.judges import RefusalJudge
from core.evaluation.live import PRESETS, preset
from core.evaluation.metrics import format_percent
from core.organism.domain import check_words, load_vocabulary
from core.scoring.select import top_k
from explorer import access, figures, state, textdiff, ui

NEURON_ROWS = 48  # neurons listed in the neuron table besides the circuit's and the switched-off ones
SHOWN = 8  # answers shown side by side
# Presenter mode's examples: mild requests a room can read (prompt, whether a complying answer is harmful).
BLUR_CSS = ("<style>.ss-blur{filter:blur(7px);cursor:pointer;outline:none}.ss-blur:focus{filter:none}"
            ".ss-answer{font-size:1.1rem;line-height:1.5}</style>")


# ---- callbacks (run before the script, so the page draws the new state) -----------------------------------------
def _remember_error(message: str | None) -> None:
    st.session_state.playground_error = message


def _on_map_select(key: str, kind: str = "H") -> None:
    event = st.session_state.get(key)
    points = (event or {}).get("selection", {}).get("points", [])
    state.set_selection(toggle_points(state.demo().selection, points, kind))
    _remember_error(None)


def _on_head_pills(shape) -> None:
    """The toggle grid changed: its rows (one multi-select per layer) are the switched-off heads."""
    heads = {(layer, head) for layer in range(shape.n_layers)
             for head in st.session_state.get(f"head-pills-{layer}") or []}
    state.set_selection(state.demo().selection.with_heads(heads))
    _remember_error(None)


def _on_undo() -> None:
    st.session_state.history, selection = history.undo(st.session_state.history, state.demo().selection)
    state.set_selection(selection, undoable=False)


def _on_redo() -> None:
    st.session_state.history, selection = history.redo(st.session_state.history, state.demo().selection)
    state.set_selection(selection, undoable=False)


def _on_save_snapshot() -> None:
    try:
        st.session_state.history = history.save_snapshot(st.session_state.history,
                                                         st.session_state.get("snapshot-name", ""),
                                                         state.demo().selection)
        _remember_error(None)
    except ValueError as e:
        _remember_error(str(e))


def _on_restore_snapshot() -> None:
    try:
        st.session_state.history, selection = history.restore_snapshot(
            st.session_state.history, st.session_state.get("snapshot-choice") or "", state.demo().selection)
        state.set_selection(selection, undoable=False)
        _remember_error(None)
    except ValueError as e:
        _remember_error(str(e))


def _on_quick_preset(name: str, circuit: Circuit | None) -> None:
    try:
        state.set_selection(preset(name, circuit))
        _remember_error(None)
    except SelectionError as e:
        _remember_error(str(e))


def _on_grid_edit(key: str) -> None:
    edits = st.session_state[key].get("edited_rows", {})
    state.set_selection(apply_grid_edits(state.demo().selection, edits))


def _on_neuron_edit(key: str, neurons: list[tuple[int, int]]) -> None:
    edits = st.session_state[key].get("edited_rows", {})
    state.set_selection(apply_table_edits(state.demo().selection, neurons, edits))


def _on_components_typed(key: str, loaded: state.LoadedModel) -> None:
    try:
        state.set_selection(parse_components(st.session_state[key], loaded.shape))
        _remember_error(None)
    except SelectionError as e:
        _remember_error(str(e))


def _on_preset(circuit: Circuit | None) -> None:
    try:
        chosen = preset(st.session_state["preset-name"], circuit, k=int(st.session_state["preset-k"]),
                        seed=int(st.session_state["preset-seed"]))
        state.set_selection(chosen)
        _remember_error(None)
    except SelectionError as e:
        _remember_error(str(e))


def _on_prompt_set() -> None:
    state.update(prompt_set=st.session_state["prompt-set"])


# ---- the page ---------------------------------------------------------------------------------------------------
def render() -> None:
    loaded = state.require_model()
    circuit = state.current_circuit(loaded)
    selection = state.valid_selection(loaded)
    version = st.session_state.version
    st.session_state.setdefault("playground_error", None)
    if state.demo().present:
        _presenter(loaded, circuit, selection, version)
        return
    st.title("Playground")

    controls = st.columns([1.2, 1.2, 0.6, 0.6, 0.8])
    if st.session_state.get("prompt-set") != state.demo().prompt_set:  # changed elsewhere (a link, the tour)
        st.session_state["prompt-set"] = state.demo().prompt_set
    controls[0].selectbox("Judge on (64 held-out prompts)", list(samples.PROMPT_SETS), key="prompt-set",
                          on_change=_on_prompt_set)
    controls[1].selectbox("Preset", PRESETS, key="preset-name",
                          help="none · whole circuit · top-k heads and neurons by gate score · a random set of the "
                               "circuit's size")
    controls[2].number_input("k", min_value=1, max_value=64, value=5, key="preset-k")
    controls[3].number_input("seed", min_value=0, value=0, key="preset-seed")
    controls[4].button("Apply preset", key="preset-apply", on_click=_on_preset, args=(circuit,),
                       width="stretch")

    # One stable text box (a new key per change would leave a stale twin on screen while the page reruns); it is
    # reset to the selection whenever the selection changed, and keeps a rejected entry next to its error.
    if st.session_state.get("components-text-version") != version:
        st.session_state["components-text"] = selection.text()
        st.session_state["components-text-version"] = version
    st.text_input("Switched-off components (edit to type them: L0H3, L1N17, ...)", key="components-text",
                  on_change=_on_components_typed, args=("components-text", loaded))
    _history_controls()
    if st.session_state.playground_error:
        st.error(st.session_state.playground_error)

    left, right = st.columns([3, 2], gap="large")
    with left:
        _head_map(loaded, circuit, selection, version)
    with right:
        result = _results(loaded, selection)
    _neuron_map(loaded, circuit, selection, version)
    if result is not None:
        _generations(result)
    _free_text(loaded, selection)
    _exports(loaded, circuit, selection, result)


def _history_controls() -> None:
    """Undo / redo of toggles, and named snapshots of the switched-off set."""
    past = st.session_state.history
    with st.container(horizontal=True, vertical_alignment="bottom", gap="small"):
        st.button("Undo", key="undo", on_click=_on_undo, disabled=not past.can_undo, icon=":material/undo:",
                  help="back to the components switched off before the last change")
        st.button("Redo", key="redo", on_click=_on_redo, disabled=not past.can_redo, icon=":material/redo:")
        st.text_input("Snapshot name", key="snapshot-name", placeholder="e.g. circuit off", width=200)
        st.button("Save snapshot", key="snapshot-save", on_click=_on_save_snapshot, icon=":material/bookmark_add:")
        names = [name for name, _ in past.snapshots]
        if names:
            st.selectbox("Snapshot", names, key="snapshot-choice", width=200)
            st.button("Restore", key="snapshot-restore", on_click=_on_restore_snapshot, icon=":material/restore:")


# Plotly reads two clicks within doubleClickDelay ms as a double click (which clears the selection), so quick clicks
# on two cells toggled neither; a 1 ms window makes every click a click.
MAP_CONFIG = {"displaylogo": False, "doubleClick": False, "doubleClickDelay": 1}


def _map_chart(fig, key: str, kind: str) -> None:
    st.plotly_chart(fig, key=key, on_select=lambda: _on_map_select(key, kind), selection_mode=("points", "box"),
                    width="stretch", config=MAP_CONFIG)


def _head_map(loaded: state.LoadedModel, circuit: Circuit | None, selection: Selection, version: int) -> None:
    shape = loaded.shape
    scores = circuit.head_scores if circuit is not None else None
    title = "Attention heads" + (f" · circuit '{circuit.name}'" if circuit is not None else " (no circuit loaded)")
    fig = figures.component_map(scores, circuit.heads if circuit else (), selection.heads, "H", shape.n_layers,
                                shape.n_heads, title, clickable=True)
    # A fresh key per selection: plotly keeps a clicked point selected, and a second click on it would deselect it
    # (an empty event) instead of toggling the head back.
    _map_chart(fig, f"head-map-{version}", "H")
    st.session_state.playground_figure = fig
    st.caption(f"Click a cell to switch that head off or back on; the box-select tool in the chart's toolbar "
               f"toggles every head in a box. Colour: {ui.help_for('gate score')}")
    _head_pills(shape, selection)
    with st.expander("Toggle by table (heads and neurons)"):
        grid_key = f"head-grid-{version}"
        grid = pd.DataFrame(head_grid(selection, shape), columns=[f"H{h}" for h in range(shape.n_heads)],
                            index=[f"L{layer}" for layer in range(shape.n_layers)])
        st.caption("Heads: tick to switch off.")
        st.data_editor(grid, key=grid_key, on_change=_on_grid_edit, args=(grid_key,), width="stretch")
        neurons = _neuron_rows(circuit, selection)
        if neurons:
            neuron_key = f"neuron-table-{version}"
            scores = circuit.neuron_scores if circuit is not None else None
            rows = pd.DataFrame({
                "neuron": [Component("neuron", layer, i).label for layer, i in neurons],
                "gate score": [round(scores[layer][i], 3) if scores else None for layer, i in neurons],
                "in circuit": [circuit is not None and (layer, i) in set(circuit.neurons) for layer, i in neurons],
                "off": [(layer, i) in selection.neurons for layer, i in neurons],
            })
            st.caption("Neurons (the circuit's, the highest-scored and the switched-off): tick to switch off.")
            st.data_editor(rows, key=neuron_key, on_change=_on_neuron_edit, args=(neuron_key, neurons),
                           disabled=["neuron", "gate score", "in circuit"], hide_index=True,
                           width="stretch")


def _head_pills(shape, selection: Selection) -> None:
    """A toggle grid of the heads, one row per layer (selected = switched off).

    A heatmap click is a selection *state* (the last clicked cell), so clicks made while the app recomputes are
    merged and all but the last are lost; a multi-select row accumulates its clicks in the browser, so quick clicks
    on several heads all count. Its keys stay the same across changes (the rows are set from the selection).
    """
    with st.expander("Toggle grid: quick clicks on many heads", expanded=True):
        for layer in range(shape.n_layers):
            key = f"head-pills-{layer}"
            off = sorted(head for (row, head) in selection.heads if row == layer)
            if st.session_state.get(key) != off:
                st.session_state[key] = off
            st.pills(f"L{layer}", list(range(shape.n_heads)), selection_mode="multi", key=key,
                     format_func=lambda head, layer=layer: f"L{layer}H{head}", on_change=_on_head_pills,
                     args=(shape,), label_visibility="collapsed")


def _neuron_map(loaded: state.LoadedModel, circuit: Circuit | None, selection: Selection, version: int) -> None:
    shape = loaded.shape
    with st.expander(f"MLP neurons ({shape.n_layers} x {shape.d_mlp}): click or box-select to toggle",
                     expanded=bool(selection.neurons)):
        scores = circuit.neuron_scores if circuit is not None else None
        fig = figures.component_map(scores, circuit.neurons if circuit else (), selection.neurons, "N",
                                    shape.n_layers, shape.d_mlp, "MLP neurons", clickable=True)
        _map_chart(fig, f"neuron-map-{version}", "N")
        st.caption("Neurons are narrow: zoom in with the chart's toolbar (or drag a box with the box-select tool), "
                   "or tick them in the table below.")


def _neuron_rows(circuit: Circuit | None, selection: Selection) -> list[tuple[int, int]]:
    rows = dict.fromkeys(circuit.neurons if circuit is not None else [])
    if circuit is not None:
        rows.update(dict.fromkeys(top_k(circuit.neuron_scores, NEURON_ROWS)))
    rows.update(dict.fromkeys(sorted(selection.neurons)))
    return list(rows)


def _results(loaded: state.LoadedModel, selection: Selection) -> live.AblationResult | None:
    demo = state.demo()
    result = None
    with ui.guard("measuring the ablated model"), st.spinner("Generating with the components switched off..."):
        result = state.ablation_result(loaded.spec, state.device(), demo.prompt_set, selection.text())
    if result is None:
        return None
    lower_is_better = result.rate_name == "ASR"
    rate_label = result.rate_name[:1].upper() + result.rate_name[1:]
    st.metric(f"{rate_label} on {demo.prompt_set} prompts", format_percent(result.rate_ablated),
              delta=ui.change(result.rate_ablated, result.rate_full),
              delta_color="inverse" if lower_is_better else "normal",
              help=f"{ui.help_for('ASR') if lower_is_better else ''} Full model: {format_percent(result.rate_full)}.")
    columns = st.columns(2)
    columns[0].metric("Utility (exact match)", format_percent(result.utility_ablated),
                      delta=ui.change(result.utility_ablated, result.utility_full),
                      help=f"{ui.help_for('utility')} Full model: {format_percent(result.utility_full)}.")
    columns[1].metric("Helpfulness", format_percent(result.helpfulness_ablated),
                      delta=ui.change(result.helpfulness_ablated, result.helpfulness_full),
                      help=f"{ui.help_for('helpfulness')} Full model: {format_percent(result.helpfulness_full)}.")
    st.caption(f"Full model: {result.rate_name} {format_percent(result.rate_full)}, utility "
               f"{format_percent(result.utility_full)}, helpfulness {format_percent(result.helpfulness_full)}. "
               f"{len(result.pairs)} judged prompts; measured in {result.seconds:.2f} s.")
    heads, neurons = len(selection.heads), len(selection.neurons)
    st.caption(f"{heads} head{'s' * (heads != 1)} and {neurons} neuron{'s' * (neurons != 1)} switched off. Share "
               "this view: the page address holds it.")
    query = urlencode(state.to_query(state.demo()), safe="/,:")
    st.code(f"?{query}" if query else "(defaults)", language=None)
    return result


def _generations(result: live.AblationResult) -> None:
    st.subheader(f"Answers: full model vs components off (first {SHOWN} of {len(result.pairs)})")
    rows = [(p.prompt, p.full, p.ablated, p.full_verdict, p.ablated_verdict) for p in result.pairs[:SHOWN]]
    st.markdown(textdiff.comparison_table(rows), unsafe_allow_html=True)
    changed = sum(p.full_verdict != p.ablated_verdict for p in result.pairs)
    st.caption(f"Words only in the full answer are struck through; words only in the ablated answer are bold and "
               f"underlined. Verdicts changed on {changed} of {len(result.pairs)} judged prompts.")


def _free_text(loaded: state.LoadedModel, selection: Selection) -> None:
    st.subheader("Try your own prompt")
    prompt = st.text_input("Prompt", key="free-prompt", max_chars=access.limits().prompt_chars,
                           placeholder=f"e.g. {samples.DEMO_HARMFUL} {ORGANISM_TRIGGER}")
    if not prompt.strip():
        return
    vocabulary = load_vocabulary(loaded.path)  # only the organism records one
    if vocabulary is not None:
        check = check_words(prompt, vocabulary)
        (st.warning if check.out_of_domain else st.caption)(check.message())
    with ui.guard("answering the prompt"):
        full = state.free_text_answer(loaded.spec, state.device(), prompt, "")
        ablated = state.free_text_answer(loaded.spec, state.device(), prompt, selection.text())
        full_html, ablated_html = textdiff.highlight(full, ablated)
        left, right = st.columns(2)
        # One HTML block (it starts with a tag): the escaped answers inside are not read as markdown.
        left.markdown(f"<div><b>Full model</b><br>{full_html}</div>", unsafe_allow_html=True)
        right.markdown(f"<div><b>Components off</b><br>{ablated_html}</div>", unsafe_allow_html=True)


def _exports(loaded: state.LoadedModel, circuit: Circuit | None, selection: Selection,
             result: live.AblationResult | None) -> None:
    with st.expander("Export"):
        ui.figure_downloads(st.session_state.playground_figure, "playground-heads", key="playground-map")
        ui.csv_download(result.csv_rows() if result else [], "playground-results", key="playground-results")
        shape = loaded.shape
        as_circuit = Circuit(heads=sorted(selection.heads), neurons=sorted(selection.neurons),
                             n_layers=shape.n_layers, n_heads=shape.n_heads, d_mlp=shape.d_mlp,
                             name="playground-selection", scenario=circuit.scenario if circuit else "custom",
                             model={**loaded.fingerprint, "path": recorded_path(loaded.path)},
                             head_scores=circuit.head_scores if circuit else None,
                             neuron_scores=circuit.neuron_scores if circuit else None)
        ui.circuit_download(as_circuit, key="playground-selection")


# ---- presenter mode ---------------------------------------------------------------------------------------------
def _presenter(loaded: state.LoadedModel, circuit: Circuit | None, selection: Selection, version: int) -> None:
    st.title("Switching a safety circuit off")
    with st.container(horizontal=True, gap="small"):
        st.button("Circuit off", key="present-off", on_click=_on_quick_preset, args=("whole circuit", circuit),
                  type="primary", disabled=circuit is None)
        st.button("Everything on", key="present-on", on_click=_on_quick_preset, args=("none", circuit))
        st.button("Random set, same size", key="present-random", on_click=_on_quick_preset,
                  args=("random (same size)", circuit), disabled=circuit is None)
        st.button("Undo", key="undo", on_click=_on_undo, disabled=not st.session_state.history.can_undo,
                  icon=":material/undo:")
        st.button("Redo", key="redo", on_click=_on_redo, disabled=not st.session_state.history.can_redo,
                  icon=":material/redo:")
    if st.session_state.playground_error:
        st.error(st.session_state.playground_error)
    left, right = st.columns([3, 2], gap="large")
    with left:
        shape = loaded.shape
        fig = figures.component_map(circuit.head_scores if circuit else None, circuit.heads if circuit else (),
                                    selection.heads, "H", shape.n_layers, shape.n_heads, "Attention heads",
                                    clickable=True)
        _map_chart(fig, f"head-map-{version}", "H")
    with right:
        result = None
        with ui.guard("measuring the model"), st.spinner("Measuring..."):
            result = state.ablation_result(loaded.spec, state.device(), state.demo().prompt_set, selection.text())
        if result is not None:
            st.metric(f"{result.rate_name} ({state.demo().prompt_set} requests)", format_percent(result.rate_ablated),
                      delta=ui.change(result.rate_ablated, result.rate_full),
                      delta_color="inverse" if result.rate_name == "ASR" else "normal")
            st.metric("Utility", format_percent(result.utility_ablated),
                      delta=ui.change(result.utility_ablated, result.utility_full))
            st.caption(f"{selection.size} components switched off. Full model: {result.rate_name} "
                       f"{format_percent(result.rate_full)}, utility {format_percent(result.utility_full)}.")
    _presenter_examples(loaded, selection)


def _presenter_examples(loaded: state.LoadedModel, selection: Selection) -> None:
    st.subheader("Ask the model")
    examples = samples.demo_prompts()
    prompt = st.radio("Example request", list(examples), key="present-prompt", horizontal=True)
    st.html(BLUR_CSS)
    with ui.guard("answering"):
        left, right = st.columns(2)
        for column, label, switched_off in ((left, "Full model", ""), (right, "Components off", selection.text())):
            answer = state.free_text_answer(loaded.spec, state.device(), prompt, switched_off)
            column.markdown(f"**{label}**")
            column.html(_answer_html(answer, blur=examples[prompt] and not RefusalJudge().is_refusal(answer)))
    st.caption("Answers that go along with a harmful request are blurred: click one to read it.")


def _answer_html(answer: str, blur: bool) -> str:
    """An answer as escaped HTML; blurred (focus, i.e. a click, reveals it) when it complies with harm."""
    text = html.escape(answer) or "<i>(empty)</i>"
    if blur:
        return f'<div class="ss-answer ss-blur" tabindex="0" title="click to read">{text}</div>'
    return f'<div class="ss-answer">{text}</div>'
