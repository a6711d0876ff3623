"""The package's own import graph, read from source (lazy imports inside functions included).

Used by the import-floor test and by ``scripts/import_report.py`` (before/after numbers).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Import:
    """One import of a mispec module by another, with where it is written."""

    importer: str  # dotted module name, e.g. "mispec.store.lifecycle"
    imported: str  # dotted module name (the longest known prefix of what is named)
    path: Path
    line: int
    lazy: bool  # inside a function or under ``if TYPE_CHECKING:``


def module_names(root: Path, package: str = "mispec") -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    base = root / package
    out: dict[str, Path] = {}
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(root: Path, package: str = "mispec") -> list[Import]:
    """Every import between the package's modules, lazy and ``TYPE_CHECKING`` ones included
    (a type-only import still ties the importer to what it names)."""
    known = module_names(root, package)
    found: list[Import] = []
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        found.extend(_walk(tree, module, here, path, known, lazy=False))
    return [i for i in found if i.importer != i.imported]


def _walk(
    node: ast.AST, module: str, here: list[str], path: Path, known: dict[str, Path], *, lazy: bool
) -> Iterator[Import]:
    for child in ast.iter_child_nodes(node):
        inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
        inner = inner or (isinstance(child, ast.If) and _is_type_checking(child))
        if isinstance(child, ast.Import):
            for alias in child.names:
                target = _resolve(alias.name, known)
                if target:
                    yield Import(module, target, path, child.lineno, lazy)
        elif isinstance(child, ast.ImportFrom):
            if child.level:
                base = here[: len(here) - (child.level - 1)]
                stem = ".".join(base + ([child.module] if child.module else []))
            else:
                stem = child.module or ""
            for alias in child.names:
                target = _resolve(f"{stem}.{alias.name}", known) or _resolve(stem, known)
                if target:
                    yield Import(module, target, path, child.lineno, lazy)
        yield from _walk(child, module, here, path, known, lazy=inner)


def room(module: str, depth: int = 1) -> str:
    """The package a module belongs to: ``mispec.execute.local.executor.lanes`` -> ``execute``."""
    parts = module.split(".")[1:]
    return ".".join(parts[:depth]) if parts else "mispec"
