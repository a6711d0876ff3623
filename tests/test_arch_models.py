"""Architecture of ``mispec.models``: TransformerLens is used through its public modules only,
and a trained model's checkpoint layout is spelled in one module, which gc reads too."""

from __future__ import annotations

import ast
from pathlib import Path

import mispec

PACKAGE = Path(mispec.__file__).parent


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, dotted module) of every import in ``tree``, lazy ones inside functions too."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def private_transformer_lens_imports(root: Path) -> list[str]:
    """``file:line module`` for every import of a TransformerLens module whose dotted path
    has a private component (``transformer_lens.x._y``)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"), str(path))
        for line, module in _imported_modules(tree):
            parts = module.split(".")
            if parts[0] == "transformer_lens" and any(p.startswith("_") for p in parts):
                found.append(f"{path.relative_to(root.parent)}:{line} {module}")
    return found


def test_no_private_transformer_lens_modules():
    assert private_transformer_lens_imports(PACKAGE) == []


def test_the_check_finds_a_private_module(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "m.py").write_text(
        "import transformer_lens.model_bridge\n"
        "def f():\n"
        "    from transformer_lens.model_bridge.sources._hf_format import x\n"
        "    import transformer_lens._private as p\n"
    )
    assert private_transformer_lens_imports(pkg) == [
        "pkg/m.py:3 transformer_lens.model_bridge.sources._hf_format",
        "pkg/m.py:4 transformer_lens._private",
    ]
