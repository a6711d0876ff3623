"""The local executor's loop: which node runs next, here or in a lane's worker process.

This process runs, in queue order, the first node that no lane holds and whose upstream is
done; it waits for a lane only when nothing else is ready. Lanes (:mod:`mispec.execute.local.lanes`)
come from two places:

* **training** — a ``train:`` run with at least ``parallel_min_steps`` steps left gets a lane
  from the start: its training and the groups and reductions waiting only on it;
* **evaluation** — once this process has timed a checkpoint group of a model (a group that
  computed something), another (model, seed) whose pending groups are estimated at
  ``parallel_min_seconds`` or more gets a lane while a process is free: the checkpoint
  groups of different seeds (or models) then run side by side. The estimate is this run's
  own mean time per group of that model times the groups left, so a toy's 20 ms groups
  never pay for a worker's ~3 s start while a Pythia checkpoint's seconds do.

Every node's outcome is yielded as it ends; on a failure the lanes still running finish and
every failure is told, the first in queue order first.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from mispec.execute.executor import Outcome
from mispec.execute.local.train_together import stack_groups, train_ready_together
from mispec.execute.work.run_node import run_work_node

if TYPE_CHECKING:
    from mispec.execute.context import RunContext
    from mispec.execute.local.lanes import LanePool
    from mispec.execute.progress import WorkProgress
    from mispec.planning.nodes import WorkNode


class LocalSchedule:
    def __init__(
        self,
        ctx: RunContext,
        queue: list[WorkNode],
        upstream: dict[str, Sequence[WorkNode]],
        *,
        profile: Any,
        progress: WorkProgress,
        stack: ExitStack,
    ):
        self.ctx, self.queue, self.upstream = ctx, queue, upstream
        self.profile, self.options, self.progress = profile, profile.options, progress
        self.pending = {node.id: node for node in queue}  # in queue order; O(1) removal
        self.done: set[str] = set()
        self.seconds: dict[str, list[float]] = defaultdict(list)  # model -> group times
        # train: runs of one architecture trained together here (batch_seeds): never in a lane
        self.together = stack_groups(ctx, queue, profile.batch_seeds)
        self.pool = self._pool(stack)

    def _pool(self, stack: ExitStack) -> LanePool | None:
        """The lane pool with the training lanes, or None (made later if evaluation lanes
        come: :meth:`_lane_pool`)."""
        from mispec.execute.local.lanes import lane_processes, lanes_of, worth_parallel

        trains, n = worth_parallel(
            self.ctx,
            [node for node in self.queue if node.id not in self.together],
            processes=self.options.processes,
            min_steps=self.options.parallel_min_steps,
            threads=self.profile.torch_threads,
        )
        self.size = max(
            n, lane_processes(self.ctx, self.queue, self.options.processes, self.profile)
        )
        self.stack = stack
        if not n:
            return None
        return self._lane_pool(lanes_of(trains, self.queue, self.upstream))

    def _lane_pool(self, lanes: list[list[WorkNode]]) -> LanePool:
        from mispec.execute.local.lanes import LanePool

        pool = LanePool(self.ctx, lanes, self.size, self.profile)
        self.stack.callback(pool.close)
        return pool

    def ready(self, node: WorkNode) -> bool:
        return all(u.id in self.done for u in self.upstream[node.id])

    def run(self) -> Iterator[tuple[WorkNode | None, Outcome]]:
        while self.pending:
            pool = self.pool
            ended: list[tuple[WorkNode, Outcome]] = []
            if pool is not None:
                for first in pool.start(self.upstream, self.done):
                    self.progress.starting(first)
                ended = list(pool.finished(block=False))
            here = next(
                (
                    x
                    for x in self.pending.values()
                    if (pool is None or not pool.owns(x)) and self.ready(x)
                ),
                None,
            )
            if not ended and here is None:
                assert pool is not None and pool.busy, "nothing ready and no lane running"
                ended = list(pool.finished(block=True))
            if pool is not None and any(o.failure is not None for _, o in ended):
                while pool.busy:  # the lanes still running end too: every failure is told,
                    ended += pool.finished(block=True)  # the first in queue order first
                rank = {node.id: i for i, node in enumerate(self.queue)}
                ended.sort(key=lambda item: rank[item[0].id])
            for node, outcome in ended:
                self.done.add(node.id)
                del self.pending[node.id]
                yield node, outcome
            if any(o.failure is not None for _, o in ended):
                return  # the walk raises it; nodes after it would read what is missing
            if ended:
                continue  # a lane's nodes may have made other nodes ready, or lanes startable
            assert here is not None
            if here.id in self.together:  # with the other runs of its stack group that are ready
                self.progress.starting(here)
                for node in train_ready_together(
                    self.ctx,
                    here,
                    self.together,
                    self.upstream,
                    self.done,
                    progress=self.progress.enabled,
                ):
                    self.done.add(node.id)
                    del self.pending[node.id]
                    yield node, Outcome()
                continue
            yield here, self._run_here(here)
        self.ctx.writer.flush()  # raises the first failed write

    def _runs_here(self, start: WorkNode) -> Iterator[WorkNode]:
        """The nodes this process will run from ``start`` on, each ready now (lazily: a
        batched evaluation reads only as far as it batches). Nodes a lane holds are left
        out, or this process would read — and train — a lane's checkpoints."""
        pool = self.pool
        nodes = iter(self.pending.values())
        for node in nodes:  # skip to ``start`` (near the front: the first node ready here)
            if node is start:
                break
        for node in itertools.chain([start], nodes):
            if (pool is None or not pool.owns(node)) and self.ready(node):
                yield node

    def _run_here(self, node: WorkNode) -> Outcome:
        from mispec.execute.work.batched import prefetch
        from mispec.planning.nodes import GroupNode

        ctx = self.ctx
        self.progress.starting(node)
        before, t0 = ctx.counters.cells_computed, time.perf_counter()
        prefetch(ctx, self._runs_here(node), self.profile)  # batched checkpoints (GPU)
        run_work_node(ctx, node, progress=self.progress.enabled)
        self.done.add(node.id)
        del self.pending[node.id]
        if isinstance(node, GroupNode) and ctx.counters.cells_computed > before:
            self.seconds[node.model].append(time.perf_counter() - t0)
            self._evaluation_lanes(node)
        return Outcome()

    def _evaluation_lanes(self, current: WorkNode) -> None:
        """Give free processes to the (model, seed)s whose pending groups are estimated, from
        this run's timing, at ``parallel_min_seconds`` or more (not the one running here)."""
        from mispec.execute.local.lanes import lane_from
        from mispec.planning.nodes import GroupNode

        if self.size <= 1 or (self.pool is not None and self.pool.free <= 1):
            return  # one core stays with this process's own work
        series: dict[tuple[str, int], list[WorkNode]] = defaultdict(list)
        for node in self.pending.values():
            series[(node.model, node.seed)].append(node)
        for (model, seed), nodes in series.items():
            pool = self.pool
            if pool is not None and pool.free <= 1:
                return
            times = self.seconds.get(model)
            if not times or (model, seed) == (current.model, current.seed):
                continue
            if (pool is not None and any(pool.owns(n) for n in nodes)) or not self.ready(nodes[0]):
                continue
            if any(n.id in self.together for n in nodes):
                continue  # its seeds train together here
            lane = lane_from(nodes[0], list(self.pending.values()), self.upstream, self.done)
            groups = sum(isinstance(n, GroupNode) for n in lane)
            if groups * sum(times) / len(times) < self.options.parallel_min_seconds:
                continue
            if pool is None:
                self.pool = self._lane_pool([])
            assert self.pool is not None
            self.pool.add(lane)
