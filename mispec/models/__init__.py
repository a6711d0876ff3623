"""Model sources: (model, seed, step) → a TransformerLens 4 ``TransformerBridge``, fast.

Public API (imported lazily, so ``import mispec.models`` never imports torch):

* planning, no torch: :func:`default_selector`, :func:`available_steps`,
  :func:`checkpoint_identity`, :func:`model_info`, :func:`training_identity`,
  :func:`saved_steps` (the tasks toy models train on live in :mod:`mispec.tasks`);
* training: :func:`ensure_trained` → :class:`TrainReport`;
* loading: :class:`ModelHandle` (``open`` / ``load(step)`` / ``close``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "default_selector": "mispec.models.sources",
    "available_steps": "mispec.models.sources",
    "checkpoint_identity": "mispec.models.sources",
    "model_info": "mispec.models.sources",
    "training_identity": "mispec.models.runs",
    "saved_steps": "mispec.models.runs",
    "TrainReport": "mispec.models.runs",
    "ensure_trained": "mispec.models.training",
    "ModelHandle": "mispec.models.handle",
    "ModelInfo": "mispec.models.info",
}

__all__ = [
    "ModelHandle",
    "ModelInfo",
    "TrainReport",
    "available_steps",
    "checkpoint_identity",
    "default_selector",
    "ensure_trained",
    "model_info",
    "saved_steps",
    "training_identity",
]

if TYPE_CHECKING:
    from mispec.models.handle import ModelHandle
    from mispec.models.info import ModelInfo
    from mispec.models.runs import TrainReport, saved_steps, training_identity
    from mispec.models.sources import (
        available_steps,
        checkpoint_identity,
        default_selector,
        model_info,
    )
    from mispec.models.training import ensure_trained


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mispec.models' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
