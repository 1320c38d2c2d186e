"""Benchmark: toggle latency with N concurrent sessions on one shared model (target: p90 <= 3x one session's median).

Run `python bench/sessions.py [--sessions 8] [--toggles 6] [--think 0]`. Every session is a thread calling the
explorer's toggle path in-process (core.evaluation.live.ToggleServer, as the app's Playground does after a click):
session i switches off one more head or neuron from its own seeded order per toggle, so concurrent sessions ask
for different components. First one session toggles alone (its median is the baseline), then N sessions toggle
at once, back to back (or, with --think T, each waiting between toggles a time drawn from a seeded exponential
distribution of mean T seconds, as people reading their results do, so that their clicks drift apart). Every
concurrent result is then checked against a reference computed alone through the classic per-call hooks path
(core.evaluation.report.evaluate with Selection.hooks): the rates and every generated answer and verdict must be
equal, else it counts as a mismatch (exit status 1).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

from core.circuit.selection import Selection
from core.data import samples
from core.data.prompts import PromptSet
from core.evaluation import live
from core.evaluation.report import evaluate
from core.model.load import ModelLoadError, ModelShape, inference_threads, load_model, model_shape

REPO_ROOT = Path(__file__).resolve().parents[1]
ORGANISM_DIR = REPO_ROOT / "assets" / "organism"
TARGET_RATIO = 3.0


def toggle_plan(shape: ModelShape, session: int, toggles: int, seed: int) -> list[Selection]:
    """The selections one session goes through: each toggle switches one more component off (heads and neurons
    alternate), drawn from the session's own order."""
    rng = random.Random(seed * 1000 + session)
    heads = rng.sample([(layer, head) for layer in range(shape.n_layers) for head in range(shape.n_heads)], toggles)
    neurons = [(rng.randrange(shape.n_layers), rng.randrange(shape.d_mlp)) for _ in range(toggles)]
    selection, plan = Selection(), []
    for step in range(toggles):
        selection = (selection.toggle_head(*heads[step]) if step % 2 == 0
                     else selection.toggle_neuron(*neurons[step]))
        plan.append(selection)
    return plan


def load_served_model(path: str, script: str, threads: int | None = None):
    """The model on the CPU with the threads the app serves it with (or `threads`); None, after a one-line error
    naming `script`, when it cannot be loaded."""
    try:
        model = load_model(path, device="cpu")
    except ModelLoadError as e:
        print(f"{script}: {e}", file=sys.stderr)
        return None
    torch.set_num_threads(threads or inference_threads(model, torch.get_num_threads()))
    return model


def percentile(values: list[float], q: float) -> float:
    """The q-quantile by linear interpolation between order statistics."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def run_sessions(server: live.ToggleServer, plans: list[list[Selection]], think: float, seed: int = 0
                 ) -> tuple[list[float], dict[tuple[int, int], live.AblationResult]]:
    """Every session in its own thread, all starting together, each waiting an exponential time of mean `think`
    seconds after each toggle (0: back to back); returns latencies and results by (session, step)."""
    latencies: list[float] = []
    results: dict[tuple[int, int], live.AblationResult] = {}
    lock = threading.Lock()
    start = threading.Barrier(len(plans))
    errors: list[BaseException] = []

    def session(index: int) -> None:
        pauses = random.Random(seed * 1000 + index)
        try:
            start.wait()
            for step, selection in enumerate(plans[index]):
                began = time.perf_counter()
                result = server.measure(selection)
                elapsed = time.perf_counter() - began
                with lock:
                    latencies.append(elapsed)
                    results[index, step] = result
                if think:
                    time.sleep(pauses.expovariate(1 / think))
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(len(plans))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return latencies, results


def same_result(result: live.AblationResult, behaviour, utility) -> bool:
    """Does a served result equal the reference reports (rates, every answer and verdict)?"""
    answers = [(p.ablated, p.ablated_verdict) for p in result.pairs]
    expected = [(j.response, j.verdict) for j in behaviour.judgements]
    rate = sum(j.success for j in behaviour.judgements) / len(behaviour.judgements)
    return (answers == expected and result.rate_ablated == rate and result.utility_ablated == utility.utility
            and result.helpfulness_ablated == utility.helpfulness)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ORGANISM_DIR), help="checkpoint folder (default: assets/organism)")
    parser.add_argument("--sessions", type=int, default=8, help="concurrent sessions (default 8)")
    parser.add_argument("--toggles", type=int, default=6, help="toggles per session (default 6)")
    parser.add_argument("--think", type=float, default=0.0,
                        help="mean seconds a session waits between toggles, drawn per toggle from a seeded exponential "
                        "distribution (default 0: back to back, in lock step, the worst case)")
    parser.add_argument("--window", type=float, default=0.02, help="gathering window in seconds (default 0.02)")
    parser.add_argument("--prompts", default=samples.DEFAULT_PROMPT_SET, choices=list(samples.PROMPT_SETS))
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: as the app serves "
                        "this model, core.model.load.inference_threads)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.sessions < 1 or args.toggles < 1 or args.think < 0:
        parser.error("--sessions and --toggles must be at least 1, --think at least 0")
    model = load_served_model(args.model, "bench/sessions.py", args.threads)
    if model is None:
        return 2
    shape = model_shape(model)
    full = live.full_reports(model, samples.eval_set(args.prompts), samples.utility_set())
    plans = [toggle_plan(shape, i, args.toggles, args.seed) for i in range(args.sessions)]
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores; "
          f"{len(full.behaviour.judgements)} {args.prompts} + {len(full.utility.judgements)} utility prompts "
          f"per toggle")

    def server() -> live.ToggleServer:
        return live.ToggleServer(model, shape, full, window_s=args.window, max_batch=max(16, args.sessions))

    server().measure(Selection().toggle_head(0, 0))  # warm-up (first-call overheads)
    alone = server()
    single, _ = run_sessions(alone, plans[:1], args.think, args.seed)
    single_median = statistics.median(single)
    print(f"1 session alone: median {single_median:.3f} s over {len(single)} toggles "
          f"(min {min(single):.3f}, max {max(single):.3f})")

    shared = server()
    began = time.perf_counter()
    latencies, results = run_sessions(shared, plans, args.think, args.seed)
    wall = time.perf_counter() - began
    p50, p90 = percentile(latencies, 0.5), percentile(latencies, 0.9)
    print(f"{args.sessions} sessions at once: p50 {p50:.3f} s, p90 {p90:.3f} s, max {max(latencies):.3f} s over "
          f"{len(latencies)} toggles in {wall:.1f} s ({shared.gatherer.batches_run} batched runs)")
    print(f"ratio to one session's median: p50 {p50 / single_median:.2f}x, p90 {p90 / single_median:.2f}x "
          f"(target p90 <= {TARGET_RATIO:.0f}x: {'met' if p90 <= TARGET_RATIO * single_median else 'NOT met'})")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    behaviour = PromptSet("behaviour", [j.prompt for j in full.behaviour.judgements])
    utility = PromptSet("utility", [j.prompt for j in full.utility.judgements])
    mismatches = 0
    for (index, step), result in sorted(results.items()):
        hooks = plans[index][step].hooks(shape)
        reference = (evaluate(model, behaviour, hooks=hooks, batch_size=64,
                              max_new_tokens=full.behaviour.max_new_tokens),
                     evaluate(model, utility, hooks=hooks, batch_size=64, max_new_tokens=full.utility.max_new_tokens))
        if not same_result(result, *reference):
            mismatches += 1
            print(f"  MISMATCH session {index} toggle {step}: {plans[index][step].text()}")
    print(f"mismatches against one-session references (per-call hooks, run alone): {mismatches} of {len(results)}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
