"""The executor seam: an ``Executor`` runs work nodes; :func:`walk` drives any executor
through a plan's work graph to completion.

In the spirit of Hamilton's ``TaskExecutor``: an executor is told to ``init`` for a run,
is ``submit``-ted every work node (training, checkpoint group, reduction) in dependency
order together with the nodes it waits for, reports each node's :class:`Outcome` from
``as_completed`` as it finishes, and is ``finalize``-d however the run ends. What a node
*does* is the same everywhere (:func:`mispec.execute.work.run_node.run_work_node`); an executor
only decides where and when.

Executors are registered by the profile ``kind`` that selects them (``EXECUTORS``, which
holds ``Executor`` subclasses only; the built-ins are placeholders, imported when a profile
names them); a third party adds one with a module holding an ``Executor`` subclass plus a profile YAML
naming it (``kind: mypkg.ray_executor:RayExecutor``, or a ``mispec.executors`` entry point).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from mispec.errors import ExecutorError, UserError
from mispec.registry import Registry, subclass_of

if TYPE_CHECKING:
    from mispec.execute.context import Counters, RunContext
    from mispec.execute.profile import Profile
    from mispec.execute.progress import WorkProgress
    from mispec.planning.nodes import WorkNode


class ExecutorOptions(BaseModel):
    """An executor's own profile keys (none by default); subclass per executor."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class Outcome:
    """How one submitted work node ended: done (with the counters of work done elsewhere;
    None when the work was counted in the run's own context), failed (a failure record,
    see :mod:`mispec.execute.remote`) or skipped (an upstream node failed)."""

    counters: Counters | None = None
    failure: dict[str, Any] | None = None
    skipped: bool = False


class Executor(ABC):
    """Runs the work nodes of one run. Subclasses set ``Options`` (their profile keys)."""

    Options: ClassVar[type[ExecutorOptions]] = ExecutorOptions
    options: ExecutorOptions  # subclasses narrow it to their own Options

    def __init__(self, profile: Profile):
        self.profile = profile
        self.options = profile.options

    def init(self, ctx: RunContext, progress: WorkProgress) -> None:  # noqa: B027
        """Prepare for a run (start a cluster, a writer...)."""

    @abstractmethod
    def submit(self, node: WorkNode, upstream: Sequence[WorkNode]) -> None:
        """Schedule ``node``, to run after every node of ``upstream`` (already submitted)."""

    @abstractmethod
    def as_completed(self) -> Iterator[tuple[WorkNode | None, Outcome]]:
        """Each submitted node's outcome as it finishes (``None``: an executor-internal task,
        e.g. shipping the plan, that failed)."""

    def finalize(self) -> None:  # noqa: B027
        """Release what ``init`` took; called however the run ends."""


EXECUTORS: Registry[type[Executor]] = Registry(
    "executor kind",
    entry_point_group="mispec.executors",
    accepts=subclass_of(Executor),
    wrong_kind="executor kind '{name}' is not a mispec Executor subclass",
)
EXECUTORS.register_lazy("local", "mispec.execute.local.executor:LocalExecutor")
EXECUTORS.register_lazy("dask-local", "mispec.execute.dask.executor:DaskLocalExecutor")
EXECUTORS.register_lazy("dask-remote", "mispec.execute.dask.executor:DaskRemoteExecutor")
EXECUTORS.register_lazy("dask-slurm", "mispec.execute.dask.executor:DaskSlurmExecutor")


def executor_class(kind: str) -> type[Executor]:
    """The ``Executor`` subclass for a profile ``kind`` (a registered name or ``module:Class``);
    ``ExecutorError`` when there is none."""
    try:
        return EXECUTORS.get(kind)
    except UserError as exc:
        raise ExecutorError(str(exc)) from None


@dataclass
class _Tally:
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)
    internal: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0


def walk(ctx: RunContext, executor: Executor, *, progress: bool = True) -> None:
    """Run every work node of ``ctx.plan`` on ``executor``; raise the first failure (named
    by its node, with a count of the others) after everything that could run has run.
    Progress goes to the run's display (the one open, else one for this walk)."""
    import networkx as nx

    from mispec.execute.progress import WorkProgress
    from mispec.execute.remote import summarize
    from mispec.runtime.display import run_display

    plan = ctx.plan
    work = plan.work()
    order = plan.work_order()
    tally = _Tally()
    with run_display(progress) as display:
        tracker = WorkProgress(display, order, where=executor.profile.name, enabled=progress)
        executor.init(ctx, tracker)
        try:
            for node in order:
                executor.submit(node, [work.nodes[u]["node"] for u in work.predecessors(node.id)])
            for done, outcome in executor.as_completed():
                if outcome.counters is not None:
                    ctx.counters.add(outcome.counters)
                if outcome.failure is not None:
                    if done is None:
                        tally.internal.append(outcome.failure)
                    else:
                        tally.failures[done.id] = outcome.failure
                    tracker.tell(outcome.failure)
                tally.skipped += outcome.skipped
                if done is not None:
                    tracker.finished(done)
            tracker.done()
        finally:
            executor.finalize()
    # a failure that arrived after its upstream's is the upstream's (counted as skipped)
    first = {
        n: r
        for n, r in tally.failures.items()
        if not any(u in tally.failures for u in nx.ancestors(work, n))
    }
    records = tally.internal + list(first.values())
    if records:
        records[0]["n_skipped"] = tally.skipped + len(tally.failures) - len(first)
        raise summarize(records)
