"""Benchmark: discovery steps and toggles while another process computes on the same cores (a background
`safeseek train-organism`, a second command), under three OpenMP wait settings.

Run `python bench/contention.py [--toggles 3] [--steps 6] [--rounds 1]`. Torch's CPU kernels run in OpenMP thread
teams. By default libgomp lets a team member that waits for the others spin 300,000 rounds before it sleeps; when
another process holds one of the cores, the member it displaced is late to every barrier and the spinning one burns
the core it needs. The settings: libgomp's default; core's (GOMP_SPINCOUNT=core.OPENMP_SPIN_COUNT, which `safeseek`
and the explorer set unless the user set one); OMP_WAIT_POLICY=PASSIVE (sleep at once). libgomp reads them when
torch loads, so each measurement runs in a child process started with the setting in its environment: it times
discovery steps (core.scoring.learned.discover on the backdoor scenario) and toggles (core.evaluation.live.measure,
as bench/toggle.py) alone, then again while a competitor process runs one thread of matrix products (as the
organism's one-thread build does). The parent alternates the settings for --rounds rounds and prints the medians:
how much slower the competitor makes each, under each setting.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPETITOR = ("import torch; torch.set_num_threads(1); a = torch.randn(384, 384)\n"
              "while True: a = torch.tanh(a @ a)")


def settings() -> dict[str, dict[str, str]]:
    """Name -> the OpenMP variables a child starts with (all others removed)."""
    from core import OPENMP_SPIN_COUNT  # core's __init__ imports no torch

    return {"libgomp default": {}, f"core (spin {OPENMP_SPIN_COUNT})": {"GOMP_SPINCOUNT": str(OPENMP_SPIN_COUNT)},
            "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"}}


class _Stop(Exception):
    """Raised from the discovery's progress callback to end it."""


def child(toggles: int, steps: int, seed: int) -> dict:
    """Discovery steps and toggles in this process, alone and beside a competitor process."""
    import torch  # before core, which would otherwise set its spin count: the environment decides here

    from core.circuit.selection import Selection
    from core.data import samples
    from core.data.files import load_prompt_sets
    from core.data.paths import BUNDLED_PROMPT_FILES, ORGANISM_DIR
    from core.evaluation import live
    from core.model.load import inference_threads, load_model, model_shape
    from core.scoring.learned import DiscoveryConfig, discover, retain_targets
    from core.scoring.scenario import scenario_from_prompts

    model = load_model(ORGANISM_DIR, device="cpu")
    torch.set_num_threads(inference_threads(model, torch.get_num_threads()))  # as the app serves it
    shape = model_shape(model)
    full = live.full_reports(model, samples.eval_set(samples.DEFAULT_PROMPT_SET), samples.utility_set())
    heads = [(layer, head) for layer in range(shape.n_layers) for head in range(shape.n_heads)]
    order = iter(random.Random(seed).sample(heads, 2 * toggles + 1))
    scenario = scenario_from_prompts(model, load_prompt_sets(BUNDLED_PROMPT_FILES), "backdoor", seed=seed)
    config = DiscoveryConfig(head_budget=0.0625, neuron_budget=0.0052, steps=100_000, seed=seed)
    retain = retain_targets(model, scenario, config)  # a generation pass: once, not per timed run
    selection = Selection()

    def toggle() -> float:
        nonlocal selection
        selection = selection.toggle_head(*next(order))
        return live.measure(model, shape, selection, live.FullReports(full.behaviour, full.utility)).seconds

    def seconds_per_step() -> float:
        stamps: list[float] = []

        def progress(log) -> None:
            stamps.append(time.perf_counter())
            if len(stamps) > steps + 2:
                raise _Stop

        try:
            discover(model, scenario, config, progress=progress, retain=retain)
        except _Stop:
            pass
        return statistics.median(b - a for a, b in zip(stamps[2:], stamps[3:], strict=False))

    toggle()  # warm-up
    result = {"threads": torch.get_num_threads(),
              "step_alone": seconds_per_step(), "toggle_alone": statistics.median(toggle() for _ in range(toggles))}
    competitor = subprocess.Popen([sys.executable, "-c", COMPETITOR])
    try:
        time.sleep(1.0)
        result["step_beside"] = seconds_per_step()
        result["toggle_beside"] = statistics.median(toggle() for _ in range(toggles))
    finally:
        competitor.kill()
        competitor.wait()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toggles", type=int, default=3, help="toggles timed alone and beside the competitor")
    parser.add_argument("--steps", type=int, default=6, help="discovery steps timed alone and beside it")
    parser.add_argument("--rounds", type=int, default=1, help="child processes per setting, alternating")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.toggles < 1 or args.steps < 2 or args.rounds < 1:
        parser.error("--toggles must be at least 1, --steps at least 2 and --rounds at least 1")
    if args.child:
        print(json.dumps(child(args.toggles, args.steps, args.seed)))
        return 0
    variables = settings()
    results: dict[str, list[dict]] = {name: [] for name in variables}
    for round_ in range(args.rounds):
        for name in (list(variables) if round_ % 2 == 0 else list(variables)[::-1]):
            env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
            env.update(variables[name])
            command = [sys.executable, str(Path(__file__).resolve()), "--child", "--toggles", str(args.toggles),
                       "--steps", str(args.steps), "--seed", str(args.seed)]
            done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO_ROOT)
            if done.returncode != 0:
                print(f"bench/contention.py: the {name} child failed:\n{done.stderr[-2000:]}", file=sys.stderr)
                return 1
            results[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"  round {round_ + 1} {name:<18} " + ", ".join(
                f"{key} {value:.3f}" for key, value in results[name][-1].items() if isinstance(value, float)))
    keys = ("step_alone", "step_beside", "toggle_alone", "toggle_beside")
    medians = {name: {key: statistics.median(r[key] for r in runs) for key in keys}
               for name, runs in results.items()}
    threads = results["PASSIVE"][0]["threads"]
    print(f"medians over {args.rounds} round(s), {threads} torch thread(s); beside = with a one-thread competitor")
    print(f"{'setting':<18} {'step alone':>11} {'step beside':>12} {'slower':>7} {'toggle alone':>13} "
          f"{'toggle beside':>14} {'slower':>7}")
    for name, m in medians.items():
        print(f"{name:<18} {m['step_alone']:>10.3f}s {m['step_beside']:>11.3f}s "
              f"{m['step_beside'] / m['step_alone']:>6.2f}x {m['toggle_alone']:>12.3f}s "
              f"{m['toggle_beside']:>13.3f}s {m['toggle_beside'] / m['toggle_alone']:>6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
