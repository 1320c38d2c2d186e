"""Discover page: learn a circuit for a scenario with live progress, verify it, then save or download it."""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace

import streamlit as st

from core.data.files import load_prompt_sets, load_prompts
from core.data.prompts import PromptSet, select_split
from core.evaluation.metrics import format_percent
from core.evaluation.verify import verify
from core.scoring.learned import DiscoveryConfig, StepLog, discover
from core.scoring.scenario import custom_scenario, scenario_from_prompts
from explorer import access, figures, state, ui
from explorer.access import md

SCENARIOS = {
    "backdoor": "Backdoor: what makes triggered requests get answered (removing it should restore refusals)",
    "alignment": "Alignment: what makes harmful requests get refused (removing it should make the model comply)",
    "custom": "Custom: your own behaviour prompts (with targets) and retain prompts",
}
CHART_UPDATES = 20  # the live chart is redrawn about this many times per run


def uploaded_prompts(files) -> PromptSet:
    """Uploaded .jsonl/.csv prompt files as one PromptSet (core.data reads files, so they go through a temp dir).

    Files over access.MAX_PROMPT_FILE_BYTES are refused before anything is written; the uploaded name is used
    only for its stem and suffix, never as a path.
    """
    for uploaded in files:
        if uploaded.size > access.MAX_PROMPT_FILE_BYTES:
            raise access.AccessError(f"{uploaded.name} is {uploaded.size / 2**20:.1f} MiB; prompt files are at most "
                                     f"{access.MAX_PROMPT_FILE_BYTES / 2**20:.0f} MiB here")
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for number, uploaded in enumerate(files):
            name = Path(uploaded.name)
            stem = access.NAME.match(name.stem) and name.stem or f"upload-{number}"
            path = Path(folder) / f"{number}" / f"{stem}{name.suffix.lower()}"  # one folder each: stems may repeat
            path.parent.mkdir()
            path.write_bytes(uploaded.getvalue())
            paths.append(path)
        return load_prompt_sets(paths) if len(paths) > 1 else load_prompts(paths[0])


def render() -> None:
    st.title("Discover")
    loaded = state.require_model()
    scenario_name = st.radio("Scenario", list(SCENARIOS), format_func=SCENARIOS.get, key="discover-scenario")
    behaviour_files = retain_files = None
    if scenario_name == "custom":
        st.caption('Prompt files: JSONL with "prompt", "category", "label" and, for behaviour prompts, the "target" '
                   "answer the model should give once the circuit is removed; or AdvBench-style CSV (goal,target).")
        behaviour_files = st.file_uploader("Behaviour prompts", type=["jsonl", "csv"], key="discover-behaviour",
                                           max_upload_size=access.MAX_PROMPT_FILE_BYTES // 2**20)
        retain_files = st.file_uploader("Retain prompts (answers must not change)", type=["jsonl", "csv"],
                                        accept_multiple_files=True, key="discover-retain",
                                        max_upload_size=access.MAX_PROMPT_FILE_BYTES // 2**20)
    columns = st.columns(4)
    head_budget = columns[0].number_input("Head budget (% of heads)", 0.0, 50.0, 5.0, step=0.5, key="discover-heads",
                                          help="at most this share of all heads; 0 learns neurons only")
    neuron_budget = columns[1].number_input("Neuron budget (% of neurons)", 0.0, 20.0, 1.0, step=0.1,
                                            key="discover-neurons", help="0 learns heads only")
    limits = access.limits()
    steps = int(columns[2].number_input("Steps", 1, limits.steps, min(300, limits.steps), key="discover-steps"))
    seed = int(columns[3].number_input("Seed", 0, 2**31 - 1, 0, key="discover-seed"))
    columns = st.columns(3)
    train_limit = int(columns[0].number_input("Training prompts per family", 1, limits.prompts_per_family, 48,
                                              key="discover-train"))
    verify_limit = int(columns[1].number_input("Held-out prompts per family to verify on", 1,
                                               limits.prompts_per_family, 16,
                                               key="discover-verify"))
    name = columns[2].text_input("Circuit name", value=f"{scenario_name}-discovered", key="discover-name",
                                 help="a new name, so the result is not mistaken for a sample circuit")

    if st.button("Run discovery", type="primary", key="discover-run"):
        if head_budget == 0 and neuron_budget == 0:
            st.error("Give a head budget, a neuron budget or both (e.g. 5% of heads).")
        elif scenario_name == "custom" and (behaviour_files is None or not retain_files):
            st.error("The custom scenario needs a behaviour prompt file and at least one retain prompt file.")
        else:
            config = DiscoveryConfig(steps=steps, head_budget=head_budget / 100 or None,
                                     neuron_budget=neuron_budget / 100 or None, seed=seed)
            options = SimpleNamespace(scenario=scenario_name, train_limit=train_limit, verify_limit=verify_limit,
                                      seed=seed)
            with ui.guard("running discovery"):
                _run(loaded, options, config, name.strip() or scenario_name, behaviour_files, retain_files)
    _result(loaded)


def _run(loaded: state.LoadedModel, options: SimpleNamespace, config: DiscoveryConfig, name: str,
         behaviour_files, retain_files) -> None:
    logs: list[StepLog] = []
    with st.status(f"Discovering a {options.scenario} circuit...", expanded=True) as status:
        st.write("Building the scenario (the full model's answers to the training prompts)...")
        bundled = state.bundled_prompts()  # training prompts and the held-out ones to verify on
        if options.scenario == "custom":
            scenario = custom_scenario(loaded.model, uploaded_prompts([behaviour_files]),
                                       uploaded_prompts(retain_files), name=name)
        else:
            scenario = scenario_from_prompts(loaded.model, bundled, options.scenario, options.train_limit,
                                             options.seed)
        status.update(label=f"Learning a {options.scenario} circuit ({config.steps} steps)...")
        bar = st.progress(0.0, text=f"step 0 / {config.steps}")
        chart = st.empty()
        every = max(1, config.steps // CHART_UPDATES)

        def on_step(log: StepLog) -> None:
            logs.append(log)
            bar.progress(log.step / config.steps,
                         text=f"step {log.step} / {config.steps} · loss {log.loss:.3f} · heads removed "
                              f"{log.heads_removed:.1%} · neurons removed {log.neurons_removed:.2%}")
            if log.step % every == 0 or log.step == config.steps:
                # A fresh key per redraw: Streamlit refuses two elements with one key in a run.
                chart.plotly_chart(figures.discovery_curves(logs), key=f"discover-live-{log.step}",
                                   width="stretch")

        circuit = discover(loaded.model, scenario, config, progress=on_step, model_path=loaded.path)
        circuit.name = name
        status.update(label=f"Verifying {md(repr(name))} on held-out prompts...")
        verify_prompts = select_split(bundled, "val", options.verify_limit, options.seed)
        verify(loaded.model, circuit, verify_prompts)
        status.update(label=f"Found {md(repr(name))}: {circuit.summary()}", state="complete", expanded=False)
    st.session_state.discover_logs = logs
    st.session_state.discover_circuit = circuit
    state.set_circuit(circuit, None)


def _result(loaded: state.LoadedModel) -> None:
    circuit = st.session_state.get("discover_circuit")
    if circuit is None:
        return
    st.subheader(f"Result: {md(repr(circuit.name))}")
    st.success(f"Circuit: {circuit.summary()}. It is now the demo's circuit (Circuit and Playground pages), and "
               "the page address names it: a copied link reopens it on this server.")
    logs = st.session_state.get("discover_logs") or []
    if logs:
        fig = figures.discovery_curves(logs)
        st.plotly_chart(fig, key="discover-curves", width="stretch")
        ui.figure_downloads(fig, f"{circuit.name}-discovery", key="discover-curves")
    metrics = circuit.metrics
    if metrics.get("before"):
        rows = [{"metric": label, "full model": format_percent(metrics["before"][key]),
                 "circuit removed": format_percent(metrics["after"][key])}
                for key, label in (("asr_clean", "clean ASR"), ("asr_triggered", "triggered ASR"),
                                   ("helpfulness", "helpfulness"), ("utility", "utility"))]
        st.dataframe(rows, hide_index=True, width=560)
        st.caption(f"Verified by generation on {metrics['n_prompts']} held-out prompts (val split); utility kept: "
                   f"{format_percent(metrics.get('utility_retention'))}.")
    if not access.is_admin():
        _save_to_scratch(circuit)
        ui.circuit_download(circuit, key="discover-result")
        return
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    target = left.text_input("Save to", value=str(ui.runs_dir() / "circuits" / f"{circuit.name}.json"),
                             key="discover-save-path",
                             help="a path relative to the repository, or absolute; by default under your cache "
                                  "folder ($SAFESEEK_RUNS overrides it). Links already include the circuit.")
    if right.button("Save circuit", key="discover-save", width="stretch"):
        with ui.guard("saving the circuit"):
            if not target.strip().endswith(".json"):
                raise ValueError(f"{target!r} does not end in .json; circuit files are JSON")
            path = circuit.save(state.resolve_ref(target.strip()))
            state.set_circuit(circuit, state.relative_ref(path))
            st.success(f"Saved to {md(path)}; links to this demo now include it.")
    ui.circuit_download(circuit, key="discover-result")


def _save_to_scratch(circuit) -> None:
    """Visitors save by name into their session's scratch space (quota; gone when the session ends)."""
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    default = circuit.name if access.NAME.match(circuit.name) else "my-circuit"
    typed = left.text_input("Save as (a name; kept in your session's scratch space)", value=default,
                            key="discover-save-name")
    if right.button("Save circuit", key="discover-save", width="stretch"):
        with ui.guard("saving the circuit"):
            name = access.check_name(typed.strip().removesuffix(".json"), "The circuit's file name")
            text = circuit.to_json()
            access.reserve(len(text.encode("utf-8")))
            folder = access.scratch_dir() / "circuits"
            folder.mkdir(exist_ok=True)
            path = circuit.save(folder / f"{name}.json")
            state.set_circuit(circuit, state.remember_scratch("circuits", f"{name}.json", path))
            st.success(f"Saved as {md(state.SCRATCH_PREFIX + name + '.json')} in your session's scratch space: "
                        "other pages can use it; it is removed when you leave, so download it to keep it.")
