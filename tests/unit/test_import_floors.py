"""The floors of the package: nothing imports anything above it, lazy imports inside
functions and ``TYPE_CHECKING`` imports included (docs/architecture.md, "Floors").

The import graph is read from the source (``tests/helpers/import_graph.py``), so a lazy
import written to dodge a cycle counts like any other.
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from tests.helpers.import_graph import Import, imports, module_names, room

ROOT = Path(__file__).resolve().parents[2]

# bottom → top; a package may import its own floor's ground-floor neighbours and any floor
# below it. The ground floor's modules depend on nothing of mispec above them.
FLOORS: list[set[str]] = [
    {
        "errors",
        "hashing",
        "coords",
        "lazy",
        "registry",
        "plugin_import",
        "code_identity",
        "runtime",
    },
    {"spec"},
    {"prompts"},
    {"tasks"},
    {"models"},
    {"metrics"},
    {"sources"},
    {"validation"},
    {"planning"},
    {"store"},
    {"execute"},
    {"results"},
    {"catalogue"},
    {"diffing"},
    {"plot"},
    {"api", "builtin_code"},
    {"mispec"},  # the package's own __init__: the public names, mapped lazily to api & co.
    {"cli"},
]
LEVEL = {pkg: i for i, floor in enumerate(FLOORS) for pkg in floor}


def _upward(found: list[Import]) -> list[str]:
    out = []
    for i in found:
        a, b = room(i.importer), room(i.imported)
        if a == b:
            continue
        if LEVEL[b] > LEVEL[a] or (LEVEL[b] == LEVEL[a] and LEVEL[a] > 0):
            rel = i.path.relative_to(ROOT)
            out.append(f"{rel}:{i.line}: {a} imports {i.imported} ({b} is above {a})")
    return out


def test_every_package_has_a_floor():
    rooms = {room(m) for m in module_names(ROOT)}
    assert rooms <= set(LEVEL), f"packages with no floor: {sorted(rooms - set(LEVEL))}"


def test_no_import_crosses_a_floor_upward():
    assert _upward(imports(ROOT)) == []


def test_no_import_cycle_between_packages():
    graph = nx.DiGraph()
    for i in imports(ROOT):
        a, b = room(i.importer), room(i.imported)
        if a != b:
            graph.add_edge(a, b)
    assert [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1] == []


def test_the_check_sees_a_lazy_upward_import(tmp_path):
    """The walker finds an import inside a function and one under TYPE_CHECKING: a store
    module reaching up into execute is reported (so the checks above can fail)."""
    pkg = tmp_path / "mispec"
    for sub in ("store", "execute", "spec"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "execute" / "context.py").write_text("X = 1\n")
    (pkg / "spec" / "schema.py").write_text("Y = 1\n")
    (pkg / "store" / "provenance.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from mispec.spec.schema import Y\n"
        "if TYPE_CHECKING:\n    from mispec.execute.context import X\n"
        "def f():\n    from ..execute import context\n    return context\n"
    )
    found = imports(tmp_path)
    pairs = sorted((i.imported, i.line, i.lazy) for i in found)
    assert pairs == [
        ("mispec.execute.context", 4, True),
        ("mispec.execute.context", 6, True),
        ("mispec.spec.schema", 2, False),
    ]
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert len(_upward(found)) == 2
    finally:
        ROOT = saved


def test_views_read_results_never_execute():
    """Diffs, plots and the report read results (``mispec.results``), not the executors."""
    found = [
        f"{i.path.relative_to(ROOT)}:{i.line}: {i.imported}"
        for i in imports(ROOT)
        if room(i.importer) in ("diffing", "plot") and room(i.imported) == "execute"
    ]
    assert found == []
