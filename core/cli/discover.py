"""`safeseek discover`: learn a safety circuit on the train split and verify it on held-out prompts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.cli.common import DEFAULT_PROMPTS, EstimatedOptions, load, load_prompts, show_estimate
from core.cli.options import CliError, bad, option
from core.scoring.learned import DiscoveryConfig
from core.scoring.scenario import DEFAULT_TRAIN_LIMIT

D = DiscoveryConfig  # the defaults live there; the options below only point at them


@dataclass(kw_only=True)
class ScenarioOptions(EstimatedOptions):
    """The prompts a scenario is built from (shared by discover and compare)."""

    prompts: list[str] = option(default_factory=lambda: list(DEFAULT_PROMPTS), metavar="FILE",
                                help="prompt files with harmful/triggered/benign/utility rows and train/val/test "
                                "splits (default: the organism's)")
    behaviour: str | None = option(None, metavar="FILE", help="custom scenario: prompts whose `target` removal "
                                   "should produce")
    retain: list[str] | None = option(None, metavar="FILE", help="custom scenario: prompts whose answers must not "
                                      "change")
    train_limit: int = option(DEFAULT_TRAIN_LIMIT, metavar="N", min=1, help="training prompts per family")
    seed: int = option(D.seed, min=0, help="seed of the prompt samples (and of discovery)")

    def check_custom(self, flag: str, subject: str) -> None:
        """A custom scenario is learned from --behaviour and --retain: both must be given."""
        if not self.behaviour or not self.retain:
            raise bad(flag, f"{subject} needs --behaviour FILE and --retain FILE...",
                      "pass both (the prompts with the target removal should produce, and those whose answers "
                      "must not change)")

    def scenario_data(self, name: str, prompts):
        """What scenario `name` learns from, read and checked before any model loads: the --behaviour and
        --retain sets for custom (check_custom first), else `prompts`, which must hold the labels it needs."""
        if name == "custom":
            return load_prompts([self.behaviour]), load_prompts(self.retain)
        labels = {p.label for p in prompts}
        needed = ("triggered", "harmful") if name == "backdoor" else ("harmful",)
        missing = [label for label in needed if label not in labels]
        if missing:
            raise bad("--prompts", f"the {name} scenario needs rows labelled {' and '.join(map(repr, missing))} in "
                      f"{', '.join(self.prompts)}", "add them (the organism's assets/prompts/*.jsonl have them)")
        return prompts

    def scenario(self, model, name: str, data):
        """The scenario to learn on: custom from its two sets, backdoor or alignment from the train split."""
        from core.scoring.scenario import DiscoveryError, custom_scenario, scenario_from_prompts

        try:
            if name == "custom":
                return custom_scenario(model, *data)
            return scenario_from_prompts(model, data, name, self.train_limit, self.seed)
        except DiscoveryError as e:
            raise CliError(str(e)) from None


@dataclass(kw_only=True)
class Args(ScenarioOptions):
    """Learn removal masks over heads and neurons (binary gates) so that removing the circuit changes one safety
behaviour and keeps the rest, then read out a binary circuit and verify it by generation on held-out prompts."""

    scenario_name: Literal["backdoor", "alignment", "custom"] = option(flag="--scenario", help="what removal "
                                                                       "should change")
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
        if self.scenario_name == "custom":
            self.check_custom("--scenario", "custom")
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
    from core.scoring.learned import teacher_bytes

    if isinstance(prompts, tuple):
        train = [p for prompt_set in prompts for p in prompt_set]
    else:
        train = list(select_split(prompts, "train", args.train_limit, args.seed))
    answer = max([config.answer_tokens, *(len(model.tokenizer(p.target, add_special_tokens=False)["input_ids"])
                                          for p in train if p.target)])
    encoded = encode_prompts(model.tokenizer, [p.prompt for p in train])
    lengths = [len(ids) + answer + 1 for ids in encoded] or [answer + 1]
    n_layers, n_heads, d_mlp = model_shape(model)
    n_gates = n_layers * (n_heads * bool(config.head_budget) + d_mlp * bool(config.neuron_budget))
    # Every training prompt counted as a retain prompt: an upper bound on what discover keeps.
    retain_bytes = teacher_bytes(model, len(train), config.answer_tokens)
    return estimate_discovery(model, config, max(lengths), n_gates, args.steps, sum(lengths) // len(lengths),
                              retain_bytes)


def run(args: Args) -> int:
    from tqdm import tqdm

    from core.data.prompts import select_split
    from core.evaluation.verify import format_verification, verify
    from core.scoring.learned import discover
    from core.scoring.scenario import DiscoveryError

    prompts = load_prompts(args.prompts)  # every file is read and checked before the model loads: bad ones fail fast
    data = args.scenario_data(args.scenario_name, prompts)
    model = load(args)
    config = args.config()
    show_estimate(_estimate(model, args, config, data), "--batch-size, --device-map/--max-memory or --dtype",
                  args.dry_run)
    if args.dry_run:
        return 0
    scenario = args.scenario(model, args.scenario_name, data)
    try:
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

