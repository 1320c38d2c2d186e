"""`safeseek discover`: learn a safety circuit on the train split and verify it on held-out prompts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.cli.common import DEFAULT_PROMPTS, EstimatedOptions, load, load_prompts, show_estimate
from core.cli.options import CliError, bad, option
from core.scoring.learned import DiscoveryConfig

D = DiscoveryConfig  # the defaults live there; the options below only point at them


@dataclass(kw_only=True)
class ScenarioOptions(EstimatedOptions):
    """The prompts a scenario is built from (shared by discover and compare)."""

    prompts: list[str] = option(default_factory=lambda: list(DEFAULT_PROMPTS), metavar="FILE",
                                help="prompt files with harmful/triggered/benign/utility rows and train/val/test "
                                "splits (default: the organism's)")
    train_limit: int = option(48, metavar="N", min=1, help="training prompts per family")
    seed: int = option(D.seed, min=0, help="seed of the prompt samples (and of discovery)")

    def scenario(self, model, name: str, prompts):
        """The backdoor or alignment scenario to learn on, from the train split of `prompts`."""
        from core.scoring.scenario import DiscoveryError, scenario_from_prompts

        try:
            return scenario_from_prompts(model, prompts, name, self.train_limit, self.seed)
        except DiscoveryError as e:
            raise CliError(str(e)) from None


@dataclass(kw_only=True)
class Args(ScenarioOptions):
    """Learn removal masks over heads and neurons (binary gates) so that removing the circuit changes one safety
behaviour and keeps the rest, then read out a binary circuit and verify it by generation on held-out prompts."""

    scenario_name: Literal["backdoor", "alignment", "custom"] = option(flag="--scenario", help="what removal "
                                                                       "should change")
    behaviour: str | None = option(None, metavar="FILE", help="custom scenario: prompts whose `target` removal "
                                   "should produce")
    retain: list[str] | None = option(None, metavar="FILE", help="custom scenario: prompts whose answers must not "
                                      "change")
    head_budget: float = option(D.head_budget, help="max fraction of heads, below 1 (0: learn neurons only)")
    neuron_budget: float = option(D.neuron_budget, help="max fraction of neurons, below 1 (0: learn heads only)")
    sparsity_lambda: float | None = option(None, flag="--lambda", above=0,
                                           help="fixed sparsity coefficient instead of budgets")
    steps: int = option(D.steps, min=1, help="optimisation steps")
    batch_size: int = option(D.batch_size, min=1, help="prompts per step")
    lr: float = option(D.lr, above=0, help="learning rate of the gates")
    retain_weight: float = option(D.retain_weight, min=0, help="weight of the retain KL term")
    l0_pressure: float = option(D.l0_pressure, min=0, help="constant push towards smaller circuits on top of the "
                                "budget")
    gate: Literal["sigmoid-ste", "hard-concrete"] = option(D.gate, help="gate kind (core/circuit/masks.py)")
    verify_limit: int = option(64, metavar="N", min=1, help="held-out (val) prompts per family to verify on")
    no_verify: bool = option(False, help="skip the verification pass")
    name: str | None = option(None, help="circuit name (default: the scenario)")
    out: str = option(metavar="CIRCUIT.json", out="file", help="where to write the circuit")

    def validate(self) -> None:
        for flag, budget in (("--head-budget", self.head_budget), ("--neuron-budget", self.neuron_budget)):
            if not 0 <= budget < 1:
                raise bad(flag, f"{budget} is not a fraction below 1", f"pass e.g. {flag} 0.05 (5%), or 0 to skip")
        if self.head_budget == 0 and self.neuron_budget == 0:
            raise bad("--head-budget", "both budgets are 0, so nothing can be learned",
                      "give --head-budget or --neuron-budget a fraction above 0")
        if self.scenario_name == "custom" and (not self.behaviour or not self.retain):
            raise bad("--scenario", "custom needs --behaviour FILE and --retain FILE...", "pass both")
        self.check_device()

    def config(self) -> DiscoveryConfig:
        return DiscoveryConfig(steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                               head_budget=self.head_budget or None, neuron_budget=self.neuron_budget or None,
                               sparsity_lambda=self.sparsity_lambda, retain_weight=self.retain_weight,
                               l0_pressure=self.l0_pressure, gate=self.gate, seed=self.seed)


def _estimate(model, args: Args, config: DiscoveryConfig, prompts):
    """Discovery's memory and time from a one-step probe at its longest teacher-forced sequence (the longest
    training prompt plus its answer); `prompts` are the (behaviour, retain) sets of a custom scenario, else all."""
    from core.data.prompts import select_split
    from core.model.estimate import estimate_discovery
    from core.model.generate import encode_prompts
    from core.model.load import model_shape

    if isinstance(prompts, tuple):
        train = [p for prompt_set in prompts for p in prompt_set]
    else:
        train = list(select_split(prompts, "train", args.train_limit, args.seed))
    answer = max([config.answer_tokens, *(len(model.tokenizer(p.target, add_special_tokens=False)["input_ids"])
                                          for p in train if p.target)])
    seq = max((len(ids) for ids in encode_prompts(model.tokenizer, [p.prompt for p in train])), default=0) + answer + 1
    n_layers, n_heads, d_mlp = model_shape(model)
    n_gates = n_layers * (n_heads * bool(config.head_budget) + d_mlp * bool(config.neuron_budget))
    return estimate_discovery(model, config, seq, n_gates, args.steps)


def run(args: Args) -> int:
    from tqdm import tqdm

    from core.data.prompts import select_split
    from core.evaluation.verify import format_verification, verify
    from core.scoring.learned import discover
    from core.scoring.scenario import DiscoveryError, custom_scenario

    prompts = load_prompts(args.prompts)  # every file is read before the model loads: bad ones fail fast
    custom = (load_prompts([args.behaviour]), load_prompts(args.retain)) if args.scenario_name == "custom" else None
    model = load(args)
    config = args.config()
    show_estimate(_estimate(model, args, config, custom or prompts), "--batch-size, --device-map/--max-memory or "
                  "--dtype", args.dry_run)
    if args.dry_run:
        return 0
    try:
        if custom:
            scenario = custom_scenario(model, *custom)
        else:
            scenario = args.scenario(model, args.scenario_name, prompts)
        with tqdm(total=args.steps, desc=f"discover {args.scenario_name}", unit="step") as bar:
            def show(log):
                bar.set_postfix(loss=f"{log.loss:.3f}", behaviour=f"{log.behaviour:.3f}", retain=f"{log.retain:.3f}",
                                heads=f"{log.heads_removed:.1%}", neurons=f"{log.neurons_removed:.2%}")
                bar.update(1)
            circuit = discover(model, scenario, config, progress=show, model_path=args.model)
    except DiscoveryError as e:
        raise CliError(str(e)) from None
    circuit.name = args.name or args.scenario_name
    circuit.hyperparameters["command"] = args.command_line
    print(f"circuit: {circuit.summary()}")
    if not args.no_verify:
        held_out = select_split(prompts, "val", args.verify_limit, args.seed)
        with tqdm(total=2 * len(held_out), desc="verify", unit="prompt") as bar:
            metrics = verify(model, circuit, held_out, progress=lambda done, total: bar.update(1))
        print(format_verification(metrics))
    circuit.save(args.out)
    print(f"circuit written to {args.out}")
    return 0

