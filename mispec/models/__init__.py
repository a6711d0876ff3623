"""The machinery model sources share: (model, seed, step) → a TransformerLens 4
``TransformerBridge``, fast. Which source a spec model has, and what it answers, lives in
``mispec.sources``; this package holds what those sources are built from: hub and local
layouts, schedules, configs, state dicts, training runs, the trainer and the loading routes.

Public API (imported lazily, so ``import mispec.models`` never imports torch):

* no torch: :class:`ModelInfo`, :func:`training_identity`, :func:`saved_steps`
  (the tasks toy models train on live in :mod:`mispec.tasks`, the sources in
  :mod:`mispec.sources`);
* training: :func:`ensure_trained` → :class:`TrainReport`;
* loading: :class:`ModelHandle` (``load(step)`` / ``close``) over a :class:`NativeSwap` or
  :class:`HFBoot` route.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "training_identity": "mispec.models.runs",
    "saved_steps": "mispec.models.runs",
    "TrainReport": "mispec.models.runs",
    "ensure_trained": "mispec.models.training",
    "ModelHandle": "mispec.models.handle",
    "NativeSwap": "mispec.models.handle",
    "HFBoot": "mispec.models.handle",
    "ModelInfo": "mispec.models.info",
}

__all__ = [
    "HFBoot",
    "ModelHandle",
    "ModelInfo",
    "NativeSwap",
    "TrainReport",
    "ensure_trained",
    "saved_steps",
    "training_identity",
]

if TYPE_CHECKING:
    from mispec.models.handle import HFBoot, ModelHandle, NativeSwap
    from mispec.models.info import ModelInfo
    from mispec.models.runs import TrainReport, saved_steps, training_identity
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
