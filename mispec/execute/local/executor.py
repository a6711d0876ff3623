"""The local executor: every work node in this process, one after the other, in the
order the walk submits them (one (model, seed) at a time, so one model stays loaded) —
except the lanes of long training runs (a (model, seed)'s training and the work that waits
only on it), which run side by side in their own processes when cores are free
(:mod:`mispec.execute.local.lanes`), while this process goes on with the work that is ready."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from mispec.execute.executor import Executor, ExecutorOptions, Outcome
from mispec.runtime.memory import tune_malloc
from mispec.runtime.threads import core_free, pinned_torch_threads
from mispec.store.writer import BackgroundWriter, InlineWriter

if TYPE_CHECKING:
    from mispec.execute.context import RunContext
    from mispec.execute.progress import WorkProgress
    from mispec.planning.nodes import WorkNode


class LocalOptions(ExecutorOptions):
    """The local executor's profile keys.

    Args:
        processes: how many (model, seed) runs may train and be evaluated at once, each in its
            own process (``auto``: as many as the cores hold ``torch_threads`` each; 1: all in
            this process).
        parallel_min_steps: runs with fewer training steps left run in this process (starting
            one costs about as much as training a few hundred toy steps).
        parallel_min_seconds: another (model, seed)'s checkpoint groups get their own process
            once this run has timed a group of that model and the groups left are estimated at
            this many seconds or more (a worker starts in ~3 s).
    """

    processes: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    parallel_min_steps: Annotated[int, Field(ge=0)] = 500
    parallel_min_seconds: Annotated[float, Field(ge=0)] = 20.0


class LocalExecutor(Executor):
    """Runs nodes lazily, as :meth:`as_completed` is iterated: the walk draws progress
    between them. Store writes go to a background writer when a core is free."""

    Options = LocalOptions
    options: LocalOptions

    def init(self, ctx: RunContext, progress: WorkProgress) -> None:
        self._ctx, self._progress = ctx, progress
        self._queue: list[WorkNode] = []
        self._upstream: dict[str, Sequence[WorkNode]] = {}
        self._stack = ExitStack()
        tune_malloc()  # no unmap / fault-in churn of activation buffers between forward passes
        self._stack.enter_context(pinned_torch_threads(self.profile.torch_threads))
        ctx.writer = _writer()

    def submit(self, node: WorkNode, upstream: Sequence[WorkNode]) -> None:
        self._queue.append(node)  # submitted in dependency order: upstream came first
        self._upstream[node.id] = upstream

    def as_completed(self) -> Iterator[tuple[WorkNode | None, Outcome]]:
        """Run the queue here and in lanes (:mod:`mispec.execute.local.schedule`)."""
        from mispec.execute.local.schedule import LocalSchedule

        schedule = LocalSchedule(
            self._ctx,
            self._queue,
            self._upstream,
            profile=self.profile,
            progress=self._progress,
            stack=self._stack,
        )
        yield from schedule.run()

    def finalize(self) -> None:
        ctx = self._ctx
        try:
            ctx.writer.close()  # what was computed lands even when the run stops early
        finally:
            ctx.writer = InlineWriter()
            ctx.close()
            self._stack.close()


def _writer() -> BackgroundWriter | InlineWriter:
    """A background writer (store writes overlap the next forward pass) when a core is left
    over from torch's threads; otherwise writes happen inline. A writer thread on a core that
    an OpenMP thread also needs stalls every parallel region of the forward pass: measured on
    2 cores with 2 torch threads, the background writer made a toy cold run 1.1-1.3x slower
    than writing inline, while with 1 torch thread it hid the writes entirely."""
    return BackgroundWriter() if core_free() else InlineWriter()
