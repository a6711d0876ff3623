"""Importing a plugin by its ``module:attr`` reference, beside the spec that names it, and
again after an edit: the code a run executes is the code its keys hash
(``mispec.code_identity``). Used by ``mispec.registry``."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import ModuleType
from typing import Any

from mispec.errors import UserError


def import_reference(ref: str, base_dir: Path | None = None) -> Any:
    """The object ``module:attr`` names (its ``__mispec__`` record where it has one), the
    module imported with ``base_dir`` first on ``sys.path``. ``UserError`` when the module
    does not import or lacks the attribute; an exception the module raises itself
    propagates (validation reports it at the spec key that names the plugin)."""
    module_name, _, attr = ref.partition(":")
    try:
        with beside(base_dir):
            module = importlib.import_module(module_name)
            module = _current(module)
    except ImportError as exc:
        raise UserError(f"cannot import plugin module '{module_name}' for '{ref}': {exc}") from exc
    obj = attribute_of(module, attr)
    if obj is None:
        raise UserError(f"plugin module '{module_name}' has no attribute '{attr}'")
    return getattr(obj, "__mispec__", obj)


def attribute_of(module: ModuleType, dotted: str) -> Any:
    """``module.<dotted>`` (``None`` where a part is missing)."""
    obj: Any = module
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
    return obj


# module name -> fingerprint of its own file when it was last (re)imported by a reference
_MODULE_FILES: dict[str, str] = {}


def files_fingerprint(module_name: str) -> str:
    """Fingerprint of the files of ``module_name`` and the local modules it imports, as
    they are on disk now ('' for a module not imported)."""
    from mispec.code_identity import local_modules
    from mispec.hashing import content_key

    modules = local_modules(sys.modules.get(module_name))
    return content_key(sorted((m.__name__, _file_text(m)) for m in modules)) if modules else ""


def _file_text(module: ModuleType) -> str:
    from mispec.code_identity import file_source

    return file_source(Path(module.__file__ or ""))


def _current(module: ModuleType) -> ModuleType:
    """``module``, imported again where its file or a local helper module's file changed
    since it was last imported here (the helpers first, then the module itself)."""
    from mispec.code_identity import local_modules

    modules = local_modules(module)
    changed = [
        m
        for m in modules
        if m.__name__ in _MODULE_FILES and _MODULE_FILES[m.__name__] != _file_text(m)
    ]
    if changed:
        importlib.invalidate_caches()
        for m in changed:  # bytecode cached by a whole-second mtime could be the old code
            _forget_bytecode(m)
        for m in reversed(changed):
            if m is not module:
                importlib.reload(m)
        module = importlib.reload(module)
        modules = local_modules(module)
    for m in modules:
        _MODULE_FILES[m.__name__] = _file_text(m)
    return module


def _forget_bytecode(module: ModuleType) -> None:
    from importlib.util import cache_from_source

    with suppress(OSError, ValueError, NotImplementedError):
        Path(cache_from_source(module.__file__ or "")).unlink(missing_ok=True)


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
