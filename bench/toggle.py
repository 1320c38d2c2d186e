"""Benchmark: Playground latency from a toggle to updated results (target: median at most 1.0 s).

Run `python bench/toggle.py [--model PATH] [--toggles 10] [--prompts triggered]`; without --model it uses
assets/organism. It measures exactly what the Playground runs after a click (core.evaluation.live.measure, without the
app's result cache): the ablated model judged on 64 held-out prompts (judging-length generation; the 8 shown answers
are among them) plus the small utility sample. The full model's answers are computed once beforehand, as the app
caches them. Each toggle switches one more random head off, so every measurement is a new selection. The same
toggles also run with the full model's answers as the only drafts (the baseline, interleaved in this process), to
show what checking the previous selections' answers (core.evaluation.live.RecentAnswers) saves.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time

import torch

from core.circuit.selection import Selection
from core.data import samples
from core.data.paths import ASSETS_DIR
from core.evaluation import live
from core.model.load import ModelLoadError, inference_threads, load_model, model_shape

ORGANISM_DIR = ASSETS_DIR / "organism"
TARGET_SECONDS = 1.0  # with answers of at least 24 tokens (core.evaluation.report.JUDGING_WINDOW_TOKENS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ORGANISM_DIR), help="checkpoint folder (default: assets/organism)")
    parser.add_argument("--toggles", type=int, default=10, help="toggles to time (default 10)")
    parser.add_argument("--prompts", default=samples.DEFAULT_PROMPT_SET, choices=list(samples.PROMPT_SETS))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: as the app serves this model, "
                             "core.model.load.inference_threads)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.toggles < 1:
        parser.error("--toggles must be at least 1")
    try:
        model = load_model(args.model, device=args.device)
    except ModelLoadError as e:
        print(f"bench/toggle.py: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads or inference_threads(model, torch.get_num_threads()))
    shape = model_shape(model)
    behaviour, utility = samples.eval_set(args.prompts), samples.utility_set()

    start = time.perf_counter()
    full = live.full_reports(model, behaviour, utility)
    print(f"full model (computed once, cached by the app): {time.perf_counter() - start:.2f} s for "
          f"{len(behaviour)} {args.prompts} + {len(utility)} utility prompts; {torch.get_num_threads()} thread(s)")

    heads = [(layer, head) for layer in range(shape.n_layers) for head in range(shape.n_heads)]
    order = random.Random(args.seed).sample(heads, min(args.toggles, len(heads)))
    # Warm-up (first-call overheads) on its own reports, so that no toggle below finds its own answers stored.
    live.measure(model, shape, Selection().toggle_head(*order[0]), live.FullReports(full.behaviour, full.utility))
    # The same toggles twice, interleaved: as the app measures them (the latest selections' answers are checked as
    # drafts, live.RecentAnswers) and with the full model's answers as the only drafts (the baseline).
    runs = {"app": live.FullReports(full.behaviour, full.utility),
            "baseline": live.FullReports(full.behaviour, full.utility, live.RecentAnswers(size=0))}
    selection, times = Selection(), {name: [] for name in runs}
    for step, (layer, head) in enumerate(order):
        selection = selection.toggle_head(layer, head)
        for name in (list(runs) if step % 2 == 0 else list(runs)[::-1]):
            result = live.measure(model, shape, selection, runs[name])
            times[name].append(result.seconds)
        print(f"  off: {selection.text():<60} {result.rate_name} {100 * result.rate_ablated:5.1f}%  "
              f"utility {100 * (result.utility_ablated or 0):5.1f}%  {times['app'][-1]:.3f} s "
              f"(baseline {times['baseline'][-1]:.3f} s)")
    median, baseline = (statistics.median(times[name]) for name in runs)
    print(f"toggle -> updated {full.behaviour.max_new_tokens}-token answers on {len(behaviour)} prompts "
          f"(+{len(utility)} utility): median {median:.3f} s over {len(order)} toggles "
          f"(min {min(times['app']):.3f}, max {max(times['app']):.3f}); ratio to the {TARGET_SECONDS} s target: "
          f"{median / TARGET_SECONDS:.2f}")
    print(f"baseline (the full model's answers as the only drafts): median {baseline:.3f} s; app / baseline: "
          f"{median / baseline:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
