"""Rerun the commands recorded in the sample circuits (discover, compare, report) into a folder; --check says whether
the circuits found are the shipped ones.

Run `python bench/sample_circuits.py --out DIR [--only NAME ...] [--steps discover compare report] [--check]` from
anywhere. Each shipped circuit `sample_circuits/NAME.json` records the `safeseek discover` command that made it and
its comparison `NAME.compare.json` the `safeseek compare` command; the report card is made as sample_circuits/README.md
gives it (`safeseek report --circuit NAME.json --json NAME.card.json`). Every path the commands name under
sample_circuits/ moves to DIR, so `--out sample_circuits` regenerates the shipped files in place (after a new
organism) and any other folder leaves them untouched. What each command prints also goes to NAME.STEP.txt in DIR (or
in the folder --logs names: keep sample_circuits/ free of them when regenerating in place), to copy into
sample_circuits/README.md. With --check, each circuit found is compared with the shipped one (same heads
and neurons): exit status 1 when one differs, the check that the organism and discovery reproduce on this machine.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from core.circuit.circuit import CircuitFileError, load_circuit
from core.data.paths import REPO_ROOT, SAMPLE_CIRCUITS_DIR

STEPS = ("discover", "compare", "report")


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


def same_circuit(found: Path, shipped: Path) -> bool:
    """Do the two circuit files switch off the same heads and neurons?"""
    return load_circuit(found).components() == load_circuit(shipped).components()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the files, relative to the repository root or "
                        "absolute (sample_circuits: regenerate the shipped files in place)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these sample circuits (default: all)")
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS), help="default: all three")
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
                for step in STEPS if step in args.steps]
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
    if args.check:
        print(f"circuits different from the shipped ones: {len(differing)} of "
              f"{sum(step == 'discover' for _, step, _ in plan)}" + (f" ({', '.join(differing)})" if differing else ""))
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
