"""The Dask executor: the same work units as the local loop, as a task graph on a Dask
cluster (a ``LocalCluster``, an existing scheduler, or SLURM through dask-jobqueue).

The graph:

* one task holding the plan (embedded in the graph, not scattered, so a worker that dies
  holding it costs a recomputation, never a lost input);
* one task per (model, seed) training run;
* one task per checkpoint group (the unit that loads weights once), depending on its
  training task;
* one task per reduction, depending on every group of its series (reductions of one series
  are chained, since they may read each other).

Workers write activation entries and metric cells straight into the shared store —
atomically, by content key — so a task retried after its worker died rewrites identical
bytes and concurrent writers cannot corrupt an entry. The client only draws progress,
collects counters and, afterwards, assembles the results.

Failures come in two kinds:

* a worker process dies (killed, out of memory): the scheduler reruns its task on another
  worker (up to ``distributed.scheduler.allowed-failures`` deaths), and since every write is
  idempotent the run completes with the same results;
* a task raises. A ``MispecError`` (a metric that raised, a missing checkpoint...) is
  deterministic: it is returned as a failure record, NOT retried, and the tasks depending
  on it are skipped; so is an ``OSError`` that says the store is full or read-only. Any
  other exception is retried ``retries`` times (the profile) as possibly transient. Independent tasks keep running, so every cell that can be computed
  is computed and kept; at the end the first failure is raised naming its node (e.g.
  ``cell:bad/toy/s0/step20``) and a re-run computes only what is missing.

Determinism: torch's CPU kernels reduce in an order that depends on the number of intra-op
threads (LayerNorm's backward, for one), so a checkpoint trained with 2 threads differs in
the last bits from one trained with 1. Dask's nanny starts workers with
``OMP_NUM_THREADS=1``; every task here runs under an explicit
``torch.set_num_threads(torch_threads)`` (the profile's ``torch_threads`` when it has one,
else 1), and results equal the local executor's bit for bit when it runs with the same
thread count.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import logging
import os
import pickle
import threading
import traceback
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mispec.errors import (
    CacheError,
    ExecutorError,
    MetricError,
    MispecError,
    MissingDependencyError,
    Problem,
    SpecError,
)
from mispec.execute.context import Counters, RunContext
from mispec.execute.memory import tune_malloc
from mispec.execute.progress import progress_bars
from mispec.execute.threads import pinned_torch_threads
from mispec.execute.work import work_list

DEFAULT_TORCH_THREADS = 1
MARKER_PREFIX = ".dask-run-"
PRE_SPAWN = "distributed.nanny.pre-spawn-environ"
# write failures a retry cannot fix (read-only or full store, permissions): not retried
_WRITE_ERRNOS = {errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM}


# ----------------------------------------------------------------------------- threads
def torch_threads(profile: Any) -> int | None:
    """Intra-op torch threads per task: the profile's ``torch_threads`` where profiles have
    that field (None: leave torch's default), else 1."""
    if not hasattr(profile, "torch_threads"):
        return DEFAULT_TORCH_THREADS
    n = profile.torch_threads
    return None if n is None else int(n)


# ------------------------------------------------------------------- worker-side tasks
@dataclass(frozen=True)
class Job:
    """What every task of one run needs besides the plan (small, sent with each task)."""

    base_dir: str
    store_dir: str
    marker: str  # a file the client wrote into the store: proves this worker sees it
    device: str
    batch_size: int | None
    threads: int | None


_LOCAL = threading.local()  # one RunContext per worker thread: bridges are not thread-safe


def _context(plan: Any, job: Job) -> RunContext:
    """This thread's context for (plan, store); its loaded bridge survives across tasks."""
    from mispec.store.store import Store

    key = (plan.key, job.store_dir, job.device, job.batch_size)
    ctx = getattr(_LOCAL, "ctx", None)
    if ctx is None or getattr(_LOCAL, "key", None) != key:
        if ctx is not None:
            ctx.close()
        ctx = RunContext(
            plan,
            Path(job.base_dir),
            Store(Path(job.store_dir)),
            device=job.device,
            batch_size=job.batch_size,
        )
        _LOCAL.ctx, _LOCAL.key = ctx, key
    ctx.counters = Counters()
    return ctx


def _failure(node: str, exc: BaseException) -> dict[str, Any]:
    cls = type(exc)
    message = str(exc)
    own = getattr(exc, "node", None)
    if own and message.startswith(f"{own}: "):
        message = message[len(own) + 2 :]
    return {
        "failed": {
            "node": own or node,
            "task": node,
            "type": f"{cls.__module__}:{cls.__qualname__}",
            "message": message,
            "traceback": "".join(traceback.format_exception(exc)),
            "host": _host(),
        }
    }


def _worker() -> Any:
    """The Dask worker running this code, or None outside one."""
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None


def _host() -> str:
    worker = _worker()
    return str(worker.address) if worker is not None else f"pid {os.getpid()}"


def _blocked(deps: tuple[Any, ...]) -> dict[str, Any] | None:
    """A skip record when an upstream task failed or was itself skipped."""
    for dep in deps:
        if isinstance(dep, dict) and "failed" in dep:
            return {"skipped": dep["failed"]["node"]}
        if isinstance(dep, dict) and "skipped" in dep:
            return {"skipped": dep["skipped"]}
    return None


def _sees(path: str, patience: float = 5.0) -> bool:
    """Whether this worker sees the client's marker file (a network filesystem may take a
    moment to show a new file: look again for a few seconds before saying no)."""
    import time

    deadline = time.monotonic() + patience
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def _guarded(node: str, job: Job, body: Any) -> dict[str, Any]:
    """Run ``body()`` under pinned torch threads; deterministic mispec errors become a
    failure record (no Dask retry), anything else propagates (Dask retries it)."""
    if _worker() is not None:
        tune_malloc()  # undo the nanny's MALLOC_TRIM_THRESHOLD_ freezing the mmap threshold
    try:
        if not _sees(os.path.join(job.store_dir, job.marker)):
            raise ExecutorError(
                f"worker {_host()} cannot see the store at {job.store_dir}: the store "
                "must live on a filesystem that the client and every worker share "
                "(set MISPEC_STORE or the profile's `store:`; see docs/distributed.md)"
            )
        with pinned_torch_threads(job.threads):
            counters = body()
    except MispecError as exc:
        return _failure(node, exc)
    except OSError as exc:
        if exc.errno not in _WRITE_ERRNOS:
            raise  # maybe transient (a network filesystem): Dask retries it
        return _failure(
            node,
            CacheError(
                f"worker {_host()} cannot write {exc.filename or job.store_dir}: "
                f"{exc.strerror or exc}; free space or fix permissions, then run again"
            ),
        )
    return {"counters": counters}


def load_plan_task(blob: bytes) -> Any:
    return pickle.loads(blob)


def train_task(plan: Any, job: Job, model: str, seed: int) -> dict[str, Any]:
    def body() -> dict[str, int]:
        source = plan.resolution.sources[model]
        steps = list(plan.resolution.series[(model, seed)].steps)
        store = Path(job.store_dir)
        if not source.pending_training(seed, steps, store):
            return {}  # as the local executor: saved steps are trusted (checksums on load)
        return {"training_steps": source.prepare(seed, steps, store, progress=False)}

    return _guarded(f"train:{model}/s{seed}", job, body)


def group_task(
    plan: Any,
    job: Job,
    model: str,
    seed: int,
    step: int,
    cells: tuple[str, ...],
    *deps: Any,
) -> dict[str, Any]:
    blocked = _blocked(deps)
    if blocked is not None:
        return blocked

    def body() -> dict[str, int]:
        from mispec.execute.group import run_group

        ctx = _context(plan, job)
        run_group(ctx, model, seed, step, list(cells))
        return asdict(ctx.counters)

    return _guarded(f"group:{model}/s{seed}/step{step}", job, body)


def reduction_task(plan: Any, job: Job, node_id: str, *deps: Any) -> dict[str, Any]:
    blocked = _blocked(deps)
    if blocked is not None:
        return blocked

    def body() -> dict[str, int]:
        from mispec.execute.group import run_reduction

        ctx = _context(plan, job)
        run_reduction(ctx, plan.node(node_id))
        return asdict(ctx.counters)

    return _guarded(node_id, job, body)


# ------------------------------------------------------------------------ the clusters
def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise MissingDependencyError(
            "the Dask executor", "dask", "pip install 'dask[distributed]'"
        ) from None
    return distributed


def slurm_cluster(profile: Any) -> Any:
    """The dask-jobqueue ``SLURMCluster`` of a ``dask-slurm`` profile (no jobs submitted)."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise MissingDependencyError(
            "the SLURM executor", "dask", "pip install dask-jobqueue"
        ) from None
    kwargs = dict(profile.slurm)
    if not {"cores", "memory"} <= set(kwargs):
        raise ExecutorError(
            "profile kind dask-slurm needs `slurm: {cores: N, memory: 16GB, ...}` "
            "(dask-jobqueue SLURMCluster arguments)"
        )
    try:
        return SLURMCluster(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ExecutorError(f"profile {profile.name}: bad `slurm:` arguments: {exc}") from exc


def make_client(profile: Any, *, quiet: bool = False) -> tuple[Any, Any]:
    """(client, cluster we own or None) for a Dask profile."""
    distributed = _distributed()
    if profile.kind == "dask-local":
        import dask

        with dask.config.set({f"{PRE_SPAWN}.MALLOC_TRIM_THRESHOLD_": None}):
            cluster = distributed.LocalCluster(
                n_workers=profile.workers,
                threads_per_worker=profile.threads_per_worker,
                processes=True,
                dashboard_address=None,
                host="127.0.0.1",
                silence_logs=logging.ERROR if quiet else logging.WARNING,
            )
        return distributed.Client(cluster), cluster
    if profile.kind == "dask-remote":
        if not profile.address:
            raise ExecutorError("profile kind dask-remote needs `address:` (tcp://host:8786)")
        try:
            return distributed.Client(profile.address, timeout="20s"), None
        except OSError as exc:
            raise ExecutorError(
                f"cannot reach the Dask scheduler at {profile.address}: {exc}"
            ) from exc
    if profile.kind == "dask-slurm":
        cluster = slurm_cluster(profile)
        cluster.scale(jobs=profile.jobs)
        return distributed.Client(cluster), cluster
    raise ExecutorError(f"unknown executor kind {profile.kind!r}")


def _close(client: Any, cluster: Any, kind: str) -> None:
    if cluster is None:
        with contextlib.suppress(Exception):
            client.close()  # someone else's cluster: just disconnect
        return
    # Our own cluster: the run is over, so a worker slow to exit (a busy machine) may be
    # killed without the nanny's "still alive after 4.0 seconds, killing" warning.
    nanny_log = logging.getLogger("distributed.nanny")
    level = nanny_log.level
    nanny_log.setLevel(logging.ERROR)
    try:
        with contextlib.suppress(Exception):
            if kind == "dask-local":
                client.shutdown()  # scheduler + workers in one step: no heartbeat noise
            else:
                client.close()
        with contextlib.suppress(Exception):
            cluster.close()
    finally:
        nanny_log.setLevel(level)


def _spawn_env() -> dict[str, str | None]:
    """The variables a nanny sets in its own process before spawning a worker."""
    try:
        import dask

        names = list(dask.config.get(PRE_SPAWN, {}))
    except ImportError:
        names = []
    return {n: os.environ.get(n) for n in names}


def _restore_env(before: dict[str, str | None]) -> None:
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


# ---------------------------------------------------------------------------- the client
@dataclass
class _Task:
    node: str  # what a failure names: train:..., group:..., reduction node id
    kind: str  # plan | training | checkpoints | reductions
    label: str
    upstream: tuple[Any, ...] = ()  # the futures it depends on


def submit_run(client: Any, ctx: RunContext, profile: Any, token: str) -> dict[Any, _Task]:
    """Submit the whole run; returns the futures and what each one is."""
    plan = ctx.plan
    job = Job(
        base_dir=str(Path(ctx.base_dir).resolve()),
        store_dir=str(Path(ctx.store.root).resolve()),
        marker=MARKER_PREFIX + token,
        device=profile.device,
        batch_size=profile.batch_size,
        threads=torch_threads(profile),
    )
    retries = profile.retries
    plan_f = client.submit(
        load_plan_task, pickle.dumps(plan), key=(f"mispec-plan-{token}",), pure=False
    )
    futures: dict[Any, _Task] = {}
    # Priorities: every training first (the long sequential tasks: start them early), then
    # the groups series by series, so that a worker keeps one model loaded instead of
    # switching between seeds (opening another (model, seed) costs ~0.3 s of CPU).
    work = work_list(plan)
    for i, series in enumerate(work):
        m, s = series.model, series.seed
        prio = len(work) - i
        deps: list[Any] = []
        if series.train is not None:
            f = client.submit(
                train_task, plan_f, job, m, s, key=(f"mispec-train-{token}", m, s),
                retries=retries, pure=False, priority=len(work) + 1 + prio,
            )  # fmt: skip
            futures[f] = _Task(series.train, "training", f"trained {m} seed {s}", (plan_f,))
            deps = [f]
        groups = []
        for g in series.groups:
            f = client.submit(
                group_task, plan_f, job, m, s, g.step, g.cells, *deps,
                key=(f"mispec-group-{token}", m, s, g.step), retries=retries, pure=False,
                priority=prio,
            )  # fmt: skip
            node, label = f"group:{m}/s{s}/step{g.step}", f"{m} seed {s} step {g.step}"
            futures[f] = _Task(node, "checkpoints", label, (plan_f, *deps))
            groups.append(f)
        prev: list[Any] = []
        for red in series.reductions:  # reductions may read each other: chain them
            f = client.submit(
                reduction_task, plan_f, job, red, *groups, *prev,
                key=(f"mispec-reduce-{token}", red), retries=retries, pure=False,
                priority=prio,
            )  # fmt: skip
            futures[f] = _Task(red, "reductions", red, (plan_f, *groups, *prev))
            prev = [f]
    futures[plan_f] = _Task("plan", "plan", "plan")
    return futures


def execute_dask(ctx: RunContext, profile: Any, *, progress: bool = True) -> None:
    """Run the plan's missing work on the profile's Dask cluster (blocking)."""
    distributed = _distributed()
    token = uuid.uuid4().hex[:10]
    store_root = Path(ctx.store.root).resolve()
    marker = store_root / (MARKER_PREFIX + token)
    store_root.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"mispec dask run {token}, pid {os.getpid()}\n", encoding="utf-8")
    client, cluster = None, None
    futures: dict[Any, _Task] = {}
    env_before = _spawn_env()  # Dask's nannies write their workers' env into ours
    try:
        client, cluster = make_client(profile, quiet=not progress)
        futures = submit_run(client, ctx, profile, token)
        failures = _follow(distributed, futures, ctx, profile, progress)
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                client.cancel(list(futures))  # forget the results: nothing to "lose" below
            futures.clear()
            _close(client, cluster, profile.kind)
        _restore_env(env_before)
        marker.unlink(missing_ok=True)
        ctx.close()
    if failures:
        raise _summarize(failures)


def _follow(
    distributed: Any,
    futures: dict[Any, _Task],
    ctx: RunContext,
    profile: Any,
    progress: bool,
) -> list[dict[str, Any]]:
    """Wait for every task, drawing progress; returns the failure records, first seen first.

    A task that *raised* makes Dask fail its dependents with the same exception; those are
    counted as skipped, so the report names the task where the failure happened."""
    failures: list[tuple[Any, dict[str, Any]]] = []
    raised: set[Any] = set()
    skipped = 0
    totals: dict[str, int] = {}
    for t in futures.values():
        totals[t.kind] = totals.get(t.kind, 0) + 1
    with progress_bars(progress) as bars:
        bar_ids = {
            kind: bars.add_task(kind, total=totals[kind], status=f"on {profile.name}")
            for kind in ("training", "checkpoints", "reductions")
            if totals.get(kind)
        }
        for fut in distributed.as_completed(list(futures)):
            task = futures[fut]
            if fut.status == "error":
                raised.add(fut)
                if not any(up in raised or up.status == "error" for up in task.upstream):
                    failures.append((fut, _error_record(task, fut)))
                    _tell(bars, progress, failures[-1][1])
                else:
                    skipped += 1
            elif fut.status == "cancelled":
                skipped += 1
            elif task.kind != "plan":
                out = fut.result()
                if "counters" in out:
                    ctx.counters.add(
                        Counters(**{k: out["counters"].get(k, 0) for k in vars(Counters())})
                    )
                elif "failed" in out:
                    failures.append((fut, out["failed"]))
                    _tell(bars, progress, out["failed"])
                else:
                    skipped += 1
            if task.kind in bar_ids:
                bars.update(bar_ids[task.kind], status=task.label)
                bars.advance(bar_ids[task.kind])
    # an upstream's failure may have arrived after its dependents' copies of it
    records = [r for f, r in failures if not any(up in raised for up in futures[f].upstream)]
    skipped += len(failures) - len(records)
    for record in records:
        record["n_skipped"] = skipped
    return records


def _error_record(task: _Task, fut: Any) -> dict[str, Any]:
    """A failure record for a task that raised on the worker (after its retries) or whose
    workers kept dying (``KilledWorker``)."""
    exc = fut.exception()
    name = type(exc).__name__
    if name == "KilledWorker":
        message = (
            "the worker running this task died too many times (killed, out of memory or "
            f"crashed): {exc}"
        )
    else:
        message = f"{name}: {exc}"
    if task.kind == "plan":
        message = (
            f"a worker could not load the plan ({message}); plugin metric modules and "
            "mispec itself must be importable on every worker"
        )
    return {
        "node": task.node,
        "task": task.node,
        "type": "mispec.errors:MetricError",
        "message": message,
        "traceback": "".join(traceback.format_exception(exc)),
        "host": "the worker",
    }


def _tell(bars: Any, progress: bool, record: dict[str, Any]) -> None:
    """Print a failure as it happens (above the progress bars)."""
    if progress and hasattr(bars, "console"):
        from rich.text import Text

        line = Text("failed ", style="red")
        line.append(f"{record['node']}: {record['message']} ")
        line.append("(other tasks continue; finished cells are kept)", style="dim")
        bars.console.print(line, highlight=False)


def _summarize(failures: list[dict[str, Any]]) -> MispecError:
    """The first failure as an exception of its own type, naming its node, plus a count."""
    first = failures[0]
    extra = []
    if len(failures) > 1:
        others = ", ".join(f["node"] for f in failures[1:4])
        more = "…" if len(failures) > 4 else ""
        extra.append(f"{len(failures) - 1} more failed ({others}{more})")
    if first.get("n_skipped"):
        n = first["n_skipped"]
        extra.append(
            f"{n} tasks skipped: they depend on a failed one"
            if n > 1
            else "1 task skipped: it depends on a failed one"
        )
    tail = f" [{'; '.join(extra)}]" if extra else ""
    message = (
        f"{first['message']}{tail}; finished cells are kept in the store: fix and re-run "
        "to compute only what is missing"
    )
    cls = _exception_class(first["type"])
    if issubclass(cls, MetricError):
        exc: MispecError = cls(message, node=first["node"])
    else:
        if first["node"] not in first["message"]:
            message = f"{first['node']}: {message}"
        exc = cls.__new__(cls)  # its own type (exit code), whatever its __init__ takes
        Exception.__init__(exc, message)
        if isinstance(exc, SpecError):
            exc.problems = [Problem(message)]
    exc.add_note(f"on the worker ({first['host']}):\n{first['traceback']}")  # shown by -v
    return exc


def _exception_class(qualified: str) -> type[MispecError]:
    module, _, name = qualified.partition(":")
    try:
        cls = importlib.import_module(module)
        for part in name.split("."):
            cls = getattr(cls, part)
    except (ImportError, AttributeError):
        return MetricError
    if isinstance(cls, type) and issubclass(cls, MispecError):
        return cls
    return MetricError
