"""`safeseek report`: one circuit's report card (necessity, sufficiency, seed stability, cost curve, location)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal

from core.cli.common import DEFAULT_PROMPTS, CacheOptions, ModelOptions, load, load_prompts
from core.cli.options import CliError, option
from core.evaluation.report_card import CardConfig

D = CardConfig()


@dataclass(kw_only=True)
class Args(CacheOptions, ModelOptions):
    """Measure one circuit: behaviour and utility with it removed (zero, mean, resample ablation) and with only it
kept; discoveries with other seeds; a cost curve against attribution, magnitude and random baselines; where it
lives. Prints every figure, writes a standalone HTML card and a JSON of every figure. Discoveries and evaluations
are cached (JSON, keyed by the model fingerprint, prompt hashes and settings), so a second run is quick."""

    circuit: str = option(metavar="CIRCUIT.json", help="the circuit to report on")
    against: str | None = option(None, metavar="CIRCUIT.json", help="another circuit to show the overlap with")
    prompts: list[str] = option(default_factory=lambda: list(DEFAULT_PROMPTS), metavar="FILE",
                                help="prompt files with train/test splits (default: the organism's)")
    out: str | None = option(None, metavar="CARD.html", out="file", help="write the standalone HTML card")
    json: str | None = option(None, metavar="CARD.json", out="file",
                              help="write the card's measurements and every figure as JSON")
    split: Literal["train", "val", "test"] = option(D.split, help="held-out split to evaluate on")
    per_family: int = option(D.per_family, min=1, help="held-out prompts per family")
    seeds: int = option(D.seeds, min=1, help="discoveries for the stability part, the circuit's own included")
    budgets: list[float] = option(default_factory=lambda: list(D.budgets), metavar="FRACTION",
                                  help="circuit sizes of the cost curve, as fractions of all components")
    random_seeds: int = option(D.random_seeds, min=1, help="random circuits per budget")
    steps: int | None = option(None, min=1, help="discovery steps (default: the circuit's recorded steps)")
    train_limit: int | None = option(None, metavar="N", min=1, help="training prompts per family (default: the "
                                     "circuit's recorded command, else discover's default)")
    seed: int = option(D.seed, min=0, help="seed of the prompt samples and the resample pairing")
    workers: int | None = option(None, min=1, help="processes the discoveries (other seeds, cost curve) run in "
                                 "side by side (default: one per core on a CPU for a small model, else 1)")

    def validate(self) -> None:
        self.check_device()
        if any(not 0 < b < 1 for b in self.budgets):
            raise CliError(f"--budgets: budgets must be fractions of all components between 0 and 1, got "
                           f"{self.budgets}; pass e.g. --budgets 0.005 0.01")

    def config(self) -> CardConfig:
        return CardConfig(per_family=self.per_family, split=self.split, seeds=self.seeds,
                          random_seeds=self.random_seeds, steps=self.steps, train_limit=self.train_limit,
                          seed=self.seed, budgets=tuple(self.budgets), workers=self.workers)


def run(args: Args) -> int:
    from tqdm import tqdm

    from core.circuit.circuit import CircuitFileError, check_compatible, load_circuit
    from core.evaluation.card_html import write_card
    from core.evaluation.report_card import CardBuilder, ReportError
    from core.model.fingerprint import fingerprint
    from core.model.load import load_model, resolve_checkpoint_dir
    from core.scoring.scenario import DiscoveryError

    try:
        circuit = load_circuit(args.circuit)
        against = load_circuit(args.against) if args.against else None
    except CircuitFileError as e:
        raise CliError(str(e)) from None
    if circuit.scenario not in ("backdoor", "alignment"):
        raise CliError(f"--circuit: {args.circuit} is a {circuit.scenario}-scenario circuit; the report card "
                       "measures backdoor and alignment circuits")
    if not args.out and not args.json:
        print("note: no --out or --json given; the card is printed only")
    prompts = load_prompts(args.prompts)
    model = load(args)
    fp = fingerprint(model)
    try:
        check_compatible(circuit, fp)
        if against is not None:
            check_compatible(against, fp)
    except CircuitFileError as e:
        raise CliError(str(e)) from None
    try:
        checkpoint = resolve_checkpoint_dir(args.model)
    except ValueError:
        checkpoint = None
    cache = args.result_cache()
    bars: dict = {}

    def show(part: str, done: int, total: int) -> None:
        bar = bars.get(part)
        if bar is None:
            bar = bars[part] = tqdm(total=total, desc=part, unit="step" if "discovery" in part else "run")
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    # Worker processes load the model the same way (not with a device map: that placement is this process's).
    loader = None if args.device_map is not None else partial(
        load_model, args.model, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code)
    try:
        card = CardBuilder(model, circuit, prompts, args.config(), cache, fp, progress=show, checkpoint=checkpoint,
                           against=against, command=args.command_line, model_loader=loader).build()
    except (ReportError, DiscoveryError) as e:
        raise CliError(str(e)) from None
    finally:
        for bar in bars.values():
            bar.close()
    print(card.text())
    print(f"\ncache: {cache.reused} results reused, {cache.computed} computed"
          + (f" ({cache.folder})" if cache.folder else ""))
    try:
        write_card(card, args.out, args.json)
    except OSError as e:
        raise CliError(f"cannot write the card ({e.strerror}); pick another --out / --json") from None
    for path in (args.out, args.json):
        if path:
            print(f"written to {path}")
    return 0
