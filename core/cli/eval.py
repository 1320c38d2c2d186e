"""`safeseek eval`: generate on prompt sets and judge the answers."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from core.cli.common import DEFAULT_PROMPTS, EstimatedOptions, load, load_prompts, show_estimate
from core.cli.options import CliError, bad, default_of, flag_of, option

# The options that still mean something when the replies come from --generations (no model, no prompt files).
JUDGING_OPTIONS = {"generations", "split", "out", "show", "refusal_phrase", "command_line"}


@dataclass(kw_only=True)
class Args(EstimatedOptions):
    """Generate greedily for every prompt and judge the answers: attack success rate on harmful and triggered
prompts, helpfulness on benign ones, exact match on utility tasks."""

    prompts: list[str] = option(default_factory=lambda: list(DEFAULT_PROMPTS), metavar="FILE",
                                help=".jsonl files or AdvBench-style .csv (default: the organism's prompt sets)")
    limit: int | None = option(None, metavar="N", min=1, help="at most N prompts per (label, category) family")
    seed: int = option(0, min=0, help="seed of the --limit sample")
    split: Literal["train", "val", "test"] | None = option(None, help="only prompts of this split")
    max_new_tokens: int | None = option(None, metavar="N", min=1, help="default: just enough to judge the answers")
    batch_size: int = option(32, metavar="N", min=1, help="prompts per generation batch")
    out: str | None = option(None, metavar="REPORT.json", out="file",
                             help="write the full report (every judgement) as JSON")
    show: int = option(0, metavar="K", min=0, help="print K example generations per family")
    refusal_phrase: list[str] | None = option(None, metavar="TEXT", help="phrases that mark a refusal; replace the "
                                              "default GCG list, e.g. for models that refuse with \"I can't help\"")
    generations: str | None = option(None, metavar="FILE.jsonl", help="judge replies generated elsewhere instead "
                                     "(no model is loaded): one prompt record plus \"response\" a line; replaces "
                                     "--model and --prompts")

    def validate(self) -> None:
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


def run(args: Args) -> int:
    from tqdm import tqdm

    from core.evaluation.judges import Judge, RefusalJudge
    from core.evaluation.report import evaluate, judging_length
    from core.model.estimate import estimate_generation
    from core.model.fingerprint import fingerprint

    judge = Judge(RefusalJudge(args.refusal_phrase)) if args.refusal_phrase else Judge()
    if args.generations:
        return _judge_generations(args, judge)
    prompts = load_prompts(args.prompts)
    if args.split:
        prompts = prompts.filter(split=args.split)
        if not len(prompts):
            raise bad("--split", f"no prompt has split {args.split!r} in {', '.join(args.prompts)}",
                      "drop --split or add 'split' fields")
    if args.limit:
        prompts = prompts.sample_per_family(args.limit, seed=args.seed)
    model = load(args)
    estimate = estimate_generation(model, "eval", [p.prompt for p in prompts], args.batch_size,
                                   args.max_new_tokens or judging_length(model.tokenizer, prompts))
    show_estimate(estimate, "--batch-size, --limit, --device-map/--max-memory or --dtype", args.dry_run)
    if args.dry_run:
        return 0
    with tqdm(total=len(prompts), desc="generating", unit="prompt") as bar:
        try:
            report = evaluate(model, prompts, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                              judge=judge, progress=lambda done, total: bar.update(done - bar.n),
                              model_name=str(args.model), fingerprint=fingerprint(model))
        except ValueError as e:  # e.g. a prompt longer than the model's context
            raise CliError(str(e)) from None
    _print_report(report, args)
    return 0


def _print_report(report, args: Args) -> None:
    print(report.table())
    print(report.summary())
    if args.show:
        print(report.examples(args.show))
    if args.out:
        report.save(args.out)
        print(f"report written to {args.out}")


def _judge_generations(args: Args, judge) -> int:
    from core.data.files import PromptFileError, load_generations
    from core.evaluation.report import judge_responses

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
    _print_report(judge_responses(prompts, responses, judge, model_name=str(args.generations)), args)
    return 0
