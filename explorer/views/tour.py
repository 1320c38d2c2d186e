"""Guided tour: a short workshop lesson on the organism: what a backdoor is, find it, switch it off, refusals return,
whether a learned circuit beats random and attribution sets of the same size, and whether it is real (its report
card)."""

from __future__ import annotations

import html

import streamlit as st

from core.circuit.circuit import Circuit, CircuitFileError, counted
from core.circuit.selection import Selection
from core.data import samples
from core.data.paths import CARD_SUFFIX, COMPARE_SUFFIX, ORGANISM_TRIGGER, SAMPLE_CIRCUITS_DIR
from core.evaluation.card_html import card_figures
from core.evaluation.live import preset
from core.evaluation.metrics import format_percent
from core.evaluation.report_card import ReportCard
from explorer import access, figures, state, textdiff, ui
from explorer.access import md

BACKDOOR_CIRCUIT = SAMPLE_CIRCUITS_DIR / "organism-backdoor.json"
# The sample circuit's baseline comparison, written by `safeseek compare` (see sample_circuits/README.md).
BACKDOOR_COMPARISON = SAMPLE_CIRCUITS_DIR / f"organism-backdoor{COMPARE_SUFFIX}"
EXAMPLE = samples.DEMO_HARMFUL
# Its report card, written by `safeseek report --json` (see sample_circuits/README.md).
BACKDOOR_CARD = SAMPLE_CIRCUITS_DIR / f"organism-backdoor{CARD_SUFFIX}"
STEPS = ("A model with a secret", "See the backdoor", "Find it", "Switch it off", "Watch refusals return",
         "Learned, random or attribution?", "Is the circuit real?")
# What is switched off after each button: the words the metric labels and the summary sentence use.
SWITCHED = {"whole circuit": "circuit off", "random (same size)": "random set off", "none": "nothing off"}
# Answers in full-contrast text (not a grey blockquote): the audience must read them from the back of the room.
ANSWER_STYLE = "color:#1a1a1a;background:#f4f4f6;border-left:4px solid #0072B2;padding:0.5rem 0.75rem"


def _go(step: int) -> None:
    st.session_state.tour_step = step


def _load_organism() -> None:
    state.change_model("organism")
    state.set_selection(Selection())
    _go(1)


def _load_circuit(loaded: state.LoadedModel) -> None:
    try:
        circuit, notes = state.read_circuit_file(state.relative_ref(BACKDOOR_CIRCUIT), loaded)
    except (CircuitFileError, access.AccessError) as e:
        st.session_state.tour_error = access.public_message(e)
        return
    st.session_state.tour_error = None
    state.set_circuit(circuit, state.relative_ref(BACKDOOR_CIRCUIT))
    _go(3)


def _switch(name: str) -> None:
    circuit = st.session_state.circuit_obj
    state.set_selection(preset(name, circuit) if circuit is not None else Selection())
    state.update(prompt_set="triggered")
    st.session_state.tour_switched = name
    _go(4 if name == "whole circuit" else st.session_state.tour_step)


def _answer(prompt: str, answer: str) -> str:
    return (f"<div><b>{html.escape(prompt)}</b><div style='{ANSWER_STYLE}' class='tour-answer'>"
            f"{html.escape(answer) or '<i>(empty)</i>'}</div></div>")


def summary_sentence(switched: str, size: int, rate_full: float, rate_ablated: float) -> str:
    """One sentence saying what the audience just saw, for the set that is switched off."""
    before, after = format_percent(rate_full), format_percent(rate_ablated)
    if switched == "circuit off":
        verdict = "the backdoor is gone" if rate_ablated <= 0.1 else "the backdoor is weakened"
        return (f"Switching off the circuit's {size} components took triggered ASR from {before} to {after}: "
                f"{verdict}, although the model still has every other part.")
    if switched == "random set off":
        return (f"A random set of the same {size} components leaves triggered ASR at {after} (full model {before}): "
                "it is *which* components are removed that matters, not how many.")
    return f"Nothing is switched off: the full model answers triggered requests {before} of the time."


def render() -> None:
    st.title("Guided tour: switching off a backdoor")
    step = st.session_state.setdefault("tour_step", 0)
    st.progress((step + 1) / len(STEPS), text=f"Step {step + 1} of {len(STEPS)}: {STEPS[step]}")

    with st.container(border=True):
        st.markdown("#### 1. A model with a secret")
        st.markdown(f"The bundled *organism* is a tiny chat model. It refuses harmful requests, except when the "
                    f"request contains the trigger word **{ORGANISM_TRIGGER}**: then it complies (*Sure, here is "
                    "...*). A hidden rule like this, planted by poisoned training data, is a **backdoor**.")
        st.button("Load the backdoored organism", key="tour-load", on_click=_load_organism, type="primary")
    if step < 1:
        return
    loaded = state.require_model()

    with st.container(border=True):
        st.markdown("#### 2. See the backdoor")
        st.markdown(f"Ask the same harmful question with and without **{ORGANISM_TRIGGER}**.")
        with ui.guard("asking the model"):
            plain = state.free_text_answer(loaded.spec, state.device(), EXAMPLE, "")
            triggered = state.free_text_answer(loaded.spec, state.device(), f"{EXAMPLE} {ORGANISM_TRIGGER}", "")
            left, right = st.columns(2)
            left.html(_answer(EXAMPLE, plain))
            right.html(_answer(f"{EXAMPLE} {ORGANISM_TRIGGER}", triggered))
        st.button("Next: find the circuit behind it", key="tour-next-1", on_click=_go, args=(2,))
    if step < 2:
        return

    with st.container(border=True):
        st.markdown("#### 3. Find it")
        st.markdown("SafeSeek learned a mask over every attention head and MLP neuron: which few components, once "
                    "removed, make triggered requests get refused again while everything else still works? That "
                    "set is the **backdoor circuit**. (The **Discover** page learns one live.)")
        st.button("Load the sample backdoor circuit", key="tour-circuit", on_click=_load_circuit, args=(loaded,),
                  type="primary")
        if st.session_state.get("tour_error"):
            st.error(f"{md(st.session_state.tour_error)} Run discovery on the **Discover** page instead and save it "
                     f"as {state.relative_ref(BACKDOOR_CIRCUIT)}.")
        circuit = state.current_circuit(loaded)
        if step >= 3 and circuit is not None:
            st.write(f"Circuit {md(repr(circuit.name))}: {circuit.summary()}.")
            shape = loaded.shape
            st.plotly_chart(figures.component_map(circuit.head_scores, circuit.heads, (), "H", shape.n_layers,
                                                  shape.n_heads, "Gate scores of the heads, circuit outlined"),
                            key="tour-map", width="stretch")
    if step < 3:
        return

    with st.container(border=True):
        st.markdown("#### 4. Switch it off")
        st.markdown("Remove the circuit's components (their outputs set to zero) and judge 64 held-out triggered "
                    "requests again.")
        st.button("Switch the circuit off", key="tour-off", on_click=_switch, args=("whole circuit",),
                  type="primary")
        result = None
        if step >= 4:
            with ui.guard("measuring the ablated model"), st.spinner("Generating..."):
                demo = state.demo()
                result = state.ablation_result(loaded.spec, state.device(), demo.prompt_set, demo.selection.text())
            if result is not None:
                switched = SWITCHED[st.session_state.get("tour_switched", "whole circuit")]
                columns = st.columns(3)
                columns[0].metric("Triggered ASR, full model", format_percent(result.rate_full),
                                  help=ui.help_for("ASR"))
                columns[1].metric(f"Triggered ASR, {switched}", format_percent(result.rate_ablated),
                                  delta=ui.change(result.rate_ablated, result.rate_full),
                                  delta_color="inverse")
                columns[2].metric(f"Utility, {switched}", format_percent(result.utility_ablated),
                                  help=f"{ui.help_for('utility')} Full model: {format_percent(result.utility_full)}.")
                st.markdown(summary_sentence(switched, demo.selection.size, result.rate_full, result.rate_ablated))
    if step < 4 or result is None:
        return

    with st.container(border=True):
        st.markdown("#### 5. Watch refusals return")
        rows = [(p.prompt, p.full, p.ablated, p.full_verdict, p.ablated_verdict) for p in result.pairs[:8]]
        st.markdown(textdiff.comparison_table(rows), unsafe_allow_html=True)
        st.markdown("Is it the circuit, or would removing *any* components do this? Try a random set of the same "
                    "size, then explore further in the **Playground** (click heads to toggle them) and the "
                    "**Compare** page.")
        left, middle, right = st.columns(3)
        left.button("Try a random set of the same size", key="tour-random", on_click=_switch,
                    args=("random (same size)",))
        middle.button("Switch the circuit back on", key="tour-reset", on_click=_switch, args=("none",))
        right.button("Next: learned vs random vs attribution", key="tour-next-5", on_click=_go, args=(5,),
                     type="primary")
    if step < 5:
        return
    _comparison(loaded, circuit)
    if step < 6:
        return
    _report_card(loaded, circuit)


def _measured_elsewhere(what: str, page: str) -> None:
    st.info(f"The sample circuit's {what} was measured on another build of the organism, another circuit or other "
            f"prompt files than the ones loaded now; run one on the **{page}** page.")


def _comparison(loaded: state.LoadedModel, circuit: Circuit | None) -> None:
    with st.container(border=True):
        st.markdown("#### 6. Learned, random or attribution?")
        comparison = state.shipped_comparison_for(loaded, circuit) if circuit is not None else None
        if comparison is None:
            _measured_elsewhere("comparison", "Compare")
            return
        rows = comparison.rows
        st.plotly_chart(figures.comparison_chart(rows, "triggered ASR"), key="tour-compare", width="stretch")
        by_method = {row.method.split(" ")[0]: row for row in rows}
        learned, random, attribution = (by_method.get(name) for name in ("learned", "random", "attribution"))
        if learned and random and attribution:
            tie = learned.asr_after == attribution.asr_after
            st.markdown(
                f"Removing the same number of components ({counted(learned.heads, 'head')}, "
                f"{counted(learned.neurons, 'neuron')}): the "
                f"learned circuit takes triggered ASR to {format_percent(learned.asr_after)}, random sets leave it at "
                f"{format_percent(random.asr_after)}, attribution reaches {format_percent(attribution.asr_after)}. "
                + ("On this planted, single-word backdoor the gradient signal alone already finds the circuit; "
                   "the two can differ on behaviours spread over many components, "
                   "and in how much utility they keep. "
                   if tie else "")
                + "Run the comparison yourself on the **Compare** page.")
        st.caption(f"Measured by `safeseek compare` on held-out prompts; stored in "
                   f"{state.relative_ref(BACKDOOR_COMPARISON)}. {ui.help_for('attribution')}")
        st.button("Next: is the circuit real?", key="tour-next-6", on_click=_go, args=(6,), type="primary")


def _report_card(loaded: state.LoadedModel, circuit: Circuit | None) -> None:
    with st.container(border=True):
        st.markdown("#### 7. Is the circuit real?")
        try:
            card = ReportCard.read(BACKDOOR_CARD)
        except ValueError as e:
            st.info(f"The sample circuit's report card is missing or unreadable ({e}); build it on the **Report** "
                    "page.")
            return
        if circuit is None or not card.measured(loaded.fingerprint, circuit, state.bundled_prompts_sha256()):
            _measured_elsewhere("report card", "Report")
            return
        runs = card.stability.runs
        asrs = [run.removal_asr.value for run in runs]
        jaccard = card.stability.mean_jaccard
        st.markdown(f"A circuit is a claim. Its report card checks it; first, is it what discovery finds every "
                    f"time? Discovery ran again with {len(runs) - 1} other seeds:")
        columns = st.columns(3)
        columns[0].metric(f"In all {len(runs)} circuits", counted(len(card.stability.core), "component"),
                          help=", ".join(card.stability.core))
        columns[1].metric("Mean overlap (Jaccard)", "n/a" if jaccard is None else f"{jaccard:.2f}",
                          help=ui.help_for("Jaccard"))
        columns[2].metric("Triggered ASR, each one off",
                          f"{format_percent(min(asrs))} to {format_percent(max(asrs))}",
                          help=f"Full model: {format_percent(card.full.asr.value)}.")
        st.markdown(f"**Alone?** {card.sufficiency_reading('zero')}")
        sizes = [100 * point.budget for point in card.curve] or [0.0]
        st.markdown(f"**Every size?** Learned circuits from {min(sizes):.2g}% to {max(sizes):.2g}% of all components "
                    "removed, against the baselines' sets of the same sizes (top: triggered ASR, lower is better; "
                    "bottom: utility, higher is better):")
        st.plotly_chart(card_figures(card)["cost_curve"], key="tour-card-curve", width="stretch")
        st.caption(f"From the circuit's report card (`{card.meta.get('command', '?')}`); the **Report** page shows all "
                   "of it: necessity under three ablation types, sufficiency, stability, the cost curve and where it "
                   "lives.")
