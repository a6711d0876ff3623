"""Machine faults and signals (issue 26, items 12 and 13): a lane worker killed by a signal
and a full disk exit 1 naming what failed and where, with what was finished kept; SIGINT of
a run stops every lane worker at once, and a re-run equals an uninterrupted run bit for bit;
a run killed with SIGKILL leaves no worker behind."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import xarray as xr

from mispec.cli.main import main
from tests.conftest import TOY_SPEC
from tests.reliability_helpers import REPO, cli_env

SPEC = TOY_SPEC.replace("seeds: [0]", "seeds: [0, 1]").replace("steps: 40", "steps: 60")
HOOK = Path(__file__).parents[1] / "worker_hook"
POLL_S = 0.05
MAX_POLLS = 2400  # what a test waits for, at most (polls of POLL_S)


def _project(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / ".mispec").mkdir(parents=True)
    (tmp_path / "spec.yaml").write_text(SPEC)
    profile = tmp_path / "lanes.yaml"
    profile.write_text(
        "name: lanes\nkind: local\ntorch_threads: 1\nprocesses: 2\nparallel_min_steps: 1\n"
    )
    return tmp_path / "spec.yaml", profile


def _env(**extra: str) -> dict[str, str]:
    return cli_env(PYTHONPATH=f"{HOOK}{os.pathsep}{REPO}", **extra)


def _start_held(tmp_path: Path) -> tuple[subprocess.Popen[str], list[int], Path]:
    """`mispec run` with two lanes, both held mid-training; the run, the workers' pids and
    the hold file (remove it to let them go on)."""
    spec, profile = _project(tmp_path)
    hold_dir = tmp_path / "hold"
    hold_dir.mkdir()
    hold = hold_dir / "hold"
    hold.write_text("")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mispec.cli.main", "run", str(spec), "-e", str(profile), "-q"],
        cwd=tmp_path,
        env=_env(MISPEC_TEST_HOLD_DIR=str(hold_dir)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    workers: list[int] = []
    for _ in range(MAX_POLLS):
        workers = [int(p.name.split("-")[1]) for p in hold_dir.glob("training-*")]
        if len(workers) == 2 or proc.poll() is not None:
            break
        time.sleep(POLL_S)
    assert len(workers) == 2, proc.communicate()
    assert proc.pid not in workers and all(
        psutil.Process(w).ppid() == proc.pid for w in workers
    )  # two lane workers of the run, each mid-training
    return proc, workers, hold


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pids: list[int]) -> bool:
    for _ in range(MAX_POLLS):
        if all(_gone(p) for p in pids):
            return True
        time.sleep(POLL_S)
    return False


def _cleanup(proc: subprocess.Popen[str], workers: list[int], hold: Path) -> None:
    hold.unlink(missing_ok=True)
    for pid in [proc.pid, *workers]:
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)
    proc.communicate()


def test_sigint_stops_every_worker_and_a_rerun_is_bit_identical(tmp_path):
    proc, workers, hold = _start_held(tmp_path / "a")
    try:
        os.kill(proc.pid, signal.SIGINT)  # the run only, as `kill -INT`: not its workers
        assert _wait_gone(workers), "a lane worker went on after the run was interrupted"
        _, err = proc.communicate(timeout=MAX_POLLS * POLL_S)
        assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    finally:
        _cleanup(proc, workers, hold)
    store = tmp_path / "a" / ".mispec"
    kept = sorted(p.name for p in store.rglob("model_0.safetensors"))
    assert kept == ["model_0.safetensors"] * 2  # the checkpoints finished before are kept
    assert not list(store.rglob("*.tmp-*"))

    again = subprocess.run(
        [sys.executable, "-m", "mispec.cli.main", "run", "spec.yaml", "-e", "lanes.yaml", "-q"],
        cwd=tmp_path / "a",
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr
    ref_spec, ref_profile = _project(tmp_path / "b")
    ref_profile.write_text("name: serial\nkind: local\ntorch_threads: 1\nprocesses: 1\n")
    assert main(["run", str(ref_spec), "-e", str(ref_profile), "-q"]) == 0
    got = xr.open_datatree(tmp_path / "a" / "runs" / "tiny" / "results.zarr", engine="zarr")
    ref = xr.open_datatree(tmp_path / "b" / "runs" / "tiny" / "results.zarr", engine="zarr")
    xr.testing.assert_identical(got["toy"].to_dataset(), ref["toy"].to_dataset())
    assert got["toy"]["loss"].sizes == {"seed": 2, "step": 3}


def test_sigkill_of_a_lane_worker_is_a_machine_fault(tmp_path):
    proc, workers, hold = _start_held(tmp_path)
    try:
        os.kill(workers[0], signal.SIGKILL)  # as the out-of-memory killer does
        assert _wait_gone(workers[:1])
        hold.unlink()  # the other lane goes on and finishes
        _, err = proc.communicate(timeout=MAX_POLLS * POLL_S)
    finally:
        _cleanup(proc, workers, hold)
    assert proc.returncode == 1, err
    assert "killed by SIGKILL" in err and "out of memory" in err
    assert "lane model toy, seed " in err and "train" in err
    assert "internal error" not in err and "Traceback" not in err
    # the other lane's work is kept: its last checkpoint is in the store
    assert len(list((tmp_path / ".mispec").rglob("model_40.safetensors"))) == 1


def test_sigkill_of_the_run_leaves_no_worker_writing(tmp_path):
    proc, workers, hold = _start_held(tmp_path)
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        assert _wait_gone(workers), "a lane worker outlived the run it belonged to"
    finally:
        _cleanup(proc, workers, hold)


def _store_files(store: Path) -> set[str]:
    return {str(p.relative_to(store)) for p in store.rglob("*") if p.is_file()}


def test_a_full_disk_in_a_lane_names_the_file_in_the_store(tmp_path):
    spec, profile = _project(tmp_path)
    run = subprocess.run(
        [sys.executable, "-m", "mispec.cli.main", "run", str(spec), "-e", str(profile), "-q"],
        cwd=tmp_path,
        env=_env(MISPEC_TEST_ENOSPC="1"),
        capture_output=True,
        text=True,
    )
    err = run.stderr
    assert run.returncode == 1, err
    assert "No space left on device" in err and "(in the store)" in err
    assert ".safetensors.tmp-" in err and str(tmp_path / ".mispec" / "checkpoints") in err
    assert "internal error" not in err and "Traceback" not in err and "|" not in err
    assert not [f for f in _store_files(tmp_path / ".mispec") if ".safetensors" in f]


def test_a_full_disk_serially_names_the_file_and_keeps_what_was_written(
    tmp_path, monkeypatch, capsys
):
    import mispec.models.checkpoints as checkpoints

    (tmp_path / ".mispec").mkdir()
    (tmp_path / "spec.yaml").write_text(TOY_SPEC)
    writes = []

    def second_write_fails(path, mode="r", *args, **kwargs):
        if "w" in mode:
            writes.append(path)
            if len(writes) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(checkpoints, "open", second_write_fails, raising=False)
    assert main(["run", str(tmp_path / "spec.yaml"), "-q"]) == 1
    err = capsys.readouterr().err
    assert f"cannot write {writes[1]} (in the store)" in err and "No space left" in err
    assert "internal error" not in err
    files = _store_files(tmp_path / ".mispec")
    assert [f for f in files if ".safetensors" in f] == [
        str(Path(writes[0]).relative_to(tmp_path / ".mispec")).removesuffix(f".tmp-{os.getpid()}")
    ]  # the first checkpoint kept, whole; no temp file of the failed one
    checkpoints.read_tensors(tmp_path / ".mispec" / next(f for f in files if "safetensors" in f))


def test_a_full_disk_in_the_out_folder_says_so_and_keeps_the_store(tmp_path, monkeypatch, capsys):
    (tmp_path / ".mispec").mkdir()
    (tmp_path / "spec.yaml").write_text(TOY_SPEC)
    out = tmp_path / "elsewhere" / "run"
    real = Path.write_text

    def full(self, *args, **kwargs):
        if self.name == "plan.json" and ".staging-" in str(self):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    assert main(["run", str(tmp_path / "spec.yaml"), "--out", str(out), "-q"]) == 1
    err = capsys.readouterr().err
    assert "plan.json (in the run folder, --out)" in err and "No space left" in err
    assert list((tmp_path / "elsewhere").iterdir()) == []  # its staging folder removed
    monkeypatch.undo()
    import mispec

    again = mispec.run(tmp_path / "spec.yaml", out=out, progress=False)
    assert again.counters["cells_computed"] == again.counters["training_steps"] == 0
    assert (out / "results.zarr").is_dir()  # everything was kept in the store
