"""The remote-task protocol shared by every executor that runs work nodes outside the
client's process (Dask today; a Ray or thread-pool executor the same way).

* A :class:`Job` is what every task of one run needs besides the plan: where the store and
  the spec's folder are, a marker file that proves a worker sees the store, the device,
  batch size and torch threads.
* :func:`run_remote` is THE task: it runs one work node in a per-thread context
  (:func:`worker_context`: bridges are not thread-safe, and a loaded model survives across
  the tasks of one thread) and returns a plain record — ``{"counters": ...}``,
  ``{"failed": ...}`` or ``{"skipped": <node>}``.
* Failures come in two kinds. A ``MispecError`` (a metric that raised, a missing checkpoint)
  and a write the user must fix (full or read-only store) are deterministic: returned as a
  failure record, never retried, and the tasks depending on them return skip records. Any
  other exception propagates, for the executor to retry as possibly transient.
* :func:`summarize` turns the failure records into one exception of the first failure's own
  type (so its exit code), naming its node, with a count of the others.

Workers write activation entries and metric cells straight into the shared store —
atomically, by content key — so a retried task rewrites identical bytes.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mispec.errors import CacheError, ExecutorError, MetricError, MispecError, Problem, SpecError
from mispec.execute.context import Counters, RunContext
from mispec.execute.executor import Outcome
from mispec.runtime.display import forwarding
from mispec.runtime.memory import tune_malloc
from mispec.runtime.threads import pinned_torch_threads
from mispec.store.write_errors import WRITE_ERRNOS

if TYPE_CHECKING:
    from mispec.planning.graph import Plan

MARKER_PREFIX = ".mispec-run-"


@dataclass(frozen=True)
class Job:
    """What every task of one run needs besides the plan (small, sent with each task)."""

    base_dir: str
    store_dir: str
    marker: str  # a file the client wrote into the store: proves this worker sees it
    device: str
    batch_size: int | None
    threads: int | None
    # where a task's progress goes (a training loop's bar, its live metrics): a picklable
    # callable taking one message dict (mispec.runtime.display_forward); None: nowhere
    progress: Callable[[dict[str, Any]], None] | None = None


@contextlib.contextmanager
def store_marker(store_dir: Path, token: str) -> Iterator[str]:
    """Write the marker file workers look for (see :func:`sees`); yields its name."""
    root = Path(store_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    marker = root / (MARKER_PREFIX + token)
    marker.write_text(f"mispec run {token}, pid {os.getpid()}\n", encoding="utf-8")
    try:
        yield marker.name
    finally:
        marker.unlink(missing_ok=True)


# ----------------------------------------------------------------------- worker side
_LOCAL = threading.local()  # one RunContext per worker thread: bridges are not thread-safe


def worker_context(plan: Plan, job: Job) -> RunContext:
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


def run_remote(plan: Plan, job: Job, node_id: str, *upstream: Any) -> dict[str, Any]:
    """THE task: run work node ``node_id`` unless an upstream task failed or was skipped
    (``upstream``: their records)."""
    blocked = blocked_by(upstream)
    if blocked is not None:
        return blocked

    def body() -> dict[str, int]:
        from mispec.execute.work.run_node import run_work_node
        from mispec.planning.nodes import GroupNode, ReductionNode, TrainNode

        node = plan.node(node_id)
        assert isinstance(node, TrainNode | GroupNode | ReductionNode)
        ctx = worker_context(plan, job)
        with forwarding(job.progress):  # shown by the client's display
            run_work_node(ctx, node, progress=job.progress is not None)
        return asdict(ctx.counters)

    return guarded(node_id, job, body)


def blocked_by(upstream: tuple[Any, ...]) -> dict[str, Any] | None:
    """A skip record when an upstream task failed or was itself skipped."""
    for dep in upstream:
        if isinstance(dep, dict) and "failed" in dep:
            return {"skipped": dep["failed"]["node"]}
        if isinstance(dep, dict) and "skipped" in dep:
            return {"skipped": dep["skipped"]}
    return None


def guarded(node: str, job: Job, body: Callable[[], dict[str, int]]) -> dict[str, Any]:
    """Run ``body()`` under pinned torch threads; deterministic mispec errors become a
    failure record (no retry), anything else propagates (the executor may retry it)."""
    tune_malloc()  # e.g. undo a Dask nanny's MALLOC_TRIM_THRESHOLD_ freezing the mmap threshold
    try:
        if not sees(os.path.join(job.store_dir, job.marker)):
            raise ExecutorError(
                f"worker {host()} cannot see the store at {job.store_dir}: the store "
                "must live on a filesystem that the client and every worker share "
                "(set MISPEC_STORE or the profile's `store:`; see docs/distributed.md)"
            )
        with pinned_torch_threads(job.threads):
            counters = body()
    except MispecError as exc:
        return failure(node, exc)
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            raise  # maybe transient (a network filesystem): the executor may retry it
        return failure(
            node,
            CacheError(
                f"worker {host()} cannot write {exc.filename or job.store_dir}: "
                f"{exc.strerror or exc}; free space or fix permissions, then run again"
            ),
        )
    return {"counters": counters}


def sees(path: str, patience: float = 5.0) -> bool:
    """Whether this worker sees the client's marker file (a network filesystem may take a
    moment to show a new file: look again for a few seconds before saying no)."""
    deadline = time.monotonic() + patience
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def host() -> str:
    """The Dask worker's address when running in one, else this process."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def failure(node: str, exc: BaseException) -> dict[str, Any]:
    """The failure record of ``exc`` raised while running ``node``."""
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
            "host": host(),
        }
    }


# ----------------------------------------------------------------------- client side
def outcome_of(record: dict[str, Any]) -> Outcome:
    """The :class:`Outcome` a task's record stands for."""
    if "counters" in record:
        return Outcome(
            counters=Counters(**{k: record["counters"].get(k, 0) for k in vars(Counters())})
        )
    if "failed" in record:
        return Outcome(failure=record["failed"])
    return Outcome(skipped=True)


def raised_record(node: str, exc: BaseException, message: str) -> dict[str, Any]:
    """A failure record for a task that raised on its worker (after its retries)."""
    return {
        "node": node,
        "task": node,
        "type": "mispec.errors:MetricError",
        "message": message,
        "traceback": "".join(traceback.format_exception(exc)),
        "host": "the worker",
    }


def summarize(failures: list[dict[str, Any]]) -> MispecError:
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
        cls: Any = importlib.import_module(module)
        for part in name.split("."):
            cls = getattr(cls, part)
    except (ImportError, AttributeError):
        return MetricError
    if isinstance(cls, type) and issubclass(cls, MispecError):
        return cls
    return MetricError
