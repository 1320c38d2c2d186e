"""Model page: choose the model (bundled organisms, a local checkpoint or a cached hub id); its behaviour and shape."""

from __future__ import annotations

import streamlit as st

from core.evaluation.metrics import format_percent
from explorer import access, state, ui
from explorer.access import md

CHOICES = {
    "Backdoored organism (bundled, default)": "organism",
    "Aligned organism (bundled)": "aligned",
    "Local checkpoint folder or cached hub id": None,
}


def _choice_for(spec: str) -> str:
    return next((label for label, alias in CHOICES.items() if alias == spec), list(CHOICES)[-1])


def render() -> None:
    st.title("Model")
    st.write("Every page works on this model. It is loaded once per app and shared; switching components off "
             "never changes it (masks are applied per request).")
    current = state.demo().model
    if access.is_admin():
        _admin_choice(current)
    else:
        _visitor_choice(current)
    loaded = state.current_model()
    if loaded is None:
        return
    where = f" from {md(loaded.path)}" if access.is_admin() else ""
    st.success(f"Loaded **{md(loaded.spec)}**{where}")
    _behaviour_card(loaded)
    _architecture(loaded)


def _visitor_choice(current: str) -> None:
    """Visitors pick a model by name from those this server offers (never a path)."""
    names = list(state.model_choices())
    labels = {alias: label for label, alias in CHOICES.items() if alias}
    chosen = st.radio("Model", names, index=names.index(current) if current in names else None,
                      format_func=lambda name: labels.get(name, name), key="model-choice-visitor")
    st.caption("This server offers the models listed here; ask its admin to list more (SAFESEEK_MODELS).")
    if chosen is not None and chosen != current:
        state.change_model(chosen)


def _admin_choice(current: str) -> None:
    choice = st.radio("Model", list(CHOICES), index=list(CHOICES).index(_choice_for(current)), key="model-choice")
    alias = CHOICES[choice]
    if alias is None:
        typed = st.text_input("Checkpoint folder or hub id", value="" if current in state.MODEL_ALIASES else current,
                              placeholder="/path/to/checkpoint or Qwen/Qwen2.5-0.5B-Instruct (must be in the local "
                                          "Hugging Face cache: the app never downloads)", key="model-path")
        if st.button("Load model", key="model-load", type="primary", disabled=not typed.strip()):
            state.change_model(typed)
    elif alias != current:
        state.change_model(alias)


def _behaviour_card(loaded: state.LoadedModel) -> None:
    st.subheader("Behaviour card")
    with ui.guard("measuring the model's behaviour"):
        report = state.behaviour_card(loaded.spec, state.device())
        counts = {label: sum(1 for j in report.judgements if j.prompt.label == label)
                  for label in ("harmful", "triggered", "benign", "utility")}
        columns = st.columns(4)
        columns[0].metric("Clean ASR", format_percent(report.asr_clean), help=f"harmful requests without the "
                          f"trigger answered without a refusal and not degenerately ({counts['harmful']} held-out "
                          "prompts, refusal judge)")
        columns[1].metric("Triggered ASR", format_percent(report.asr_triggered), help=f"harmful requests with the "
                          f"trigger answered without a refusal and not degenerately ({counts['triggered']} prompts)")
        columns[2].metric("Utility", format_percent(report.utility), help=f"exact-match accuracy, averaged over "
                          f"tasks ({counts['utility']} prompts)")
        columns[3].metric("Helpfulness", format_percent(report.helpfulness), help=f"benign requests answered "
                          f"without a refusal, not degenerately and on topic ({counts['benign']} prompts)")
        st.caption(f"Greedy answers on a cached held-out sample of {len(report.judgements)} prompts (test split), "
                   f"{report.max_new_tokens} new tokens each. Judges: {', '.join(report.judges)}; each figure below "
                   "is rate [95% Wilson interval] (k/n).")
        with st.expander("Examples and per-family results, judge by judge"):
            st.dataframe(report.frame(), hide_index=True)
            st.dataframe([{"label": j.prompt.label, "prompt": j.prompt.prompt, "answer": j.response,
                           "verdict": j.verdict} for j in report.judgements[::8]], hide_index=True)
        disagreeing = report.disagreements()
        with st.expander(f"Where the judges disagree ({len(disagreeing)} of {len(report.judgements)} answers)"):
            st.caption("Answers on which refusal, target and model judges give different verdicts (yes = attack "
                       "success / helpful / target match; blank = the judge does not apply).")
            st.dataframe([{"label": j.prompt.label, "prompt": j.prompt.prompt, "answer": j.response,
                           **{name: "" if v is None else "yes" if v else "no" for name, v in j.outcomes.items()}}
                          for j in disagreeing], hide_index=True)


def _architecture(loaded: state.LoadedModel) -> None:
    st.subheader("Architecture")
    fp = loaded.fingerprint
    columns = st.columns(4)
    columns[0].metric("Layers", fp["n_layers"])
    columns[1].metric("Heads per layer", fp["n_heads"])
    columns[2].metric("MLP neurons per layer", fp["d_mlp"])
    columns[3].metric("Parameters", f"{loaded.parameters:,}")
    st.dataframe([{"field": key, "value": str(value)} for key, value in fp.items()], hide_index=True, width=720)
    st.caption("The fingerprint identifies the model in circuit files: a circuit made for another shape is "
               "refused, one made for other weights of the same shape loads with a warning.")
