"""The local executor: every work node in this process, one after the other, in the
order the walk submits them (one (model, seed) at a time, so one model stays loaded) —
except long training runs, which train side by side in their own processes when cores are
free (:mod:`mispec.execute.parallel_training`), while this process goes on with the work
that is ready."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from mispec.execute.executor import Executor, ExecutorOptions, Outcome
from mispec.execute.memory import tune_malloc
from mispec.execute.tasks import run_work_node
from mispec.execute.threads import pinned_torch_threads
from mispec.store.writer import BackgroundWriter, InlineWriter

if TYPE_CHECKING:
    from mispec.execute.context import RunContext
    from mispec.execute.progress import WorkProgress
    from mispec.planning.nodes import WorkNode


class LocalOptions(ExecutorOptions):
    """``processes``: how many (model, seed) runs may train at once, each in its own process
    (``auto``: as many as the cores hold ``torch_threads`` each; 1: all in this process);
    ``parallel_min_steps``: runs with fewer training steps left train in this process
    (starting one costs about as much as training a few hundred toy steps)."""

    processes: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    parallel_min_steps: Annotated[int, Field(ge=0)] = 500


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
        from mispec.execute.parallel_training import TrainingPool, worth_parallel
        from mispec.execute.remote import outcome_of
        from mispec.execute.train_together import seed_groups, train_ready_together

        ctx = self._ctx
        together = seed_groups(ctx, self._queue, self.profile.batch_seeds)  # seeds batched
        nodes, n = worth_parallel(
            ctx,
            [node for node in self._queue if node.id not in together],
            processes=self.options.processes,
            min_steps=self.options.parallel_min_steps,
            threads=self.profile.torch_threads,
        )
        pool = TrainingPool(ctx, nodes, n, self.profile.torch_threads) if n else None
        if pool is not None:
            self._stack.callback(pool.close)
        done: set[str] = set()
        for node in self._queue:
            if node.id in done:  # trained together with an earlier node of its model
                yield node, Outcome()
                continue
            if pool is not None and pool.owns(node):
                pool.start(self._upstream, done)
                self._progress.starting(node)
                outcome = outcome_of(pool.result(node))
            else:
                if pool is not None:
                    pool.start(self._upstream, done)
                self._progress.starting(node)
                if node.id in together:  # with its model's other seeds that are ready
                    trained = train_ready_together(
                        ctx, node, together, self._upstream, done, progress=self._progress.enabled
                    )
                    done.update(g.id for g in trained)
                else:
                    run_work_node(ctx, node, progress=self._progress.enabled)
                outcome = Outcome()
            done.add(node.id)
            yield node, outcome
            if outcome.failure is not None:
                return  # the walk raises it; nodes after it would read what is missing
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
