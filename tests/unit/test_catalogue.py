"""The catalogue (`mispec list`, docs/catalogue.md) is read from the registries themselves."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

from mispec.catalogue.entries import catalogue
from mispec.catalogue.render import render_markdown
from mispec.cli.main import main

REPO = Path(__file__).resolve().parents[2]


def test_docs_catalogue_is_current():
    """Regenerate and compare: a metric, task or arg added without regenerating fails here.
    Fix with `make docs` (`mispec list --builtin --format markdown > docs/catalogue.md`)."""
    page = (REPO / "docs" / "catalogue.md").read_text()
    assert page == render_markdown(catalogue(builtin_only=True)) + "\n", (
        "docs/catalogue.md is stale: run `make docs`"
    )


def test_list_metrics_json_has_every_builtin_with_args_and_dims(capsys):
    import mispec.metrics.builtin  # noqa: F401
    from mispec.metrics.core import METRICS

    assert main(["list", "metrics", "--format", "json"]) == 0
    listed = {e["name"]: e for e in json.loads(capsys.readouterr().out)["metrics"]}
    builtins = {n for n in METRICS.names() if ":" not in n}
    assert builtins <= set(listed) and len(builtins) >= 18
    # args from the function's own signature: names, defaults, required-ness
    for name in builtins:
        params = [
            p
            for p in inspect.signature(METRICS.get(name).fn).parameters.values()
            if p.name not in {"acts", "prompts", "model", "bridge", *METRICS.get(name).inputs}
        ]
        assert [a["name"] for a in listed[name]["args"]] == [p.name for p in params]
    icl = {a["name"]: a for a in listed["icl_score"]["args"]}
    assert icl["early"]["required"] and icl["early"]["type"] == "int"
    assert listed["induction_score"]["dims"] == ["layer", "head"]
    assert listed["induction_score"]["units"] == "fraction of attention"
    assert listed["loss"]["dims"] == [] and listed["loss"]["units"] == "nats"
    norm = {a["name"]: a for a in listed["induction_score"]["args"]}["normalize"]
    assert norm["default"] == "target_rows" and not norm["required"]
    assert listed["transition_step"]["dims"] is None and listed["transition_step"]["dims_note"]


def test_list_includes_a_registered_plugin(capsys):
    """An entry-point plugin is an item of the registry: registering one lists it."""
    from mispec.metrics.core import METRICS, metric

    @metric(dims=("layer",), inputs=("x",), units="widgets", register=False)
    def catalogue_probe_metric(x, scale: float = 2.0):
        """Probe metric for the catalogue test."""
        return x

    METRICS.register("catalogue_probe_metric", catalogue_probe_metric.__mispec__)
    try:
        assert main(["list", "metrics"]) == 0
        out = capsys.readouterr().out
        assert "catalogue_probe_metric  [plugin: tests.unit.test_catalogue]" in out
        assert "Probe metric for the catalogue test." in out
        assert "dims: (layer)  units: widgets" in out
        assert "args: scale: float = 2.0" in out
        assert main(["list", "metrics", "--builtin", "--format", "json"]) == 0
        names = [e["name"] for e in json.loads(capsys.readouterr().out)["metrics"]]
        assert "catalogue_probe_metric" not in names
    finally:
        METRICS._items.pop("catalogue_probe_metric")


def test_list_other_kinds(capsys):
    assert main(["list", "tasks", "--format", "json"]) == 0
    tasks = {e["name"]: e for e in json.loads(capsys.readouterr().out)["tasks"]}
    assert set(tasks) >= {"repeated_tokens", "modular_addition", "sorting", "toy_ioi"}
    p = {a["name"]: a for a in tasks["modular_addition"]["args"]}["p"]
    doc = "the modulus: numbers are tokens ``0 … p-1`` (at least 2; default 113)."
    assert p == {"name": "p", "type": "int", "default": 113, "required": False, "doc": doc}
    assert main(["list", "generators", "--format", "json"]) == 0
    gens = {e["name"]: e for e in json.loads(capsys.readouterr().out)["generators"]}
    assert [a["name"] for a in gens["repeated_tokens"]["args"]][0] == "n"  # n before task args
    assert main(["list", "executors", "--format", "json"]) == 0
    ex = {e["name"]: e for e in json.loads(capsys.readouterr().out)["executors"]}
    assert {a["name"] for a in ex["dask-local"]["args"]} >= {"workers", "threads_per_worker"}
    assert main(["list", "sources"]) == 0
    assert "``train:`` a toy model that mispec trains" in capsys.readouterr().out
    assert main(["list", "metrix"]) == 2
    assert "did you mean 'metrics'" in capsys.readouterr().err


def test_init_writes_a_spec_that_validates(tmp_path, capsys):
    spec = tmp_path / "study.yaml"
    assert main(["init", str(spec)]) == 0
    assert main(["validate", str(spec)]) == 0
    assert "4 metric(s)" in capsys.readouterr().out
    assert main(["init", str(spec)]) == 2  # never overwrites without --force
    assert "exists" in capsys.readouterr().err


def test_readme_names_every_builtin_and_links_the_catalogue():
    readme = (REPO / "README.md").read_text()
    assert "(docs/catalogue.md)" in readme
    cat = catalogue(builtin_only=True)
    for kind in ("metrics", "tasks", "sources", "executors"):
        missing = [e.name for e in cat[kind] if f"`{e.name}`" not in readme]
        assert missing == [], f"README names no built-in {kind} {missing}"


def test_entry_point_plugins_are_listed_and_in_the_editor_schema(monkeypatch, capsys):
    """A task installed through the `mispec.tasks` entry-point group (as a package would
    register it) shows in `mispec list tasks` and `generators`, and in `mispec schema`'s
    enums with its args checked; a broken entry point warns and lists the rest."""
    import importlib.metadata as md

    import pytest

    from mispec.prompts.generators import GENERATORS
    from mispec.tasks import TASKS
    from tests.helpers.reverse_task import Reverse

    class EP:
        def __init__(self, name, obj=None):
            self.name, self.value, self._obj = name, f"pkg:{name}", obj

        def load(self):
            if self._obj is None:
                raise ImportError("no module named 'pkg'")
            return self._obj

    groups = {"mispec.tasks": [EP("reverse_ep", Reverse), EP("broken_ep")]}
    monkeypatch.setattr(md, "entry_points", lambda group: groups.get(group, []))
    for registry in (TASKS, GENERATORS):
        monkeypatch.setattr(registry, "_entry_points_loaded", False)
        monkeypatch.setattr(registry, "_items", dict(registry._items))  # restored afterwards

    with pytest.warns(UserWarning, match="plugin 'broken_ep'"):
        assert main(["list", "tasks", "--format", "json"]) == 0
    tasks = {e["name"]: e for e in json.loads(capsys.readouterr().out)["tasks"]}
    assert "broken_ep" not in tasks and "repeated_tokens" in tasks
    assert tasks["reverse_ep"]["origin"] == "tests.helpers.reverse_task"
    assert [(a["name"], a["default"]) for a in tasks["reverse_ep"]["args"]] == [
        ("length", 4),
        ("vocab", 8),
    ]
    assert tasks["reverse_ep"]["summary"].startswith("``BOS x_1 … x_L SEP x_L … x_1``")
    assert main(["list", "generators", "--format", "json"]) == 0
    gens = {e["name"]: e for e in json.loads(capsys.readouterr().out)["generators"]}
    assert [(a["name"], a["default"]) for a in gens["reverse_ep"]["args"]][0] == ("n", 16)

    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    task = schema["$defs"]["TrainSpec"]["properties"]["task"]["oneOf"]
    assert "reverse_ep" in [t.get("const") for t in task]
    rule = next(
        r
        for r in schema["$defs"]["TrainSpec"]["allOf"]
        if r["if"]["properties"]["task"]["const"] == "reverse_ep"
    )
    args = rule["then"]["properties"]["task_args"]
    assert set(args["properties"]) == {"length", "vocab"} and args["additionalProperties"] is False
