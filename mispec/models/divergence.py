"""Diverged training: a NaN or an infinity stops the run before it reaches the store.

Too large a learning rate (or AdamW with ``lr × weight_decay ≥ 1``, whose decay step
``w ← w·(1 − lr·wd)`` flips the sign of the weights and grows them) blows the weights up to
inf, then NaN, within a few updates. A checkpoint saved from there poisons every metric
computed from it, and the run fails far from the cause (a metric "returned non-finite
values"). So nothing non-finite is ever written, and nothing non-finite is ever read back:

* :class:`FiniteWatch` notes whether each update's loss (and gradient norm, where
  ``grad_clip`` computes it anyway) was finite, as a tensor flag: no device sync per update.
  :meth:`FiniteWatch.check` syncs once (before every save, every few updates, at the end)
  and raises :class:`~mispec.errors.TrainingDivergedError` at the first update that was not.
* :func:`check_state` refuses the weights and optimizer state of a step before they are
  written; :func:`read_finite` refuses a checkpoint read back from the store (one saved by
  an older mispec, which did not check) and removes the run's non-finite files.

Step ``N`` is the model after ``N`` updates; a non-finite loss "at step N" is the loss of
the weights of step N. The flags never touch the computation: a healthy run is bitwise the
run it was before these checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from mispec.errors import TrainingDivergedError
from mispec.models import checkpoints as ckpt
from mispec.models.checkpoint_layout import checkpoint_files

if TYPE_CHECKING:
    from mispec.spec.train import TrainSpec


def nonfinite_names(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors holding a NaN or an infinity (one sync per
    device the tensors are on)."""
    by_device: dict[torch.device, list[str]] = {}
    for n, t in tensors.items():
        if t.is_floating_point() or t.is_complex():
            by_device.setdefault(t.device, []).append(n)
    bad: set[str] = set()
    for names in by_device.values():
        finite = torch.stack([torch.isfinite(tensors[n]).all() for n in names]).tolist()
        bad.update(n for n, ok in zip(names, finite, strict=True) if not ok)
    return [n for n in tensors if n in bad]


def hint(name: str, train: TrainSpec) -> str:
    """What to change in the spec so that training stays finite."""
    opt, key = train.optimizer, f"models.{name}.train"
    tips = [f"lower {key}.optimizer.lr (now {opt.lr:g})"]
    if opt.name == "adamw" and opt.lr * opt.weight_decay >= 1:
        tips.append(
            f"lower {key}.optimizer.weight_decay (lr × weight_decay = {opt.lr * opt.weight_decay:g}"
            " ≥ 1: AdamW's decay step grows the weights)"
        )
    tips.append(
        f"set {key}.grad_clip (e.g. 1.0)"
        if train.grad_clip is None
        else f"lower {key}.grad_clip (now {train.grad_clip:g})"
    )
    return ", ".join(tips[:-1]) + f" or {tips[-1]}"


def diverged(name: str, train: TrainSpec, seed: int, step: int, what: str) -> TrainingDivergedError:
    """The error of a training run that became non-finite at ``step``."""
    return TrainingDivergedError(
        f"model '{name}' seed {seed}: training diverged at step {step}: {what}. Nothing "
        f"non-finite was saved (checkpoints before step {step} are kept). "
        f"{_sentence(hint(name, train))}, then run again.",
        model=name,
        seed=seed,
        step=step,
    )


class FiniteWatch:
    """Whether every update's loss and gradient norm were finite, checked lazily."""

    def __init__(self, name: str, train: TrainSpec, seed: int):
        self.name, self.train, self.seed = name, train, seed
        self._pending: list[tuple[int, torch.Tensor, torch.Tensor | None]] = []

    def record(self, step: int, loss: torch.Tensor, grad_norm: torch.Tensor | None) -> None:
        """Note update ``step``'s loss (and total gradient norm); no device sync."""
        self._pending.append((step, loss.detach(), grad_norm))

    def check(self) -> None:
        """Raise :class:`TrainingDivergedError` at the first recorded non-finite update."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        values = [v for _, loss, norm in pending for v in (loss, norm) if v is not None]
        finite = torch.isfinite(torch.stack([v.float().reshape(()) for v in values]))
        if bool(finite.all()):
            return
        for step, loss, norm in pending:
            if not bool(torch.isfinite(loss)):
                raise diverged(self.name, self.train, self.seed, step, f"the loss is {loss.item()}")
            if norm is not None and not bool(torch.isfinite(norm)):
                raise diverged(
                    self.name, self.train, self.seed, step, f"the gradient norm is {norm.item()}"
                )


def check_state(
    name: str, train: TrainSpec, seed: int, step: int, tensors: Mapping[str, torch.Tensor]
) -> None:
    """Refuse to save the weights / optimizer state of ``step`` if any of it is non-finite."""
    bad = nonfinite_names(tensors)
    if bad:
        raise diverged(name, train, seed, step, f"non-finite values in {_names(bad)}")


def read_finite(
    path: Path,
    *,
    name: str,
    train: TrainSpec,
    seed: int,
    step: int,
    expect: Mapping[str, str] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a checkpoint in the store (checksum verified: a corrupt file raises
    :class:`~mispec.models.checkpoints.CorruptCheckpoint`). One holding a NaN or an inf,
    saved by an older mispec from a run that diverged, is refused: every non-finite file of
    its training folder is removed and :class:`TrainingDivergedError` says what to change.
    ``expect``: the identity the file must record (:func:`mispec.models.runs.file_identity`)."""
    found = ckpt.read_file(path, expect=expect)  # one read; finiteness checked over runs
    bad = found.nonfinite_names()
    if not bad:
        return found.tensors, found.metadata
    removed = purge_nonfinite(Path(path).parent)
    raise TrainingDivergedError(
        f"model '{name}' seed {seed}: the saved checkpoint of step {step} ({path}) holds "
        f"non-finite values (NaN/inf in {_names(bad)}): an older mispec saved a training "
        f"run that diverged. Removed {removed} non-finite file(s) from {Path(path).parent}; "
        f"trained again, this run diverges again: {hint(name, train)}, then run again.",
        model=name,
        seed=seed,
        step=step,
    )


def purge_nonfinite(folder: Path) -> int:
    """Remove every checkpoint file of a training folder that holds a NaN or an inf; how
    many."""
    removed = 0
    for path in checkpoint_files(folder):
        try:
            tensors, _ = ckpt.read_tensors(path, verify=False)
        except ckpt.CorruptCheckpoint:
            continue  # unreadable: dropped by the checksum check when it is read
        if nonfinite_names(tensors):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _names(bad: list[str], most: int = 3) -> str:
    more = f" and {len(bad) - most} more" if len(bad) > most else ""
    return ", ".join(bad[:most]) + more
