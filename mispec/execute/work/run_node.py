"""What each kind of work node does, whatever executor runs it: train a (model, seed),
compute a checkpoint group's missing cells, or compute a reduction."""

from __future__ import annotations

from mispec.execute.context import RunContext
from mispec.execute.work.group import run_group, run_reduction
from mispec.planning.nodes import GroupNode, ReductionNode, TrainNode, WorkNode


def run_work_node(ctx: RunContext, node: WorkNode, *, progress: bool = False) -> None:
    """Run one work node in this process; what it did is added to ``ctx.counters``."""
    if isinstance(node, TrainNode):
        train_series(ctx, node, progress=progress)
    elif isinstance(node, GroupNode):
        run_group(ctx, node)
    else:
        assert isinstance(node, ReductionNode)
        run_reduction(ctx, node)


def train_series(ctx: RunContext, node: TrainNode, *, progress: bool = False) -> None:
    """Train the (model, seed) up to every step the plan reads, unless saved already
    (saved steps are trusted here: their checksums are verified when they are loaded)."""
    source = ctx.plan.resolution.sources[node.model]
    steps = list(ctx.plan.resolution.series[(node.model, node.seed)].steps)
    if source.pending_training(node.seed, steps, ctx.store.root):
        from mispec.execute.work.live import live_callback

        live = live_callback(ctx, node.model, node.seed)
        extra = {} if live is None else {"on_checkpoint": live}  # train: models only
        ctx.counters.training_steps += source.prepare(
            node.seed, steps, ctx.store.root, progress=progress, **extra
        )
