"""Rerun the commands recorded in the sample circuits (discover, compare, report) into a folder, and rewrite
sample_circuits/README.md's figures from what they print; --check says whether the circuits found are the shipped ones.

Run `python bench/sample_circuits.py --out DIR [--only NAME ...] [--steps discover compare report readme]
[--check]` from anywhere. Each shipped circuit `sample_circuits/NAME.json` records the `safeseek discover` command
that made it and its comparison `NAME.compare.json` the `safeseek compare` command; the report card is made as
sample_circuits/README.md gives it (`safeseek report --circuit NAME.json --json NAME.card.json`). Every path the
commands name under sample_circuits/ moves to DIR, so `--out sample_circuits` regenerates the shipped files in place
(after a new organism) and any other folder leaves them untouched. What each command prints also goes to
NAME.STEP.txt in DIR (or in the folder --logs names: keep sample_circuits/ free of them when regenerating in place).
The readme step (last) writes DIR/README.md: sample_circuits/README.md with each circuit's printed figures (summary,
verification table, comparison, report card) replaced by those logs; the prose around them is left for a person to
read against the new figures. `--steps readme` alone rewrites it from the logs a previous run left. With --check,
each circuit found is compared with the shipped one (same heads and neurons): exit status 1 when one differs, the
check that the organism and discovery reproduce on this machine.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from core.circuit.circuit import CircuitFileError, load_circuit
from core.data.files import write_text_atomic
from core.data.paths import REPO_ROOT, SAMPLE_CIRCUITS_DIR

STEPS = ("discover", "compare", "report", "readme")
COMMAND_STEPS = STEPS[:3]


def shipped_names() -> list[str]:
    """The sample circuits, by file stem (NAME.json holds a circuit; NAME.compare.json and NAME.card.json do not)."""
    return sorted(p.stem for p in SAMPLE_CIRCUITS_DIR.glob("*.json") if p.suffixes == [".json"])


def recorded_command(name: str, step: str) -> list[str]:
    """The `safeseek` arguments that made NAME's file for `step`, as the shipped files record them."""
    if step == "report":
        return ["report", "--circuit", f"sample_circuits/{name}.json", "--json", f"sample_circuits/{name}.card.json"]
    path = SAMPLE_CIRCUITS_DIR / (f"{name}.json" if step == "discover" else f"{name}.compare.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    command = data.get("hyperparameters", {}).get("command") if step == "discover" else data["meta"].get("command")
    if not command:
        raise ValueError(f"{path.relative_to(REPO_ROOT)} records no command; it cannot be regenerated from it")
    words = shlex.split(command)
    if words[:2] != ["safeseek", step]:
        raise ValueError(f"{path.relative_to(REPO_ROOT)} records {command!r}, not a `safeseek {step}` command")
    return words[1:]


def moved(argv: list[str], out: str) -> list[str]:
    """`argv` with every path under sample_circuits/ moved to the folder `out`."""
    prefix = "sample_circuits/"
    return [f"{out.rstrip('/')}/{word[len(prefix):]}" if word.startswith(prefix) else word for word in argv]


def run_logged(argv: list[str], log: Path) -> int:
    """Run `safeseek argv` from the repository root, echoing its output and writing it to `log` (progress bars, on
    stderr, only to the terminal)."""
    print(f"$ safeseek {shlex.join(argv)}", flush=True)
    with subprocess.Popen([sys.executable, "-m", "core.cli", *argv], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                          text=True) as process, open(log, "w", encoding="utf-8") as file:
        for line in process.stdout:
            print(line, end="", flush=True)
            file.write(line)
    return process.returncode


def markdown_table(lines: list[str], corner: str) -> list[str]:
    """A text table as discover prints it (columns two or more spaces apart, first header cell empty) as markdown."""
    rows = [re.split(r" {2,}", line.strip()) for line in lines]
    header = [corner, *rows[0]]
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows[1:])]


def printed_figures(name: str, logs: Path) -> list[str]:
    """The README part of circuit `name` below its commands, from the logs of its three commands."""
    discover = (logs / f"{name}.discover.txt").read_text(encoding="utf-8").splitlines()
    compare = (logs / f"{name}.compare.txt").read_text(encoding="utf-8").splitlines()
    report = (logs / f"{name}.report.txt").read_text(encoding="utf-8").splitlines()
    summary = next(i for i, line in enumerate(discover) if line.startswith("circuit: "))
    retention = next(i for i, line in enumerate(discover) if line.startswith("utility retention: "))
    table_start = max(i for i, line in enumerate(compare) if not line.strip())  # compare's table follows a blank line
    card_start = next(i for i, line in enumerate(report) if re.match(r"1\. ", line))
    card_end = next(i for i, line in enumerate(report) if line.startswith("cache: "))
    # Left out of the card: blank lines, the seeds' Jaccard matrix and the per-layer rows.
    card = [line for line in report[card_start:card_end] if line.strip() and not re.match(r"   layer \d+: ", line)
            and not re.fullmatch(r"\s+(-|\d\.\d\d)(\s+(-|\d\.\d\d))*\s+seed \d+", line)]
    report_command = " ".join(recorded_command(name, "report"))
    return [discover[summary].removeprefix("circuit: "), "", "Verification (printed by discover):", "",
            *markdown_table(discover[summary + 1:retention], "val split"), "", discover[retention], "",
            "Comparison on the held-out test split (printed by compare):", "", "```",
            *[line for line in compare[table_start + 1:] if line.strip()], "```", "",
            f"Report card (printed by `safeseek {report_command}`; the per-layer lines are left out here):", "", "```",
            *card, "```", ""]


def rewritten_readme(readme: str, logs: Path, names: list[str]) -> str:
    """`readme` with the printed figures of each circuit in `names` replaced by those in `logs`: a circuit's section
    keeps its heading, introduction and commands (up to the end of its ```bash block), the rest is rewritten."""
    for name in names:
        head = f"## {name}.json\n"
        start = readme.index(head)
        commands_end = readme.index("```\n", readme.index("```bash\n", start) + 8) + 4
        section_end = readme.find("\n## ", commands_end)
        section_end = len(readme) if section_end < 0 else section_end + 1
        readme = readme[:commands_end] + "\n" + "\n".join(printed_figures(name, logs)) + "\n" + readme[section_end:]
    return readme.rstrip("\n") + "\n"


def same_circuit(found: Path, shipped: Path) -> bool:
    """Do the two circuit files switch off the same heads and neurons?"""
    return load_circuit(found).components() == load_circuit(shipped).components()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the files, relative to the repository root or "
                        "absolute (sample_circuits: regenerate the shipped files in place)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these sample circuits (default: all)")
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS), help="default: all four")
    parser.add_argument("--check", action="store_true", help="compare each circuit found with the shipped one")
    parser.add_argument("--logs", help="folder for what each command prints, NAME.STEP.txt (default: the --out folder)")
    args = parser.parse_args(argv)
    names = shipped_names()
    unknown = sorted(set(args.only or []) - set(names))
    if unknown:
        parser.error(f"no sample circuit named {', '.join(unknown)}; choose from {', '.join(names)}")
    if args.check and "discover" not in args.steps:
        parser.error("--check compares rediscovered circuits: include the discover step")
    out = Path(args.out) if Path(args.out).is_absolute() else REPO_ROOT / args.out
    if args.check and out.resolve() == SAMPLE_CIRCUITS_DIR.resolve():
        parser.error("--check compares with the shipped circuits: write to another --out folder")
    try:
        plan = [(name, step, moved(recorded_command(name, step), args.out)) for name in args.only or names
                for step in COMMAND_STEPS if step in args.steps]
    except (OSError, ValueError, KeyError) as e:
        print(f"bench/sample_circuits.py: {e}", file=sys.stderr)
        return 2
    logs = out if args.logs is None else Path(args.logs) if Path(args.logs).is_absolute() else REPO_ROOT / args.logs
    for folder in (out, logs):
        folder.mkdir(parents=True, exist_ok=True)
    differing = []
    for name, step, command in plan:
        if run_logged(command, logs / f"{name}.{step}.txt") != 0:
            print(f"bench/sample_circuits.py: `safeseek {step}` failed for {name} (output above)", file=sys.stderr)
            return 1
        if args.check and step == "discover":
            try:
                same = same_circuit(out / f"{name}.json", SAMPLE_CIRCUITS_DIR / f"{name}.json")
            except CircuitFileError as e:
                print(f"bench/sample_circuits.py: {e}", file=sys.stderr)
                return 1
            print(f"{name}: {'the same circuit as shipped' if same else 'DIFFERENT from the shipped circuit'}")
            if not same:
                differing.append(name)
    if "readme" in args.steps:
        try:
            text = rewritten_readme((SAMPLE_CIRCUITS_DIR / "README.md").read_text(encoding="utf-8"), logs,
                                    args.only or names)
        except (OSError, ValueError, StopIteration) as e:
            print(f"bench/sample_circuits.py: cannot rewrite README.md from the logs in {logs}: {e!r}; run the "
                  "discover, compare and report steps first", file=sys.stderr)
            return 1
        write_text_atomic(out / "README.md", text)
        print(f"figures of {', '.join(args.only or names)} rewritten from {logs} into {out / 'README.md'}; read the "
              "prose around them against the new figures")
    if args.check:
        print(f"circuits different from the shipped ones: {len(differing)} of "
              f"{sum(step == 'discover' for _, step, _ in plan)}" + (f" ({', '.join(differing)})" if differing else ""))
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
