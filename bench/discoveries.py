"""Several discoveries as the report card runs them (side by side in worker processes, the retain term's full-model
side computed once) against the way they ran before (one after another in this process, the full model rerun at
every step).

Three timings in one process, on the organism's backdoor scenario: (a) `--jobs` discoveries in a row with the full
model's retain distributions recomputed per step (the former loop, forced by setting the in-memory budget for them
to zero), (b) the same in a row with them computed once (today's loop), (c) the same jobs in worker processes
(core.scoring.processes, one per core). It checks that every way finds the same circuits and prints the ratios.

    python bench/discoveries.py [--jobs 2] [--steps 300] [--threads 2]   # three rounds of discoveries: tens of minutes
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import torch

import core.scoring.learned as learned
from core.data.files import load_prompt_sets
from core.data.paths import BUNDLED_PROMPT_FILES, ORGANISM_DIR
from core.model.load import load_model
from core.scoring.learned import DiscoveryConfig, discover
from core.scoring.processes import DiscoveryJob, discover_in_processes, worker_count
from core.scoring.scenario import scenario_from_prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ORGANISM_DIR))
    parser.add_argument("--jobs", type=int, default=2, help="discoveries (seeds 1, 2, ...)")
    parser.add_argument("--steps", type=int, default=300, help="the sample circuits' (with far fewer, setup dominates)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = load_model(args.model, device="cpu")
    prompts = load_prompt_sets([str(p) for p in BUNDLED_PROMPT_FILES])
    configs = [DiscoveryConfig(steps=args.steps, head_budget=0.0625, neuron_budget=0.0052, seed=s)
               for s in range(1, args.jobs + 1)]

    def in_a_row() -> list:
        return [discover(model, scenario_from_prompts(model, prompts, "backdoor", 48, c.seed), c) for c in configs]

    timings, found = {}, {}
    budget = learned.TEACHER_BYTES
    learned.TEACHER_BYTES = 0
    t0 = time.perf_counter()
    found["before"] = in_a_row()
    timings["before"] = time.perf_counter() - t0
    learned.TEACHER_BYTES = budget
    t0 = time.perf_counter()
    found["once"] = in_a_row()
    timings["once"] = time.perf_counter() - t0
    workers = worker_count(len(configs), "cpu", sum(p.numel() for p in model.original_model.parameters()))
    t0 = time.perf_counter()
    found["workers"] = discover_in_processes(partial(load_model, args.model, device="cpu"),
                                             [DiscoveryJob(prompts, "backdoor", 48, c) for c in configs], workers)
    timings["workers"] = time.perf_counter() - t0

    same = {name: [(c.heads, c.neurons) for c in circuits] == [(c.heads, c.neurons) for c in found["before"]]
            for name, circuits in found.items()}
    print(f"{args.jobs} backdoor discoveries of {args.steps} steps, {args.threads} threads in this process")
    print(f"(a) in a row, full model rerun every step:      {timings['before']:7.1f} s")
    print(f"(b) in a row, full model's retain side once:    {timings['once']:7.1f} s  ratio (b)/(a) "
          f"{timings['once'] / timings['before']:.2f}")
    print(f"(c) side by side in {workers} worker processes:    {timings['workers']:7.1f} s  ratio (c)/(a) "
          f"{timings['workers'] / timings['before']:.2f}")
    print("same circuits as (a): " + ", ".join(f"({k}) {v}" for k, v in zip("abc", same.values(), strict=True)))


if __name__ == "__main__":
    main()
