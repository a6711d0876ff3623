"""``mispec diff`` between two runs where the model was renamed: the same weights under a new
name are matched and compared, not reported as one model removed and another added."""

from __future__ import annotations

import json

import xarray as xr

import mispec
from mispec.cli.main import main
from tests.conftest import TOY_SPEC


def _run(write_spec, text: str, name: str):
    path = write_spec(text, name)
    mispec.run(path, progress=False, out=path.parent / "runs" / path.stem)
    return path


def test_a_renamed_model_is_compared(write_spec, capsys):
    a = _run(write_spec, TOY_SPEC, "a.yaml")
    renamed = _run(write_spec, TOY_SPEC.replace("  toy:", "  toy2:"), "b.yaml")
    d = mispec.diff(str(a), str(renamed))
    assert d.renamed == {"toy": "toy2"}
    assert [(c.path, c.change, c.old, c.new) for c in d.spec] == [
        ("models", "renamed", "toy", "toy2")
    ]
    assert not d.plan.added and not d.plan.removed and not d.plan.invalidated
    names = sorted(mispec.open_results(a.parent / "runs" / "a")["toy"].to_dataset().data_vars)
    assert [(v.model, v.variable, v.change, v.renamed_from) for v in d.results] == [
        ("toy2", n, "same", "toy") for n in names
    ]

    # renamed and an argument changed: the icl values are compared, against the runs' values
    edited = _run(
        write_spec,
        TOY_SPEC.replace("  toy:", "  toy2:").replace("late: 10", "late: 12"),
        "c.yaml",
    )
    d = mispec.diff(str(a), str(edited))
    assert [(c.path, c.change) for c in d.spec] == [
        ("models", "renamed"),
        ("metrics.icl.args.late", "changed"),
    ]
    icl = next(v for v in d.results if v.variable == "icl")
    old = mispec.open_results(a.parent / "runs" / "a")["toy"].to_dataset().icl
    new = mispec.open_results(edited.parent / "runs" / "c")["toy2"].to_dataset().icl
    old, new = xr.align(old, new)
    delta = abs(new - old)
    assert icl.change == "changed" and icl.renamed_from == "toy"
    assert icl.max_abs == float(delta.max())
    scale = xr.where(abs(old) > abs(new), abs(old), abs(new))
    changed = delta > 1e-6 + 1e-5 * abs(old)
    assert abs(icl.max_rel - float((delta / scale).where(changed).max())) < 1e-12
    assert main(["diff", str(a), str(edited)]) == 0
    text = capsys.readouterr().out
    assert "~ models: renamed toy → toy2 (same weights: compared)" in text
    assert "toy2/icl (renamed from toy): changed" in text
    assert main(["diff", str(a), str(edited), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["renamed"] == {"toy": "toy2"} and data["schema_version"] == 2


def test_a_new_model_with_other_training_is_not_a_rename(write_spec):
    a = _run(write_spec, TOY_SPEC, "a.yaml")
    other = _run(
        write_spec,
        TOY_SPEC.replace("  toy:", "  toy2:").replace("batch_size: 16", "batch_size: 8"),
        "b.yaml",
    )
    d = mispec.diff(str(a), str(other))
    assert d.renamed == {}
    assert {v.change for v in d.results if v.model == "toy"} == {"removed"}
    assert {v.change for v in d.results if v.model == "toy2"} == {"added"}
