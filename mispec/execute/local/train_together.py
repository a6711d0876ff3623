"""Training several runs of one architecture together, as the profile's ``batch_seeds`` asks.

``batch_seeds`` (execution profile): how many training runs of one architecture — the seeds of
a ``train:`` model, and the points of a ``sweep:`` (or any ``train:`` models) whose models
compute the same forward (:func:`~mispec.models.training_batched.stack_signature`) — train in
one set of batched kernels (:mod:`mispec.models.training_batched`), each with its own
optimizer settings and data; 1 trains them one at a time. ``auto`` (the default) batches all
of them when they train on CUDA, where a toy model leaves the device idle, and keeps CPU at
one at a time, where batching measured slower (4 seeds of the default study's model, 1 thread:
15.8 seed-steps/s together against 19.4 one at a time, ``python -m benchmarks.seeds_together``).
Results are those of one-at-a-time training: bitwise on CPU (tests/system/test_training_batched.py,
tests/system/test_sweep_points_stacked.py). On a GPU this is not measured yet: batched kernels
may round differently from one run's, and Adam turns rounding differences into whole steps in
entries whose true gradient is zero (see :mod:`mispec.models.seedwise`); the same tests run
on CUDA where it is present.

An executor asks :func:`stack_groups` which training nodes may go together (and keeps those
out of its training processes); when it reaches one, :func:`train_ready_together` trains it
with the nodes of its group that are ready, and the executor counts them all as done.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mispec.planning.nodes import TrainNode

if TYPE_CHECKING:
    from mispec.execute.context import RunContext
    from mispec.planning.nodes import WorkNode


def seeds_per_batch(setting: int | str, seeds: int, device: str) -> int:
    """How many runs train together for ``batch_seeds: setting``, ``seeds`` runs of one
    architecture that train on ``device`` (``train.device``): ``auto`` is all of them on CUDA,
    else 1."""
    if setting != "auto":
        return min(int(setting), seeds)
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return seeds if device.startswith("cuda") else 1


def stack_groups(
    ctx: RunContext, queue: Sequence[WorkNode], setting: int | str
) -> dict[str, list[TrainNode]]:
    """Training node id -> the nodes it trains together with: the ``train:`` runs of one
    :func:`~mispec.models.training_batched.stack_signature` (a model's seeds, a sweep's points
    of one architecture), in chunks of :func:`seeds_per_batch` in queue order; nodes absent
    train as before."""
    from mispec.sources.trained import TrainedSource

    by_signature: dict[str, list[TrainNode]] = {}
    signatures: dict[str, str] = {}
    for node in queue:
        if not isinstance(node, TrainNode):
            continue
        source = ctx.plan.resolution.sources[node.model]
        if not isinstance(source, TrainedSource):
            continue
        if seeds_per_batch(setting, 2, source.train.device) < 2:
            continue  # this model's runs train one at a time (CPU under auto, or 1)
        if node.model not in signatures:
            # imported only here: it imports TransformerLens, which a run whose training all
            # goes to lane processes never needs in this one (seconds before they start)
            from mispec.models.training_batched import stack_signature

            signatures[node.model] = stack_signature(source.train)
        by_signature.setdefault(signatures[node.model], []).append(node)
    out: dict[str, list[TrainNode]] = {}
    for nodes in by_signature.values():
        device = ctx.plan.resolution.sources[nodes[0].model].train.device  # type: ignore[attr-defined]
        size = seeds_per_batch(setting, len(nodes), device)
        if size < 2:
            continue
        for i in range(0, len(nodes), size):
            chunk = nodes[i : i + size]
            if len(chunk) > 1:
                out.update({node.id: chunk for node in chunk})
    return out


def ready_now(
    node: WorkNode,
    group: list[TrainNode],
    upstream: dict[str, Sequence[WorkNode]],
    done: set[str],
) -> list[TrainNode]:
    """``node`` and the nodes of its group not done whose upstream work is all done."""
    return [
        other
        for other in group
        if other.id == node.id
        or (other.id not in done and all(u.id in done for u in upstream.get(other.id, ())))
    ]


def train_ready_together(
    ctx: RunContext,
    node: WorkNode,
    groups: dict[str, list[TrainNode]],
    upstream: dict[str, Sequence[WorkNode]],
    done: set[str],
    *,
    progress: bool = False,
) -> list[TrainNode]:
    """Train ``node`` (a key of :func:`stack_groups`' ``groups``) with the nodes of its group
    that are ready (:func:`ready_now`); the nodes trained, ``node`` among them: the executor
    counts them all as done."""
    group = ready_now(node, groups[node.id], upstream, done)
    train_series_together(ctx, group, progress=progress)
    return group


def train_series_together(
    ctx: RunContext, nodes: list[TrainNode], *, progress: bool = False
) -> None:
    """:func:`~mispec.execute.work.run_node.train_series` for several ``train:`` runs (seeds
    of a model, sweep points), trained together; what they trained is added to
    ``ctx.counters``."""
    from mispec.execute.work.live import live_callback
    from mispec.models.training_batched import ensure_runs_trained_together
    from mispec.sources.trained import TrainedSource

    jobs = []
    for node in nodes:
        source = ctx.plan.resolution.sources[node.model]
        assert isinstance(source, TrainedSource)
        wanted = list(ctx.plan.resolution.series[(node.model, node.seed)].steps)
        if source.pending_training(node.seed, wanted, ctx.store.root):
            live = live_callback(ctx, node.model, node.seed)
            jobs.append(source.train_job(node.seed, wanted, ctx.store.root, on_checkpoint=live))
    if not jobs:
        return
    reports = ensure_runs_trained_together(jobs, ctx.store.root, progress=progress)
    ctx.counters.training_steps += sum(r.steps_trained for r in reports.values())
