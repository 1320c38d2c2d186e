"""SafeSeek core, in layers that import only upwards: model, data, circuit, scoring, evaluation, tuning, organism, cli.

Read top-down: core.model (the frozen bridge, hooks, generation), core.data (prompts and files), core.circuit (what a
set of components is), core.scoring (finding one), core.evaluation (judging and measuring), core.tuning (editing the
weights of one), core.organism (the bundled test model) and core.cli (the `safeseek` command). Nothing here imports
streamlit.
"""
