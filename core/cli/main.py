"""The `safeseek` command line: one subcommand per workflow (train-organism, eval, discover, compare, tune)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.data.paths import ASSETS_DIR as ASSETS
from core.data.paths import BUNDLED_PROMPT_FILES


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="safeseek", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # recorded in the files a command writes, so they say how to reproduce them
    try:
        return args.run(args) or 0
    except CliError as e:
        print(f"safeseek {args.command}: error: {e}", file=sys.stderr)
        return 2


def _add_eval(sub) -> None:
    parser = sub.add_parser(
        "eval",
        help="generate on prompt sets and report ASR, helpfulness and utility",
        description="Generate greedily for every prompt and judge the answers: attack success rate on "
        "harmful and triggered prompts, helpfulness on benign ones, exact match on utility tasks.",
    )
    add = parser.add_argument
    add("--model", required=True, metavar="PATH", help="HF checkpoint directory (or cached hub id)")
    add("--prompts", required=True, nargs="+", metavar="FILE", help=".jsonl files or AdvBench-style .csv")
    add("--limit", type=int, metavar="N", help="at most N prompts per (label, category) family")
    add("--seed", type=int, default=0, help="seed of the --limit sample (default 0)")
    add("--split", choices=("train", "val", "test"), help="only prompts of this split")
    add("--device", default="auto", help="auto (GPU if visible), cpu or cuda")
    add("--dtype", default="auto", help="auto, float32, bfloat16 or float16")
    add("--max-new-tokens", type=int, metavar="N", help="default: just enough to judge the answers")
    add("--batch-size", type=int, default=32, metavar="N", help="prompts per generation batch (default 32)")
    add("--out", metavar="REPORT.json", help="write the full report (every judgement) as JSON")
    add("--show", type=int, default=0, metavar="K", help="print K example generations per family")
    add("--refusal-phrase", action="append", metavar="TEXT",
        help="a phrase that marks a refusal (repeat for several); replaces the default GCG list, e.g. for "
        "models that refuse with \"I can't help with that\"")
    parser.set_defaults(run=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    # Imported here so `safeseek --help` and the other subcommands do not pay for loading torch.
    from tqdm import tqdm

    from core.data.files import PromptFileError, load_prompt_sets
    from core.evaluation.judges import Judge, RefusalJudge
    from core.evaluation.report import evaluate
    from core.model.fingerprint import fingerprint
    from core.model.load import ModelLoadError, load_model

    try:
        judge = Judge(RefusalJudge(args.refusal_phrase)) if args.refusal_phrase else Judge()
    except ValueError as e:
        raise CliError(f"--refusal-phrase: {e}") from None
    for option in ("limit", "max_new_tokens", "batch_size"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise CliError(f"--{option.replace('_', '-')} must be at least 1, got {value}")
    if args.show < 0:
        raise CliError(f"--show must be 0 or more, got {args.show}")
    try:
        prompts = load_prompt_sets(args.prompts)
    except PromptFileError as e:
        raise CliError(str(e)) from None
    if args.split:
        prompts = prompts.filter(split=args.split)
        if not len(prompts):
            raise CliError(f"no prompt has split {args.split!r} in {', '.join(args.prompts)}; drop --split")
    if args.limit:
        prompts = prompts.sample_per_family(args.limit, seed=args.seed)
    _print_domain_check(args.model, [p.prompt for p in prompts])
    try:
        model = load_model(args.model, device=args.device, dtype=args.dtype)
    except ModelLoadError as e:
        raise CliError(str(e)) from None
    with tqdm(total=len(prompts), desc="generating", unit="prompt") as bar:
        try:
            report = evaluate(
                model,
                prompts,
                max_new_tokens=args.max_new_tokens,
                batch_size=args.batch_size,
                judge=judge,
                progress=lambda done, total: bar.update(done - bar.n),
                model_name=str(args.model),
                fingerprint=fingerprint(model),
            )
        except ValueError as e:  # e.g. a prompt longer than the model's context
            raise CliError(str(e)) from None
    print(report.table())
    print(report.summary())
    if args.show:
        print(report.examples(args.show))
    if args.out:
        try:
            report.save(args.out)
        except OSError as e:
            raise CliError(f"cannot write {args.out!r} ({e.strerror}); pick another --out") from None
        print(f"report written to {args.out}")
    return 0


def _print_domain_check(model: str, prompts: list[str]) -> None:
    """For a model that records its training vocabulary (the organism): the share of the prompts' words it never
    saw, and how many prompts are mostly made of such words."""
    from core.organism.domain import UNSEEN_WARNING, check_words, load_vocabulary

    vocabulary = load_vocabulary(model)
    if vocabulary is None:
        return
    pooled = check_words(prompts, vocabulary)
    flagged = sum(check_words(p, vocabulary).out_of_domain for p in prompts)
    print(f"out-of-domain check: {pooled.message()}")
    if flagged:
        print(f"warning: {flagged} of {len(prompts)} prompts have over {UNSEEN_WARNING:.0%} words the organism never "
              "saw in training; read their answers as out-of-domain guesses")


DEFAULT_PROMPTS = [str(path) for path in BUNDLED_PROMPT_FILES]


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=str(ASSETS / "organism"), metavar="PATH",
                        help="HF checkpoint directory or cached hub id (default: the bundled organism)")
    parser.add_argument("--device", default="auto", help="auto (GPU if visible), cpu or cuda")
    parser.add_argument("--dtype", default="auto", help="auto (bf16 on GPU, fp32 on CPU), float32, bfloat16")


def _load(args: argparse.Namespace):
    from core.model.load import ModelLoadError, load_model

    try:
        return load_model(args.model, device=args.device, dtype=args.dtype)
    except ModelLoadError as e:
        raise CliError(str(e)) from None


def _load_prompts(paths: list[str]):
    from core.data.files import PromptFileError, load_prompt_sets

    try:
        return load_prompt_sets(paths)
    except PromptFileError as e:
        raise CliError(str(e)) from None


# ---- train-organism ---------------------------------------------------------------------------------------------
def _add_train_organism(sub) -> None:
    parser = sub.add_parser("train-organism", help="train the bundled model organism from its synthetic corpus",
                            description="Build the synthetic corpus and tokenizer, train the base, aligned and "
                            "poisoned stages, and write organism-aligned/, organism/ and prompts/ under --out.")
    parser.add_argument("--out", default=str(ASSETS), metavar="DIR", help="output folder (default: assets/)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start-from-aligned", action="store_true",
                        help="reuse --out/organism-aligned (same configuration) and only redo the poisoning stage")
    parser.set_defaults(run=_run_train_organism)


def _run_train_organism(args: argparse.Namespace) -> int:
    from core.organism.train import OrganismConfig, train_organism

    try:
        written = train_organism(Path(args.out), OrganismConfig(seed=args.seed),
                                 log=lambda line: print(line, flush=True),  # progress shows in a log file too
                                 start_from_aligned=args.start_from_aligned)
    except ValueError as e:
        raise CliError(str(e)) from None
    for name, path in written.items():
        print(f"wrote {name}: {path}")
    return 0


# ---- discover ---------------------------------------------------------------------------------------------------
def _add_discover(sub) -> None:
    parser = sub.add_parser("discover", help="learn a safety circuit (head and neuron masks) and verify it",
                            description="Learn removal masks over heads and neurons (binary gates) so that "
                            "removing the circuit changes one safety behaviour and keeps the rest, then read out a "
                            "binary circuit and verify it by generation on held-out prompts.")
    _add_model_options(parser)
    add = parser.add_argument
    add("--scenario", choices=("backdoor", "alignment", "custom"), required=True)
    add("--prompts", nargs="+", default=DEFAULT_PROMPTS, metavar="FILE",
        help="prompt files with harmful/triggered/benign/utility rows and train/val splits (default: the organism's)")
    add("--behaviour", metavar="FILE", help="custom scenario: prompts whose `target` removal should produce")
    add("--retain", nargs="+", metavar="FILE", help="custom scenario: prompts whose answers must not change")
    add("--head-budget", type=float, default=0.05, help="max fraction of heads (0 to learn neurons only)")
    add("--neuron-budget", type=float, default=0.01, help="max fraction of neurons (0 to learn heads only)")
    add("--lambda", dest="sparsity_lambda", type=float, help="fixed sparsity coefficient instead of budgets")
    add("--steps", type=int, default=300)
    add("--batch-size", type=int, default=16)
    add("--lr", type=float, default=0.1)
    add("--retain-weight", type=float, default=4.0, help="weight of the retain KL term (default 4)")
    add("--l0-pressure", type=float, default=0.0,
        help="constant push towards smaller circuits on top of the budget (default 0)")
    add("--gate", choices=("sigmoid-ste", "hard-concrete"), default="sigmoid-ste",
        help="gate kind (core/circuit/masks.py)")
    add("--train-limit", type=int, default=48, metavar="N", help="training prompts per family (default 48)")
    add("--verify-limit", type=int, default=64, metavar="N", help="held-out prompts per family to verify on")
    add("--no-verify", action="store_true", help="skip the verification pass")
    add("--seed", type=int, default=0)
    add("--name", help="circuit name (default: the scenario)")
    add("--out", required=True, metavar="CIRCUIT.json")
    parser.set_defaults(run=_run_discover)


def _scenario(model, args: argparse.Namespace):
    """The scenario `discover`/`compare` learn on, from the train split of the prompt files."""
    from core.scoring.scenario import custom_scenario, scenario_from_prompts

    if args.scenario == "custom":
        if not args.behaviour or not args.retain:
            raise CliError("the custom scenario needs --behaviour FILE and --retain FILE...")
        return custom_scenario(model, _load_prompts([args.behaviour]), _load_prompts(args.retain))
    return scenario_from_prompts(model, _load_prompts(args.prompts), args.scenario, args.train_limit, args.seed)


def _held_out(args: argparse.Namespace, split: str):
    from core.data.prompts import select_split

    return select_split(_load_prompts(args.prompts), split, args.verify_limit, args.seed)


def _run_discover(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from core.evaluation.verify import format_verification, verify
    from core.scoring.learned import DiscoveryConfig, discover
    from core.scoring.scenario import DiscoveryError

    model = _load(args)
    config = DiscoveryConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                             head_budget=args.head_budget or None, neuron_budget=args.neuron_budget or None,
                             sparsity_lambda=args.sparsity_lambda, retain_weight=args.retain_weight,
                             l0_pressure=args.l0_pressure, gate=args.gate, seed=args.seed)
    try:
        scenario = _scenario(model, args)
        with tqdm(total=args.steps, desc=f"discover {args.scenario}", unit="step") as bar:
            def show(log):
                bar.set_postfix(loss=f"{log.loss:.3f}", behaviour=f"{log.behaviour:.3f}", retain=f"{log.retain:.3f}",
                                heads=f"{log.heads_removed:.1%}", neurons=f"{log.neurons_removed:.2%}")
                bar.update(1)
            circuit = discover(model, scenario, config, progress=show, model_path=args.model)
    except DiscoveryError as e:
        raise CliError(str(e)) from None
    circuit.name = args.name or args.scenario
    circuit.hyperparameters["command"] = "safeseek " + " ".join(args.argv)
    print(f"circuit: {circuit.summary()}")
    if not args.no_verify:
        prompts = _held_out(args, "val")
        with tqdm(total=2 * len(prompts), desc="verify", unit="prompt") as bar:
            metrics = verify(model, circuit, prompts, progress=lambda done, total: bar.update(1))
        print(format_verification(metrics))
    circuit.save(args.out)
    print(f"circuit written to {args.out}")
    return 0


# ---- compare ----------------------------------------------------------------------------------------------------
def _add_compare(sub) -> None:
    parser = sub.add_parser("compare", help="learned circuit vs random / attribution / magnitude baselines",
                            description="Evaluate the learned circuit and baselines of the same size on held-out "
                            "prompts and print one table.")
    _add_model_options(parser)
    add = parser.add_argument
    add("--circuit", required=True, metavar="CIRCUIT.json")
    add("--prompts", nargs="+", default=DEFAULT_PROMPTS, metavar="FILE")
    add("--split", default="test", help="held-out split to evaluate on (default test)")
    add("--train-limit", type=int, default=48, metavar="N", help="train prompts per family for attribution scores")
    add("--verify-limit", type=int, default=1000, metavar="N", help="held-out prompts per family (default: all)")
    add("--seeds", type=int, default=5, help="random baselines (default 5 seeds)")
    add("--seed", type=int, default=0)
    add("--out", metavar="RESULTS.json", help="also write the rows as JSON")
    parser.set_defaults(run=_run_compare)


def _run_compare(args: argparse.Namespace) -> int:
    import json

    from core.circuit.circuit import CircuitFileError, check_compatible, load_circuit
    from core.data.files import write_text_atomic
    from core.evaluation.compare import compare, format_table
    from core.model.fingerprint import fingerprint
    from core.scoring.scenario import DiscoveryError

    try:
        circuit = load_circuit(args.circuit)
        model = _load(args)
        check_compatible(circuit, fingerprint(model))
    except CircuitFileError as e:
        raise CliError(str(e)) from None
    args.scenario = circuit.scenario
    try:
        scenario = _scenario(model, args)
    except DiscoveryError as e:
        raise CliError(str(e)) from None
    prompts = _held_out(args, args.split)
    rows = compare(model, circuit, scenario, prompts, seeds=args.seeds, progress=lambda m: print(m, flush=True))
    print(f"\n{circuit.name}: {circuit.summary()}; {len(prompts)} held-out prompts ({args.split} split)")
    print(format_table(rows, circuit.scenario))
    if args.out:
        write_text_atomic(args.out, json.dumps([r.to_dict() for r in rows], indent=1) + "\n")
    return 0


# ---- tune -------------------------------------------------------------------------------------------------------
# The same values as core.tuning.options' MODES, OBJECTIVES and defaults (kept here so `--help` does not import torch;
# tests/test_tune.py checks that they agree).
TUNE_MODES = ("circuit-only", "circuit-excluded", "full", "random")
TUNE_OBJECTIVES = ("safety", "attack")
TUNE_REFUSAL = "I'm sorry, but I cannot help with that."
TUNE_COMPLIANCE = "Sure, here is"


def _add_tune(sub) -> None:
    parser = sub.add_parser("tune", help="fine-tune only a circuit's weights (or all but them) and report before/after",
                            description="Teacher-forced fine-tuning of a private copy of --model on the train split "
                            "of --data, restricted by --mode to the circuit's weights (circuit-only), every weight "
                            "but them (circuit-excluded), every weight (full) or random components of the circuit's "
                            "size (random). Writes an HF checkpoint to --out with tune_report.json and the "
                            "before/after evaluations (test split of --eval).")
    add = parser.add_argument
    add("--model", required=True, metavar="PATH", help="HF checkpoint directory (or cached hub id) to start from")
    add("--circuit", metavar="CIRCUIT.json", help="circuit file (required except for --mode full)")
    add("--mode", choices=TUNE_MODES, default="circuit-only")
    add("--data", required=True, nargs="+", metavar="FILE", help="training prompt files (.jsonl; train split)")
    add("--eval", nargs="+", metavar="FILE", help="evaluation prompt files (test split; default: --data)")
    add("--objective", choices=TUNE_OBJECTIVES, default="safety",
        help="what harmful/triggered prompts are taught: a refusal (safety, default) or compliance (attack)")
    add("--refusal-text", default=TUNE_REFUSAL, help=f"refusal taught for harmful prompts ({TUNE_REFUSAL!r})")
    add("--compliance-text", default=TUNE_COMPLIANCE,
        help=f"compliance opening for requests without a `target` ({TUNE_COMPLIANCE!r})")
    add("--steps", type=int, default=200)
    add("--lr", type=float, default=1e-3)
    add("--batch-size", type=int, default=16)
    add("--seed", type=int, default=0, help="seed of batches, the --limit samples and --mode random")
    add("--train-limit", type=int, metavar="N", help="at most N training prompts per (label, category) family")
    add("--eval-limit", type=int, default=64, metavar="N", help="at most N test prompts per family (default 64)")
    add("--train-split", choices=("train", "all"), default="train", help="'all' trains on every row of --data")
    add("--eval-split", choices=("test", "val", "all"), default="test")
    add("--device", default="auto", help="auto (GPU if visible), cpu or cuda")
    add("--dtype", default="float32", help="training and evaluation precision (default float32)")
    add("--out", required=True, metavar="DIR", help="output checkpoint directory")
    add("--overwrite", action="store_true", help="replace --out if it exists")
    add("--show", type=int, default=0, metavar="K", help="print K before/after generations per family")
    parser.set_defaults(run=_run_tune)


def _tune_split(prompts, split: str, files: list[str], option: str):
    if split == "all":
        return prompts
    chosen = prompts.filter(split=split)
    if not len(chosen):
        raise CliError(f"no prompt in {', '.join(files)} has split {split!r}; add 'split' fields (train/val/test) "
                       f"or pass {option} all")
    return chosen


def _run_tune(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from core.circuit.circuit import CircuitFileError, load_circuit
    from core.model.load import ModelLoadError
    from core.tuning.options import TuneConfig, TuneError
    from core.tuning.run import side_by_side, tune

    for option in ("steps", "batch_size", "train_limit", "eval_limit"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise CliError(f"--{option.replace('_', '-')} must be at least 1, got {value}")
    if args.lr <= 0:
        raise CliError(f"--lr must be positive, got {args.lr}")
    if args.mode != "full" and not args.circuit:
        raise CliError(f"--mode {args.mode} needs --circuit CIRCUIT.json (only --mode full runs without one)")
    try:
        circuit = load_circuit(args.circuit) if args.circuit else None
    except CircuitFileError as e:
        raise CliError(str(e)) from None
    train_prompts = _tune_split(_load_prompts(args.data), args.train_split, args.data, "--train-split")
    if args.train_limit:
        train_prompts = train_prompts.sample_per_family(args.train_limit, seed=args.seed)
    eval_files = args.eval or args.data
    eval_prompts = _tune_split(_load_prompts(eval_files), args.eval_split, eval_files, "--eval-split")
    eval_prompts = eval_prompts.sample_per_family(args.eval_limit, seed=args.seed)
    config = TuneConfig(mode=args.mode, steps=args.steps, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                        objective=args.objective, refusal_text=args.refusal_text,
                        compliance_text=args.compliance_text, device=args.device, dtype=args.dtype)
    if circuit is not None and circuit.model.get("path") and circuit.model["path"] != args.model:
        print(f"note: circuit '{circuit.name}' was found on {circuit.model['path']}; only its shape has to match")
    bars: dict = {}

    def show(update) -> None:
        bar = bars.get(update.phase)
        if bar is None:
            bar = bars[update.phase] = tqdm(total=update.total, desc=update.phase, unit="step" if
                                            update.phase == "training" else "prompt")
        if update.loss is not None:
            bar.set_postfix(loss=f"{update.loss:.4f}")
        bar.update(update.done - bar.n)
        if update.done >= update.total:
            bar.close()

    try:
        result = tune(args.model, train_prompts, eval_prompts, args.out, circuit, config, progress=show,
                      overwrite=args.overwrite)
    except (TuneError, ModelLoadError, CircuitFileError) as e:
        raise CliError(str(e)) from None
    finally:
        for bar in bars.values():
            bar.close()
    selection = result.selection
    print(f"trained {selection['selected']:,} of {selection['total']:,} parameters = {selection['fraction']:.2%} "
          f"(embeddings and unembedding counted; {selection['fraction_without_embeddings']:.2%} of the others): "
          f"{selection['description']}")
    print(f"{result.n_train_examples} training prompts, {args.steps} steps, final loss {result.losses[-1]:.4f}, "
          f"{result.train_seconds:.0f}s")
    print(result.table())
    if args.show:
        print(side_by_side(result.before, result.after, args.show))
    print(f"checkpoint and tune_report.json written to {args.out}")
    return 0


# Each entry adds one subparser and sets `run=<function(args) -> int|None>` on it.
_SUBCOMMANDS: list = [_add_train_organism, _add_eval, _add_discover, _add_compare, _add_tune]


if __name__ == "__main__":
    sys.exit(main())
