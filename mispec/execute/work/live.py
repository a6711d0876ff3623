"""Live metrics: a ``train:`` model's ``live:`` metrics, computed inside the training loop.

When training saves a checkpoint that the plan reads, the training loop hands its weights
(the very tensors it saves) to :func:`live_callback`'s function, which swaps them into the
model's bridge (``ModelHandle.load_weights``: no file is read back) and computes that
checkpoint's cells of the ``live:`` metrics, and the same-checkpoint metrics they read, with
the checkpoint group's own code (``mispec.execute.work.group.run_group``). The cells are written
under their plan keys, so the checkpoint group that runs after training finds them cached:
the results are those of a run without ``live:``, key for key and bit for bit. Scalar
results are shown in the training progress bar as training runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from mispec.planning.nodes import group_id
from mispec.sources.trained import TrainedModelSpec

if TYPE_CHECKING:
    import torch

    from mispec.execute.context import RunContext


def live_metrics(ctx: RunContext, model: str) -> list[str]:
    """The ``live:`` metrics of ``model`` (none for other sources)."""
    entry = ctx.spec.models[model]
    return list(entry.live or []) if isinstance(entry, TrainedModelSpec) else []


def live_callback(
    ctx: RunContext, model: str, seed: int
) -> Callable[[int, dict[str, torch.Tensor]], dict[str, float]] | None:
    """``on_checkpoint(step, weights)`` for the training loop of (model, seed), or None when
    the model has no live metrics. Steps the plan does not read are skipped."""
    from mispec.execute.work.group import run_group
    from mispec.planning.nodes import GroupNode

    names = live_metrics(ctx, model)
    if not names:
        return None
    plan = ctx.plan

    def on_checkpoint(step: int, weights: dict[str, torch.Tensor]) -> dict[str, float]:
        gid = group_id(model, seed, step)
        if gid not in plan.graph:
            return {}
        group = plan.node(gid)
        assert isinstance(group, GroupNode)
        cells = [c for c in plan.cells(group) if c.metric in names]
        ctx.handle(model, seed).load_weights(step, weights)
        run_group(ctx, group, only=cells)
        shown = {}
        for cell in cells:
            value = ctx.read_cell(cell.key)
            if value is not None and np.ndim(value) == 0:
                shown[cell.metric] = float(np.asarray(getattr(value, "values", value)))
        return shown

    return on_checkpoint
