"""Training runs, without torch: their identities, folders, saved steps and configs.

A run of a ``train:`` model with one seed is identified by :func:`training_identity`, which
hashes the training config *without* ``steps`` (plus the seed and the task's full arguments,
defaults included), so raising ``steps`` reuses the run and resumes it. The learning-rate
schedule never depends on ``steps`` for the same reason. Its files lie in its training folder
(:func:`run_dir`); the layout is :mod:`mispec.models.checkpoint_layout`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mispec.errors import UserError
from mispec.hashing import content_key
from mispec.models.checkpoint_layout import saved_steps_in, training_folder
from mispec.models.info import ModelInfo
from mispec.spec.train import TrainSpec
from mispec.tasks import Task, task_for

TRAINER_VERSION = 1  # bump when training numerics change: old runs stop matching


@dataclass(frozen=True)
class TrainReport:
    steps_trained: int = 0
    resumed_from: int | None = None
    saved: list[int] = field(default_factory=list)


Lineage = dict[str, Any]
"""What a run starts from besides its own config: ``{"init_from": <parent checkpoint
identity>, "from": [<donor checkpoint identity or None, one per init op>]}``."""


def training_identity(train: TrainSpec, seed: int, lineage: Lineage | None = None) -> str:
    """Hash of the training config and seed, excluding ``steps`` (so raising it resumes).

    A run that starts from other checkpoints (``init_from``, ``init`` copies) hashes their
    checkpoint identities in ``lineage`` instead of the names of the models they come from:
    changing a parent changes the child's identity, renaming it does not."""
    # unset (or the default float32): the identity of every spec without the key is kept
    unset = {"loss_dtype"} if train.loss_dtype in (None, "float32") else set()
    spec = train.model_dump(mode="json", exclude={"steps", "task_args"} | unset)
    from mispec.tasks.generators import training_code

    # a plugin task's code (an edit retrains); nothing for built-ins (their keys unchanged)
    code = training_code(train)
    tail = () if code is None else (code,)
    if lineage:
        spec.pop("init_from", None)
        for op in spec.get("init", []):
            op.pop("source", None)
        return content_key(
            "mispec-train", TRAINER_VERSION, spec, task_for(train).describe(), seed, lineage, *tail
        )
    return content_key(
        "mispec-train", TRAINER_VERSION, spec, task_for(train).describe(), seed, *tail
    )


def file_identity(identity: str, seed: int, step: int, kind: str) -> dict[str, str]:
    """What a checkpoint file of the store says it is, in its checksummed metadata: its
    training run, seed, step and ``kind`` (``"model"`` or ``"optim"``). A reader passes the
    same as ``expect`` (:func:`mispec.models.checkpoints.read_file`): a file found under
    another name (swapped, copied) is refused as corrupt and trained again."""
    return {"training_identity": identity, "seed": str(seed), "step": str(step), "file": kind}


def run_dir(train: TrainSpec, seed: int, store_dir: Path, lineage: Lineage | None = None) -> Path:
    """The training folder of the run (``<store>/checkpoints/<training identity>/``)."""
    return training_folder(store_dir, training_identity(train, seed, lineage))


def saved_steps(
    train: TrainSpec, seed: int, store_dir: Path, lineage: Lineage | None = None
) -> set[int]:
    """Steps with a weights file in the run's training folder (a listing; not verified)."""
    return saved_steps_in(run_dir(train, seed, store_dir, lineage))


def native_config(train: TrainSpec, seed: int, task: Task | None = None) -> dict[str, Any]:
    """TransformerBridgeConfig keyword arguments for a ``train:`` model (TL-style)."""
    task = task or task_for(train)
    a = train.arch
    d_vocab = a.d_vocab or task.d_vocab
    n_ctx = a.n_ctx or task.n_ctx
    if d_vocab < task.d_vocab:
        raise UserError(f"arch.d_vocab={d_vocab} is smaller than task {task.name}'s {task.d_vocab}")
    if n_ctx < task.n_ctx:
        raise UserError(
            f"arch.n_ctx={n_ctx} is shorter than task {task.name}'s sequences ({task.n_ctx})"
        )
    cfg: dict[str, Any] = dict(
        d_model=a.d_model,
        d_head=a.d_head,
        n_layers=a.n_layers,
        n_heads=a.n_heads,
        n_ctx=n_ctx,
        d_vocab=d_vocab,
        attn_only=a.attn_only,
        normalization_type=a.normalization,
        act_fn=a.act_fn,
        positional_embedding_type=a.positional_embedding,
        seed=int(seed),
    )
    if not a.attn_only:
        cfg["d_mlp"] = a.d_mlp or 4 * a.d_model
    if a.init_range is not None:
        cfg["initializer_range"] = a.init_range
    return cfg


def train_info(name: str, train: TrainSpec) -> ModelInfo:
    cfg = native_config(train, 0)
    return ModelInfo(
        name=name,
        n_layers=cfg["n_layers"],
        n_heads=cfg["n_heads"],
        d_model=cfg["d_model"],
        d_head=cfg["d_head"],
        d_vocab=cfg["d_vocab"],
        n_ctx=cfg["n_ctx"],
        d_mlp=cfg.get("d_mlp"),
        attn_only=cfg["attn_only"],
        architecture="native",
    )
