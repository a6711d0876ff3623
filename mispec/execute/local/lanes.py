"""Lanes: the work of independent (model, seed) runs side by side, one process each, while
the local executor goes on with whatever is ready.

Training a toy model and evaluating its checkpoints is most of a study's time (the default
study: two seeds, each ~1000 training steps and 40 checkpoint groups, one after the other on
one core while the other idled). A *lane* is one (model, seed)'s training node plus every
later node of that (model, seed) — its checkpoint groups, its reductions — that waits on
nothing outside the lane. Each lane runs in its own process (a fresh interpreter, no forked
torch state) with the profile's pinned ``torch_threads``, exactly as it would in this
process, so the checkpoints and cells it writes into the shared store are bit-identical to a
serial run's (tests/system/test_lanes.py). A node that reads another lane's work (another seed's
cell, a comparison across seeds) runs in this process once that lane is done; a lane whose
training waits on another run (``init_from``) starts once that run is trained.

When it pays: a process costs a fresh import of torch and TransformerLens (~5 s), so only
runs with at least ``parallel_min_steps`` training steps left get a lane; ``processes: auto``
uses as many processes as the cores hold ``torch_threads`` each, and none for a model on CUDA
(one GPU is shared best by one process that batches seeds and checkpoints: ``docs/speed.md``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from mispec.execute.local.worker_processes import Workers, run_worker
from mispec.runtime.threads import usable_cores

if TYPE_CHECKING:
    from mispec.execute.context import RunContext
    from mispec.execute.executor import Outcome
    from mispec.planning.nodes import TrainNode, WorkNode


def worth_parallel(
    ctx: RunContext,
    nodes: Sequence[WorkNode],
    *,
    processes: int | str,
    min_steps: int,
    threads: int | None,
) -> tuple[list[TrainNode], int]:
    """The training nodes whose lanes run in processes, and how many processes (0: none)."""
    from mispec.execute.work.live import live_metrics
    from mispec.planning.nodes import TrainNode

    plan = ctx.plan
    big: list[TrainNode] = []
    for node in nodes:
        if not isinstance(node, TrainNode) or live_metrics(ctx, node.model):
            continue  # live: metrics run in the training loop, in this process
        if processes == "auto" and ctx.model_device(node.model).startswith("cuda"):
            continue  # one GPU, one process: batch_seeds / batch_checkpoints use it instead
        source = plan.resolution.sources[node.model]
        steps = list(plan.resolution.series[(node.model, node.seed)].steps)
        left = source.training_steps_left(node.seed, steps, ctx.store.root)
        if left is not None and left >= min_steps:
            big.append(node)
    n = min(len(big), process_cap(processes, threads))
    return (big, n) if n >= 2 else ([], 0)


def process_cap(processes: int | str, threads: int | None) -> int:
    """``processes`` as a number: ``auto`` is as many as the cores hold ``threads`` each."""
    if processes == "auto":
        return max(1, usable_cores() // (threads or 1))
    return int(processes)


def lane_processes(
    ctx: RunContext, queue: Sequence[WorkNode], processes: int | str, settings: Any
) -> int:
    """How many lane processes this run may use for evaluation lanes (0 or 1: none)."""
    models = {node.model for node in queue}
    if processes == "auto" and any(ctx.model_device(m).startswith("cuda") for m in models):
        return 0  # one GPU, one process: batch_checkpoints uses it instead
    return process_cap(processes, settings.torch_threads)


def lanes_of(
    trains: Sequence[TrainNode],
    queue: Sequence[WorkNode],
    upstream: Mapping[str, Sequence[WorkNode]],
) -> list[list[WorkNode]]:
    """Each training node followed by the nodes of its (model, seed), in queue order, whose
    upstream nodes all lie in the lane (``queue`` is in dependency order)."""
    return [lane_from(train, queue, upstream, set()) for train in trains]


def lane_from(
    first: WorkNode,
    queue: Sequence[WorkNode],
    upstream: Mapping[str, Sequence[WorkNode]],
    done: set[str],
) -> list[WorkNode]:
    """``first`` and the later nodes of its (model, seed), in queue order, that wait only on
    nodes of the lane or on nodes already ``done`` (a training node's groups wait on it; a
    ``path:`` model's groups wait on nothing)."""
    members = {first.id}
    lane: list[WorkNode] = [first]
    key = (first.model, first.seed)
    for node in queue[queue.index(first) + 1 :]:
        if (node.model, node.seed) != key:
            continue
        if all(u.id in members or u.id in done for u in upstream.get(node.id, ())):
            members.add(node.id)
            lane.append(node)
    return lane


class LanePool:
    """Runs lanes in up to ``n`` worker processes at once. :meth:`start` those whose first
    node's upstream is done; :meth:`finished` yields each node of the lanes that ended, with
    its outcome.

    A worker is ``python -m mispec.execute.local.lane_worker`` told its job as JSON on stdin (the
    spec, the steps of every series, the lane's node ids, the store, the run settings): nothing is
    pickled, nothing of the caller's ``__main__`` is imported again, and no user text is a
    command-line option. The worker rebuilds the plan and refuses to run if its key differs."""

    def __init__(self, ctx: RunContext, lanes: list[list[WorkNode]], n: int, settings: Any):
        self._ctx, self._settings, self.size = ctx, settings, n
        self._todo: dict[str, list[WorkNode]] = {}
        self._owner: dict[str, str] = {}
        self._running: dict[Future[dict[str, Any]], list[WorkNode]] = {}
        self._pool = ThreadPoolExecutor(n, thread_name_prefix="mispec-lane")
        self._workers = Workers()
        for lane in lanes:
            self.add(lane)

    def add(self, lane: list[WorkNode]) -> None:
        """Hold ``lane`` until :meth:`start` finds its first node's upstream done."""
        self._todo[lane[0].id] = lane
        self._owner.update({node.id: lane[0].id for node in lane})

    def owns(self, node: WorkNode) -> bool:
        return node.id in self._owner

    @property
    def busy(self) -> bool:
        return bool(self._running)

    @property
    def free(self) -> int:
        """Processes neither running nor promised to a held lane."""
        return self.size - len(self._running) - len(self._todo)

    def start(self, upstream: Mapping[str, Sequence[WorkNode]], done: set[str]) -> list[WorkNode]:
        """Start every held lane whose first node's upstream nodes are all done; the nodes
        that started."""
        started = []
        for first, lane in list(self._todo.items()):
            if all(u.id in done for u in upstream.get(first, ())):
                del self._todo[first]
                job = self._job(lane)
                self._running[self._pool.submit(run_worker, job, self._workers)] = lane
                started.append(lane[0])
        return started

    def finished(self, *, block: bool) -> Iterator[tuple[WorkNode, Outcome]]:
        """The nodes of every lane that has ended (waiting for one when ``block``)."""
        from mispec.execute.context import Counters
        from mispec.execute.executor import Outcome
        from mispec.execute.remote import outcome_of

        if not self._running:
            return
        ended, _ = wait(self._running, timeout=None if block else 0, return_when=FIRST_COMPLETED)
        for future in ended:
            lane = self._running.pop(future)
            record = future.result()
            ran = set(record.get("done", ()))
            failed = record.get("failed")
            counted = False
            for node in lane:
                if node.id in ran:
                    counters = None if counted else Counters(**record.get("counters", {}))
                    counted = True
                    yield node, Outcome(counters=counters)
                elif failed is not None and failed.get("task") == node.id:
                    outcome = outcome_of({"failed": failed})
                    if not counted:
                        outcome.counters = Counters(**record.get("counters", {}))
                        counted = True
                    yield node, outcome
                else:
                    yield node, Outcome(skipped=True)

    def _job(self, lane: list[WorkNode]) -> dict[str, Any]:
        from mispec.execute.profile import RunSettings

        plan, ctx, settings = self._ctx.plan, self._ctx, self._settings
        return {
            "nodes": [node.id for node in lane],
            "lane": f"model {lane[0].model}, seed {lane[0].seed}",
            "spec": plan.spec.model_dump(mode="json", by_alias=True),
            "base_dir": str(plan.base_dir),
            # every series' steps: a refine round's added checkpoints are part of the plan
            "steps": [
                [m, s, list(series.steps)] for (m, s), series in plan.resolution.series.items()
            ],
            "plan_key": plan.key,
            "store": str(ctx.store.root),
            "device": settings.device,
            "batch_size": settings.batch_size,
            "threads": settings.torch_threads,
            # the run settings, for batched checkpoints in the worker too
            "settings": RunSettings.model_validate(
                {k: getattr(settings, k) for k in RunSettings.model_fields}
            ).model_dump(mode="json"),
        }

    def close(self) -> None:
        """Stop: a run that ends early (an interrupt, a failure elsewhere) stops every worker
        still running (:meth:`Workers.stop`) rather than waiting for its lane to finish."""
        for future in self._running:
            future.cancel()
        if self._running:
            self._workers.stop()
        self._pool.shutdown(wait=True, cancel_futures=True)
