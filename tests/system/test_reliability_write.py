"""Write failures: a store that cannot be created, and a disk that fills up (``ENOSPC``) or
turns read-only (``EROFS``) in the middle of a run — while training, while caching
activations or cells, while writing the results, while moving the previous run to history.

Outcome (decided and documented in docs/reliability.md): ``error: cannot write <file>: <why>``
with exit code 1 (a ``CacheError``: the input is fine, the machine is not), no traceback; the
store holds only entries that verify and no leftovers of the failed writes; a re-run once
the disk is fine continues from what was kept and gives the uninterrupted run's results."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from mispec.cli.main import main
from tests.reliability_helpers import (
    assert_same_results,
    audit_store,
    cli,
    forget_a_result,
    new_project,
    reference_run,
    snapshot,
    snapshot_diff,
)


def test_store_under_a_file_is_refused_before_any_work(tmp_path):
    spec = new_project(tmp_path / "project", store=False)
    (tmp_path / "blocker").write_text("a file where a folder should be")
    before = snapshot(tmp_path)
    res = cli(
        "run", str(spec), "-q", "--store", str(tmp_path / "blocker" / "store"), cwd=spec.parent
    )
    assert res.returncode == 1, res.stderr
    assert res.stderr.startswith("error: the store ") and "is not writable" in res.stderr
    assert "Not a directory" in res.stderr and "Traceback" not in res.stderr
    assert snapshot_diff(before, snapshot(tmp_path)) == []


class DiskFull:
    """``os.replace`` / ``os.rename`` (every entry's commit, zarr's included) fail from the
    first call whose destination matches ``when`` on — as a disk that filled up stays full."""

    def __init__(self, when, code: int = errno.ENOSPC):
        self.when, self.code, self.failed = when, code, 0
        self.real = {"replace": os.replace, "rename": os.rename}

    def install(self, monkeypatch) -> None:
        for name in ("replace", "rename"):
            monkeypatch.setattr(os, name, self._wrap(name))

    def _wrap(self, name: str):
        real = self.real[name]

        def op(src, dst, *a, **k):
            if self.failed or self.when(Path(dst)):
                self.failed += 1
                raise OSError(self.code, os.strerror(self.code), str(dst))
            return real(src, dst, *a, **k)

        return op


def _counter(pattern, n: int):
    seen = [0]

    def when(dst: Path) -> bool:
        if pattern(dst):
            seen[0] += 1
        return seen[0] >= n

    return when


CASES = {
    # the second checkpoint of training
    "training": (_counter(lambda d: d.suffix == ".safetensors", 3), errno.ENOSPC, False),
    # an activation entry published into the cache
    "activation-cache": (
        _counter(lambda d: "activations.zarr" in d.parts and d.name.startswith("blocks"), 2),
        errno.ENOSPC,
        False,
    ),
    # a metric cell
    "metric-cell": (_counter(lambda d: d.suffix == ".npz", 4), errno.EROFS, False),
    # results.zarr written to staging
    "results": (
        _counter(lambda d: any(p.startswith(".staging-") for p in d.parts), 5),
        errno.ENOSPC,
        False,
    ),
    # half of the previous run moved to history/
    "history-move": (_counter(lambda d: "history" in d.parts, 2), errno.ENOSPC, True),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_disk_full_mid_run_leaves_the_store_consistent(case, tmp_path, monkeypatch, capsys):
    when, code, previous_run = CASES[case]
    if previous_run:
        shutil.copytree(reference_run().parents[1], tmp_path / "project", symlinks=True)
        spec = tmp_path / "project" / "spec.yaml"
        forget_a_result(spec)  # work to do, so the run moves the previous one to history/
    else:
        spec = new_project(tmp_path / "project")
    fault = DiskFull(when, code)
    with monkeypatch.context() as m:
        fault.install(m)
        rc = main(["run", str(spec), "-q"])
    err = capsys.readouterr().err
    assert fault.failed, "the fault never triggered"
    assert rc == 1, err
    assert err.startswith("error: cannot write "), err
    assert os.strerror(code) in err and "run again" in err
    assert "Traceback" not in err and "internal error" not in err
    store = spec.parent / ".mispec"
    counts = audit_store(store)  # every entry under its real name verifies
    assert counts["leftovers"] == 0, "a failed write left a temp file behind"
    assert not list((spec.parent / "runs").glob(".staging-*"))
    # the disk is fine again: the re-run continues and gives the uninterrupted results
    assert main(["run", str(spec), "-q"]) == 0, capsys.readouterr().err
    run_dir = spec.parent / "runs" / "tiny"
    assert_same_results(run_dir, reference_run())
    if previous_run:  # the older run is whole in history/
        (old,) = list((run_dir / "history").iterdir())
        assert {p.name for p in old.iterdir()} >= {"results.zarr", "spec.yaml", "provenance.json"}
        assert_same_results(old, reference_run())
