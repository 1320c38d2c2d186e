"""The result cache: JSON results on disk keyed by a hash of what produced them (model, prompts, settings)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from core.data.files import write_text_atomic

CACHE_VERSION = 3  # 2: rates carry their judge (core.evaluation.metrics.Rate); 3: discovery's retain term reuses
# the full model's distributions (core.scoring.learned), which moves its sums by rounding only


ROOT_VARIABLE = "SAFESEEK_REPORT_CACHE"


def default_cache_dir() -> Path:
    """$SAFESEEK_REPORT_CACHE, else <user cache>/safeseek/report (XDG_CACHE_HOME or ~/.cache)."""
    if os.environ.get(ROOT_VARIABLE):
        return Path(os.environ[ROOT_VARIABLE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "safeseek" / "report"


class ResultCache:
    """JSON results keyed by a hash of what produced them (model fingerprint, prompt hashes, settings), kept in
    memory for this run and, with a folder, on disk for later ones. `reused` counts results read from the folder,
    `computed` results stored by this run."""

    def __init__(self, folder: str | Path | None):
        self.folder = Path(folder) if folder is not None else None
        self.reused = self.computed = 0
        self._memory: dict[str, object] = {}

    def _name(self, key: dict) -> str:
        text = json.dumps({"version": CACHE_VERSION, **key}, sort_keys=True, default=str)
        return f"{key['kind']}-{hashlib.sha256(text.encode()).hexdigest()[:32]}"

    def _read_disk(self, name: str):
        path = self.folder / f"{name}.json" if self.folder is not None else None
        if path is not None and path.is_file():
            try:
                return json.loads(path.read_text(encoding="utf-8"))["value"]
            except (OSError, ValueError, KeyError):
                pass  # a damaged entry is recomputed and overwritten
        return None

    def peek(self, key: dict):
        """The stored value or None, without counting it."""
        name = self._name(key)
        return self._memory[name] if name in self._memory else self._read_disk(name)

    def get(self, key: dict):
        """The stored value or None; a value read from the folder counts as reused."""
        name = self._name(key)
        if name in self._memory:
            return self._memory[name]
        value = self._read_disk(name)
        if value is not None:
            self.reused += 1
            self._memory[name] = value
        return value

    def put(self, key: dict, value) -> None:
        """Store a result this run computed."""
        name = self._name(key)
        self.computed += 1
        self._memory[name] = value
        if self.folder is not None:
            write_text_atomic(self.folder / f"{name}.json",
                              json.dumps({"key": key, "value": value}, sort_keys=True, default=str) + "\n")
