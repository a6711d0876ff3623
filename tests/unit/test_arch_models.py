"""Architecture of ``mispec.models``: TransformerLens is used through its public modules only,
and a trained model's checkpoint layout is spelled in one module, which gc reads too."""

from __future__ import annotations

import ast
import re
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


def test_gc_finds_the_training_folder_the_trainer_writes(tmp_path):
    """The store's gc reads the layout the trainer writes from: a training folder laid out by
    ``run_dir`` is one ``checkpoints`` entry keyed by its training identity, and its saved
    steps are the ones ``saved_steps`` lists."""
    from mispec.models.checkpoint_layout import MODEL_FILE, OPTIM_FILE
    from mispec.models.runs import run_dir, saved_steps, training_identity
    from mispec.spec.train import ArchSpec, TrainSpec
    from mispec.store.entries import scan
    from mispec.store.store import Store

    train = TrainSpec(
        task="modular_addition",
        task_args={"p": 7, "train_frac": 0.6},
        arch=ArchSpec(n_layers=1, n_heads=2, d_model=32, d_head=16, d_mlp=64),
        steps=4,
    )
    folder = run_dir(train, 0, tmp_path)
    folder.mkdir(parents=True)
    for step in (0, 2):
        (folder / MODEL_FILE.format(step=step)).write_bytes(b"w")
        (folder / OPTIM_FILE.format(step=step)).write_bytes(b"o")
    assert saved_steps(train, 0, tmp_path) == {0, 2}
    [entry] = scan(Store(tmp_path))
    assert (entry.kind, entry.key, entry.path) == (
        "checkpoints",
        training_identity(train, 0),
        folder,
    )
    assert entry.bytes == 4


# a step file's name as a template, a pattern or the head of an f-string
_STEP_FILE = re.compile(r"(model|optim)_(\{step\}|\(|$)")


def test_a_training_folder_is_spelled_in_one_module():
    """The names of a training folder's files are spelled in ``checkpoint_layout`` only."""
    spelled = [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "checkpoint_layout.py"
        for node in ast.walk(ast.parse(path.read_text("utf-8")))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and _STEP_FILE.search(node.value)
    ]
    assert spelled == []
