"""`safeseek compare`: a learned circuit against random, attribution and magnitude sets of its size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.cli.common import CacheOptions, load, load_prompts, show_estimate
from core.cli.discover import ScenarioOptions
from core.cli.options import CliError, bad, option


@dataclass(kw_only=True)
class Args(CacheOptions, ScenarioOptions):
    """Evaluate the learned circuit and baselines of the same size on held-out prompts and print one table."""

    circuit: str = option(metavar="CIRCUIT.json", help="the learned circuit")
    split: Literal["train", "val", "test"] = option("test", help="held-out split to evaluate on")
    verify_limit: int = option(1000, metavar="N", min=1, help="held-out prompts per family (1000: all)")
    seeds: int = option(5, min=1, help="how many random baselines")
    out: str | None = option(None, metavar="RESULTS.json", out="file",
                             help="also write the rows, with the model, circuit, prompts and settings they measured, "
                                  "as JSON")

    def validate(self) -> None:
        self.check_device()


def run(args: Args) -> int:
    from core.circuit.circuit import CircuitFileError, check_compatible, load_circuit
    from core.data.files import write_text_atomic
    from core.data.prompts import select_split
    from core.evaluation.compare import (
        Comparison,
        baseline_scores,
        compare,
        comparison_meta,
        format_table,
        scenario_scores,
    )
    from core.evaluation.metrics import RATE_LABELS, scenario_rates
    from core.evaluation.report import judging_length
    from core.model.estimate import estimate_generation
    from core.model.fingerprint import fingerprint
    from core.scoring.scenario import DiscoveryError

    # The circuit and every prompt file are read and checked before the model loads.
    try:
        circuit = load_circuit(args.circuit)
    except CircuitFileError as e:
        raise CliError(f"--circuit: {e}") from None
    if circuit.scenario == "custom":
        args.check_custom("--circuit", f"{args.circuit} is a custom-scenario circuit, which")
    all_prompts = load_prompts(args.prompts)
    data = args.scenario_data(circuit.scenario, all_prompts)
    prompts = select_split(all_prompts, args.split, args.verify_limit, args.seed)
    if not any(p.split == args.split for p in all_prompts):
        print(f"note: no prompt has split {args.split!r}; evaluating every prompt of {', '.join(args.prompts)}")
    judged = RATE_LABELS[scenario_rates(circuit.scenario)[0]]
    if not len(prompts.filter(label=judged)):
        raise bad("--prompts", f"a {circuit.scenario} circuit is judged on rows labelled {judged!r}, and the "
                  f"held-out prompts ({args.split} split of {', '.join(args.prompts)}) have none", "add some")
    for label in ("benign", "utility"):
        if not len(prompts.filter(label=label)):
            print(f"note: no {label} rows among the held-out prompts; their figures are skipped")
    model = load(args)
    fp = fingerprint(model)
    try:
        for note in check_compatible(circuit, fp):
            print(f"note: {note}")
    except CircuitFileError as e:
        raise CliError(f"--circuit: {e}") from None
    # compare() evaluates the full model, the learned circuit, --seeds random sets, attribution and magnitude.
    estimate = estimate_generation(model, "compare", [p.prompt for p in prompts], 64,
                                   judging_length(model.tokenizer, prompts), runs=args.seeds + 4)
    show_estimate(estimate, "--verify-limit, --device-map/--max-memory or --dtype", args.dry_run)
    if args.dry_run:
        return 0
    if circuit.scenario == "custom":  # scored on the --behaviour and --retain files, not cached
        print("scoring baselines", flush=True)
        scores = scenario_scores(model, args.scenario(model, circuit.scenario, data))
    else:
        cache = args.result_cache()
        try:
            scores = baseline_scores(model, fp, data, circuit.scenario, args.train_limit, args.seed, cache)
        except DiscoveryError as e:
            raise CliError(str(e)) from None
        print("baselines scored" if cache.computed else "baseline scores reused", "(cache: "
              f"{cache.folder or 'none'})", flush=True)
    rows = compare(model, circuit, scores, prompts, seeds=args.seeds, progress=lambda m: print(m, flush=True))
    print(f"\n{circuit.name}: {circuit.summary()}; {len(prompts)} held-out prompts ({args.split} split)")
    print(format_table(rows, circuit.scenario))
    if args.out:
        settings = {"split": args.split, "verify_limit": args.verify_limit, "seeds": args.seeds,
                    "train_limit": args.train_limit, "seed": args.seed}
        meta = comparison_meta(fp, circuit, all_prompts, prompts, settings, args.command_line)
        write_text_atomic(args.out, Comparison(rows, meta).to_json())
    return 0
