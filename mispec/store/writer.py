"""Store writes off the compute thread.

A cold run of a small model spends as long writing its activation cache as computing it (on
the reference machine a 1.3 MB chunk takes 1–3 ms to land in ext4's page cache). The run
therefore *encodes* each entry on its own thread (compression, checksum: an immutable snapshot
of the values) and hands the file writes to ONE background thread, so they overlap the next
checkpoint's forward pass. Entries are still written beside and renamed into place, so a
killed run loses at most the queued entries, which the next run recomputes.

``flush()`` waits for everything queued and raises the first write error in the caller's
thread (the run then stops as it would have on a synchronous write). The queue is bounded by
bytes so a fast producer never holds more than ``max_pending_bytes`` of encoded entries.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def _lower_priority() -> None:
    """The writer thread yields the CPU to the compute threads (Linux: a thread's nice)."""
    import contextlib
    import os

    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


class InlineWriter:
    """Writes at once, on the caller's thread (the Dask executor's tasks: each task's
    entries are on disk when the task reports done)."""

    def submit(self, nbytes: int, fn: Callable[..., Any], *args: Any) -> None:
        fn(*args)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class BackgroundWriter:
    """One writer thread behind a queue bounded in bytes (the local executor, when a core is
    left over from torch's threads)."""

    def __init__(self, max_pending_bytes: int = 64 << 20):
        self.max_pending_bytes = max_pending_bytes
        self._pool = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="mispec-writer", initializer=_lower_priority
        )
        self._cond = threading.Condition()
        self._pending_bytes = 0
        self._pending = 0
        self._error: BaseException | None = None  # the first failed write
        self._reported = False

    def submit(self, nbytes: int, fn: Callable[..., Any], *args: Any) -> None:
        with self._cond:
            self._raise_error()
            while self._pending and self._pending_bytes + nbytes > self.max_pending_bytes:
                self._cond.wait()
                self._raise_error()
            self._pending += 1
            self._pending_bytes += nbytes
        self._pool.submit(self._run, nbytes, fn, args)

    def _run(self, nbytes: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            if self._error is None:  # after a failure the run is stopping: write no more
                fn(*args)
        except BaseException as exc:
            with self._cond:
                if self._error is None:
                    self._error = exc
        finally:
            with self._cond:
                self._pending -= 1
                self._pending_bytes -= nbytes
                self._cond.notify_all()

    def _raise_error(self) -> None:
        if self._error is not None and not self._reported:
            self._reported = True
            raise self._error

    def flush(self) -> None:
        """Wait until every queued write landed; raise the first one that failed."""
        with self._cond:
            while self._pending:
                self._cond.wait()
            self._raise_error()

    def close(self) -> None:
        """Finish the queued writes (what was computed is kept) and stop the thread."""
        self._pool.shutdown(wait=True)
