"""One generic registry for metrics, tasks, prompt generators, model sources and executors.

Names are collision-checked; unknown names get a did-you-mean; third parties extend a
registry through an entry-point group (loaded lazily, a broken plugin warns instead of
crashing) or a spec can name ``module:function`` directly (imported only then).

A ``module:function`` reference resolves *beside the spec that names it*: given the spec's
folder (``base_dir``), the module is imported with that folder first on ``sys.path``, so a
``my_metrics.py`` next to ``study.yaml`` works from any working directory. A reference is
imported once per process and remembered under its name (as Python remembers the module);
validation resolves every reference a spec names before planning, training or running it,
so later lookups in the same process find it resolved.
"""

from __future__ import annotations

import difflib
import importlib
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar

from mispec.errors import UserError

T = TypeVar("T")


def did_you_mean(name: str, choices: list[str] | set[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, else a list of the valid ones."""
    close = difflib.get_close_matches(str(name), sorted(choices), n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}'?)"
    if choices and len(choices) <= 12:
        return " (expected one of: " + ", ".join(sorted(map(str, choices))) + ")"
    return ""


class UnknownNameError(UserError):
    def __init__(self, kind: str, name: str, choices: list[str]):
        self.kind, self.name, self.choices = kind, name, choices
        super().__init__(f"unknown {kind} '{name}'{did_you_mean(name, choices)}")


class Registry(Generic[T]):
    def __init__(self, kind: str, entry_point_group: str | None = None):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._items: dict[str, T] = {}
        self._entry_points_loaded = entry_point_group is None

    def register(self, name: str, item: T) -> T:
        if name in self._items and self._items[name] is not item:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._items[name] = item
        return item

    def decorator(self, name: str | None = None) -> Callable[[T], T]:
        def wrap(item: T) -> T:
            return self.register(name or item.__name__, item)  # type: ignore[attr-defined]

        return wrap

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.entry_point_group or ""):
            try:
                item = ep.load()
            except Exception as exc:  # a broken plugin must not take mispec down
                warnings.warn(
                    f"mispec: plugin {ep.name!r} ({ep.value}) failed to load: {exc}", stacklevel=2
                )
                continue
            self._items.setdefault(ep.name, getattr(item, "__mispec__", item))

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        """Whether ``name`` resolves. A ``module:function`` reference whose import fails is
        not contained; the failure itself surfaces where the name is looked up (``get``,
        or validation, which reports it at the spec key naming the plugin)."""
        try:
            return self.get_or_none(name) is not None
        except Exception:
            return False

    def get_or_none(self, name: str, base_dir: Path | None = None) -> T | None:
        """The item registered as ``name``, or the object a ``module:function`` reference
        names (imported beside ``base_dir``, the spec's folder); ``None`` when unknown."""
        if name in self._items:  # builtins and already-loaded plugins: no entry-point import
            return self._items[name]
        self._load_entry_points()
        if name in self._items:
            return self._items[name]
        if ":" in name:
            item: T = import_reference(name, base_dir)
            self._items[name] = item
            return item
        return None

    def get(self, name: str, base_dir: Path | None = None) -> T:
        item = self.get_or_none(name, base_dir)
        if item is None:
            raise UnknownNameError(self.kind, name, self.names())
        return item

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def import_reference(ref: str, base_dir: Path | None = None) -> Any:
    """The object ``module:attr`` names (its ``__mispec__`` record where it has one), the
    module imported with ``base_dir`` first on ``sys.path``. ``UserError`` when the module
    does not import or lacks the attribute; an exception the module raises itself
    propagates (validation reports it at the spec key that names the plugin)."""
    module_name, _, attr = ref.partition(":")
    try:
        with beside(base_dir):
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"cannot import plugin module '{module_name}' for '{ref}': {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise UserError(f"plugin module '{module_name}' has no attribute '{attr}'")
    return getattr(obj, "__mispec__", obj)


@contextmanager
def beside(base_dir: Path | None) -> Iterator[None]:
    """``base_dir`` first on ``sys.path`` for the duration (nothing when ``None``)."""
    if base_dir is None:
        yield
        return
    entry = str(Path(base_dir).resolve())
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
        importlib.invalidate_caches()  # a plugin file written since the last import
    try:
        yield
    finally:
        if added and entry in sys.path:
            sys.path.remove(entry)
