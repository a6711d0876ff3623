"""One generic registry for metrics, tasks, prompt generators, model sources and executors.

Names are collision-checked; unknown names get a did-you-mean; third parties extend a
registry through an entry-point group (loaded lazily, a broken plugin warns instead of
crashing) or a spec can name ``module:function`` directly (imported only then).
"""

from __future__ import annotations

import difflib
import importlib
import warnings
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

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
        return self.get_or_none(name) is not None

    def get_or_none(self, name: str) -> T | None:
        if name in self._items:  # builtins and already-loaded plugins: no entry-point import
            return self._items[name]
        self._load_entry_points()
        if name in self._items:
            return self._items[name]
        if ":" in name:
            return self._import_reference(name)
        return None

    def get(self, name: str) -> T:
        item = self.get_or_none(name)
        if item is None:
            raise UnknownNameError(self.kind, name, self.names())
        return item

    def _import_reference(self, ref: str) -> T | None:
        module_name, _, attr = ref.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise UserError(
                f"cannot import plugin module '{module_name}' for '{ref}': {exc}"
            ) from exc
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                raise UserError(f"plugin module '{module_name}' has no attribute '{attr}'")
        item = getattr(obj, "__mispec__", obj)
        self._items[ref] = item
        return item

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
