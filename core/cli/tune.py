"""`safeseek tune`: fine-tune only a circuit's weights (or all but them) and report before/after."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from core.cli.common import EstimatedOptions, load_prompts, show_estimate
from core.cli.options import CliError, bad, option
from core.tuning.options import MODES, OBJECTIVES, TuneConfig

if TYPE_CHECKING:
    from core.circuit.circuit import Circuit

T = TuneConfig  # the defaults live there; the options below only point at them


@dataclass(kw_only=True)
class Args(EstimatedOptions):
    """Teacher-forced fine-tuning of a private copy of --model on the train split of --data, restricted by --mode to
the circuit's weights (circuit-only), every weight but them (circuit-excluded), every weight (full) or random
components of the circuit's size (random). Writes an HF checkpoint to --out with tune_report.json and the
before/after evaluations (test split of --eval)."""

    dtype: str = option(T.dtype, help="training and evaluation precision")
    circuit: str | None = option(None, metavar="CIRCUIT.json", help="circuit file (required except for --mode full)")
    mode: Literal[MODES] = option(T.mode, help="which weights are trained")
    data: list[str] = option(metavar="FILE", help="training prompt files (.jsonl; train split)")
    eval: list[str] | None = option(None, metavar="FILE", help="evaluation prompt files (test split; default: --data)")
    objective: Literal[OBJECTIVES] = option(T.objective, help="what harmful/triggered prompts are taught: a refusal "
                                            "(safety) or compliance (attack)")
    refusal_text: str = option(T.refusal_text, help="refusal taught for harmful prompts")
    compliance_text: str = option(T.compliance_text, help="compliance opening for requests without a `target`")
    steps: int = option(T.steps, min=1, help="training steps")
    lr: float = option(T.lr, above=0, help="learning rate")
    batch_size: int = option(T.batch_size, min=1, help="examples per step")
    seed: int = option(T.seed, min=0, help="seed of batches, the --limit samples and --mode random")
    train_limit: int | None = option(None, metavar="N", min=1, help="at most N training prompts per family")
    eval_limit: int = option(64, metavar="N", min=1, help="at most N test prompts per family")
    train_split: Literal["train", "all"] = option("train", help="'all' trains on every row of --data")
    eval_split: Literal["test", "val", "all"] = option("test", help="'all' evaluates on every row of --eval")
    out: str = option(metavar="DIR", out="dir", help="output checkpoint directory")
    overwrite: bool = option(False, help="replace --out if it is a checkpoint this command wrote (or empty)")
    show: int = option(0, metavar="K", min=0, help="print K before/after generations per family")

    def validate(self) -> None:
        from core.tuning.options import TuneError, check_out_dir

        if self.mode != "full" and not self.circuit:
            raise bad("--circuit", f"--mode {self.mode} needs a circuit file", "pass --circuit CIRCUIT.json (only "
                      "--mode full runs without one)")
        for flag, text in (("--refusal-text", self.refusal_text), ("--compliance-text", self.compliance_text)):
            if not text.strip():
                raise bad(flag, "is empty", "pass the text to teach")
        try:
            check_out_dir(self.out, self.overwrite)
        except TuneError as e:
            raise CliError(f"--out: {e}") from None
        self.check_device()

    def config(self) -> TuneConfig:
        return TuneConfig(mode=self.mode, steps=self.steps, lr=self.lr, batch_size=self.batch_size, seed=self.seed,
                          objective=self.objective, refusal_text=self.refusal_text,
                          compliance_text=self.compliance_text, device=self.device, dtype=self.dtype,
                          trust_remote_code=self.trust_remote_code, device_map=self.device_map,
                          max_memory=self.max_memory)


def _split(prompts, split: str, files: list[str], flag: str):
    if split == "all":
        return prompts
    chosen = prompts.filter(split=split)
    if not len(chosen):
        raise bad(flag, f"no prompt in {', '.join(files)} has split {split!r}",
                  f"add 'split' fields (train/val/test) or pass {flag} all")
    return chosen


def found_elsewhere(circuit: Circuit, model: str) -> str | None:
    """A note when the circuit was found on another checkpoint than `model` (not the same folder, nor the same
    recorded weights, as a sample circuit read from another clone is), else None."""
    from pathlib import Path

    from core.data.paths import recorded_location
    from core.data.record import recorded_weights

    recorded = circuit.model.get("path")
    if not recorded or recorded_location(recorded).resolve() == Path(model).resolve():
        return None
    digest = circuit.model.get("weights_sha256")
    if digest and digest == recorded_weights(model):
        return None
    return f"note: circuit '{circuit.name}' was found on {recorded}; only its shape has to match"


def run(args: Args) -> int:
    from tqdm import tqdm

    from core.circuit.circuit import CircuitFileError, load_circuit
    from core.model.estimate import EstimateError, estimate_training
    from core.model.load import ModelLoadError, resolve_checkpoint_dir, resolve_device, resolve_dtype
    from core.tuning.options import TuneError
    from core.tuning.run import side_by_side, tune

    try:
        circuit = load_circuit(args.circuit) if args.circuit else None
    except CircuitFileError as e:
        raise CliError(str(e)) from None
    train_prompts = _split(load_prompts(args.data), args.train_split, args.data, "--train-split")
    if args.train_limit:
        train_prompts = train_prompts.sample_per_family(args.train_limit, seed=args.seed)
    eval_files = args.eval or args.data
    eval_prompts = _split(load_prompts(eval_files), args.eval_split, eval_files, "--eval-split")
    eval_prompts = eval_prompts.sample_per_family(args.eval_limit, seed=args.seed)
    try:
        device = resolve_device(args.device)
        estimate = estimate_training(resolve_checkpoint_dir(args.model), resolve_dtype(args.dtype, device), device,
                                     args.batch_size)
    except (ModelLoadError, EstimateError) as e:
        raise CliError(str(e)) from None
    if args.device_map is not None:
        estimate.available = None  # spread over devices by accelerate: no single budget to check against
    show_estimate(estimate, "--dtype, --device-map/--max-memory or --mode", args.dry_run)
    if args.dry_run:
        return 0
    if circuit is not None and (note := found_elsewhere(circuit, args.model)):
        print(note)
    bars: dict = {}

    def show(update) -> None:
        bar = bars.get(update.phase)
        if bar is None:
            bar = bars[update.phase] = tqdm(total=update.total, desc=update.phase,
                                            unit="step" if update.phase == "training" else "prompt")
        if update.loss is not None:
            bar.set_postfix(loss=f"{update.loss:.4f}")
        bar.update(update.done - bar.n)
        if update.done >= update.total:
            bar.close()

    try:
        result = tune(args.model, train_prompts, eval_prompts, args.out, circuit, args.config(), progress=show,
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
