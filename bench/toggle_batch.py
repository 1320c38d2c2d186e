"""Benchmark: how many prompts a toggle's generation batch should hold (core.evaluation.live.BATCH_SIZE).

Run `python bench/toggle_batch.py [--sizes 16 32 64] [--rounds 3]`. A toggle's answers are checked against drafts in
one forward per batch of prompts, left-padded to the longest prompt plus draft in the batch
(core.model.generate.generate_ids_per_mask): bigger batches pay for more padding, smaller ones for more forwards.
For each size it times core.evaluation.live.measure_many on one session's selection and on eight sessions'
selections at once (bench/sessions.py's plans), the sizes interleaved in this process, and prints each size's
median, padded tokens, and ratio to the largest size. Every size must give the same answers (checked).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from sessions import ORGANISM_DIR, load_served_model, toggle_plan

from core.data import samples
from core.evaluation import live
from core.model.generate import encode_prompts
from core.model.load import model_shape


def padded_tokens(lengths: list[int], batch_size: int) -> int:
    """Tokens a check forwards when rows sorted by length are cut into batches of batch_size (padding included)."""
    ordered = sorted(lengths)
    return sum(len(chunk) * max(chunk) for chunk in (ordered[i:i + batch_size]
                                                     for i in range(0, len(ordered), batch_size)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ORGANISM_DIR), help="checkpoint folder (default: assets/organism)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64], help="batch sizes to compare")
    parser.add_argument("--sessions", type=int, default=8, help="selections measured together (default 8)")
    parser.add_argument("--rounds", type=int, default=3, help="toggles timed per size and case (default 3)")
    parser.add_argument("--prompts", default=samples.DEFAULT_PROMPT_SET, choices=list(samples.PROMPT_SETS))
    args = parser.parse_args(argv)
    if min(args.sizes) < 1 or args.sessions < 1 or args.rounds < 1:
        parser.error("--sizes, --sessions and --rounds must be at least 1")
    model = load_served_model(args.model, "bench/toggle_batch.py")
    if model is None:
        return 2
    shape = model_shape(model)
    full = live.full_reports(model, samples.eval_set(args.prompts), samples.utility_set())
    judgements = full.behaviour.judgements + full.utility.judgements
    lengths = [len(ids) + len(answer) for ids, answer in
               zip(encode_prompts(model.tokenizer, [j.prompt.prompt for j in judgements]),
                   full.behaviour.token_ids + full.utility.token_ids, strict=True)]
    plans = [toggle_plan(shape, session, args.rounds + 1, seed=0) for session in range(args.sessions)]
    live.measure_many(model, shape, [plans[0][0]], full)  # warm-up (first-call overheads)

    cases = {"1 session": 1, f"{args.sessions} sessions": args.sessions}
    times = {(case, size): [] for case in cases for size in args.sizes}
    mismatches = 0
    for step in range(1, args.rounds + 1):
        for case, n in cases.items():
            selections = [plan[step] for plan in plans[:n]]
            answers = None
            for size in (args.sizes if step % 2 else args.sizes[::-1]):
                # Each size measures against drafts of the same age: no size finds answers another size stored.
                reports = live.FullReports(full.behaviour, full.utility)
                began = time.perf_counter()
                results = live.measure_many(model, shape, selections, reports, batch_size=size)
                times[case, size].append(time.perf_counter() - began)
                got = [[pair.ablated for pair in result.pairs] for result in results]
                mismatches += answers is not None and got != answers
                answers = answers or got
    largest = max(args.sizes)
    print(f"{len(lengths)} prompts per toggle, {sum(lengths)} tokens of prompt plus draft; "
          f"{torch.get_num_threads()} thread(s)")
    for case in cases:
        base = statistics.median(times[case, largest])
        for size in args.sizes:
            median = statistics.median(times[case, size])
            print(f"{case}, batches of {size:>3}: median {median:.3f} s ({padded_tokens(lengths, size)} tokens "
                  f"forwarded), ratio to {largest}: {median / base:.2f}")
    one, many = cases
    print("many sessions / one, per size: " + ", ".join(
        f"{size}: {statistics.median(times[many, size]) / statistics.median(times[one, size]):.1f}x"
        for size in args.sizes))
    print(f"answers different between sizes: {mismatches}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
