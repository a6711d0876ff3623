"""Reading the next checkpoint ahead (mispec/models/read_ahead.py) only ever reads: a run's
results are identical with and without it, and a failed read falls back to the normal load."""

from __future__ import annotations

import threading

import xarray as xr

import mispec
from mispec.models import read_ahead
from mispec.models.read_ahead import ReadAhead
from tests.conftest import TOY_SPEC


def test_take_returns_the_read_started_for_that_step_only(monkeypatch):
    monkeypatch.setattr(read_ahead, "core_free", lambda: True)
    calls: list[int] = []
    gate = threading.Event()

    def read(step: int) -> int:
        calls.append(step)
        if step == 3:
            raise OSError("unreadable")
        gate.wait(5)
        return step * 10

    ahead = ReadAhead(read)
    assert ahead.take(1) is None  # nothing started
    ahead.start(2)
    gate.set()
    assert ahead.take(2) == 20 and ahead.take(2) is None  # taken once
    ahead.start(3)
    assert ahead.take(3) is None  # a failed read: the caller loads it normally
    ahead.start(4)
    ahead.start(5)  # the sweep moved on: 4 is dropped
    assert ahead.take(4) is None and ahead.take(5) == 50
    assert calls[:2] == [2, 3] and 5 in calls


def test_no_read_ahead_without_a_free_core(monkeypatch):
    monkeypatch.setattr(read_ahead, "core_free", lambda: False)
    ahead = ReadAhead(lambda step: step)
    ahead.start(1)
    assert ahead.take(1) is None


def test_a_run_reads_ahead_and_equals_a_run_without(tmp_path, monkeypatch):
    """The store's sweep loads steps 0, 20, 40: 20 and 40 come from the read-ahead."""
    taken: list[tuple[int, bool]] = []
    real_take = ReadAhead.take

    def spy(self, step):
        got = real_take(self, step)
        taken.append((step, got is not None))
        return got

    monkeypatch.setattr(ReadAhead, "take", spy)
    monkeypatch.setattr(read_ahead, "core_free", lambda: True)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "spec.yaml").write_text(TOY_SPEC)
    with_ahead = mispec.run(tmp_path / "a" / "spec.yaml", progress=False)
    assert taken == [(0, False), (20, True), (40, True)]
    monkeypatch.setattr(read_ahead, "core_free", lambda: False)
    without = mispec.run(tmp_path / "b" / "spec.yaml", progress=False)
    xr.testing.assert_identical(
        with_ahead.open()["toy"].to_dataset(), without.open()["toy"].to_dataset()
    )
