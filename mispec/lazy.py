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
        """Called only for a name this proxy does not hold yet: fetch it from the real
        module and keep it, so the next access is a plain attribute read (metrics touch
        ``torch.*`` thousands of times per sweep; each miss costs an import lookup)."""
        module = importlib.import_module(self._lazy_name)
        value = getattr(module, attr)
        if not attr.startswith("__"):
            setattr(self, attr, value)
        return value


torch: Any = LazyModule("torch")
xr: Any = LazyModule("xarray")
