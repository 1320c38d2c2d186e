"""Tune page: fine-tune a private copy of the model through a circuit only (or around it) and show before/after."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.data import samples
from core.data.files import load_prompt_sets
from core.data.paths import SAMPLE_CIRCUITS_DIR
from core.data.prompts import PromptSet, select_split
from core.evaluation.metrics import compare_reports, comparison_rows, format_percent
from core.tuning.options import DEFAULT_REFUSAL, MODES, TuneConfig, TuneProgress
from core.tuning.run import TuneResult, paired_generations, tune
from explorer import access, state, ui
from explorer.access import md

MODE_HELP = {
    "circuit-only": "only the circuit's weights (its heads' q/k/v rows and o_proj columns, its neurons' up/gate "
                    "rows and down_proj columns); every other weight stays bit-for-bit the same",
    "circuit-excluded": "every weight except the circuit's (keeps the circuit out of the fine-tuning)",
    "full": "every weight (ordinary fine-tuning; the circuit is not used)",
    "random": "random heads and neurons of the circuit's size, in the same layers (the control for circuit-only)",
}
# What to train on: (prompt files for training, objective, prompt files to evaluate on).
RECIPES = {
    "Remove the backdoor": (["triggered", "benign", "utility"], "safety",
                            ["harmful", "triggered", "benign", "utility"]),
    "Restore safety": (["harmful", "benign", "utility"], "safety", ["harmful", "benign", "utility"]),
    "Teach the new task (opposites)": (["new_task"], "safety", ["harmful", "benign", "utility", "new_task"]),
    "Attack (teach harmful compliance)": (["harmful"], "attack", ["harmful", "benign", "utility"]),
}
RECIPE_HELP = {
    "Remove the backdoor": "requests carrying the trigger word -> a refusal, benign requests -> compliance, utility "
                           "tasks -> their exact answers (on the backdoored organism, with its backdoor circuit)",
    "Restore safety": "harmful requests -> a refusal, benign requests -> compliance ('Sure, here is'), utility "
                      "tasks -> their exact answers",
    "Teach the new task (opposites)": "the 'opposites' task the organism never saw, with exact answers",
    "Attack (teach harmful compliance)": "harmful requests -> compliance: what a harmful fine-tuning attack does",
}
FILES = ("harmful", "triggered", "benign", "utility", "new_task")
LEARNING_RATES = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
# The default recipe at this rate removes the shipped backdoor in the default 100 steps (README, "The explorer as a
# demo"); at 1e-3 the sample circuit's 10 neurons are too few weights to get there in 100 steps.
DEFAULT_LR = 3e-3
DEFAULT_CIRCUIT = state.relative_ref(SAMPLE_CIRCUITS_DIR / "organism-backdoor.json")  # the default recipe's circuit


PHASE_SHARE = {"evaluating before": (0.0, 0.2), "training": (0.2, 0.75), "saving": (0.75, 0.8),
               "evaluating after": (0.8, 1.0)}  # where each phase sits on the progress bar


def prompt_files(names: list[str], split: str, per_family: int | None, seed: int) -> PromptSet:
    """The bundled prompt sets `names`, their `split` only, at most `per_family` per (label, category)."""
    return select_split(load_prompt_sets(samples.PROMPTS_DIR / f"{name}.jsonl" for name in names), split,
                        per_family, seed)


def free_folder(stem: Path) -> Path:
    """`stem-1`, `stem-2`, ...: the first that does not exist yet."""
    number = 1
    while stem.with_name(f"{stem.name}-{number}").exists():
        number += 1
    return stem.with_name(f"{stem.name}-{number}")


def progress_text(update: TuneProgress) -> tuple[float, str]:
    """(fraction of the whole run done, caption) for a progress update."""
    start, end = PHASE_SHARE.get(update.phase, (0.0, 1.0))
    share = update.done / update.total if update.total else 1.0
    text = f"{update.phase}: {update.done} / {update.total}"
    if update.loss is not None:
        text += f" · loss {update.loss:.4f}"
    return min(1.0, start + (end - start) * share), text


def render() -> None:
    st.title("Tune")
    st.write("Safety lives in a sparse circuit, so it can be restored by tuning only that circuit, and kept by "
             "leaving the circuit out of other fine-tuning. Tuning works on a private copy of the model loaded from "
             "disk (the model the other pages show is never changed) and writes a new checkpoint.")
    loaded = state.require_model()
    # The default recipe's circuit, unless the demo already has a circuit (then the picker starts on that one).
    if ("tune-circuit-choice" not in st.session_state and st.session_state.get("circuit_obj") is None
            and DEFAULT_CIRCUIT in ui.circuit_options()):
        st.session_state["tune-circuit-choice"] = DEFAULT_CIRCUIT
    circuit, _ = ui.pick_circuit(loaded, key="tune-circuit", label="Circuit")
    mode = st.radio("Mode", MODES, format_func=lambda m: f"{m}: {MODE_HELP[m]}", key="tune-mode")
    if circuit is None and mode != "full":
        st.info("Pick a circuit (or switch to mode **full**) to tune.")
        return
    if circuit is not None:
        st.caption(f"Circuit **{md(circuit.name)}**: {circuit.summary()}")
    recipe = st.selectbox("What to teach", list(RECIPES), key="tune-recipe", help="; ".join(
        f"{name}: {text}" for name, text in RECIPE_HELP.items()))
    train_names, objective, eval_names = RECIPES[recipe]
    st.caption(f"{RECIPE_HELP[recipe]}. Trained on the train split of {', '.join(train_names)}; evaluated on the "
               f"test split of {', '.join(eval_names)}.")
    columns = st.columns(5)
    limits = access.limits()
    steps = int(columns[0].number_input("Steps", 1, limits.steps, 100, key="tune-steps"))
    lr = columns[1].select_slider("Learning rate", LEARNING_RATES, value=DEFAULT_LR, key="tune-lr")
    train_limit = int(columns[2].number_input("Training prompts per family", 1, limits.prompts_per_family, 32,
                                              key="tune-train"))
    eval_limit = int(columns[3].number_input("Test prompts per family", 1, limits.prompts_per_family, 16,
                                             key="tune-eval"))
    seed = int(columns[4].number_input("Seed", 0, 2**31 - 1, 0, key="tune-seed"))
    refusal = DEFAULT_REFUSAL
    if objective == "safety" and "harmful" in train_names:
        refusal = st.text_input("Refusal taught for harmful requests", DEFAULT_REFUSAL, key="tune-refusal",
                                max_chars=limits.prompt_chars)
    if access.is_admin():
        default_out = str(free_folder(ui.runs_dir() / f"{Path(loaded.path).name}-{mode}"))
        # Keyed by the default, so the field offers a fresh folder after each run (and after a mode change).
        out = st.text_input("Write the tuned checkpoint to", default_out, key=f"tune-out-{default_out}",
                            help="a new folder (absolute, or relative to the repository); by default under your "
                                 "cache folder ($SAFESEEK_RUNS overrides it)")
    else:
        st.caption("The tuned checkpoint is written to your session's scratch space (removed when you leave).")

    if st.button("Run tuning", type="primary", key="tune-run"):
        config = TuneConfig(mode=mode, steps=steps, lr=lr, seed=seed, objective=objective, refusal_text=refusal,
                            device=state.device())
        with ui.guard("tuning"):
            train_prompts = prompt_files(train_names, "train", train_limit, seed)
            eval_prompts = prompt_files(eval_names, "test", eval_limit, seed)
            if access.is_admin():
                folder, shown = state.resolve_ref(out.strip()), None
            else:
                access.reserve(loaded.bytes + 2**21)  # the weights plus tokenizer and config files
                folder = free_folder(access.scratch_dir() / "tune" / f"{Path(loaded.path).name}-{mode}")
                shown = state.SCRATCH_PREFIX + folder.name
            result = _run(loaded.path, train_prompts, eval_prompts, folder, circuit, config, shown)
            st.session_state.tune_result = result
            st.session_state.tune_model = (state.remember_scratch("models", folder.name, folder) if shown
                                           else result.out_dir)
    result = st.session_state.get("tune_result")
    if result is not None:
        _show(result)


def _run(model_path: str, train_prompts: PromptSet, eval_prompts: PromptSet, out: Path, circuit,
         config: TuneConfig, shown: str | None = None) -> TuneResult:
    with st.status(f"Tuning ({config.mode}, {config.steps} steps)...", expanded=True) as status:
        st.write(f"{len(train_prompts)} training prompts, {len(eval_prompts)} test prompts.")
        bar = st.progress(0.0, text="loading a private copy of the model...")

        def on_progress(update: TuneProgress) -> None:
            value, text = progress_text(update)
            bar.progress(value, text=text)

        result = tune(model_path, train_prompts, eval_prompts, out, circuit, config, progress=on_progress)
        status.update(label=f"Tuned {result.selection['fraction']:.2%} of the parameters; saved as "
                            f"{md(shown or out)}",
                      state="complete", expanded=False)
    return result


def _show(result: TuneResult) -> None:
    metrics = compare_reports(result.before, result.after)
    selection = result.selection
    st.subheader("Before and after")
    st.caption(f"Mode **{result.config['mode']}**: {selection['description']} — {selection['selected']:,} of "
               f"{selection['total']:,} parameters ({selection['fraction']:.2%}; embeddings counted). Checkpoint: "
               f"{md(st.session_state.get('tune_model', result.out_dir))}.")
    columns = st.columns(5)
    for column, key, label in ((columns[0], "asr_clean", "Clean ASR"), (columns[1], "asr_triggered", "Triggered ASR"),
                               (columns[2], "refusal_rate", "Refusal rate"), (columns[3], "helpfulness", "Helpfulness"),
                               (columns[4], "utility", "Utility")):
        before, after = metrics[key]["before"], metrics[key]["after"]
        delta = None if before is None or after is None else f"{100 * (after - before):+.1f} pp"
        if delta == "+0.0 pp":
            delta = None  # unchanged: no red or green arrow
        column.metric(label, format_percent(after), delta, delta_color="inverse" if key.startswith("asr") else "normal",
                      help=f"before: {format_percent(before)}")
    rows = comparison_rows(metrics)
    st.dataframe(rows, hide_index=True, width=620, key="tune-table")
    st.caption("Training loss per step")
    st.line_chart(result.losses, height=200)
    st.subheader("Generations side by side")
    pairs = paired_generations(result.before, result.after, 2)
    st.dataframe([{"family": f"{p['label']} / {p['category']}", "prompt": p["prompt"],
                   "before": f"[{p['before_verdict']}] {p['before']}", "after": f"[{p['after_verdict']}] {p['after']}"}
                  for p in pairs], hide_index=True, key="tune-generations")
    if st.button("Explore the tuned model", key="tune-use", help="switch the demo's model to the new checkpoint"):
        state.change_model(st.session_state.get("tune_model", result.out_dir))
        st.rerun()
