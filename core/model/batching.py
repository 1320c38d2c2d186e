"""Cross-session batching: requests arriving within a short window are served together by one batched call."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item", bound=Hashable)
Result = TypeVar("Result")

log = logging.getLogger(__name__)


class GathererBusy(RuntimeError):
    """Too many requests are already waiting; the message tells the user to try again."""


@dataclass
class _Request(Generic[Item, Result]):
    item: Item
    future: Future


class Gatherer(Generic[Item, Result]):
    """Serves `submit(item)` calls from many threads with one `run_batch(items)` per gathered group.

    A worker thread takes the first waiting request, waits up to `window_s` for more (at most `max_batch`),
    runs `run_batch` on the distinct items (equal items are computed once) and hands each caller exactly the
    result at its item's position. Requests that arrive while a batch runs form the next batch. At most
    `max_queue` requests wait; beyond that `submit` raises GathererBusy at once rather than queueing without
    bound. An exception in `run_batch` is raised in every caller of that batch.
    """

    def __init__(self, run_batch: Callable[[list[Item]], Sequence[Result]], *, window_s: float = 0.02,
                 max_batch: int = 16, max_queue: int = 64, idle_s: float = 30.0, name: str = "gatherer"):
        if max_batch < 1 or max_queue < 1 or window_s < 0:
            raise ValueError("a gatherer needs max_batch >= 1, max_queue >= 1 and window_s >= 0")
        self.run_batch = run_batch
        self.window_s = window_s
        self.max_batch = max_batch
        self.idle_s = idle_s
        self.name = name
        self._queue: queue.Queue[_Request] = queue.Queue(maxsize=max_queue)
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.batches_run = 0  # how many run_batch calls served the requests so far (for benchmarks and tests)

    def submit(self, item: Item, timeout: float | None = None) -> Result:
        """Block until `item`'s result is ready and return it (or raise what computing it raised)."""
        request = _Request(item, Future())
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            raise GathererBusy(f"the server is busy ({self._queue.maxsize} requests are waiting); "
                               "try again in a moment") from None
        self._ensure_worker()
        return request.future.result(timeout)

    def _ensure_worker(self) -> None:
        with self._start_lock:
            if self._worker is None:
                # A daemon: a waiting worker must never keep the server process alive.
                self._worker = threading.Thread(target=self._serve, name=self.name, daemon=True)
                self._worker.start()

    def _first(self) -> _Request | None:
        """The next request, or None when none came for idle_s and the worker may end (so an unused gatherer
        holds no thread, and what run_batch refers to, such as a model, can be freed)."""
        while True:
            try:
                return self._queue.get(timeout=self.idle_s)
            except queue.Empty:
                with self._start_lock:  # submit() puts before it checks for a worker: no request is stranded
                    if self._queue.empty():
                        self._worker = None
                        return None

    def _gather(self, first: _Request) -> list[_Request]:
        batch = [first]
        deadline = time.monotonic() + self.window_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                batch.append(self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _serve(self) -> None:
        while (first := self._first()) is not None:
            batch = self._gather(first)
            distinct = list(dict.fromkeys(request.item for request in batch))
            try:
                results = list(self.run_batch(distinct))
                if len(results) != len(distinct):
                    raise RuntimeError(f"{self.name}: run_batch returned {len(results)} results for "
                                       f"{len(distinct)} items")
            except BaseException as error:  # every caller must be released, whatever went wrong
                log.exception("%s: a batch of %d requests failed", self.name, len(batch))
                for request in batch:
                    request.future.set_exception(error)
                continue
            self.batches_run += 1
            by_item = dict(zip(distinct, results, strict=True))
            for request in batch:
                request.future.set_result(by_item[request.item])
