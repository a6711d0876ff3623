"""The background store writer: writes land in order, the first failure reaches the caller,
nothing is written after it, and the queue is bounded in bytes."""

from __future__ import annotations

import errno
import threading

import pytest

from mispec.store.writer import BackgroundWriter, InlineWriter


def test_every_queued_write_lands_by_flush_in_submission_order():
    w = BackgroundWriter()
    done: list[int] = []
    for i in range(50):
        w.submit(10, done.append, i)
    w.flush()
    assert done == list(range(50))
    w.close()


def test_the_first_failure_is_raised_by_flush_and_later_writes_are_skipped():
    w = BackgroundWriter()
    done: list[int] = []
    gate = threading.Event()

    def fail() -> None:
        gate.wait(5)
        raise OSError(errno.ENOSPC, "No space left on device")

    w.submit(1, fail)
    w.submit(1, done.append, 1)  # queued behind the failure: must not be written
    gate.set()
    with pytest.raises(OSError) as info:
        w.flush()
    assert info.value.errno == errno.ENOSPC
    assert done == []
    w.flush()  # reported once: a second flush (the executor's cleanup) does not raise again
    w.close()


def test_a_failure_is_raised_by_the_next_submit():
    w = BackgroundWriter()

    def fail() -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    w.submit(1, fail)
    with w._cond:  # the failure lands asynchronously: wait for it (no sleep, no timing)
        assert w._cond.wait_for(lambda: w._pending == 0, timeout=30)
    with pytest.raises(PermissionError):
        w.submit(1, lambda: None)
    w.close()


def test_pending_bytes_stay_under_the_bound():
    w = BackgroundWriter(max_pending_bytes=100)
    release = threading.Event()
    seen: list[int] = []

    def slow() -> None:
        release.wait(5)

    w.submit(60, slow)
    blocked = threading.Event()
    submitted = threading.Event()
    wait = w._cond.wait

    def observed_wait(timeout: float | None = None) -> bool:
        blocked.set()  # the producer reached the bound's wait: no timing involved
        return wait(timeout)

    w._cond.wait = observed_wait  # type: ignore[method-assign]

    def producer() -> None:
        w.submit(60, lambda: seen.append(w._pending_bytes))  # must wait: 60 + 60 > 100
        submitted.set()

    t = threading.Thread(target=producer)
    t.start()
    assert blocked.wait(30)  # blocked by the bound ...
    assert not submitted.is_set() and seen == []  # ... and still blocked while the first is queued
    release.set()
    t.join(5)
    w.flush()
    assert not t.is_alive() and seen == [60]  # the first 60 bytes were gone before it queued
    w.close()


def test_one_write_larger_than_the_bound_still_goes_through():
    w = BackgroundWriter(max_pending_bytes=10)
    done: list[int] = []
    w.submit(1000, done.append, 1)
    w.flush()
    assert done == [1]
    w.close()


def test_inline_writer_writes_at_once_and_raises_at_once():
    w = InlineWriter()
    done: list[int] = []
    w.submit(1, done.append, 7)
    assert done == [7]
    with pytest.raises(OSError):
        w.submit(1, lambda: (_ for _ in ()).throw(OSError(errno.EROFS, "read-only")))


def test_the_local_executor_writes_in_the_background_only_with_a_core_to_spare():
    import os

    from mispec.execute.local.executor import _writer
    from mispec.runtime.threads import pinned_torch_threads

    cores = len(os.sched_getaffinity(0))
    with pinned_torch_threads(cores):
        assert isinstance(_writer(), InlineWriter)  # every core runs an OpenMP thread
    if cores > 1:
        with pinned_torch_threads(1):
            w = _writer()
            assert isinstance(w, BackgroundWriter)
            w.close()
