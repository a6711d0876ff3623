"""The executor seam from outside the package: a thread-pool executor written here, in a
few lines on top of the remote-task protocol, registered by kind and selected by a profile,
gives results identical (bit for bit) to the local executor's."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import mispec
from mispec.execute.executor import EXECUTORS, Executor, ExecutorOptions, Outcome
from mispec.execute.remote import Job, outcome_of, run_remote, store_marker
from tests.conftest import TOY_SPEC


class ThreadPoolExecutor(Executor):
    """Every work node as a task on a thread pool; a task waits for its upstream tasks."""

    class Options(ExecutorOptions):
        threads: int = 2

    options: Options

    def init(self, ctx: Any, progress: Any) -> None:
        self.plan = ctx.plan
        self.marker = store_marker(ctx.store.root, "threads")
        self.job = Job(
            str(ctx.base_dir),
            str(ctx.store.root),
            self.marker.__enter__(),
            "cpu",
            self.profile.batch_size,
            self.profile.torch_threads,
        )
        self.pool = cf.ThreadPoolExecutor(self.options.threads)
        self.futures: dict[str, tuple[Any, cf.Future]] = {}
        self.used_threads: set[str] = set()

    def submit(self, node: Any, upstream: Sequence[Any]) -> None:
        deps = [self.futures[u.id][1] for u in upstream]

        def task() -> dict[str, Any]:
            import threading

            self.used_threads.add(threading.current_thread().name)
            return run_remote(self.plan, self.job, node.id, *[d.result() for d in deps])

        self.futures[node.id] = (node, self.pool.submit(task))

    def as_completed(self) -> Iterator[tuple[Any, Outcome]]:
        nodes = {f: n for n, f in self.futures.values()}
        for fut in cf.as_completed(nodes):
            yield nodes[fut], outcome_of(fut.result())

    def finalize(self) -> None:
        self.pool.shutdown()
        self.marker.__exit__(None, None, None)


def test_a_registered_executor_runs_a_spec_with_results_identical_to_local(tmp_path: Path):
    EXECUTORS.register("test-threads", ThreadPoolExecutor)
    spec = tmp_path / "spec.yaml"
    spec.write_text(TOY_SPEC.replace("seeds: [0]", "seeds: [0, 1]"))
    profile = tmp_path / "threads.yaml"
    profile.write_text("name: threads\nkind: test-threads\nthreads: 2\ntorch_threads: 1\n")
    local = mispec.run(spec, store=tmp_path / "a", out=tmp_path / "run-a", progress=False)
    pooled = mispec.run(
        spec,
        executor=str(profile),
        store=tmp_path / "b",
        out=tmp_path / "run-b",
        progress=False,
    )
    assert pooled.counters == local.counters  # the same work, done on the pool
    assert local.counters["training_steps"] == 80 and local.counters["cells_computed"] == 24
    ta, tb = mispec.open_results(local.run_dir).load(), mispec.open_results(pooled.run_dir).load()
    n = 0
    for node in ta.subtree:
        for name, var in node.to_dataset().data_vars.items():
            other = tb[node.path].to_dataset()[name]
            assert np.asarray(var.values).tobytes() == np.asarray(other.values).tobytes(), name
            n += 1
    assert n >= 5
    assert not list((tmp_path / "b").glob(".mispec-run-*"))  # the protocol's marker removed


def test_an_unknown_executor_kind_is_a_located_error(tmp_path: Path):
    import pytest

    from mispec.errors import SpecError
    from mispec.execute.profile import load_profile

    profile = tmp_path / "p.yaml"
    profile.write_text("name: p\nkind: dask-locl\n")
    with pytest.raises(SpecError) as err:
        load_profile(str(profile))
    assert "p.yaml:2:7" in str(err.value) and "did you mean 'dask-local'" in str(err.value)
    profile.write_text("name: p\nkind: local\nworkers: 3\n")
    with pytest.raises(SpecError) as err:
        load_profile(str(profile))
    assert "p.yaml:3:1" in str(err.value) and "unknown key 'workers'" in str(err.value)
