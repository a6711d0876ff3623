"""The fast tier stays fast: no module in ``tests/unit/`` uses a trained fixture, runs a
study or trains a ``train:`` model into a store. A test that needs one belongs in ``tests/system/`` (``make test`` runs both tiers,
``make test-fast`` only this one)."""

from __future__ import annotations

import ast
from pathlib import Path

UNIT = Path(__file__).resolve().parent
TESTS = UNIT.parent

# Modules whose tools run studies: the CLI as a subprocess, the reference run of the toy spec,
# one spec on every executor.
STUDY_MODULES = {"tests.reliability_helpers", "tests.helpers.executor_identity", "tests.system"}


def _is_study_run(call: ast.Call) -> bool:
    """Whether ``call`` is ``mispec.run(...)`` or ``api.run(...)``."""
    fn = call.func
    return (
        isinstance(fn, ast.Attribute)
        and fn.attr == "run"
        and isinstance(fn.value, ast.Name)
        and fn.value.id in {"mispec", "api"}
    )


def _calls_run(fn: ast.FunctionDef) -> bool:
    """Whether the body of ``fn`` calls ``run(...)``, ``mispec.run(...)`` or ``api.run(...)``."""
    return any(
        isinstance(call, ast.Call)
        and (_is_study_run(call) or (isinstance(call.func, ast.Name) and call.func.id == "run"))
        for call in ast.walk(fn)
    )


def _runs_the_cli(call: ast.Call) -> bool:
    """Whether ``call`` is ``main(["run", ...])``: the CLI's ``run`` verb in-process."""
    fn = call.func
    name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
    if name != "main" or not call.args or not isinstance(call.args[0], ast.List):
        return False
    first = call.args[0].elts[:1]
    return bool(first) and isinstance(first[0], ast.Constant) and first[0].value == "run"


def _trains_into_a_store(call: ast.Call) -> bool:
    """Whether ``call`` is ``ensure_trained(...)``: a ``train:`` model trained and saved."""
    fn = call.func
    return (isinstance(fn, ast.Name) and fn.id == "ensure_trained") or (
        isinstance(fn, ast.Attribute) and fn.attr == "ensure_trained"
    )


def _is_fixture(fn: ast.FunctionDef) -> bool:
    for dec in fn.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        if isinstance(target, ast.Attribute) and target.attr == "fixture":
            return True
    return False


def trained_fixtures() -> set[str]:
    """The fixtures of ``tests/conftest.py`` that run a study (and so train its models)."""
    tree = ast.parse((TESTS / "conftest.py").read_text())
    return {
        fn.name
        for fn in tree.body
        if isinstance(fn, ast.FunctionDef) and _is_fixture(fn) and _calls_run(fn)
    }


def study_uses(path: Path, fixtures: set[str]) -> list[str]:
    """What in one test module runs a study or trains a model into a store: each use, with
    its line."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            found += [f"{node.lineno}: fixture {a.arg}" for a in args if a.arg in fixtures]
        elif isinstance(node, ast.Constant) and node.value in fixtures:
            found.append(f"{node.lineno}: fixture {node.value!r}")  # usefixtures("...")
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            if module in STUDY_MODULES or module.startswith(("tests.system.", ".reliability")):
                found.append(f"{node.lineno}: imports {module}")
            if module in {"mispec", "mispec.api"} and any(a.name == "run" for a in node.names):
                found.append(f"{node.lineno}: imports run from {module}")
        elif isinstance(node, ast.Call) and _is_study_run(node):
            found.append(f"{node.lineno}: {ast.unparse(node.func)}(...)")
        elif isinstance(node, ast.Call) and _runs_the_cli(node):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and _trains_into_a_store(node):
            found.append(f"{node.lineno}: {ast.unparse(node.func)}(...)")
    return found


def test_the_conftest_names_its_trained_fixtures():
    # Guards the check below against passing vacuously when the fixture is renamed.
    assert "default_study" in trained_fixtures()


def test_no_unit_test_trains_through_a_study():
    fixtures = trained_fixtures()
    offenders = {
        path.name: uses
        for path in sorted(UNIT.glob("*.py"))
        if path.name != Path(__file__).name and (uses := study_uses(path, fixtures))
    }
    assert not offenders, f"move these to tests/system/ (they run studies): {offenders}"


def test_the_check_sees_a_study_run(tmp_path):
    bad = tmp_path / "test_bad.py"
    bad.write_text(
        "import mispec\n"
        "from tests.reliability_helpers import cli\n"
        "def test_a(default_study):\n"
        "    mispec.run('spec.yaml')\n"
        "    main(['run', 'spec.yaml'])\n"
        "    ensure_trained('toy', train, 0, [0, 1], store)\n"
    )
    uses = study_uses(bad, trained_fixtures())
    assert set(uses) == {
        "2: imports tests.reliability_helpers",
        "3: fixture default_study",
        "4: mispec.run(...)",
        "5: main(['run', 'spec.yaml'])",
        "6: ensure_trained(...)",
    }
