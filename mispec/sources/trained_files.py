"""Reading a ``train:`` run's checkpoint files (``<store>/checkpoints/<training identity>/``):
each verified against the identity it must carry and checked finite.

:func:`state_reader` gives the weights step by step while the next saved step is read ahead
(a step not saved yet, or corrupt, is trained again first); :func:`saved_checkpoint` reads
one step's weights, with its optimizer state when asked (another model starting from it).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mispec.models import runs
from mispec.models.checkpoint_layout import MODEL_FILE, OPTIM_FILE
from mispec.spec.train import TrainSpec

if TYPE_CHECKING:
    import torch


def state_reader(
    name: str,
    train: TrainSpec,
    seed: int,
    store_dir: Path,
    lineage: runs.Lineage | None,
    train_again: Callable[[int], None],
) -> Callable[[int], dict[str, torch.Tensor]]:
    """``step -> weights`` of the run (``train``, ``seed``, ``lineage``) in ``store_dir``;
    ``train_again(step)`` trains a step that is missing or corrupt before it is read."""
    from mispec.models import checkpoints as ckpt
    from mispec.models.divergence import read_finite
    from mispec.models.read_ahead import ReadAhead

    folder = runs.run_dir(train, seed, store_dir, lineage)
    identity = runs.training_identity(train, seed, lineage)
    saved: list[int] = []  # listed at the first load (training runs before it)

    def expect(step: int) -> dict[str, str]:  # what the file must say it is
        return runs.file_identity(identity, seed, step, "model")

    def read(step: int) -> tuple[dict[str, torch.Tensor], list[str]]:
        path = folder / MODEL_FILE.format(step=step)
        found = ckpt.read_file(path, expect=expect(step))
        return found.tensors, found.nonfinite_names()

    ahead = ReadAhead(read)

    def state_for(step: int) -> dict[str, torch.Tensor]:
        early = ahead.take(step)
        if not saved:
            saved.extend(sorted(runs.saved_steps(train, seed, store_dir, lineage)))
        ahead.start(next((s for s in saved if s > step), None))
        if early is not None and not early[1]:
            return early[0]  # read, verified and finite: what read_finite returns
        path = folder / MODEL_FILE.format(step=step)
        if path.is_file():
            try:  # a NaN/inf checkpoint raises TrainingDivergedError
                return read_finite(
                    path, name=name, train=train, seed=seed, step=step, expect=expect(step)
                )[0]
            except ckpt.CorruptCheckpoint as exc:
                warnings.warn(f"{exc}; training step {step} again", stacklevel=4)
                path.unlink(missing_ok=True)
        train_again(step)
        return read_finite(path, name=name, train=train, seed=seed, step=step, expect=expect(step))[
            0
        ]

    return state_for


def saved_checkpoint(
    name: str,
    train: TrainSpec,
    seed: int,
    step: int,
    store_dir: Path,
    lineage: runs.Lineage | None,
    *,
    optimizer: bool = False,
) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """One saved step's weights (bridge keys) and, when asked, its optimizer state."""
    from mispec.models.checkpoints import optimizer_from_tensors
    from mispec.models.divergence import read_finite

    folder = runs.run_dir(train, seed, store_dir, lineage)
    identity = runs.training_identity(train, seed, lineage)

    def read(file: str, kind: str) -> tuple[dict, dict]:
        path = folder / file.format(step=step)
        return read_finite(
            path,
            name=name,
            train=train,
            seed=seed,
            step=step,
            expect=runs.file_identity(identity, seed, step, kind),
        )

    weights = read(MODEL_FILE, "model")[0]
    opt = None
    if optimizer:
        tensors, meta = read(OPTIM_FILE, "optim")
        opt = optimizer_from_tensors(tensors, meta)
    return weights, opt
