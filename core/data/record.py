"""What an organism checkpoint records about its training (`organism.json`), read without failing on other models."""

from __future__ import annotations

import json
from pathlib import Path

RECORD_FILE = "organism.json"


def checkpoint_record(checkpoint: str | Path) -> dict:
    """The checkpoint folder's organism.json as a dict; empty for any other model, a hub id, or an unreadable file."""
    path = Path(checkpoint) / RECORD_FILE
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def recorded_weights(checkpoint: str | Path) -> str | None:
    """The weight hash a checkpoint folder records (the one circuit fingerprints hold), without loading it."""
    digest = checkpoint_record(checkpoint).get("weights_sha256")
    return digest if isinstance(digest, str) else None
