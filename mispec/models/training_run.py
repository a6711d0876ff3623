"""A training run's checkpoints in the store, with torch: load and save its steps, verify them.

:class:`TrainingRun` writes each step's weights (bridge keys) and optimizer state into the
run's training folder, refusing non-finite ones, and reads them back checksum-verified;
:func:`verified` and :func:`resume_point` find what a run can continue from (a corrupt file is
discarded with a warning and trained again). The run's identity, without torch:
:mod:`mispec.models.runs`; the folder's layout: :mod:`mispec.models.checkpoint_layout`.
"""

from __future__ import annotations

import platform
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from mispec.models import checkpoints as ckpt
from mispec.models.checkpoint_layout import CONFIG_FILE, MODEL_FILE, OPTIM_FILE
from mispec.models.divergence import check_state, read_finite
from mispec.models.native import KeyMap, to_bridge_state
from mispec.models.runs import (
    TRAINER_VERSION,
    Lineage,
    file_identity,
    run_dir,
    training_identity,
)
from mispec.spec.train import TrainSpec
from mispec.tasks import Task


class TrainingRun:
    """One (train spec, seed) training run's folder of checkpoints: load/save steps, verify
    files."""

    def __init__(
        self, name: str, train: TrainSpec, seed: int, store_dir: Path, lineage: Lineage | None
    ):
        self.name, self.train, self.seed, self.lineage = name, train, seed, lineage
        self.dir = run_dir(train, seed, store_dir, lineage)
        self.identity = training_identity(train, seed, lineage)

    def model_path(self, step: int) -> Path:
        return self.dir / MODEL_FILE.format(step=step)

    def optim_path(self, step: int) -> Path:
        return self.dir / OPTIM_FILE.format(step=step)

    def discard(self, step: int, reason: Exception) -> None:
        warnings.warn(f"{reason}; discarding step {step} and training it again", stacklevel=3)
        for p in (self.model_path(step), self.optim_path(step)):
            p.unlink(missing_ok=True)

    def load(self, step: int) -> dict[str, torch.Tensor]:
        """The weights of ``step``: checksum verified, refused when non-finite."""
        return self.read(self.model_path(step), step, "model")[0]

    def read(
        self, path: Path, step: int, kind: str
    ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """A checkpoint file of this run: checksums verified, its recorded identity equal to
        the one it is read as (``kind``: ``"model"`` / ``"optim"``), refused when non-finite."""
        return read_finite(
            path,
            name=self.name,
            train=self.train,
            seed=self.seed,
            step=step,
            expect=file_identity(self.identity, self.seed, step, kind),
        )

    def save(
        self, step: int, model: torch.nn.Module, opt_state: dict[str, Any], keys: KeyMap
    ) -> None:
        """Write the weights and optimizer state (``state_dict()``) of ``step``, refusing
        non-finite ones."""
        meta = {"format": "mispec-native/1"}
        tensors, ometa = ckpt.optimizer_to_tensors(opt_state)
        weights = to_bridge_state(model, keys)
        check_state(self.name, self.train, self.seed, step, {**tensors, **weights})
        optim_id = file_identity(self.identity, self.seed, step, "optim")
        ckpt.write_tensors(self.optim_path(step), tensors, {**meta, **optim_id, **ometa})
        model_id = file_identity(self.identity, self.seed, step, "model")
        ckpt.write_tensors(self.model_path(step), weights, {**meta, **model_id})

    def write_config(self, kwargs: dict[str, Any], task: Task) -> None:
        path = self.dir / CONFIG_FILE
        if path.is_file():
            return
        import transformer_lens

        ckpt.write_json(
            path,
            {
                "format": "mispec-native/1",
                "training_identity": self.identity,
                "trainer_version": TRAINER_VERSION,
                "seed": self.seed,
                "tl_config": kwargs,
                "train": self.train.model_dump(mode="json", exclude={"steps"}),
                "lineage": self.lineage,
                "task": task.describe(),
                "versions": {
                    "torch": torch.__version__,
                    "transformer_lens": getattr(transformer_lens, "__version__", "?"),
                    "python": platform.python_version(),
                },
            },
        )


def verified(run: TrainingRun, steps: Iterable[int]) -> set[int]:
    """The ``steps`` whose weights pass their checksum; corrupt ones are discarded (a
    non-finite one raises :class:`~mispec.errors.TrainingDivergedError`)."""
    good = set()
    for step in steps:
        try:
            run.load(step)
            good.add(step)
        except ckpt.CorruptCheckpoint as exc:
            run.discard(step, exc)
    return good


def resume_point(run: TrainingRun, saved: set[int], first_missing: int):
    """(step, weights, optimizer state) of the latest loadable saved step <= first_missing."""
    for step in sorted((s for s in saved if s <= first_missing), reverse=True):
        try:
            weights = run.load(step)
            otensors, ometa = run.read(run.optim_path(step), step, "optim")
            return step, weights, ckpt.optimizer_from_tensors(otensors, ometa)
        except (ckpt.CorruptCheckpoint, KeyError) as exc:
            run.discard(step, exc)
    return None
