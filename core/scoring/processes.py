"""Several discoveries at once in worker processes: on a multi-core CPU, one model copy and a share of the cores each.

A small model's training step gains far less than twice from a second thread (bench/discoveries.py), so two
one-thread discoveries side by side finish sooner than two two-thread ones in a row. Each worker loads the model
itself (spawned, not forked: torch's thread pools do not survive a fork) and reports its steps through a queue, so
the caller can show progress.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass

import torch

from core.circuit.circuit import Circuit
from core.data.prompts import PromptSet
from core.scoring.learned import DiscoveryConfig, LatestRetainTargets, discover
from core.scoring.scenario import scenario_from_prompts

ModelLoader = Callable[[], object]  # picklable, loads the model: e.g. functools.partial(load_model, path, ...)
JobProgress = Callable[[int, int, int], None]  # (job index, step done, steps)

# Above this many parameters each worker's model copy costs real memory and a step keeps two cores busy anyway.
MAX_PARALLEL_PARAMETERS = 100_000_000


@dataclass
class DiscoveryJob:
    """One `safeseek discover` run: the scenario from the prompt files' train split, then the learned masks."""

    prompts: PromptSet
    scenario: str
    train_limit: int
    config: DiscoveryConfig


def usable_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by the user's OMP_NUM_THREADS (1 means 1). Not by
    torch's current thread count: a server sets that per model (one thread for a tiny one), not per machine."""
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    limit = os.environ.get("OMP_NUM_THREADS", "").strip()
    return max(1, min(allowed, int(limit) if limit.isdigit() and int(limit) > 0 else allowed))


def worker_count(n_jobs: int, device: str, parameters: int, cores: int | None = None) -> int:
    """How many processes to run `n_jobs` discoveries in: 1 on a GPU, for one job, or for a large model; else as
    many as there are usable cores (and jobs)."""
    cores = cores or usable_cores()
    if device != "cpu" or n_jobs < 2 or cores < 2 or parameters > MAX_PARALLEL_PARAMETERS:
        return 1
    return min(cores, n_jobs)


_state: dict = {}


def _start_worker(loader: ModelLoader, threads: int, steps: multiprocessing.Queue) -> None:
    from transformers.utils import logging

    logging.disable_progress_bar()  # the caller shows the progress: one "Loading weights" bar per worker is noise
    torch.set_num_threads(threads)
    _state.update(model=loader(), steps=steps)


def _run(index: int, job: DiscoveryJob) -> Circuit:
    model, steps = _state["model"], _state["steps"]
    # Jobs with one data seed (a sweep over budgets) share their scenario and its retain targets: each costs a
    # generation pass.
    which = (job.prompts.sha256(), job.scenario, job.train_limit, job.config.seed)
    scenarios = _state.setdefault("scenarios", {})
    if which not in scenarios:
        scenarios[which] = scenario_from_prompts(model, job.prompts, job.scenario, job.train_limit, job.config.seed)
    scenario = scenarios[which]
    retain = _state.setdefault("retain", LatestRetainTargets()).get(model, scenario, job.config, which)

    def report(log) -> None:
        if log.step % 10 == 0 or log.step == job.config.steps:  # a queue message per step would cost more than it says
            steps.put((index, log.step, job.config.steps))

    return discover(model, scenario, job.config, progress=report, retain=retain)


def discover_in_processes(loader: ModelLoader, jobs: list[DiscoveryJob], workers: int,
                          progress: JobProgress | None = None) -> list[Circuit]:
    """Run `jobs` in `workers` spawned processes (cores shared evenly), results in the order of `jobs`."""
    context = multiprocessing.get_context("spawn")
    steps = context.Queue()
    threads = max(1, usable_cores() // workers)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_start_worker,
                             initargs=(loader, threads, steps)) as pool:
        futures = [pool.submit(_run, i, job) for i, job in enumerate(jobs)]
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
            _drain(steps, progress, timeout=0.0 if pending else 1.0)  # a result can overtake its last step report
        return [future.result() for future in futures]


def _drain(steps: multiprocessing.Queue, progress: JobProgress | None, timeout: float) -> None:
    """Hand every step report waiting in `steps` to `progress`, waiting up to `timeout` s for each next one."""
    while True:
        try:
            index, step, total = steps.get(timeout=timeout) if timeout else steps.get_nowait()
        except queue.Empty:
            return
        if progress is not None:
            progress(index, step, total)
