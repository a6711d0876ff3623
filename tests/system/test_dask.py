"""The Dask executor on a real ``distributed.LocalCluster`` (2 worker processes on loopback):
results identical to the local executor's bit for bit, a worker killed mid-run, a metric
failing deterministically, progress, and the SLURM profile's job script."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import distributed  # the dask extra, installed by `make venv`
import numpy as np
import psutil
import pytest
import xarray as xr

import mispec
from mispec.execute.profile import load_profile
from mispec.execute.remote import Job, run_remote
from mispec.runtime.threads import pinned_torch_threads
from tests.conftest import TOY_SPEC
from tests.helpers.dask_faults import killed_pid

KILL_METRIC = (
    "  norm: {{fn: 'tests.helpers.dask_faults:kill_once', args: {{marker: '{marker}'}}}}\n"
)
# Within a checkpoint group cells run in (lexicographic) topological metric order and a
# failing cell ends its group (mispec.execute.work.group.run_group): the failing metric sorts
# last so that the group's other cells are computed before it fails.
BAD_METRIC = "  zbad: {fn: 'tests.helpers.dask_faults:always_fails'}\n"


def children() -> list[int]:
    """Live child processes, except multiprocessing's resource tracker: one per parent
    process, started with the first spawned worker, it exits with this process."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(
                p.cmdline()
            ):
                out.append(p.pid)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.fixture(scope="module")
def cluster():
    """One LocalCluster for the module (worker start-up and imports cost ~10 s), started
    with Dask's default worker environment, as an existing cluster would be."""
    from mispec.execute.dask.executor import restore_env, spawn_env

    before, env = set(children()), spawn_env()
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        host="127.0.0.1",
        silence_logs=logging.ERROR,
    ) as c:
        yield c
    restore_env(env)
    assert set(children()) <= before, "worker processes left running"


@pytest.fixture
def remote_profile(cluster, tmp_path) -> Path:
    """A dask-remote profile pointing at the module's cluster."""
    path = tmp_path / "remote.yaml"
    path.write_text(
        f"name: test-remote\nkind: dask-remote\naddress: {cluster.scheduler_address}\n"
        "device: cpu\nbatch_size: 64\nretries: 0\n"
    )
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The toy spec plus the worker-killing metric, run once by the local executor with the
    Dask tasks' torch thread count, so the two executors reduce floats in the same order
    (see mispec.execute.dask.executor). Returns (spec, kill marker, local RunResult)."""
    project = tmp_path_factory.mktemp("dask-reference")
    (project / ".mispec").mkdir()
    marker = project / "killed.pid"
    spec = project / "spec.yaml"
    spec.write_text(TOY_SPEC + KILL_METRIC.format(marker=marker))
    marker.write_text("0")  # present: kill_once does not kill
    with pinned_torch_threads(load_profile("dask-local").torch_threads):
        local = run(spec, "local")
    return spec, marker, local


def run(spec: Path, tag: str, **kw):
    root = spec.parent
    return mispec.run(
        spec, store=root / f"store-{tag}", out=root / f"run-{tag}", progress=False, **kw
    )


def assert_same_results(a: Path, b: Path) -> None:
    """Every variable of every node of the two result trees: identical, bit for bit."""
    ta, tb = mispec.open_results(a).load(), mispec.open_results(b).load()
    assert sorted(n.path for n in ta.subtree) == sorted(n.path for n in tb.subtree)
    n_vars = 0
    for node in ta.subtree:
        da, db = node.to_dataset(), tb[node.path].to_dataset()
        assert sorted(da.data_vars) == sorted(db.data_vars), node.path
        for name in da.data_vars:
            xr.testing.assert_identical(da[name], db[name])
            x, y = np.asarray(da[name].values), np.asarray(db[name].values)
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), (node.path, name)
            n_vars += 1
        xr.testing.assert_identical(da, db)
    assert n_vars >= 5


def cell_keys(spec: Path, store: Path, metric: str | None = None) -> tuple[set[str], set[str]]:
    """(keys of the plan's cells and reductions, those of them present in ``store``)."""
    from mispec.api import plan

    planned = plan(spec, store=store)
    nodes = [
        n
        for n in planned.plan.nodes()
        if n.kind in ("cell", "reduction") and (metric is None or n.metric == metric)
    ]
    from mispec.store.store import Store

    st = Store(store)
    keys = {n.key for n in nodes}
    return keys, {k for k in keys if st.cells.has(k)}


# --------------------------------------------------------------------------------- tests
def test_dask_local_profile_matches_local_executor_bit_for_bit(reference, capsys):
    """`mispec run --executor dask-local` (its own LocalCluster, 2 worker processes) against
    the local executor, separate stores so both really train and compute."""
    from mispec.cli.main import main

    spec, marker, local = reference
    marker.write_text("0")  # no kill in this one
    root = spec.parent
    before = set(children())
    env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_")}
    code = main(
        ["run", str(spec), "--executor", "dask-local", "--quiet"]
        + ["--store", str(root / "store-dask-local"), "--out", str(root / "run-dask-local")]
    )
    assert code == 0, capsys.readouterr().err
    assert_same_results(local.run_dir, root / "run-dask-local")
    prov = json.loads((root / "run-dask-local" / "provenance.json").read_text())
    assert prov["executor"]["kind"] == "dask-local"
    assert prov["counters"] == local.counters  # the same work, done elsewhere
    assert local.counters["training_steps"] == 40 and local.counters["cells_computed"] == 15
    # the trained checkpoints themselves are bitwise equal (not just the metrics)
    ckpts = sorted((root / "store-local" / "checkpoints").rglob("model_*.safetensors"))
    assert len(ckpts) == 3
    for f in ckpts:
        from safetensors.torch import load_file

        twin = root / "store-dask-local" / f.relative_to(root / "store-local")
        a, b = load_file(f), load_file(twin)
        assert all(a[k].numpy().tobytes() == b[k].numpy().tobytes() for k in a), f.name
    left = [psutil.Process(p).cmdline() for p in set(children()) - before]
    assert not left, left
    assert not list((root / "store-dask-local").glob(".mispec-run-*"))  # marker removed
    # Dask's nannies set their workers' variables in the client's environment: undone
    assert {k: os.environ.get(k) for k in env} == env


def test_killed_worker_is_replaced_and_the_run_matches_local(reference, remote_profile, cluster):
    spec, marker, local = reference
    marker.unlink(missing_ok=True)  # the first kill_once to run in a worker kills it
    with distributed.Client(cluster) as client:
        workers_before = set(client.scheduler_info()["workers"])
    result = run(spec, "dask-killed", executor=str(remote_profile))
    pid = killed_pid(marker)  # a worker really ran it, and died
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert_same_results(local.run_dir, result.run_dir)
    assert result.counters["training_steps"] == 40
    assert result.counters["cells_computed"] + result.counters["cells_cached"] >= 15
    # the nanny replaced the dead worker: two workers again, one of them new
    with distributed.Client(cluster) as client:
        client.wait_for_workers(2, timeout=60)
        workers_after = set(client.scheduler_info()["workers"])
    assert len(workers_after) == 2 and workers_after != workers_before


def test_failing_metric_names_its_node_keeps_finished_cells_rerun_computes_the_rest(
    write_spec, remote_profile, capsys
):
    from mispec.cli.main import main

    spec = write_spec(TOY_SPEC + BAD_METRIC)
    store = spec.parent / "store-dask"
    args = ["run", str(spec), "--executor", str(remote_profile), "--store", str(store)]
    code = main([*args, "--quiet", "--out", str(spec.parent / "run-dask")])
    err = capsys.readouterr().err
    assert code == 1, err
    assert re.search(
        r"cell:zbad/toy/s0/step(0|20|40): "
        r"metric 'always_fails' raised ValueError: deliberate failure",
        err,
    ), err
    assert "2 more failed" in err and "finished cells are kept" in err
    # every cell that could be computed was computed and kept; the bad ones and the
    # reduction (which waits for the whole series) are missing
    keys, present = cell_keys(spec, store)
    bad_keys, _ = cell_keys(spec, store, "zbad")
    red_keys, _ = cell_keys(spec, store, "transition")
    assert present == keys - bad_keys - red_keys and len(present) == 12
    # fix the metric and run again: only the missing cells are computed
    spec.write_text(spec.read_text().replace("dask_faults:always_fails", "dask_faults:kill_once"))
    rerun = mispec.run(spec, executor=str(remote_profile), store=store, progress=True)
    assert rerun.counters["cells_cached"] == 12
    assert rerun.counters["cells_computed"] == 3  # the fixed metric, at 3 checkpoints
    assert rerun.counters["reductions_computed"] == 1
    assert rerun.counters["training_steps"] == 0 and rerun.counters["forward_passes"] == 0
    drawn = capsys.readouterr()  # progress drawn on the client, as the local executor does
    assert "checkpoints" in drawn.err and "reductions" in drawn.err and "training" in drawn.err
    assert drawn.out == ""  # progress goes to stderr, never mixed with results on stdout
    # and the quiet run printed nothing at all
    mispec.run(spec, executor=str(remote_profile), store=store, progress=False)
    quiet = capsys.readouterr()
    assert quiet.out == "" and "checkpoints" not in quiet.err


def test_plugin_module_missing_on_the_workers_is_reported(
    write_spec, remote_profile, tmp_path, monkeypatch
):
    """A `module:function` metric importable on the client only (the cluster's workers
    started before it existed): the run fails, saying why, instead of hanging or retrying."""
    plugins = tmp_path / "client_only"
    plugins.mkdir()
    (plugins / "client_only_metrics.py").write_text(
        "from mispec.metrics.core import metric\n\n"
        "@metric(dims=(), register=False)\n"
        "def embed_norm(bridge):\n"
        '    """Norm of W_E."""\n'
        "    return bridge.W_E.detach().double().norm()\n"
    )
    monkeypatch.syspath_prepend(str(plugins))
    spec = write_spec(TOY_SPEC + "  wn: {fn: 'client_only_metrics:embed_norm'}\n")
    with pytest.raises(mispec.errors.MetricError) as err:
        run(spec, "dask", executor=str(remote_profile))
    assert "a worker could not load the plan" in str(err.value)
    assert "No module named 'client_only_metrics'" in str(err.value)


def test_worker_that_cannot_see_the_store_fails_with_a_clear_error(tmp_path, monkeypatch):
    from mispec.execute import remote  # noqa: F401

    monkeypatch.setattr(remote, "sees", lambda path: False)  # (it waits 5 s)
    job = Job(str(tmp_path), str(tmp_path), ".mispec-run-missing", "cpu", None, 1)
    out = run_remote(None, job, "reduction:transition/toy/s0")
    assert "cannot see the store" in out["failed"]["message"]
    assert out["failed"]["node"] == "reduction:transition/toy/s0"
    # tasks downstream of a failure are skipped, not run
    assert run_remote(None, job, "r2", out) == {"skipped": "reduction:transition/toy/s0"}


def test_a_full_or_read_only_store_is_a_failure_not_a_retry(tmp_path):
    """ENOSPC/EROFS on a worker: a CacheError record (Dask does not retry it); any other
    OSError propagates, for Dask to retry (a network filesystem hiccup)."""
    import errno

    from mispec.execute.remote import guarded

    (tmp_path / ".m").write_text("")
    job = Job(str(tmp_path), str(tmp_path), ".m", "cpu", None, 1)

    def full() -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "cells"))

    def flaky() -> None:
        raise OSError(errno.ECONNRESET, "Connection reset by peer")

    out = guarded("group:toy/s0/step20", job, full)["failed"]
    assert out["type"] == "mispec.errors:CacheError" and "No space left" in out["message"]
    assert out["node"] == "group:toy/s0/step20"
    with pytest.raises(ConnectionResetError):
        guarded("group:toy/s0/step20", job, flaky)


def test_torch_threads_are_pinned_and_restored():
    import torch

    before = torch.get_num_threads()
    with pinned_torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    assert load_profile("dask-local").torch_threads == 1


def test_slurm_profile_builds_a_job_script():
    """The dask-slurm profile: cores, memory, a GPU per job; no SLURM needed to check."""
    from mispec.execute.dask.executor import DaskSlurmExecutor

    profile = load_profile("dask-slurm")
    local_scheduler = {"dashboard_address": ":0", "host": "127.0.0.1"}  # only to write the script
    slurm = {**profile.options.slurm, "scheduler_options": local_scheduler}
    options = profile.options.model_copy(update={"slurm": slurm})
    cluster = DaskSlurmExecutor(profile.model_copy(update={"options": options})).cluster()
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH --gres=gpu:1" in script
    assert re.search(r"#SBATCH --cpus-per-task=8", script)
    assert re.search(r"#SBATCH --mem=\d+G", script)
    assert "--nthreads 1" in script  # one task at a time per GPU worker
