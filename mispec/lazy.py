"""Lazy module proxies: builtin metrics say ``from mispec.lazy import torch`` so that
``mispec validate`` / ``--help`` never pay for importing torch (~2 s)."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule(ModuleType):
    def __init__(self, name: str):
        super().__init__(name)
        self._lazy_name = name

    def __getattr__(self, attr: str) -> Any:
        module = importlib.import_module(self._lazy_name)
        return getattr(module, attr)


torch: Any = LazyModule("torch")
xr: Any = LazyModule("xarray")
