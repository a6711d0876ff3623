"""The Dask executor: the same work units as the local loop, as a task graph on a Dask
cluster (a LocalCluster, an existing scheduler, or SLURM through dask-jobqueue).

One task per (model, seed) training run; one task per checkpoint group (the unit that loads
weights once), depending on its training task; one task per reduction, depending on the
groups of its series. Workers write activation entries and metric cells straight into the
shared store — atomically, by content key, so a task retried after a worker died rewrites
identical bytes and concurrent writers cannot corrupt an entry. The client assembles.
"""

from __future__ import annotations

from typing import Any

from mispec.errors import ExecutorError, MetricError, MissingDependencyError
from mispec.execute.context import Counters, RunContext
from mispec.execute.progress import progress_bars
from mispec.execute.work import work_list

_WORKER_CONTEXTS: dict[tuple[str, str], RunContext] = {}


def _worker_context(
    plan: Any, base_dir: str, store_dir: str, device: str, batch_size: int | None
) -> RunContext:
    """One context per worker process and plan: the loaded bridge survives across tasks."""
    from pathlib import Path

    from mispec.store.store import Store

    key = (plan.key, store_dir)
    if key not in _WORKER_CONTEXTS:
        for old in list(_WORKER_CONTEXTS):
            _WORKER_CONTEXTS.pop(old).close()
        _WORKER_CONTEXTS[key] = RunContext(
            plan, Path(base_dir), Store(Path(store_dir)), device=device, batch_size=batch_size
        )
    ctx = _WORKER_CONTEXTS[key]
    ctx.counters = Counters()
    return ctx


def train_task(plan: Any, base_dir: str, store_dir: str, model: str, seed: int) -> dict[str, int]:
    from pathlib import Path

    from mispec import models as sources

    spec = plan.spec.models[model]
    steps = list(plan.resolution.series[(model, seed)].steps)
    report = sources.ensure_trained(model, spec.train, seed, steps, Path(store_dir), progress=False)
    return {"training_steps": report.steps_trained}


def group_task(
    plan: Any,
    base_dir: str,
    store_dir: str,
    device: str,
    batch_size: int | None,
    model: str,
    seed: int,
    step: int,
    cells: tuple[str, ...],
    *_deps: Any,
) -> dict[str, int]:
    from dataclasses import asdict

    from mispec.execute.group import run_group

    ctx = _worker_context(plan, base_dir, store_dir, device, batch_size)
    run_group(ctx, model, seed, step, list(cells))
    return asdict(ctx.counters)


def reduction_task(
    plan: Any, base_dir: str, store_dir: str, node_id: str, *_deps: Any
) -> dict[str, int]:
    from dataclasses import asdict

    from mispec.execute.group import run_reduction

    ctx = _worker_context(plan, base_dir, store_dir, "cpu", None)
    run_reduction(ctx, plan.node(node_id))
    return asdict(ctx.counters)


def make_client(profile: Any) -> tuple[Any, Any]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise MissingDependencyError(
            "the Dask executor", "dask", "pip install 'dask[distributed]'"
        ) from None
    if profile.kind == "dask-local":
        cluster = LocalCluster(
            n_workers=profile.workers,
            threads_per_worker=profile.threads_per_worker,
            processes=True,
            dashboard_address=None,
            host="127.0.0.1",
        )
        return Client(cluster), cluster
    if profile.kind == "dask-remote":
        if not profile.address:
            raise ExecutorError("profile kind dask-remote needs `address:` (tcp://host:8786)")
        try:
            return Client(profile.address, timeout="20s"), None
        except OSError as exc:
            raise ExecutorError(
                f"cannot reach the Dask scheduler at {profile.address}: {exc}"
            ) from exc
    if profile.kind == "dask-slurm":
        try:
            from dask_jobqueue import SLURMCluster
        except ImportError:
            raise MissingDependencyError(
                "the SLURM executor", "dask", "pip install dask-jobqueue"
            ) from None
        cluster = SLURMCluster(**profile.slurm)
        cluster.scale(jobs=profile.jobs)
        return Client(cluster), cluster
    raise ExecutorError(f"unknown executor kind {profile.kind!r}")


def execute_dask(ctx: RunContext, profile: Any, *, progress: bool = True) -> None:
    from distributed import as_completed

    client, cluster = make_client(profile)
    plan, base, store = ctx.plan, str(ctx.base_dir), str(ctx.store.root)
    try:
        plan_f = client.scatter(plan, broadcast=True)
        futures: dict[Any, str] = {}
        for series in work_list(plan):
            train_f = None
            if series.train is not None:
                train_f = client.submit(
                    train_task,
                    plan_f,
                    base,
                    store,
                    series.model,
                    series.seed,
                    key=f"train-{series.model}-{series.seed}-{plan.key}",
                    retries=profile.retries,
                    pure=False,
                )
                futures[train_f] = series.train
            group_fs = []
            for g in series.groups:
                deps = [train_f] if train_f is not None else []
                f = client.submit(
                    group_task,
                    plan_f,
                    base,
                    store,
                    profile.device,
                    profile.batch_size,
                    g.model,
                    g.seed,
                    g.step,
                    g.cells,
                    *deps,
                    key=f"group-{g.model}-{g.seed}-{g.step}-{plan.key}",
                    retries=profile.retries,
                    pure=False,
                )
                futures[f] = f"group:{g.model}/s{g.seed}/step{g.step}"
                group_fs.append(f)
            prev = None
            for red in series.reductions:  # reductions may read each other: chain them
                deps = group_fs + ([prev] if prev is not None else [])
                f = client.submit(
                    reduction_task,
                    plan_f,
                    base,
                    store,
                    red,
                    *deps,
                    key=f"reduce-{red}-{plan.key}".replace("/", "-").replace(":", "-"),
                    retries=profile.retries,
                    pure=False,
                )
                futures[f] = red
                prev = f
        with progress_bars(progress) as bars:
            task = bars.add_task(f"tasks on {profile.name}", total=len(futures), status="")
            for fut in as_completed(list(futures)):
                name = futures[fut]
                if fut.status == "error":
                    exc = fut.exception()
                    for other in futures:
                        other.cancel()
                    if isinstance(exc, MetricError):
                        raise exc
                    raise MetricError(
                        f"{type(exc).__name__}: {exc} (finished results are kept "
                        "in the store; fix and re-run)",
                        node=name,
                    ) from exc
                counts = fut.result()
                ctx.counters.add(Counters(**{k: counts.get(k, 0) for k in vars(Counters())}))
                bars.update(task, status=name)
                bars.advance(task)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
