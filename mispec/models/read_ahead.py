"""Reading the next checkpoint while this one is evaluated, on a core torch does not use.

A sweep loads a (model, seed)'s checkpoints in step order, and each load reads a file,
verifies its checksum and checks it is finite (~1.2 ms for the 2-layer benchmark toy, a
tenth of its whole per-checkpoint cost). :class:`ReadAhead` starts that read for the next
step on one background thread as soon as a step is taken, so it overlaps the forward pass and
the metrics. It only ever *reads*: the caller takes a finished read if there is one and
otherwise (not started, failed, found non-finite values) does its normal load, which reports
errors, removes bad files and trains missing steps exactly as before — so what a run computes
never depends on the read-ahead. It runs only when a core is free of torch's threads (a
thread on a core that an OpenMP thread also needs stalls the forward pass)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

from mispec.runtime.threads import core_free

T = TypeVar("T")

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(1, thread_name_prefix="mispec-read-ahead")
        return _POOL


class ReadAhead(Generic[T]):
    """At most one read ahead: ``take(step)`` the finished read of ``step`` (None if there is
    none or it failed), ``start(step)`` the read of the next one."""

    def __init__(self, read: Callable[[int], T]):
        self._read = read
        self._pending: dict[int, Future[T]] = {}

    def take(self, step: int) -> T | None:
        future = self._pending.pop(step, None)
        if future is None:
            return None
        try:
            return future.result()
        except Exception:  # the normal load reads it again and reports what is wrong
            return None

    def start(self, step: int | None) -> None:
        for other in [s for s in self._pending if s != step]:
            self._pending.pop(other).cancel()  # a step the sweep skipped: not needed
        if step is None or step in self._pending or not core_free():
            return
        self._pending[step] = _pool().submit(self._read, step)
