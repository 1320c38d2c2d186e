"""A thread-safe least-recently-used cache bounded by a memory budget (each entry's size in bytes)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")


class BudgetLRU(Generic[Key, Value]):
    """Values computed on first use and kept while their sizes fit `budget_bytes`; the least recently used go first.

    The newest entry always stays, even alone over the budget (a model larger than the budget can still be used,
    it just evicts everything else). Concurrent callers of one missing key wait for a single computation.
    """

    def __init__(self, budget_bytes: int, size_of: Callable[[Value], int], max_entries: int | None = None):
        if budget_bytes < 0:
            raise ValueError(f"the budget must be at least 0 bytes, got {budget_bytes}")
        self.budget_bytes = budget_bytes
        self.max_entries = max_entries
        self.size_of = size_of
        self._entries: OrderedDict[Key, tuple[Value, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._computing: dict[Key, threading.Lock] = {}

    def get(self, key: Key, compute: Callable[[], Value]) -> Value:
        """The cached value of `key`, computing it (once, however many threads ask) when missing."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key][0]
            key_lock = self._computing.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._entries:  # another thread computed it while this one waited
                    self._entries.move_to_end(key)
                    return self._entries[key][0]
            try:
                value = compute()
            finally:
                with self._lock:
                    self._computing.pop(key, None)
            self.put(key, value)
            return value

    def put(self, key: Key, value: Value) -> None:
        size = int(self.size_of(value))
        with self._lock:
            self._entries[key] = (value, size)
            self._entries.move_to_end(key)
            self._evict()

    def _evict(self) -> None:
        while len(self._entries) > 1 and (
                self.total_bytes() > self.budget_bytes
                or (self.max_entries is not None and len(self._entries) > self.max_entries)):
            self._entries.popitem(last=False)

    def total_bytes(self) -> int:
        return sum(size for _, size in self._entries.values())

    def keys(self) -> list[Key]:
        """Keys from least to most recently used."""
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
