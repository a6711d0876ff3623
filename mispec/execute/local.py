"""The local executor: every work node in this process, one after the other, in the
order the walk submits them (one (model, seed) at a time, so one model stays loaded)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING

from mispec.execute.executor import Executor, Outcome
from mispec.execute.memory import tune_malloc
from mispec.execute.tasks import run_work_node
from mispec.execute.threads import pinned_torch_threads
from mispec.store.writer import BackgroundWriter, InlineWriter

if TYPE_CHECKING:
    from mispec.execute.context import RunContext
    from mispec.execute.progress import WorkProgress
    from mispec.planning.nodes import WorkNode


class LocalExecutor(Executor):
    """Runs nodes lazily, as :meth:`as_completed` is iterated: the walk draws progress
    between them. Store writes go to a background writer when a core is free."""

    def init(self, ctx: RunContext, progress: WorkProgress) -> None:
        self._ctx, self._progress = ctx, progress
        self._queue: list[WorkNode] = []
        self._stack = ExitStack()
        tune_malloc()  # no unmap / fault-in churn of activation buffers between forward passes
        self._stack.enter_context(pinned_torch_threads(self.profile.torch_threads))
        ctx.writer = _writer()

    def submit(self, node: WorkNode, upstream: Sequence[WorkNode]) -> None:
        self._queue.append(node)  # submitted in dependency order: upstream came first

    def as_completed(self) -> Iterator[tuple[WorkNode | None, Outcome]]:
        ctx = self._ctx
        for node in self._queue:
            self._progress.starting(node)
            run_work_node(ctx, node, progress=self._progress.enabled)
            yield node, Outcome()
        ctx.writer.flush()  # raises the first failed write

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
    import os

    import torch

    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return BackgroundWriter() if torch.get_num_threads() < cores else InlineWriter()
