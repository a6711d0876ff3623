"""mispec: declarative experiment specs for mechanistic interpretability over training.

``load_spec`` → ``plan`` → ``run`` → ``open_results`` (and ``diff``); heavy libraries load lazily.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["load_spec", "plan", "run", "open_results", "diff", "metric", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("load_spec",):
        from mispec.spec.load import load_spec

        return load_spec
    if name in ("plan", "run", "open_results"):
        from mispec import api

        return getattr(api, name)
    if name == "diff":
        from mispec.diffing import diff

        return diff
    if name == "metric":
        from mispec.metrics.core import metric

        return metric
    raise AttributeError(f"module 'mispec' has no attribute {name!r}")
