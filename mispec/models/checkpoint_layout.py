"""Where a trained model's checkpoints lie in the store: the one definition of the layout,
used by the trainer, the ``train:`` source and the store's gc (no torch, no spec).

Each training run (a ``train:`` model with one seed) has its *training folder*, named by its
training identity (:func:`mispec.models.runs.training_identity`)::

    <store>/checkpoints/<training_identity>/
        config.json                  the run's config (TL-style ``tl_config``, train spec, task)
        model_<N>.safetensors        weights after N optimizer updates (TransformerBridge keys)
        optim_<N>.safetensors        optimizer state at step N (non-tensor state in metadata)
"""

from __future__ import annotations

import re
from pathlib import Path

CHECKPOINTS_DIR = "checkpoints"
CONFIG_FILE = "config.json"
MODEL_FILE = "model_{step}.safetensors"
OPTIM_FILE = "optim_{step}.safetensors"
_MODEL_FILE = re.compile(r"^model_(\d+)\.safetensors$")
_IDENTITY = re.compile(r"^[0-9a-f]{16,64}$")  # a content key (mispec.hashing.content_key)


def checkpoints_root(store_dir: Path) -> Path:
    """The folder of every training folder of the store at ``store_dir``."""
    return Path(store_dir) / CHECKPOINTS_DIR


def training_folder(store_dir: Path, identity: str) -> Path:
    """The training folder of the run with training identity ``identity``."""
    return checkpoints_root(store_dir) / identity


def training_folders(store_dir: Path) -> list[Path]:
    """Every training folder of the store (folders named by a training identity)."""
    root = checkpoints_root(store_dir)
    if not root.is_dir():
        return []
    return [d for d in root.iterdir() if d.is_dir() and _IDENTITY.match(d.name)]


def saved_steps_in(folder: Path) -> set[int]:
    """Steps with a weights file in a training folder (a directory listing; not verified)."""
    if not folder.is_dir():
        return set()
    return {int(m.group(1)) for p in folder.iterdir() if (m := _MODEL_FILE.match(p.name))}


def checkpoint_files(folder: Path) -> list[Path]:
    """Every checkpoint file (weights and optimizer states) of a training folder, sorted."""
    return sorted(folder.glob("*.safetensors"))
