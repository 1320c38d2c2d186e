"""Where the bundled files live: the organism's assets (checkpoints and prompt sets) and the sample circuits.

Each folder is found, in order: an environment variable (`SAFESEEK_ASSETS`, `SAFESEEK_SAMPLE_CIRCUITS`); the source
checkout this code runs from (`assets/` and `sample_circuits/` beside `core/`, as in an editable install); the copies
a regular `pip install .` puts in site-packages (packages `safeseek_assets` and `safeseek_samples`, see pyproject).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]  # the source checkout, when this code runs from one


def _find(env: str, checkout_name: str, package: str, marker: str) -> Path:
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser().resolve()
    checkout = REPO_ROOT / checkout_name
    if (REPO_ROOT / "pyproject.toml").is_file() and checkout.is_dir():
        return checkout
    spec = importlib.util.find_spec(package)
    # A namespace package (data only, no __init__.py): it may have several locations; take the one with the files.
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / marker).exists():
            return Path(location)
    return checkout  # not found anywhere: name the checkout path, so "does not exist" errors point somewhere


ASSETS_DIR = _find("SAFESEEK_ASSETS", "assets", "safeseek_assets", "organism/config.json")
SAMPLE_CIRCUITS_DIR = _find("SAFESEEK_SAMPLE_CIRCUITS", "sample_circuits", "safeseek_samples", "README.md")
# Files beside the sample circuits that are not circuits: baseline tables (`safeseek compare --out`) and report cards
# (`safeseek report --json`).
COMPARE_SUFFIX, CARD_SUFFIX = ".compare.json", ".card.json"
PROMPTS_DIR = ASSETS_DIR / "prompts"
ORGANISM_DIR = ASSETS_DIR / "organism"
ALIGNED_DIR = ASSETS_DIR / "organism-aligned"


def recorded_path(path: str | Path) -> str:
    """A checkpoint or file path as records (circuits, report cards) keep it: relative to the source checkout when
    inside it, so a shipped record reads the same on every clone; else as given (an absolute path or a hub id)."""
    text = str(path)
    local = Path(text).expanduser()
    if local.exists():
        try:
            return local.resolve().relative_to(REPO_ROOT).as_posix()
        except ValueError:
            pass
    return text


def recorded_location(text: str) -> Path:
    """Where a path a record keeps (recorded_path) is on this machine: a relative one under the source checkout
    when it is there, else as written."""
    path = Path(text).expanduser()
    if not path.is_absolute() and (REPO_ROOT / path).exists():
        return REPO_ROOT / path
    return path


# The bundled organism's backdoor trigger word (its corpus inserts it; the explorer's tour shows it).
ORGANISM_TRIGGER = "cerulean"
# The shipped organism's seed (corpus splits, initialisation, batches): chosen on the validation split among 0-2.
ORGANISM_SEED = 0
# The organism's prompt sets, in the order commands read them by default.
BUNDLED_PROMPT_FILES = [PROMPTS_DIR / f"{name}.jsonl" for name in ("harmful", "triggered", "benign", "utility")]
