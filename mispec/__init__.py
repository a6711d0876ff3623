"""mispec: declarative experiment specs for mechanistic interpretability over training.

``load_spec`` → ``plan`` → ``run`` → ``open_results`` (and ``diff``; the store's
``cache_usage``, ``forget`` and ``gc``; a run's model back: ``load_model``,
``export_checkpoint``); heavy libraries load lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = [
    "load_spec",
    "plan",
    "run",
    "check",
    "open_results",
    "align_steps",
    "diff",
    "metric",
    "RunResult",
    "PlannedSpec",
    "Diff",
    "cache_usage",
    "gc",
    "forget",
    "load_model",
    "export_checkpoint",
    "export_run",
    "__version__",
]

# each public name → the module that defines it, imported on first use (``import mispec``
# stays light; ``dir(mispec)`` lists them all the same)
_LAZY = {
    "load_spec": "mispec.validation.load",
    "plan": "mispec.results.planned",
    "run": "mispec.api",
    "check": "mispec.api",
    "open_results": "mispec.results.open",
    "align_steps": "mispec.results.align",
    "diff": "mispec.diffing",
    "metric": "mispec.metrics.core",
    "RunResult": "mispec.api",
    "PlannedSpec": "mispec.results.planned",
    "Diff": "mispec.diffing",
    "cache_usage": "mispec.store.lifecycle",
    "gc": "mispec.api",
    "forget": "mispec.store.forget",
    "load_model": "mispec.api",
    "export_checkpoint": "mispec.api",
    "export_run": "mispec.results.trackers",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mispec' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public API and the module's dunders (not its helper imports)."""
    dunders = {n for n in globals() if n.startswith("__") and n.endswith("__")}
    return sorted(dunders | set(__all__))
