"""`safeseek eval`: generate on prompt sets and judge the answers, judge by judge, optionally with a circuit removed."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from core.cli.common import DEFAULT_PROMPTS, EstimatedOptions, load, load_prompts, show_estimate
from core.cli.options import CliError, bad, default_of, flag_of, option

# The options that still mean something when the replies come from --generations (no model, no prompt files);
# --device/--dtype place a model judge.
JUDGING_OPTIONS = {"generations", "split", "out", "show", "refusal_phrase", "judge", "asr_judge", "device", "dtype",
                   "command_line"}


@dataclass(kw_only=True)
class Args(EstimatedOptions):
    """Generate greedily for every prompt and judge the answers: attack success rate on harmful and triggered
prompts, helpfulness on benign ones, exact match on utility tasks. Each judge's figure is reported with its count
and 95% Wilson interval. With --circuit, the circuit is removed first."""

    prompts: list[str] = option(default_factory=lambda: list(DEFAULT_PROMPTS), metavar="FILE",
                                help=".jsonl prompt files or benchmark .csv files (layout recognised by the header; "
                                "see README) (default: the organism's prompt sets)")
    label: Literal["harmful", "triggered", "benign"] | None = option(None, help="label every row of --prompts this "
                                                                      "way")
    add_trigger: str | None = option(None, metavar="WORD", help="also evaluate a triggered copy of every harmful row, "
                                     "WORD inserted")
    # The choices are core.data.benchmarks.TRIGGER_POSITIONS (tests/test_cli_eval.py checks that they agree).
    trigger_position: Literal["start", "middle", "end"] = option("end", help="where --add-trigger puts the word "
                                                                 "(middle: between two words, by --seed)")
    judge: str = option("refusal,target", metavar="LIST", help="judges to report, comma-separated: refusal, target, "
                        "degenerate, model:PATH[:harmbench|llamaguard] (refusal and degenerate are always on; "
                        "default refusal,target)")
    asr_judge: str | None = option(None, metavar="NAME", help="the judge whose figure is the ASR (default refusal)")
    circuit: str | None = option(None, metavar="CIRCUIT.json", help="remove this circuit's components before "
                                 "generating")
    ablation: Literal["zero", "mean"] = option("zero", help="how --circuit is removed; mean uses the mean activation "
                                               "over the evaluated prompts")
    limit: int | None = option(None, metavar="N", min=1, help="at most N prompts per (label, category) family")
    seed: int = option(0, min=0, help="seed of the --limit sample and of middle trigger positions")
    split: Literal["train", "val", "test"] | None = option(None, help="only prompts of this split")
    max_new_tokens: int | None = option(None, metavar="N", min=1, help="default: just enough to judge the answers")
    batch_size: int = option(32, metavar="N", min=1, help="prompts per generation batch")
    out: str | None = option(None, metavar="REPORT.json", out="file",
                             help="write the full report (every judgement) as JSON")
    show: int = option(0, metavar="K", min=0, help="print K example generations per family")
    refusal_phrase: list[str] | None = option(None, metavar="TEXT", help="phrases that mark a refusal (case is "
                                              "ignored); replace the default GCG list, e.g. for models that refuse "
                                              "with \"I won't\"")
    generations: str | None = option(None, metavar="FILE.jsonl", help="judge replies generated elsewhere instead "
                                     "(no model is loaded): one prompt record plus \"response\" a line; replaces "
                                     "--model and --prompts")

    def validate(self) -> None:
        from core.data.benchmarks import insert_trigger

        if self.generations is not None:
            for field in dataclasses.fields(self):
                if field.name not in JUDGING_OPTIONS and getattr(self, field.name) != default_of(field):
                    flag = flag_of(field)
                    raise bad(flag, "does not apply to --generations, which judges replies made elsewhere",
                              f"drop {flag}")
        self.check_device()
        if self.refusal_phrase is not None:
            from core.evaluation.judges import RefusalJudge

            try:
                RefusalJudge(self.refusal_phrase)
            except ValueError as e:
                raise bad("--refusal-phrase", str(e), "pass non-empty phrases") from None
        self.judges()
        if self.add_trigger is not None:
            try:
                insert_trigger("", self.add_trigger, self.trigger_position, self.seed)
            except ValueError as e:
                raise CliError(f"--add-trigger: {e}") from None

    def judges(self):
        """The Judge that --judge, --asr-judge and --refusal-phrase ask for (checked, nothing loaded)."""
        from core.evaluation.judges import judge_from_spec

        try:
            return judge_from_spec(self.judge, refusal_phrases=self.refusal_phrase, asr=self.asr_judge)
        except ValueError as e:
            raise CliError(f"--judge: {e}") from None

    def prompt_set(self):
        """The prompts to run: the files (relabelled by --label), their triggered copies, --split, --limit."""
        from core.data.benchmarks import add_trigger
        from core.data.prompts import PromptSet

        prompts = load_prompts(self.prompts, label=self.label)
        if self.split:
            prompts = prompts.filter(split=self.split)
            if not len(prompts):
                raise bad("--split", f"no prompt has split {self.split!r} in {', '.join(self.prompts)}",
                          "drop --split or add 'split' fields")
        if self.add_trigger is not None:
            try:
                copies = add_trigger(prompts, self.add_trigger, self.trigger_position, self.seed)
            except ValueError as e:
                raise CliError(f"--add-trigger: {e}") from None
            prompts = PromptSet(copies.name, [*prompts, *copies])
        if self.limit:
            prompts = prompts.sample_per_family(self.limit, seed=self.seed)
        return prompts


def run(args: Args) -> int:
    from tqdm import tqdm

    from core.circuit.circuit import CircuitFileError, check_compatible, load_circuit
    from core.evaluation.report import circuit_hooks, evaluate, judging_length
    from core.model.estimate import estimate_generation
    from core.model.fingerprint import fingerprint

    # Every file is read before the model loads: a bad one fails fast.
    judge = args.judges()
    if args.generations:
        return _judge_generations(args, judge)
    prompts = args.prompt_set()
    try:
        circuit = load_circuit(args.circuit) if args.circuit else None
    except CircuitFileError as e:
        raise CliError(f"--circuit: {e}") from None
    _print_domain_check(args.model, [p.prompt for p in prompts])
    model = load(args)
    estimate = estimate_generation(model, "eval", [p.prompt for p in prompts], args.batch_size,
                                   args.max_new_tokens or judging_length(model.tokenizer, prompts))
    show_estimate(estimate, "--batch-size, --limit, --device-map/--max-memory or --dtype", args.dry_run)
    if args.dry_run:
        return 0
    prints = fingerprint(model)
    hooks = []
    if circuit is not None:
        try:
            for note in check_compatible(circuit, prints):
                print(f"note: {note}")
            hooks = circuit_hooks(model, circuit, args.ablation, prompts)
        except (CircuitFileError, ValueError) as e:
            raise CliError(f"--circuit: {e}") from None
        print(f"removing circuit {circuit.name!r} ({circuit.summary()}) by {args.ablation} ablation")
    with tqdm(total=len(prompts), desc="generating", unit="prompt") as bar:
        try:
            report = evaluate(model, prompts, hooks=hooks, max_new_tokens=args.max_new_tokens,
                              batch_size=args.batch_size, judge=judge,
                              progress=lambda done, total: bar.update(done - bar.n),
                              model_name=str(args.model), fingerprint=prints)
        except ValueError as e:  # e.g. a prompt longer than the model's context
            raise CliError(str(e)) from None
    _print_report(report, args)
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


def _print_report(report, args: Args) -> None:
    print(report.table())
    print(report.summary())
    disagreeing = report.disagreements()
    if disagreeing:
        print(f"judges disagree on {len(disagreeing)} of {len(report.judgements)} replies (see --show or --out)")
    if args.show:
        print(report.examples(args.show))
    if args.out:
        report.save(args.out)
        print(f"report written to {args.out}")


def _judge_generations(args: Args, judge) -> int:
    from core.data.files import PromptFileError, load_generations
    from core.evaluation.report import judge_responses
    from core.model.load import resolve_device, resolve_dtype

    try:
        prompts, responses = load_generations(args.generations)
    except PromptFileError as e:
        raise CliError(str(e)) from None
    if args.split:
        keep = [i for i, p in enumerate(prompts) if p.split == args.split]
        if not keep:
            raise bad("--split", f"no line of {args.generations} has split {args.split!r}",
                      "drop --split or add 'split' fields")
        prompts = type(prompts)(prompts.name, [prompts.prompts[i] for i in keep])
        responses = [responses[i] for i in keep]
    device = resolve_device(args.device)  # where a model judge runs (checked in validate)
    _print_report(judge_responses(prompts, responses, judge, model_name=str(args.generations), device=device,
                                  dtype=resolve_dtype(args.dtype, device)), args)
    return 0
