"""`safeseek compare`: a learned circuit against random, attribution and magnitude sets of its size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.cli.common import load, load_prompts, show_estimate
from core.cli.discover import ScenarioOptions
from core.cli.options import CliError, option


@dataclass(kw_only=True)
class Args(ScenarioOptions):
    """Evaluate the learned circuit and baselines of the same size on held-out prompts and print one table."""

    circuit: str = option(metavar="CIRCUIT.json", help="the learned circuit")
    split: Literal["train", "val", "test"] = option("test", help="held-out split to evaluate on")
    verify_limit: int = option(1000, metavar="N", min=1, help="held-out prompts per family (1000: all)")
    seeds: int = option(5, min=1, help="how many random baselines")
    out: str | None = option(None, metavar="RESULTS.json", out="file", help="also write the rows as JSON")

    def validate(self) -> None:
        self.check_device()


def run(args: Args) -> int:
    import json

    from core.circuit.circuit import CircuitFileError, check_compatible, load_circuit
    from core.data.files import write_text_atomic
    from core.data.prompts import select_split
    from core.evaluation.compare import compare, format_table
    from core.evaluation.report import judging_length
    from core.model.estimate import estimate_generation
    from core.model.fingerprint import fingerprint

    try:
        circuit = load_circuit(args.circuit)
    except CircuitFileError as e:
        raise CliError(str(e)) from None
    if circuit.scenario == "custom":
        raise CliError(f"--circuit: {args.circuit} is a custom-scenario circuit; compare runs on backdoor and "
                       "alignment circuits only")
    all_prompts = load_prompts(args.prompts)
    prompts = select_split(all_prompts, args.split, args.verify_limit, args.seed)
    model = load(args)
    try:
        check_compatible(circuit, fingerprint(model))
    except CircuitFileError as e:
        raise CliError(str(e)) from None
    scenario = args.scenario(model, circuit.scenario, all_prompts)
    # compare() evaluates the full model, the learned circuit, --seeds random sets, attribution and magnitude.
    estimate = estimate_generation(model, "compare", [p.prompt for p in prompts], 64,
                                   judging_length(model.tokenizer, prompts), runs=args.seeds + 4)
    show_estimate(estimate, "--verify-limit, --device-map/--max-memory or --dtype", args.dry_run)
    if args.dry_run:
        return 0
    rows = compare(model, circuit, scenario, prompts, seeds=args.seeds, progress=lambda m: print(m, flush=True))
    print(f"\n{circuit.name}: {circuit.summary()}; {len(prompts)} held-out prompts ({args.split} split)")
    print(format_table(rows, circuit.scenario))
    if args.out:
        write_text_atomic(args.out, json.dumps([r.to_dict() for r in rows], indent=1) + "\n")
    return 0
