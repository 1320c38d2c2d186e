"""Compare page: the learned circuit against random, attribution and activation-magnitude sets of the same size."""

from __future__ import annotations

import streamlit as st

from core.data.prompts import select_split
from core.evaluation.cache import ResultCache, default_cache_dir
from core.evaluation.compare import baseline_scores, compare
from core.evaluation.metrics import RATE_NAMES, format_percent, scenario_rates
from core.evaluation.report_card import recorded_config, recorded_train_limit
from explorer import figures, state, ui
from explorer.access import md


def render() -> None:
    st.title("Compare with baselines")
    loaded, circuit = ui.demo_circuit("compare it")
    if circuit is None:
        return
    st.write(f"{ui.circuit_line(circuit)} Each baseline removes the same number of heads and neurons: random sets "
             "(mean over seeds), gradient x activation attribution, and activation magnitude x output-weight norm "
             "(Wanda-style). All are judged by generation on held-out prompts.")
    if circuit.scenario not in ("backdoor", "alignment"):
        st.warning("Baselines are built from the backdoor and alignment scenarios of the bundled prompt sets; this "
                   f"circuit's scenario is {md(repr(circuit.scenario))}. Discover a backdoor or alignment circuit to "
                   "compare.")
        return
    columns = st.columns(3)
    seeds = int(columns[0].number_input("Random seeds", 1, 20, 5, key="compare-seeds"))
    limit = int(columns[1].number_input("Held-out prompts per family", 1, 1000, 16, key="compare-limit"))
    split = columns[2].selectbox("Held-out split", ["test", "val"], key="compare-split")
    key = (state.demo().model, circuit.to_json(), seeds, limit, split)
    shipped = state.shipped_comparison_for(loaded, circuit)
    note = st.empty()  # where a shipped comparison says where it comes from, above the button that runs a new one
    if st.button("Run comparison", type="primary", key="compare-run",
                 help="Scores the baselines on the scenario's training prompts, then evaluates the full model and "
                      "every set removed in one batched generation, with the settings above: a minute or more on a "
                      "CPU."):
        with ui.guard("comparing with the baselines"), st.status("Comparing...", expanded=True) as status:
            bundled = state.bundled_prompts()
            st.write("scoring baselines (reused from the result cache when this model was scored before)")
            # Scored on the training sample the circuit's recorded discovery drew, as its report card scores them.
            scores = baseline_scores(loaded.model, loaded.fingerprint, bundled, circuit.scenario,
                                     recorded_train_limit(circuit), recorded_config(circuit).seed,
                                     ResultCache(default_cache_dir()))
            prompts = select_split(bundled, split, limit)
            rows = compare(loaded.model, circuit, scores, prompts, seeds=seeds, progress=st.write)
            status.update(label=f"Compared on {len(prompts)} held-out prompts ({split} split)", state="complete",
                          expanded=False)
            st.session_state.compare_rows = (key, rows)
    stored = st.session_state.get("compare_rows")
    if stored is not None and stored[0] == key:
        rows = stored[1]
    elif shipped is not None:
        rows, meta = shipped.rows, shipped.meta
        settings = meta.get("settings") or {}
        command = str(meta.get("command", "?")).replace("`", "'")  # shown in a code span, which escapes nothing else
        note.caption(f"Shipped with the sample circuits: measured by `{command}` on "
                     f"{md(str(meta.get('date', '?'))[:10])}, on this same model and prompt files, with "
                     f"{meta.get('held_out_prompts', '?')} held-out prompts ({md(str(settings.get('split', '?')))} "
                     f"split) and {settings.get('seeds', '?')} random seeds. **Run comparison** measures it here with "
                     "the settings above.")
    else:
        st.caption("Press **Run comparison** (it evaluates the full model, then every baseline set removed, in one "
                   "batched generation).")
        return
    # The behaviour the circuit carries, and the other one, which its removal should leave alone.
    asr_label, other_label = (RATE_NAMES[key] for key in scenario_rates(circuit.scenario))
    fig = figures.comparison_chart(rows, asr_label)
    st.plotly_chart(fig, key="compare-chart", width="stretch")
    table = [{"method": r.method, "heads": r.heads, "neurons": r.neurons,
              "% of components": round(r.percent_components, 3), f"{asr_label} before": format_percent(r.asr_before),
              f"{asr_label} after": format_percent(r.asr_after),
              "spread over seeds": format_percent(r.asr_after_std) if r.asr_after_std is not None else "",
              f"{other_label} before": format_percent(r.other_asr_before),
              f"{other_label} after": format_percent(r.other_asr_after),
              "utility kept": format_percent(r.utility_retention)} for r in rows]
    st.dataframe(table, hide_index=True)
    for note in dict.fromkeys(r.utility_retention_note for r in rows if r.utility_retention_note):
        st.caption(f"Utility kept is n/a: {note}.")
    ui.figure_downloads(fig, f"{circuit.name}-baselines", key="compare-chart")
    ui.csv_download([r.to_dict() for r in rows], f"{circuit.name}-baselines", key="compare-rows")



