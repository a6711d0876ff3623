"""How a ``train:`` run starts when it is not a fresh initialisation: from another model's
checkpoint (``init_from``), then edits of its initial weights (``init``: copies from other
checkpoints, zeroing, re-drawing, scaling), applied in order before step 0."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mispec.models import runs
from mispec.spec.train import TrainSpec
from mispec.spec.weight_edits import CheckpointRef

if TYPE_CHECKING:
    from mispec.models.init_weights import Start, State
    from mispec.sources.base import ModelSource


def start_from(
    train: TrainSpec,
    seed: int,
    store_dir: Path,
    point: Callable[[CheckpointRef], tuple[ModelSource, int, int]],
) -> Callable[[State], Start]:
    """Step 0 from the fresh initialisation: the ``init_from`` checkpoint, then surgery.
    ``point(ref)`` is the (source, seed, step) a reference of this seed's run names."""
    from mispec.models.init_weights import Start, apply_surgery, check_compatible
    from mispec.models.native import key_map

    def load(ref: CheckpointRef, optimizer: bool = False) -> Start:
        source, s, step = point(ref)
        start = source.checkpoint_weights(s, step, store_dir, optimizer=optimizer)
        trained[0] += start.steps_trained
        return start

    trained = [0]

    def start(fresh: State) -> Start:
        weights, opt = fresh, None
        if train.init_from is not None:
            carry = train.init_from.optimizer == "carry"
            begin = load(train.init_from, carry)
            check_compatible(begin.weights, fresh, train.init_from.model)
            weights, opt = begin.weights, begin.optimizer
        if train.init:
            kwargs = runs.native_config(train, seed)
            donors = [
                (lambda ref=op.source: load(ref).weights) if op.source is not None else None
                for op in train.init
            ]
            weights = apply_surgery(
                weights, list(train.init), donors, kwargs, key_map(kwargs), seed
            )
        return Start(weights, opt, trained[0])

    return start
