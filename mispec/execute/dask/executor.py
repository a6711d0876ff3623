"""The Dask executors: the plan's work nodes as a Dask task graph, on a ``LocalCluster``
(``dask-local``), an existing scheduler (``dask-remote``) or SLURM through dask-jobqueue
(``dask-slurm``).

The graph: one task holding the plan (embedded in the graph, not scattered, so a worker that
dies holding it costs a recomputation, never a lost input), then one task per work node —
training per (model, seed), checkpoint group, reduction — depending on the tasks of the work
nodes it needs. Every task is :func:`mispec.execute.remote.run_remote` (the remote-task
protocol: failure and skip records, store visibility); the client draws progress and
collects counters.

A worker process that dies (killed, out of memory) has its task rerun on another worker by
the scheduler (up to ``distributed.scheduler.allowed-failures`` deaths); every write is
idempotent, so the run completes with the same results. A task that raises something other
than a mispec error is retried ``retries`` times (the profile).

Determinism: torch's CPU kernels reduce in an order that depends on the number of intra-op
threads, so every task runs under the profile's ``torch_threads``; Dask's nanny starts
workers with ``OMP_NUM_THREADS=1``. Results equal the local executor's bit for bit when it
runs with the same thread count.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from mispec.errors import ExecutorError, MissingDependencyError
from mispec.execute.dask.progress_events import ClientMirror, WorkerEvents
from mispec.execute.executor import Executor, ExecutorOptions, Outcome
from mispec.execute.remote import Job, outcome_of, raised_record, run_remote, store_marker

if TYPE_CHECKING:
    from mispec.execute.context import RunContext
    from mispec.execute.progress import WorkProgress
    from mispec.planning.nodes import WorkNode

PRE_SPAWN = "distributed.nanny.pre-spawn-environ"
Retries = Annotated[int, Field(ge=0)]


def load_plan_task(blob: bytes) -> Any:
    return pickle.loads(blob)


@dataclass
class _Task:
    node: WorkNode | None  # None: the plan task
    upstream: tuple[Any, ...]  # the futures it depends on


class DaskExecutor(Executor):
    """The Dask client side; subclasses say which cluster (:meth:`connect`)."""

    class Options(ExecutorOptions):
        """The profile keys of every Dask executor.

        Args:
            retries: reruns of a task that raised an error other than mispec's own (default 2;
                0: none).
        """

        retries: Retries = 2  # reruns of a task that raised a non-mispec error

    options: Options

    def connect(self, distributed: Any, quiet: bool) -> tuple[Any, Any]:
        """(client, the cluster we own or None)."""
        raise NotImplementedError

    def init(self, ctx: RunContext, progress: WorkProgress) -> None:
        self._ctx, self._progress = ctx, progress
        self._distributed = _distributed()
        self._client: Any = None
        self._cluster: Any = None
        self._mirror: ClientMirror | None = None
        self._futures: dict[Any, _Task] = {}
        self._by_node: dict[str, Any] = {}
        self._stack = contextlib.ExitStack()
        env_before = spawn_env()  # Dask's nannies write their workers' env into ours
        self._stack.callback(restore_env, env_before)
        self._stack.callback(ctx.close)
        token = uuid.uuid4().hex[:10]
        self._token = token
        marker = self._stack.enter_context(store_marker(ctx.store.root, token))
        profile = self.profile
        events = WorkerEvents(f"mispec-progress-{token}") if progress.enabled else None
        self._job = Job(
            base_dir=str(Path(ctx.base_dir).resolve()),
            store_dir=str(Path(ctx.store.root).resolve()),
            marker=marker,
            device=profile.device,
            batch_size=profile.batch_size,
            threads=profile.torch_threads,
            progress=events,
        )
        self._client, self._cluster = self.connect(self._distributed, not progress.enabled)
        if events is not None:  # the workers' training bars and live metrics, shown here
            self._mirror = ClientMirror(self._client, events, progress.display)
        self._plan = self._client.submit(
            load_plan_task, pickle.dumps(ctx.plan), key=(f"mispec-plan-{token}",), pure=False
        )
        self._futures[self._plan] = _Task(None, ())
        self._n = self._remaining = len(ctx.plan.work())

    def submit(self, node: WorkNode, upstream: Sequence[WorkNode]) -> None:
        # Priorities follow the walk's order, trainings first (the long sequential tasks:
        # start them early); a worker then keeps one model loaded instead of switching
        # between seeds (opening another (model, seed) costs ~0.3 s of CPU).
        deps = [self._by_node[u.id] for u in upstream]
        self._remaining -= 1
        priority = self._remaining + (self._n if node.kind == "train" else 0)
        f = self._client.submit(
            run_remote, self._plan, self._job, node.id, *deps,
            key=(f"mispec-{self._token}", node.id), retries=self.options.retries,
            pure=False, priority=priority,
        )  # fmt: skip
        self._futures[f] = _Task(node, (self._plan, *deps))
        self._by_node[node.id] = f

    def as_completed(self) -> Iterator[tuple[WorkNode | None, Outcome]]:
        """Outcomes as tasks finish. A task that *raised* makes Dask fail its dependents with
        the same exception: those are reported as skipped."""
        raised: set[Any] = set()
        for fut in self._distributed.as_completed(list(self._futures)):
            task = self._futures[fut]
            if fut.status == "error":
                raised.add(fut)
                if any(up in raised or up.status == "error" for up in task.upstream):
                    yield task.node, Outcome(skipped=True)
                else:
                    yield task.node, Outcome(failure=_error_record(task, fut))
            elif fut.status == "cancelled":
                yield task.node, Outcome(skipped=True)
            elif task.node is not None:
                yield task.node, outcome_of(fut.result())
        self._close_mirror()

    def _close_mirror(self) -> None:
        mirror, self._mirror = self._mirror, None
        if mirror is not None:
            mirror.close()

    def finalize(self) -> None:
        try:
            if self._client is not None:
                self._close_mirror()
                with contextlib.suppress(Exception):
                    self._client.cancel(list(self._futures))  # forget the results
                self._futures.clear()
                _close(self._client, self._cluster, own_local=isinstance(self, DaskLocalExecutor))
        finally:
            self._stack.close()


class DaskLocalExecutor(DaskExecutor):
    """``kind: dask-local``: a ``LocalCluster`` of worker processes on this machine."""

    class Options(DaskExecutor.Options):
        """``dask-local``'s profile keys.

        Args:
            workers: worker processes of the local cluster (default 2; about one per core).
            threads_per_worker: threads in each worker process (default 1).
        """

        workers: Annotated[int, Field(gt=0)] = 2  # worker processes; about one per core
        threads_per_worker: Annotated[int, Field(gt=0)] = 1

    options: Options

    def connect(self, distributed: Any, quiet: bool) -> tuple[Any, Any]:
        import dask

        with dask.config.set({f"{PRE_SPAWN}.MALLOC_TRIM_THRESHOLD_": None}):
            cluster = distributed.LocalCluster(
                n_workers=self.options.workers,
                threads_per_worker=self.options.threads_per_worker,
                processes=True,
                dashboard_address=None,
                host="127.0.0.1",
                silence_logs=logging.ERROR if quiet else logging.WARNING,
            )
        return distributed.Client(cluster), cluster


class DaskRemoteExecutor(DaskExecutor):
    """``kind: dask-remote``: an existing scheduler at ``address``."""

    class Options(DaskExecutor.Options):
        """``dask-remote``'s profile keys.

        Args:
            address: the running Dask scheduler's address, e.g. ``tcp://host:8786``.
        """

        address: str  # tcp://host:8786

    options: Options

    def connect(self, distributed: Any, quiet: bool) -> tuple[Any, Any]:
        address = self.options.address
        try:
            return distributed.Client(address, timeout="20s"), None
        except OSError as exc:
            raise ExecutorError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc


class DaskSlurmExecutor(DaskExecutor):
    """``kind: dask-slurm``: ``jobs`` SLURM jobs through dask-jobqueue."""

    class Options(DaskExecutor.Options):
        """``dask-slurm``'s profile keys.

        Args:
            slurm: keyword arguments of dask-jobqueue's ``SLURMCluster`` (queue, cores, memory,
                walltime, ...).
            jobs: SLURM jobs to start (default 1).
        """

        slurm: dict[str, object] = Field(default_factory=dict)  # SLURMCluster kwargs
        jobs: Annotated[int, Field(gt=0)] = 1

    options: Options

    def connect(self, distributed: Any, quiet: bool) -> tuple[Any, Any]:
        cluster = self.cluster()
        cluster.scale(jobs=self.options.jobs)
        return distributed.Client(cluster), cluster

    def cluster(self) -> Any:
        """The dask-jobqueue ``SLURMCluster`` of this profile (no jobs submitted)."""
        try:
            from dask_jobqueue import SLURMCluster
        except ImportError:
            raise MissingDependencyError(
                "the SLURM executor", "dask", "pip install dask-jobqueue"
            ) from None
        kwargs: dict[str, Any] = dict(self.options.slurm)
        if not {"cores", "memory"} <= set(kwargs):
            raise ExecutorError(
                "profile kind dask-slurm needs `slurm: {cores: N, memory: 16GB, ...}` "
                "(dask-jobqueue SLURMCluster arguments)"
            )
        try:
            return SLURMCluster(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ExecutorError(
                f"profile {self.profile.name}: bad `slurm:` arguments: {exc}"
            ) from exc


# ------------------------------------------------------------------------ helpers
def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise MissingDependencyError(
            "the Dask executor", "dask", "pip install 'dask[distributed]'"
        ) from None
    return distributed


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
    if task.node is None:
        message = (
            f"a worker could not load the plan ({message}); plugin metric modules and "
            "mispec itself must be importable on every worker"
        )
    return raised_record(task.node.id if task.node is not None else "plan", exc, message)


def _close(client: Any, cluster: Any, *, own_local: bool) -> None:
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
            if own_local:
                client.shutdown()  # scheduler + workers in one step: no heartbeat noise
            else:
                client.close()
        with contextlib.suppress(Exception):
            cluster.close()
    finally:
        nanny_log.setLevel(level)


def spawn_env() -> dict[str, str | None]:
    """The variables a nanny sets in its own process before spawning a worker."""
    try:
        import dask

        names = list(dask.config.get(PRE_SPAWN, {}))
    except ImportError:
        names = []
    return {n: os.environ.get(n) for n in names}


def restore_env(before: dict[str, str | None]) -> None:
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
