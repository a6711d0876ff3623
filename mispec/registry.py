"""One generic registry for metrics, tasks, prompt generators, model sources and executors.

Names are collision-checked; unknown names get a did-you-mean; third parties extend a
registry through an entry-point group (loaded lazily, a broken plugin warns instead of
crashing) or a spec can name ``module:function`` directly (imported only then). A built-in
whose module is heavy is registered as a placeholder (``register_lazy(name,
"module:attr")``), imported on its first lookup. A registry may say what its items are
(``accepts``, e.g. :func:`subclass_of` a base class): an item of the wrong kind — registered,
imported from a reference or a placeholder — is a ``UserError`` naming it (an entry point's
is a warning, and skipped).

A ``module:function`` reference resolves *beside the spec that names it*: given the spec's
folder (``base_dir``), the module is imported with that folder first on ``sys.path``, so a
``my_metrics.py`` next to ``study.yaml`` works from any working directory. A reference is
imported once per process and remembered under its name; validation resolves every
reference a spec names before planning, training or running it, so later lookups in the same
process find it resolved. When the module's file (or a helper module beside it that it
imports) has been edited since, a lookup imports it again (``importlib.reload``): the code a
run executes is the code its keys hash (``mispec.code_identity``).
"""

from __future__ import annotations

import difflib
import importlib
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from mispec.errors import UserError
from mispec.plugin_import import attribute_of, files_fingerprint, import_reference

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


def subclass_of(base: type) -> Callable[[Any], bool]:
    """An ``accepts`` test: the item is a class deriving from ``base``."""

    def accepts(item: Any) -> bool:
        return isinstance(item, type) and issubclass(item, base)

    return accepts


class Registry(Generic[T]):
    """Items of one ``kind`` by name. ``accepts``: what an item must be (``None``: anything),
    ``wrong_kind``: the message for one that is not (``{name}`` is its name)."""

    def __init__(
        self,
        kind: str,
        entry_point_group: str | None = None,
        *,
        accepts: Callable[[Any], bool] | None = None,
        wrong_kind: str = "'{name}' is not a mispec {kind}",
    ):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self.accepts = accepts
        self.wrong_kind = wrong_kind
        self._items: dict[str, T] = {}
        self._lazy: dict[str, str] = {}  # name -> the ``module:attr`` it is imported from
        self._entry_points_loaded = entry_point_group is None
        # ``module:attr`` name -> (the spec folder it was imported beside, the fingerprint of
        # its module's files then): a lookup after an edit imports it again
        self._loaded: dict[str, tuple[Path | None, str]] = {}

    def register(self, name: str, item: T, base_dir: Path | None = None) -> T:
        """Register ``item`` as ``name``; a ``module:attr`` name is remembered with the
        folder it was imported beside (``base_dir``) and its files' fingerprint."""
        old = self._items.get(name)
        if (
            old is not None and old is not item and not _redefinition(old, item)
        ) or name in self._lazy:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self.check(name, item)
        self._items[name] = item
        if ":" in name:
            base_dir = self.base_of(name, base_dir)
            self._loaded[name] = (base_dir, files_fingerprint(name.partition(":")[0]))
        return item

    def register_lazy(self, name: str, ref: str) -> None:
        """Register ``name`` as the object ``ref`` (``module:attr``) names, imported (and
        checked) when ``name`` is first looked up."""
        if name in self._items or self._lazy.get(name, ref) != ref:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._lazy[name] = ref

    def check(self, name: str, item: Any) -> None:
        """``UserError`` (``wrong_kind``) when ``item`` is not what this registry holds."""
        if self.accepts is not None and not self.accepts(item):
            raise UserError(self.wrong_kind.format(name=name, kind=self.kind))

    def known(self, name: str) -> T | None:
        """The item remembered as ``name``; None when there is none, or when ``name`` is a
        ``module:attr`` reference whose files changed since (forgotten: import it again)."""
        item = self._items.get(name)
        if (
            item is not None
            and name in self._loaded
            and self._loaded[name][1] != files_fingerprint(name.partition(":")[0])
        ):
            del self._items[name]
            return None
        return item

    def base_of(self, name: str, base_dir: Path | None) -> Path | None:
        """``base_dir``, else the folder ``name`` was first imported beside."""
        return base_dir if base_dir is not None else self._loaded.get(name, (None, ""))[0]

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
                loaded = ep.load()
                item = getattr(loaded, "__mispec__", loaded)
                self.check(ep.name, item)
            except Exception as exc:  # a broken plugin must not take mispec down
                warnings.warn(
                    f"mispec: plugin {ep.name!r} ({ep.value}) failed to load: {exc}", stacklevel=2
                )
                continue
            self._items.setdefault(ep.name, item)

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._items.keys() | self._lazy.keys())

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
        cached = self.known(name)
        if cached is not None:  # builtins and already-loaded plugins: no entry-point import
            return cached
        if name in self._lazy:
            return self._resolve_placeholder(name)
        self._load_entry_points()
        if name in self._items:
            return self._items[name]
        if ":" in name:
            base_dir = self.base_of(name, base_dir)
            item: T = import_reference(name, base_dir)
            self._items.pop(name, None)  # an earlier definition, edited since
            return self.register(name, item, base_dir)
        return None

    def _resolve_placeholder(self, name: str) -> T:
        """Import and check the object ``name``'s placeholder names; it replaces the
        placeholder (which stays where the check fails: every lookup says why)."""
        module_name, _, attr = self._lazy[name].partition(":")
        item: T = attribute_of(importlib.import_module(module_name), attr)
        self.check(name, item)
        self._items[name] = item
        del self._lazy[name]
        return item

    def get(self, name: str, base_dir: Path | None = None) -> T:
        item = self.get_or_none(name, base_dir)
        if item is None:
            raise UnknownNameError(self.kind, name, self.names())
        return item

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def _redefinition(old: Any, new: Any) -> bool:
    """Whether ``new`` is ``old`` defined again (its module imported again after an edit):
    the same module and qualified name."""

    def origin(item: Any) -> tuple[str | None, str | None]:
        obj = getattr(item, "fn", item)
        return getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)

    return origin(old) == origin(new) and origin(old)[1] is not None
