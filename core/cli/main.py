"""The `safeseek` entry point: picks the command, parses its options into its dataclass, runs it."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

from core.cli.options import CliError, parse


@dataclass(frozen=True)
class Command:
    name: str
    module: str  # defines `Args` (a dataclass of options; its docstring is the --help description) and `run(args)`
    summary: str  # one line in `safeseek --help`; kept here so listing the commands imports no torch


COMMANDS = [
    Command("train-organism", "core.cli.train_organism", "train the bundled model organism from its synthetic corpus"),
    Command("eval", "core.cli.eval", "generate on prompt sets and report ASR, helpfulness and utility"),
    Command("discover", "core.cli.discover", "learn a safety circuit (head and neuron masks) and verify it"),
    Command("compare", "core.cli.compare", "learned circuit vs random / attribution / magnitude baselines"),
    Command("tune", "core.cli.tune", "fine-tune only a circuit's weights (or all but them) and report before/after"),
    Command("report", "core.cli.report", "a circuit's report card: necessity, sufficiency, stability, cost curve"),
    Command("export", "core.cli.export", "write an HF checkpoint with a circuit's zero ablation baked into it"),
]


def usage() -> str:
    width = max(len(c.name) for c in COMMANDS)
    lines = [f"  {c.name:<{width}}  {c.summary}" for c in COMMANDS]
    return ("usage: safeseek COMMAND [options]   (safeseek COMMAND --help lists its options)\n\n"
            "SafeSeek Explorer: find, see and edit the safety circuits of language models.\n\ncommands:\n"
            + "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    commands = {c.name: c for c in COMMANDS}
    if argv[0] not in commands:
        print(f"safeseek: error: unknown command {argv[0]!r}; use one of {', '.join(commands)}", file=sys.stderr)
        return 2
    command = commands[argv[0]]
    prog = f"safeseek {command.name}"
    module = importlib.import_module(command.module)
    try:
        try:
            args = parse(module.Args, argv[1:], prog, module.Args.__doc__)
        except SystemExit as e:  # --help printed
            return int(e.code or 0)
        args.command_line = " ".join(["safeseek", *argv])  # recorded in what a command writes, to reproduce it
        return module.run(args) or 0
    except CliError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
