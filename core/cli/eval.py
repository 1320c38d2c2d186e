"""`safeseek eval`: generate on prompt sets and judge the answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.cli.common import DEFAULT_PROMPTS, ModelOptions, load, load_prompts
from core.cli.options import CliError, bad, option


@dataclass(kw_only=True)
class Args(ModelOptions):
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

    def validate(self) -> None:
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
    from core.evaluation.report import evaluate
    from core.model.fingerprint import fingerprint

    judge = Judge(RefusalJudge(args.refusal_phrase)) if args.refusal_phrase else Judge()
    prompts = load_prompts(args.prompts)
    if args.split:
        prompts = prompts.filter(split=args.split)
        if not len(prompts):
            raise bad("--split", f"no prompt has split {args.split!r} in {', '.join(args.prompts)}",
                      "drop --split or add 'split' fields")
    if args.limit:
        prompts = prompts.sample_per_family(args.limit, seed=args.seed)
    model = load(args)
    with tqdm(total=len(prompts), desc="generating", unit="prompt") as bar:
        try:
            report = evaluate(model, prompts, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                              judge=judge, progress=lambda done, total: bar.update(done - bar.n),
                              model_name=str(args.model), fingerprint=fingerprint(model))
        except ValueError as e:  # e.g. a prompt longer than the model's context
            raise CliError(str(e)) from None
    print(report.table())
    print(report.summary())
    if args.show:
        print(report.examples(args.show))
    if args.out:
        report.save(args.out)
        print(f"report written to {args.out}")
    return 0
