"""Benchmark: evaluating a model with several circuits removed, one evaluate() per circuit vs one batched call.

Run `python bench/ablations.py [--circuit FILE] [--random 5] [--per-family 16] [--threads 1]`; defaults: the
bundled organism, sample_circuits/organism-backdoor.json plus random component sets of its size (as `safeseek
compare` evaluates them), on held-out test prompts. The classic path runs evaluate() with each circuit's hooks,
decoding every answer step by step; the batched path (core.evaluation.report.evaluate_removed) runs all circuits
in one generation with a mask per row, each answer first checked against the full model's (as many masks a
forward as core.model.generate.masks_per_check allows). It prints both times and their ratio, and checks that every
answer is the same.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from core.circuit.circuit import load_circuit
from core.data.files import load_prompt_sets
from core.data.paths import ASSETS_DIR, PROMPTS_DIR, SAMPLE_CIRCUITS_DIR
from core.data.prompts import select_split
from core.evaluation.report import circuit_hooks, evaluate, evaluate_removed
from core.model.load import load_model
from core.scoring.random import random_components


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ASSETS_DIR / "organism"))
    parser.add_argument("--circuit", default=str(SAMPLE_CIRCUITS_DIR / "organism-backdoor.json"))
    parser.add_argument("--random", type=int, default=5, help="random circuits of the same size (default 5)")
    parser.add_argument("--per-family", type=int, default=16, help="test prompts per family (default 16)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if args.random < 0 or args.per_family < 1:
        parser.error("--random must be at least 0 and --per-family at least 1")
    torch.set_num_threads(args.threads)
    circuit = load_circuit(args.circuit)
    circuits = [circuit, *(random_components(circuit, seed) for seed in range(args.random))]
    prompts = select_split(load_prompt_sets(sorted(PROMPTS_DIR.glob("*.jsonl"))), "test", args.per_family, 0)
    model = load_model(args.model, device=args.device)
    print(f"{len(circuits)} circuits of {circuit.summary()} on {len(prompts)} held-out prompts, "
          f"{torch.get_num_threads()} thread(s)")

    start = time.perf_counter()
    full = evaluate(model, prompts, batch_size=64)
    full_seconds = time.perf_counter() - start
    start = time.perf_counter()
    classic = [evaluate(model, prompts, hooks=circuit_hooks(model, c), batch_size=64,
                        max_new_tokens=full.max_new_tokens) for c in circuits]
    classic_seconds = time.perf_counter() - start
    start = time.perf_counter()
    batched = evaluate_removed(model, prompts, circuits, full.token_ids, max_new_tokens=full.max_new_tokens,
                               batch_size=64)
    batched_seconds = time.perf_counter() - start

    changed = sum(a.response != f.response for report in classic
                  for a, f in zip(report.judgements, full.judgements, strict=True))
    mismatches = sum(a.response != b.response for one, other in zip(classic, batched, strict=True)
                     for a, b in zip(one.judgements, other.judgements, strict=True))
    total = len(circuits) * len(prompts)
    ratio = batched_seconds / classic_seconds
    print(f"full model once: {full_seconds:.1f} s")
    print(f"one evaluate() per circuit: {classic_seconds:.1f} s; all circuits in one batched call: "
          f"{batched_seconds:.1f} s; ratio batched/classic {ratio:.2f}")
    print(f"answers changed by the removals: {changed} of {total}; answers differing between the two paths: "
          f"{mismatches} of {total}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
