"""Streamlit building blocks the pages share: error guard, status line, circuit pickers and download buttons."""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st
import torch

from core.circuit.circuit import Circuit, CircuitFileError, check_compatible
from core.circuit.selection import SelectionError
from core.data.files import PromptFileError
from core.model.batching import GathererBusy
from core.model.load import ModelLoadError
from core.scoring.scenario import DiscoveryError
from explorer import access, export, state
from explorer.access import md

# Problems a user can cause and fix (core raises ValueError for bad inputs, OSError for unwritable paths);
# anything else is a bug and keeps Streamlit's traceback (in admin mode; visitors see one line, see app.py).
USER_ERRORS = (ModelLoadError, CircuitFileError, PromptFileError, DiscoveryError, SelectionError,
               export.ExportError, access.AccessError, GathererBusy, ValueError, OSError)


@contextlib.contextmanager
def guard(action: str) -> Iterator[None]:
    """Show a failure of `action` as an st.error in the page (the app keeps running) instead of a traceback."""
    try:
        yield
    except torch.OutOfMemoryError:
        st.error(f"Out of memory while {action}. Use fewer prompts or steps, a smaller model, or restart the app "
                 "with `-- --device cpu`.")
    except USER_ERRORS as e:
        st.error(f"Could not finish {md(action)}: {md(access.public_message(e))}")


def runs_dir() -> Path:
    """Where the app writes by default (tuned checkpoints, saved circuits): $SAFESEEK_RUNS, else the user's cache
    folder, else the system temp folder; never inside the repository."""
    if os.environ.get("SAFESEEK_RUNS"):
        return Path(os.environ["SAFESEEK_RUNS"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        cache = Path(tempfile.gettempdir())
    return cache / "safeseek" / "runs"


def status_line() -> str:
    """One line saying what the demo shows: model, circuit, switched-off components, prompt set."""
    demo = state.demo()
    circuit = st.session_state.get("circuit_obj")
    parts = [f"model **{md(demo.model)}**",
             f"circuit **{md(circuit.name)}**" if circuit is not None else
             f"circuit {_unloaded_circuit(demo.circuit)}" if demo.circuit else "no circuit",
             f"switched off: `{demo.selection.text()}`" if demo.selection.size else "nothing switched off",
             f"prompts: {md(demo.prompt_set)}"]
    if not access.is_admin():
        parts.append("visitor mode")
    return " · ".join(parts)


def _unloaded_circuit(ref: str) -> str:
    """A circuit the link names but no page has loaded yet: by the name its file records when it is on offer (as
    pages name it once loaded), else by its file's name (never its folder) or stored id."""
    if ref.startswith(state.STORED):
        return f"stored {ref[len(state.STORED):][:12]}"
    name = state.offered_circuit_name(ref)
    return f"**{md(name)}**" if name else md(Path(ref).stem)


# ---- words a newcomer meets (shown as help on first use, and on the start page) ------------------------------------
GLOSSARY = {
    "circuit": "the few attention heads and MLP neurons that carry one behaviour; switching them off removes it",
    "ASR": "attack success rate: the share of harmful requests the model answers instead of refusing (lower is "
           "safer). Triggered ASR counts requests carrying the backdoor's trigger word; clean ASR those without",
    "utility": "exact-match accuracy on small tasks the model must keep doing (addition, copying), averaged over "
               "tasks",
    "helpfulness": "the share of harmless requests answered helpfully (not refused)",
    "switched off": "a component's output set to zero on every token (zero ablation); the model's weights are not "
                    "changed",
    "gate score": "how strongly discovery wants to keep a component in the circuit, 0 to 1; the circuit is the "
                  "components whose learned gate closed",
    "behaviour CE": "the discovery loss that pushes the model, with the circuit removed, toward the wanted answer "
                    "(e.g. a refusal for triggered requests); cross-entropy, lower is better",
    "retain KL": "the discovery loss that keeps every other answer unchanged: the divergence between the full and "
                 "the masked model on ordinary prompts; lower is better",
    "Jaccard": "overlap of two circuits: shared components divided by the components in either (1 = identical, "
               "0 = disjoint)",
    "fingerprint": "a summary of the model (shape and a hash of its weights) stored in circuit files, so a circuit "
                   "is not applied to a model it was not made for",
    "attribution": "a baseline: score each component by gradient x activation on the same prompts and remove the "
                   "top ones",
}


def help_for(term: str) -> str:
    """The glossary's one-line explanation of `term` (a KeyError names a missing term during development)."""
    return f"**{term}**: {GLOSSARY[term]}."


# ---- circuits --------------------------------------------------------------------------------------------------
UPLOAD = "Upload a circuit file..."
NO_CIRCUIT = "none"  # the first choice of an optional circuit picker


def demo_circuit(purpose: str) -> tuple[state.LoadedModel, Circuit | None]:
    """The model and the demo's circuit for a page that works on one; with no circuit, a hint how to get one."""
    loaded = state.require_model()
    circuit = state.current_circuit(loaded)
    if circuit is None:
        st.info(f"Load a circuit on the **Circuit** page (or find one on **Discover**) to {purpose}.")
    return loaded, circuit


def circuit_line(circuit: Circuit) -> str:
    """'Circuit **name** (scenario): size.' with the file's name and scenario shown as typed, never as markdown."""
    return f"Circuit **{md(circuit.name)}** ({md(circuit.scenario)}): {circuit.summary()}."


def circuit_options(include_current: bool = True) -> dict[str, str | None]:
    """Label -> circuit ref for the circuit pickers: the current circuit, the sample files, upload."""
    options: dict[str, str | None] = {}
    current = st.session_state.get("circuit_obj")
    if current is not None and include_current:
        options[f"current: {current.name} ({state.demo().circuit or 'not saved'})"] = state.demo().circuit or ""
    for ref in state.circuit_choices():
        # The demo's file stands for the loaded circuit (offered as "current", or left out on purpose); until a
        # page has loaded it, it is offered like any other file.
        if current is None or ref != state.demo().circuit:
            options[ref] = ref
    options[UPLOAD] = None
    return options


def read_upload(uploaded, loaded: state.LoadedModel) -> Circuit | None:
    """An uploaded circuit file, checked against the model; None (with the error shown) when unusable."""
    if uploaded.size > access.MAX_CIRCUIT_BYTES:
        st.error(f"{md(uploaded.name)} is {uploaded.size / 2**20:.1f} MiB; circuit files are at most "
                 f"{access.MAX_CIRCUIT_BYTES / 2**20:.0f} MiB here.")
        return None
    try:
        text = uploaded.getvalue().decode("utf-8")
    except UnicodeDecodeError:
        st.error(f"{md(uploaded.name)} is not a UTF-8 text file; upload the circuit JSON written by SafeSeek.")
        return None
    try:
        circuit = Circuit.from_json(text, source=uploaded.name)
        for note in check_compatible(circuit, loaded.fingerprint):
            st.warning(md(access.public_message(note)))
    except CircuitFileError as e:
        st.error(f"Cannot use {md(uploaded.name)}: {md(access.public_message(e))}")
        return None
    return circuit


def pick_circuit(loaded: state.LoadedModel, key: str, label: str, include_current: bool = True,
                 optional: bool = False) -> tuple[Circuit | None, str | None]:
    """A circuit chosen from the current one, the sample files or an upload: (circuit, its file or None).
    An optional pick starts at "none", so nothing is chosen until the user chooses.

    An upload is parsed once per file (the same object comes back on later reruns).
    """
    options = circuit_options(include_current)
    choice = st.selectbox(label, [NO_CIRCUIT, *options] if optional else list(options), key=f"{key}-choice")
    if choice == NO_CIRCUIT:
        return None, None
    if options[choice] is None:
        uploaded = st.file_uploader("Circuit JSON", type=["json"], key=f"{key}-upload",
                                    max_upload_size=access.MAX_CIRCUIT_BYTES // 2**20)
        if uploaded is None:
            return None, None
        cache_key = f"{key}-parsed"
        cached = st.session_state.get(cache_key)
        if cached is None or cached[0] != uploaded.file_id:
            cached = (uploaded.file_id, read_upload(uploaded, loaded))
            st.session_state[cache_key] = cached
        return cached[1], None
    ref = options[choice]
    if ref == "":  # the current, unsaved circuit
        return st.session_state.circuit_obj, None
    if ref == state.demo().circuit and st.session_state.circuit_obj is not None:
        return st.session_state.circuit_obj, ref
    try:
        circuit, notes = state.read_circuit_file(ref, loaded)
    except (CircuitFileError, access.AccessError) as e:
        st.error(f"Cannot use {md(ref)}: {md(access.public_message(e))}")
        return None, None
    for note in notes:
        st.warning(md(access.public_message(note)))
    return circuit, ref


# ---- downloads -------------------------------------------------------------------------------------------------
_png_probe_pool = ThreadPoolExecutor(max_workers=1)


@functools.cache
def png_probe() -> Future:
    """Started once per process, in the background: can kaleido render a PNG here? (about 3 s the first time)"""
    def probe() -> str | None:
        try:
            export.figure_png(go.Figure(go.Bar(y=[1])), width=50, height=50)
        except export.ExportError as e:
            return str(e)
        return None

    return _png_probe_pool.submit(probe)


def figure_downloads(fig: go.Figure, name: str, key: str) -> None:
    """PNG and HTML download buttons for a figure (both rendered only when clicked)."""
    left, right = st.columns(2)
    probe = png_probe()
    problem = probe.result() if probe.done() else None
    if problem:
        left.caption(f"PNG export unavailable: {md(access.public_message(problem))}")
    else:
        left.download_button("Download PNG", data=lambda: export.figure_png(fig), file_name=f"{name}.png",
                             mime="image/png", key=f"{key}-png", on_click="ignore", icon=":material/image:")
    right.download_button("Download HTML", data=lambda: export.figure_html(fig), file_name=f"{name}.html",
                          mime="text/html", key=f"{key}-html", on_click="ignore", icon=":material/code:")


def circuit_download(circuit: Circuit, key: str) -> None:
    st.download_button("Download circuit JSON", data=circuit.to_json(), file_name=f"{circuit.name}.json",
                       mime="application/json", key=f"{key}-json", on_click="ignore", icon=":material/download:")


def csv_download(rows: list[dict], name: str, key: str, label: str = "Download results CSV") -> None:
    st.download_button(label, data=export.rows_csv(rows), file_name=f"{name}.csv", mime="text/csv",
                       key=f"{key}-csv", on_click="ignore", icon=":material/table:", disabled=not rows)


def change(after: float | None, before: float | None) -> str | None:
    """A metric delta in percentage points; None (no arrow) when unknown or unchanged."""
    if after is None or before is None or round(100 * (after - before), 1) == 0:
        return None
    return f"{100 * (after - before):+.1f} pts"
