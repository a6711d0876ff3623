"""One ``Registry`` for every kind: a built-in registered as a placeholder is imported on its
first lookup, and an item of the wrong kind — registered, named ``module:attr``, a placeholder
or an entry point — is refused with a message that names it."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest

from mispec.errors import ExecutorError, SpecError, UserError
from mispec.execute.executor import EXECUTORS, Executor, executor_class
from mispec.execute.profile import load_profile
from mispec.registry import Registry, subclass_of


def _executors() -> Registry[type[Executor]]:
    return Registry(
        "executor kind",
        accepts=subclass_of(Executor),
        wrong_kind="executor kind '{name}' is not a mispec Executor subclass",
    )


def test_a_placeholder_is_listed_and_imported_on_its_first_lookup(tmp_path, monkeypatch):
    (tmp_path / "arch_registry_probe.py").write_text(
        "from mispec.execute.executor import Executor\n\n"
        "class Probe(Executor):\n"
        "    def submit(self, node, upstream): ...\n"
        "    def as_completed(self): return iter(())\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = _executors()
    registry.register_lazy("probe", "arch_registry_probe:Probe")
    assert registry.names() == ["probe"] and "arch_registry_probe" not in sys.modules
    probe = registry.get("probe")
    assert probe.__name__ == "Probe" and registry.get("probe") is probe
    assert sys.modules["arch_registry_probe"].Probe is probe


def test_importing_the_executor_seam_imports_no_executor():
    code = (
        "import sys, mispec.execute.executor as e; names = e.EXECUTORS.names();"
        "assert not [m for m in sys.modules if m.startswith(('dask', 'mispec.execute.local',"
        " 'mispec.execute.dask'))], names;"
        "assert {'local', 'dask-local', 'dask-remote', 'dask-slurm'} <= set(names)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_item_of_the_wrong_kind_is_refused_wherever_it_comes_from(tmp_path, monkeypatch):
    registry = _executors()
    with pytest.raises(UserError, match="executor kind 'dumps' is not a mispec Executor"):
        registry.register("dumps", __import__("json").dumps)
    registry.register_lazy("dumps", "json:dumps")  # a placeholder stays: every lookup says why
    for _ in range(2):
        with pytest.raises(UserError, match="executor kind 'dumps' is not a mispec Executor"):
            registry.get("dumps")
    with pytest.raises(ExecutorError, match="executor kind 'json:dumps' is not a mispec Exec"):
        executor_class("json:dumps")
    profile = tmp_path / "p.yaml"
    profile.write_text("name: p\nkind: json:dumps\n")
    with pytest.raises(SpecError, match="p.yaml:2:7.*not a mispec Executor subclass"):
        load_profile(str(profile))


def test_sources_tasks_and_generators_say_what_they_hold():
    from mispec.prompts.generators import GENERATORS
    from mispec.sources import source_class
    from mispec.tasks import TASKS

    with pytest.raises(UserError, match="'json:dumps' is not a mispec model source: subclass"):
        source_class("json:dumps")
    with pytest.raises(UserError, match="task 'math:pi' is not a mispec Task subclass"):
        TASKS.get("math:pi")
    with pytest.raises(UserError, match="prompt generator 'math:e' is not a function"):
        GENERATORS.get("math:e")


def test_an_entry_point_of_the_wrong_kind_warns_and_is_skipped(monkeypatch):
    group = "mispec.arch_registry_probe"
    points = [
        importlib.metadata.EntryPoint(name="bad", value="json:dumps", group=group),
        importlib.metadata.EntryPoint(
            name="good", value="mispec.execute.local.executor:LocalExecutor", group=group
        ),
    ]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: points)
    registry = Registry(
        "executor kind",
        entry_point_group=group,
        accepts=subclass_of(Executor),
        wrong_kind="executor kind '{name}' is not a mispec Executor subclass",
    )
    with pytest.warns(UserWarning, match="'bad'.*not a mispec Executor subclass"):
        assert registry.names() == ["good"]


def test_a_name_is_registered_once():
    registry = _executors()
    registry.register_lazy("local", "mispec.execute.local.executor:LocalExecutor")
    registry.register_lazy("local", "mispec.execute.local.executor:LocalExecutor")  # the same
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_lazy("local", "mispec.execute.dask.executor:DaskLocalExecutor")
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("local", EXECUTORS.get("dask-local"))
    assert registry.get("local") is EXECUTORS.get("local")
