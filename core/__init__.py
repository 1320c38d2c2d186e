"""SafeSeek core, in layers that import only upwards: model, data, circuit, scoring, evaluation, tuning, organism, cli.

Read top-down: core.model (the frozen bridge, hooks, generation), core.data (prompts and files), core.circuit (what a
set of components is), core.scoring (finding one), core.evaluation (judging and measuring), core.tuning (editing the
weights of one), core.organism (the bundled test model) and core.cli (the `safeseek` command). Nothing here imports
streamlit.
"""

import os

# Torch runs CPU kernels in OpenMP thread teams. libgomp lets a member that waits for the others spin 300,000 rounds
# before it sleeps; when another process holds one of the cores (a background organism build, a second command)
# the spinning member burns the core its late teammate needs, and a discovery step or a toggle runs many times
# slower. A short spin keeps the idle speed and bounds that (bench/contention.py, README "Sharing the cores").
# libgomp reads it when torch loads, so it is set here, before any core module imports torch; a value the user set
# (or OMP_WAIT_POLICY) wins.
OPENMP_SPIN_COUNT = 10_000
if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = str(OPENMP_SPIN_COUNT)
