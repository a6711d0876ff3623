"""Code identity: what of an extension's code enters the cache keys of what it computes.

A plugin's metric, task, prompt generator or model source is identified by its *code
fingerprint*: a hash of its own source and of the source of the module file it lives in,
with every module that file imports from its own folder (helpers beside it), as Hamilton
hashes a function's source and DVC a stage's dependency files. Edit any of them and the
nodes the plugin computes get new keys: the next run recomputes them (``mispec plan``
shows them as not cached). Sources are normalised before hashing (parsed, docstrings
dropped, written back with ``ast.unparse``), so comments, docstrings and formatting
(``ruff format``) change nothing.

An explicit version *pins* the code: ``@metric(version=N)``, or a ``version = N`` attribute
of a task class or factory, a prompt generator function or a model source class. The keys
then hold ``N`` and never the code: edits keep the cache until ``N`` changes (what the
built-ins do; ``mispec.builtin_code`` checks that a built-in's code never changes without
its version).

Built-ins (anything in the ``mispec`` package) keep the keys they always had: their
version, and nothing at all where the version is the default 1.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import sys
from functools import lru_cache
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any

from mispec.hashing import content_key


def is_builtin(obj: Any) -> bool:
    """Whether ``obj`` (a function, class or ``MetricDef``'s function) is part of mispec."""
    module = getattr(obj, "__module__", None) or ""
    return module == "mispec" or module.startswith("mispec.")


def pinned_version(obj: Any) -> int | None:
    """The ``version`` an object states itself (a class body's or a function's attribute,
    not one inherited from a base class), or None."""
    version = vars(obj).get("version") if hasattr(obj, "__dict__") else None
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def code_identity(*objs: Any) -> Any:
    """What enters a key for the code of ``objs`` (one extension: e.g. a task factory and
    the class it builds): ``None`` for built-ins at the default version (keys unchanged),
    ``{"version": N}`` where one of them pins ``N`` (or a built-in has ``N != 1``), else
    ``{"code": <fingerprint>}``."""
    versions = [v for v in map(pinned_version, objs) if v is not None]
    if all(is_builtin(o) for o in objs):
        version = versions[0] if versions else 1
        return None if version == 1 else {"version": version}
    if versions:
        return {"version": versions[0]}
    return {"code": code_fingerprint(*objs)}


def code_fingerprint(*objs: Any) -> str:
    """Hash of the normalised source of ``objs`` and of their module files, with the local
    modules those import (see the module docstring)."""
    modules: dict[str, ModuleType] = {}
    for obj in objs:
        for module in local_modules(sys.modules.get(getattr(obj, "__module__", "") or "")):
            modules.setdefault(module.__name__, module)
    files = sorted((name, file_source(Path(m.__file__ or ""))) for name, m in modules.items())
    return content_key("code", [object_source(o) for o in objs], files)


def object_source(obj: Any) -> str:
    """The normalised source of a function or class; its bytecode where there is no source
    (defined interactively)."""
    try:
        return normalise(inspect.getsource(obj))
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None)
        return _code_text(code) if code is not None else getattr(obj, "__qualname__", "")


def _code_text(code: CodeType) -> str:
    """A code object as text: its bytecode, names and constants, nested code included (no
    addresses, so the same code gives the same text in every process)."""
    consts = [_code_text(c) if isinstance(c, CodeType) else repr(c) for c in code.co_consts]
    return "|".join([code.co_code.hex(), repr(code.co_names), repr(code.co_varnames), *consts])


def local_modules(module: ModuleType | None) -> list[ModuleType]:
    """``module`` and the modules it imports (its ``import`` statements), directly or through
    others, from its own folder or below (helpers beside a plugin), each once; none of
    mispec's or a package's installed elsewhere."""
    if module is None or not getattr(module, "__file__", None):
        return []
    root = Path(module.__file__).resolve().parent  # type: ignore[arg-type]
    found: dict[str, ModuleType] = {}
    todo = [module]
    while todo:
        m = todo.pop()
        if m.__name__ in found:
            continue
        found[m.__name__] = m
        for name in imported_names(m):
            other = sys.modules.get(name)
            file = getattr(other, "__file__", None)
            if other is None or not file or other.__name__ in found or is_builtin(other):
                continue
            if Path(file).resolve().is_relative_to(root):
                todo.append(other)
    return list(found.values())


def imported_names(module: ModuleType) -> list[str]:
    """The modules ``module``'s source imports (``import a.b``: ``a`` and ``a.b``; ``from a
    import b``: ``a`` and ``a.b``, which is a module or not; relative imports resolved)."""
    tree = _parsed(file_source_raw(Path(module.__file__ or "")))
    package = module.__package__ or ""
    names: list[str] = []
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                names += [".".join(parts[: i + 1]) for i in range(len(parts))]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            try:
                base = importlib.util.resolve_name(base, package) if node.level else base
            except (ImportError, ValueError):
                continue
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names]
    return names


def file_source_raw(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


@lru_cache(maxsize=256)
def _parsed(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except SyntaxError:
        return None


def file_source(path: Path) -> str:
    """The normalised text of a source file, read now ('' when unreadable)."""
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return _normalised_file(data)


@lru_cache(maxsize=256)
def _normalised_file(data: bytes) -> str:
    try:
        return normalise(data.decode("utf-8"))
    except UnicodeDecodeError:
        return data.hex()


def normalise(source: str) -> str:
    """``source`` parsed and written back without docstrings or comments, so formatting-only
    changes keep the hash; the text itself when it does not parse (a method's source)."""
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return source
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)
