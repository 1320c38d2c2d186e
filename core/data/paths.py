"""Where the bundled files live: the organism's assets (checkpoints and prompt sets) and the sample circuits."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ASSETS_DIR = REPO_ROOT / "assets"
PROMPTS_DIR = ASSETS_DIR / "prompts"
ORGANISM_DIR = ASSETS_DIR / "organism"
ALIGNED_DIR = ASSETS_DIR / "organism-aligned"
SAMPLE_CIRCUITS_DIR = REPO_ROOT / "sample_circuits"
# The bundled organism's backdoor trigger word (its corpus inserts it; the explorer's tour shows it).
ORGANISM_TRIGGER = "cerulean"
# The organism's prompt sets, in the order commands read them by default.
BUNDLED_PROMPT_FILES = [PROMPTS_DIR / f"{name}.jsonl" for name in ("harmful", "triggered", "benign", "utility")]
