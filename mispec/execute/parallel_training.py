"""Training independent runs side by side: one process per (model, seed) to train, while the
local executor goes on with whatever is ready.

Training a toy model is the long part of most studies (the default study: ~44 of ~50 s, two
seeds one after the other on one core while the other idled). Each run trains in its own
process (a fresh interpreter, no forked torch state) with the profile's pinned
``torch_threads``, exactly as it would in this process, so the saved checkpoints are
bit-identical to a serial run's (tests/test_parallel_training.py). A run whose training
depends on another run (its upstream work nodes) starts only once that one has finished.

When it pays: a process costs a fresh import of torch (~2-3 s), so runs with fewer than
``parallel_min_steps`` steps left train in this process; ``processes: auto`` uses as many
processes as the cores hold ``torch_threads`` each.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mispec.execute.context import RunContext
    from mispec.planning.nodes import TrainNode, WorkNode


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def worth_parallel(
    ctx: RunContext,
    nodes: Sequence[WorkNode],
    *,
    processes: int | str,
    min_steps: int,
    threads: int | None,
) -> tuple[list[TrainNode], int]:
    """The training nodes to run in processes and how many processes (0: train here)."""
    from mispec.execute.live import live_metrics
    from mispec.planning.nodes import TrainNode

    plan = ctx.plan
    big: list[TrainNode] = []
    for node in nodes:
        if not isinstance(node, TrainNode) or live_metrics(ctx, node.model):
            continue  # live: metrics run in the training loop, in this process
        source = plan.resolution.sources[node.model]
        steps = list(plan.resolution.series[(node.model, node.seed)].steps)
        left = source.training_steps_left(node.seed, steps, ctx.store.root)
        if left is not None and left >= min_steps:
            big.append(node)
    if processes == "auto":
        n = min(len(big), max(1, usable_cores() // (threads or 1)))
    else:
        n = min(len(big), int(processes))
    return (big, n) if n >= 2 else ([], 0)


class TrainingPool:
    """Runs training nodes in up to ``n`` worker processes at once; :meth:`start` those whose
    upstream work is done, :meth:`result` waits for one and returns its task record.

    A worker is ``python -m mispec.execute.train_worker`` told its job as JSON on stdin (the
    spec's model entries, which one, seed, steps, store, threads): nothing is pickled, nothing of the
    caller's ``__main__`` is imported again, and no user text is a command-line option."""

    def __init__(self, ctx: RunContext, nodes: list[TrainNode], n: int, threads: int | None):
        from concurrent.futures import ThreadPoolExecutor

        self._ctx, self._threads = ctx, threads
        self._todo = {node.id: node for node in nodes}
        self._futures: dict[str, Future[dict[str, Any]]] = {}
        self._pool = ThreadPoolExecutor(n, thread_name_prefix="mispec-train")

    def owns(self, node: WorkNode) -> bool:
        return node.id in self._todo or node.id in self._futures

    def start(self, upstream: dict[str, Sequence[WorkNode]], done: set[str]) -> None:
        """Start every held node whose upstream nodes are all done."""
        plan = self._ctx.plan
        for node_id, node in list(self._todo.items()):
            if all(u.id in done for u in upstream.get(node_id, ())):
                del self._todo[node_id]
                job = {
                    "node": node_id,
                    "model": node.model,
                    # every entry: a run may start from another model's checkpoint
                    "entries": {
                        name: entry.model_dump(mode="json")
                        for name, entry in plan.spec.models.items()
                    },
                    "base_dir": str(plan.base_dir),
                    "seed": node.seed,
                    "steps": list(plan.resolution.series[(node.model, node.seed)].steps),
                    "store": str(self._ctx.store.root),
                    "threads": self._threads,
                }
                self._futures[node_id] = self._pool.submit(run_worker, job)

    def result(self, node: WorkNode) -> dict[str, Any]:
        """The record of ``node`` (started by :meth:`start`): counters or a failure."""
        return self._futures.pop(node.id).result()

    def close(self) -> None:
        for future in self._futures.values():
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)


def run_worker(job: dict[str, Any]) -> dict[str, Any]:
    """Train one (model, seed) in a worker process; its task record (counters or failure)."""
    import json
    import subprocess
    import sys

    from mispec.errors import ExecutorError
    from mispec.execute.remote import failure

    proc = subprocess.run(
        [sys.executable, "-m", "mispec.execute.train_worker"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()[-5:]
        return failure(
            job["node"],
            ExecutorError(
                f"the training process of {job['node']} exited with code {proc.returncode}: "
                + " | ".join(tail)
            ),
        )
    record: dict[str, Any] = json.loads(lines[-1])
    return record
