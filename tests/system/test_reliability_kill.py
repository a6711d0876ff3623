"""kill -9 of ``mispec run`` at chosen and at random moments: training, checkpoint writes,
forward passes, activation and cell writes, reductions, results assembly and the run-folder
swap. After every kill the store holds only entries that verify (leftovers of unfinished
writes sit under ``.tmp-`` names that are never read), a re-run completes without meeting a
corrupt entry, and its results equal an uninterrupted run's bit for bit.

The quick test (default suite) kills three times; the full one (``make test-slow``) kills
at every kill point and at random moments, more than ten times in all.
"""

from __future__ import annotations

import random
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.reliability_helpers import (
    assert_same_results,
    audit_store,
    cli,
    cli_killed_at,
    forget_a_result,
    kill_group,
    new_project,
    popen_cli,
    reference_run,
)

# (kill point, needs a previous complete run in the project)
POINTS = [
    ("train:25", False),  # mid-training, after step 20 was saved
    ("checkpoint-write:4", False),  # model_20's temp file written, not renamed
    ("forward:2", False),  # the second forward pass
    ("activation-publish:2", False),  # an activation entry written under its temp name
    ("cell-replace:3", False),  # a cell's temp file written, not renamed
    ("cell-torn:5", False),  # half a cell written
    ("reduction:1", False),  # before the reduction over steps
    ("results-written:1", False),  # results.zarr in staging, not swapped in
    ("history-move:2", True),  # half of the previous run moved to history/
    ("swap-in:1", True),  # the new results.zarr in place, the rest not yet
    ("run-index:1", False),  # the run folder complete, not yet in the index
]
QUICK = ["checkpoint-write:4", "activation-publish:2", "history-move:2"]


def _project(root: Path, with_previous_run: bool) -> Path:
    if with_previous_run:
        shutil.copytree(reference_run().parents[1], root, symlinks=True)
        # work to do (the same result again), so the run swaps its run folder in
        forget_a_result(root / "spec.yaml")
        return root / "spec.yaml"
    return new_project(root)


def _rerun_and_compare(spec: Path) -> None:
    """The store verifies entry by entry; a re-run completes, meets nothing corrupt, and
    its results equal the uninterrupted run's bit for bit."""
    audit_store(spec.parent / ".mispec")
    res = cli("run", str(spec), "-q", cwd=spec.parent)
    assert res.returncode == 0, res.stderr
    assert "corrupt" not in res.stderr.lower(), res.stderr
    assert_same_results(spec.parent / "runs" / "tiny", reference_run())
    counts = audit_store(spec.parent / ".mispec")
    assert counts["cells"] == 13 and counts["activations"] >= 3 and counts["checkpoints"] == 6
    assert not list((spec.parent / "runs").glob(".staging-*"))  # a killed run's, removed


def _kill_at(point: str, with_previous_run: bool, root: Path) -> None:
    spec = _project(root, with_previous_run)
    res = cli_killed_at(point, "run", str(spec), "-q", cwd=spec.parent)
    assert res.returncode == -signal.SIGKILL, (
        f"{point}: the run was not killed there (exit {res.returncode})\n{res.stderr}"
    )
    _rerun_and_compare(spec)
    if with_previous_run:  # the interrupted swap left the older run complete in history/
        history = list((spec.parent / "runs" / "tiny" / "history").iterdir())
        assert history
        for old in history:
            if (old / "provenance.json").exists():
                assert_same_results(old, reference_run())


def test_kill_quick(tmp_path):
    """Three kills: during training (a checkpoint half-published), during a cache write,
    and in the middle of swapping the new run folder in."""
    for i, point in enumerate(QUICK):
        _kill_at(point, dict(POINTS)[point], tmp_path / f"kill{i}")


@pytest.mark.slow
@pytest.mark.parametrize("point,with_previous_run", POINTS, ids=[p for p, _ in POINTS])
def test_kill_at_each_point(point, with_previous_run, tmp_path):
    _kill_at(point, with_previous_run, tmp_path / "project")


@pytest.mark.slow
def test_kill_at_random_moments(tmp_path):
    """kill -9 from outside at random moments of a run (seeded), six times; the first kills
    fall in start-up and training, the later ones in the forward passes and assembly."""
    # how long a full run takes here, start-up included
    probe = new_project(tmp_path / "probe")
    t0 = time.perf_counter()
    assert cli("run", str(probe), "-q", cwd=probe.parent).returncode == 0
    full = time.perf_counter() - t0
    rng = random.Random(20240609)
    fractions = [0.3, 0.45, 0.6, 0.7, 0.8, 0.9]
    kills = 0
    for i, frac in enumerate(fractions):
        spec = new_project(tmp_path / f"random{i}")
        proc = popen_cli("run", str(spec), "-q", cwd=spec.parent)
        time.sleep(full * rng.uniform(frac - 0.05, frac + 0.05))
        killed = proc.poll() is None
        kill_group(proc)
        if killed:
            assert proc.returncode == -signal.SIGKILL
            kills += 1
        _rerun_and_compare(spec)
    assert kills >= len(fractions) - 1, f"only {kills} runs were still running when killed"
