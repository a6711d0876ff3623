"""Training several seeds of one ``train:`` model together, as the profile's ``batch_seeds`` asks.

``batch_seeds`` (execution profile): how many seeds of a ``train:`` model train in one set of
batched kernels (:mod:`mispec.models.training_batched`); 1 trains them one at a time. ``auto``
(the default) batches all of a model's seeds when it trains on CUDA, where a toy model leaves
the device idle, and keeps CPU at one at a time, where batching measured slower (4 seeds of
the default study's model, 1 thread: 15.8 seed-steps/s together against 19.4 one at a time,
``python -m benchmarks.seeds_together``). Results are those of one-at-a-time training: bitwise on
CPU (tests/system/test_training_batched.py). On a GPU this is not measured yet: batched kernels may
round differently from one seed's, and Adam turns rounding differences into whole steps in
entries whose true gradient is zero (see :mod:`mispec.models.seedwise`); the same tests run
on CUDA where it is present.

An executor asks :func:`seed_groups` which training nodes may go together (and keeps those out
of its training processes); when it reaches one, :func:`train_ready_together` trains it with
the nodes of its group that are ready, and the executor counts them all as done.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mispec.planning.nodes import TrainNode

if TYPE_CHECKING:
    from mispec.execute.context import RunContext
    from mispec.planning.nodes import WorkNode


def seeds_per_batch(setting: int | str, seeds: int, device: str) -> int:
    """How many seeds train together for ``batch_seeds: setting``, a model with ``seeds`` seeds
    that trains on ``device`` (``train.device``): ``auto`` is all of them on CUDA, else 1."""
    if setting != "auto":
        return min(int(setting), seeds)
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return seeds if device.startswith("cuda") else 1


def seed_groups(
    ctx: RunContext, queue: Sequence[WorkNode], setting: int | str
) -> dict[str, list[TrainNode]]:
    """Training node id -> the nodes of its model it trains together with (chunks of
    :func:`seeds_per_batch` in queue order), for ``train:`` models that batch more than one
    seed; nodes absent train as before."""
    from mispec.sources.trained import TrainedSource

    by_model: dict[str, list[TrainNode]] = {}
    for node in queue:
        if isinstance(node, TrainNode):
            by_model.setdefault(node.model, []).append(node)
    out: dict[str, list[TrainNode]] = {}
    for model, nodes in by_model.items():
        source = ctx.plan.resolution.sources[model]
        if not isinstance(source, TrainedSource):
            continue
        size = seeds_per_batch(setting, len(nodes), source.train.device)
        if size < 2:
            continue
        for i in range(0, len(nodes), size):
            chunk = nodes[i : i + size]
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
    """Train ``node`` (a key of :func:`seed_groups`' ``groups``) with the nodes of its group
    that are ready (:func:`ready_now`); the nodes trained, ``node`` among them: the executor
    counts them all as done."""
    group = ready_now(node, groups[node.id], upstream, done)
    train_series_together(ctx, group, progress=progress)
    return group


def train_series_together(
    ctx: RunContext, nodes: list[TrainNode], *, progress: bool = False
) -> None:
    """:func:`~mispec.execute.work.run_node.train_series` for several seeds of ONE ``train:`` model,
    trained together; what they trained is added to ``ctx.counters``."""
    from mispec.execute.work.live import live_callback
    from mispec.sources.trained import TrainedSource

    model = nodes[0].model
    if any(node.model != model for node in nodes):
        raise ValueError(f"train_series_together: nodes of several models: {nodes}")
    source = ctx.plan.resolution.sources[model]
    assert isinstance(source, TrainedSource)
    steps: dict[int, list[int]] = {}
    for node in nodes:
        wanted = list(ctx.plan.resolution.series[(model, node.seed)].steps)
        if source.pending_training(node.seed, wanted, ctx.store.root):
            steps[node.seed] = wanted
    if not steps:
        return
    live = {seed: cb for seed in steps if (cb := live_callback(ctx, model, seed)) is not None}
    ctx.counters.training_steps += source.prepare_together(
        steps, ctx.store.root, progress=progress, on_checkpoint=live
    )
