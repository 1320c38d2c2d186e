"""Report page: the circuit's report card (necessity, sufficiency, seed stability, cost curve, where it lives).

`card_section` draws the same card on the Circuit page.
"""

from __future__ import annotations

import streamlit as st

from core.circuit.circuit import Circuit
from core.data.paths import SAMPLE_CIRCUITS_DIR
from core.evaluation.cache import ResultCache, default_cache_dir
from core.evaluation.card_html import card_figures, card_html, card_json
from core.evaluation.report_card import CardBuilder, CardConfig, Progress, ReportCard
from core.scoring.processes import ModelLoader
from explorer import access, state, ui

SCENARIOS = ("backdoor", "alignment")


def render() -> None:
    st.title("Report card")
    loaded, circuit = ui.demo_circuit("build its report card")
    if circuit is None:
        return
    st.write(f"{ui.circuit_line(circuit)} The card measures whether "
             "removing it is necessary and keeping only it is sufficient (zero, mean and resample ablation), how "
             "stable discovery is across seeds, how it compares with baselines at every size, and where it lives.")
    with st.expander("Settings"):
        columns = st.columns(4)
        config = CardConfig(
            per_family=int(columns[0].number_input("Held-out prompts per family", 1, 1000, CardConfig.per_family,
                                                   key="report-per-family")),
            seeds=int(columns[1].number_input("Seeds (stability)", 1, 20, CardConfig.seeds, key="report-seeds")),
            random_seeds=int(columns[2].number_input("Random circuits per size", 1, 20, CardConfig.random_seeds,
                                                     key="report-random")),
            steps=int(columns[3].number_input("Discovery steps", 1, 5000,
                                              int(circuit.hyperparameters.get("steps", 300)), key="report-steps")))
    against, _ = ui.pick_circuit(loaded, key="report-against", label="Overlap with (optional)",
                                 include_current=False, optional=True)
    card_section(loaded, circuit, config, against, key="report")


def card_section(loaded: state.LoadedModel, circuit: Circuit, config: CardConfig | None = None,
                 against: Circuit | None = None, key: str = "card", show_shipped: bool = True) -> None:
    """A build button and, once built (in this session, from the result cache in seconds, or shipped beside the
    sample circuits), the card. With show_shipped=False a shipped card is only pointed to (the Report page shows
    it), so a page that embeds this section does not draw a whole card nobody opened."""
    if circuit.scenario not in SCENARIOS:
        st.info(f"The report card measures backdoor and alignment circuits; this one's scenario is "
                f"'{circuit.scenario}'.")
        return
    config = config or CardConfig()
    wanted = (state.demo().model, circuit.to_json(), repr(config), against.to_json() if against else None)
    cards = st.session_state.setdefault("report_cards", {})  # wanted -> (card, how it came: "built" / "shipped")
    shipped = state.session_memo("shipped_cards", wanted,
                                 lambda: _builder(loaded, circuit, config, against).prebuilt(SAMPLE_CIRCUITS_DIR))
    if wanted not in cards and shipped is not None:
        cards[wanted] = (shipped, "shipped")
    if not show_shipped and cards.get(wanted, (None, ""))[1] == "shipped":
        st.caption("This sample circuit's report card ships with it: the **Report** page shows it at once.")
        return
    # A researcher's own app (admin mode) runs the discoveries side by side in worker processes, as `safeseek
    # report` does; a shared server runs them here, one after another, so one card never takes every core from
    # the room's toggles.
    own = access.is_admin()
    where = ("side by side on every core (worker processes, as `safeseek report` runs them)" if own else
             "one after another, as this is a shared server (`safeseek report` runs them side by side on every "
             "core)")
    done = cards.get(wanted)
    note = st.empty()  # where a shipped card says where it comes from, above the button that would rebuild it
    if st.button("Build the report card" if done is None else "Build it again here",
                 type="primary" if done is None else "secondary", key=f"{key}-build",
                 help=f"Tens of minutes the first time on a CPU: the default card runs 12 discoveries, {where}. "
                 "Results are cached on disk, so a card built before, here or by `safeseek report`, comes back in "
                 "seconds."):
        with ui.guard("building the report card"), st.status("Building the report card...", expanded=True) as status:
            bar = st.progress(0.0, text="starting")

            def progress(part: str, done: int, total: int) -> None:
                bar.progress(min(1.0, done / max(total, 1)), text=f"{part}: {done} of {total}")

            builder = _builder(loaded, circuit, config, against, progress, state.model_loader(loaded) if own else None)
            cards[wanted] = (builder.build(), "built")
            status.update(label="Report card built", state="complete", expanded=False)
    if wanted not in cards:
        st.caption("Press **Build the report card**.")
        return
    card, source = cards[wanted]
    if source == "shipped":
        note.caption(f"Shipped with the sample circuits: built by `{card.meta.get('command', '?')}` on "
                     f"{card.meta.get('date', '?')[:10]}, on this same model and prompts with these settings, so "
                     "building it here prints the same figures.")
    show_card(card, key)


def _builder(loaded: state.LoadedModel, circuit: Circuit, config: CardConfig, against: Circuit | None,
             progress: Progress | None = None, model_loader: ModelLoader | None = None) -> CardBuilder:
    return CardBuilder(loaded.model, circuit, state.bundled_prompts(), config,
                       ResultCache(default_cache_dir()), loaded.fingerprint, progress=progress, checkpoint=loaded.path,
                       against=against, command=f"explorer report card of '{circuit.name}'",
                       model_loader=model_loader)


def show_card(card: ReportCard, key: str) -> None:
    """Every figure of the card with its reading, and the standalone HTML / JSON downloads."""
    figures = card_figures(card)
    badge = card.disagreement()
    left, right = st.columns(2)
    left.download_button("Download card (HTML)", data=lambda: card_html(card, figures),
                         file_name=f"{card.name}-card.html", mime="text/html", key=f"{key}-html",
                         on_click="ignore", icon=":material/description:")
    right.download_button("Download card (JSON)", data=lambda: card_json(card, figures),
                          file_name=f"{card.name}-card.json", mime="application/json", key=f"{key}-json",
                          on_click="ignore", icon=":material/data_object:")
    st.subheader("1. Necessity")
    if badge:
        st.warning(f"Ablation types disagree: {badge}", icon=":material/warning:")
    else:
        st.caption("Zero, mean and resample ablation agree within 10 points.")
    _chart(figures, "necessity", key)
    st.subheader("2. Sufficiency")
    for method in card.sufficiency:
        st.markdown(f"- {card.sufficiency_reading(method)}")  # built from numbers and fixed words only
    _chart(figures, "sufficiency", key)
    st.subheader("3. Stability across seeds")
    st.text(f"In every run: {', '.join(card.stability.core) or 'none'}")
    _chart(figures, "stability_jaccard", key)
    _chart(figures, "stability_runs", key)
    st.subheader("4. Cost curve")
    summary = card.curve_summary()
    if summary["area"] is not None:
        left, right = st.columns(2)
        left.metric(f"Learned vs best baseline ({summary['best_baseline']})", f"{summary['area']:+.1f} points",
                    help=f"Mean gap in {card.behaviour_label} ASR over the log-size axis; positive: removing the "
                    "learned circuits changes the behaviour more than the best baseline's.")
        right.metric("Utility against it", f"{summary['utility_area']:+.1f} points",
                     help="Mean gap in utility over the log-size axis; positive: removing the learned circuits "
                     "leaves more utility than removing the best baseline's.")
    _chart(figures, "cost_curve", key)
    st.subheader("5. Where it lives")
    _chart(figures, "layers", key)
    if "overlaps" in figures:
        _chart(figures, "overlaps", key)
    st.caption(f"Model {card.meta['model'].get('weights_sha256', '?')[:12]}, {card.meta['date']}; "
               f"{card.meta['settings']['evaluation_prompts']} held-out prompts.")


def _chart(figures: dict, name: str, key: str) -> None:
    st.plotly_chart(figures[name], key=f"{key}-{name}", width="stretch")
