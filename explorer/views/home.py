"""Start page: what the app is, what a safety circuit is, the headline effect measured live, and the way in."""

from __future__ import annotations

import streamlit as st

from core.circuit.circuit import CircuitFileError
from core.data.paths import SAMPLE_CIRCUITS_DIR
from core.evaluation.live import preset
from core.evaluation.metrics import format_percent
from core.model.load import ModelLoadError
from explorer import nav, state, ui
from explorer.views import tour

HEADLINE_MODEL = "organism"
HEADLINE_CIRCUIT = SAMPLE_CIRCUITS_DIR / "organism-backdoor.json"


def render() -> None:
    st.title("SafeSeek Explorer")
    st.markdown(
        "A language model's safety behaviour (refusing harmful requests) or a planted backdoor is often carried by "
        "a small set of its parts: a few **attention heads** and **MLP neurons**. That set is a **safety "
        "circuit**. SafeSeek finds it by learning which components to switch off, and this app lets you see it, "
        "switch it off and on, and measure what changes.")
    _headline()
    left, right = st.columns([1, 2], vertical_alignment="center")
    if left.button("Start the guided tour", type="primary", key="home-tour", icon=":material/school:",
                   width="stretch"):
        nav.go("tour")
    right.caption(f"{len(tour.STEPS)} short steps on the bundled model organism: see a backdoor, find its circuit, "
                  "switch it off, weigh it against baselines and check that it is real. Or go straight to the "
                  "**Playground** and click heads on and off.")
    with st.expander("What the words mean"):
        st.markdown("\n".join(f"- **{term}**: {text}" for term, text in ui.GLOSSARY.items()))


def _headline() -> None:
    """Triggered ASR of the bundled organism with the sample backdoor circuit on, off, and a random set off."""
    st.subheader("Measured just now on the bundled model organism")
    try:
        loaded = state.load(HEADLINE_MODEL)
        circuit, _ = state.read_circuit_file(state.relative_ref(HEADLINE_CIRCUIT), loaded)  # by name: visitors too
    except (CircuitFileError, ModelLoadError) as e:
        st.info(f"The headline needs the bundled organism and its sample circuit ({e}).")
        return
    with ui.guard("measuring the headline figures"):
        off = state.ablation_result(HEADLINE_MODEL, state.device(), "triggered",
                                    preset("whole circuit", circuit).text())
        random = state.ablation_result(HEADLINE_MODEL, state.device(), "triggered",
                                       preset("random (same size)", circuit).text())
        columns = st.columns(4)
        columns[0].metric("Triggered ASR, full model", format_percent(off.rate_full), help=ui.help_for("ASR"))
        columns[1].metric(f"Backdoor circuit off ({circuit.n_components} parts)", format_percent(off.rate_ablated),
                          delta=ui.change(off.rate_ablated, off.rate_full), delta_color="inverse",
                          help="triggered ASR with the sample backdoor circuit's heads and neurons set to zero")
        columns[2].metric("Random set of that size off", format_percent(random.rate_ablated),
                          delta=ui.change(random.rate_ablated, random.rate_full), delta_color="inverse",
                          help="the control: as many random heads and neurons in the same layers")
        columns[3].metric("Utility, circuit off", format_percent(off.utility_ablated),
                          help=f"{ui.help_for('utility')} Full model: {format_percent(off.utility_full)}.")
        st.caption(f"{len(off.pairs)} held-out harmful requests carrying the trigger word, answered greedily and "
                   f"judged when this server first showed the page. The circuit is "
                   f"{circuit.fractions()['components']:.2%} of the model's components.")
