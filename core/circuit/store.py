"""A content-addressed store of circuits (so a link can name an unsaved, discovered circuit by its hash).

Ids are the sha256 hex of the circuit's canonical JSON; an id is validated as 64 hex digits before it touches the
file system, so a link can never name a path. The store owns one folder, keeps its total size under a quota by
evicting the least recently used entries, and writes atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from core.circuit.circuit import Circuit, CircuitFileError
from core.data.files import write_text_atomic

ROOT_VARIABLE = "SAFESEEK_CIRCUIT_STORE"
DEFAULT_QUOTA_BYTES = 64 * 1024 * 1024
_ID = re.compile(r"^[0-9a-f]{64}$")


def default_root() -> Path:
    """$SAFESEEK_CIRCUIT_STORE, else <user cache>/safeseek/circuits (XDG_CACHE_HOME or ~/.cache)."""
    if os.environ.get(ROOT_VARIABLE):
        return Path(os.environ[ROOT_VARIABLE]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "safeseek" / "circuits"


def circuit_id(circuit: Circuit) -> str:
    """sha256 hex of the canonical JSON (sorted keys, no spacing): equal circuits share an id."""
    canonical = json.dumps(json.loads(circuit.to_json()), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def is_id(text: str) -> bool:
    return bool(_ID.match(text))


class CircuitStore:
    """Circuits kept under `root` as <id>.json, at most `quota_bytes` in all (oldest-used evicted first)."""

    def __init__(self, root: str | Path | None = None, quota_bytes: int = DEFAULT_QUOTA_BYTES):
        self.root = Path(root) if root is not None else default_root()
        self.quota_bytes = quota_bytes

    def _path(self, key: str) -> Path:
        if not is_id(key):
            raise CircuitFileError(f"{key[:80]!r} is not a stored-circuit id (64 lowercase hex digits); copy the "
                                   "whole link again")
        return self.root / f"{key}.json"

    def put(self, circuit: Circuit) -> str:
        """Store `circuit` (a no-op when it is already there) and return its id."""
        key = circuit_id(circuit)
        path = self._path(key)
        text = circuit.to_json()
        if len(text.encode("utf-8")) > self.quota_bytes:
            raise CircuitFileError(f"circuit '{circuit.name}' ({len(text):,} bytes) is larger than the store's quota "
                                   f"({self.quota_bytes:,} bytes); save it to a file instead")
        if path.is_file():
            os.utime(path)  # recently used: evicted last
            return key
        self.root.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)
        self._evict(keep=path)
        return key

    def get(self, key: str) -> Circuit:
        """The stored circuit with this id; CircuitFileError (saying what to do) when it is unknown or damaged."""
        path = self._path(key)
        if not path.is_file():
            raise CircuitFileError(f"no stored circuit {key[:12]}... on this server (it was evicted or made on "
                                   "another server); load the circuit file or discover it again")
        circuit = Circuit.from_json(path.read_text(encoding="utf-8"), source=f"stored circuit {key[:12]}")
        if circuit_id(circuit) != key:
            raise CircuitFileError(f"stored circuit {key[:12]}... does not match its id (damaged); discover it again")
        os.utime(path)
        return circuit

    def entries(self) -> list[Path]:
        """Stored files, least recently used first (only names that are ids: nothing else is touched)."""
        if not self.root.is_dir():
            return []
        files = [p for p in self.root.glob("*.json") if is_id(p.stem) and p.is_file()]
        return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.entries())

    def _evict(self, keep: Path) -> None:
        entries = self.entries()
        total = sum(p.stat().st_size for p in entries)
        for path in entries:
            if total <= self.quota_bytes:
                break
            if path == keep:
                continue
            total -= path.stat().st_size
            path.unlink(missing_ok=True)

