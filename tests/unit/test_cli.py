"""The CLI as a user meets it: exit codes, messages without tracebacks, JSON that parses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

from mispec.cli.main import main
from tests.conftest import TOY_SPEC

REPO = Path(__file__).resolve().parents[2]


def mispec(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mispec.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
    )


def test_validate_default_spec_exits_0():
    res = mispec("validate", "specs/induction_heads.yaml")
    assert res.returncode == 0, res.stderr
    assert "ok" in res.stdout and "9 metric(s)" in res.stdout  # transition_size since issue 14


def test_typo_gives_position_did_you_mean_exit_2_no_traceback(write_spec):
    path = write_spec(TOY_SPEC.replace("fn: induction_score", "fn: induction_scor"))
    res = mispec("validate", str(path))
    assert res.returncode == 2
    assert (
        f"{path}:21:19: metrics.induction.fn: unknown metric function 'induction_scor' "
        "(did you mean 'induction_score'?)" in res.stderr
    )
    assert "Traceback" not in res.stderr
    verbose = mispec("-v", "validate", str(path))
    assert verbose.returncode == 2 and "Traceback" in verbose.stderr


def test_schema_validates_every_example_spec():
    res = mispec("schema")
    assert res.returncode == 0
    schema = json.loads(res.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    specs = sorted((REPO / "specs").glob("*.yaml"))
    assert specs
    for spec in specs:
        jsonschema.validate(
            yaml.safe_load(spec.read_text()), schema, cls=jsonschema.Draft202012Validator
        )
    # the copy that the specs' yaml-language-server line points at is current
    assert json.loads((REPO / "docs/spec.schema.json").read_text()) == schema
    bad = yaml.safe_load(specs[0].read_text()) | {"metricz": {}}
    assert not jsonschema.Draft202012Validator(schema).is_valid(bad)


def test_plan_json_parses_and_counts_forward_passes(toy_spec):
    res = mispec("plan", str(toy_spec), "--format", "json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["counts"]["forward"] == 3
    assert data["status"]["forward_passes"] == 3 and data["status"]["cells_cached"] == 0
    assert data["series"]["toy/s0"]["steps"] == [0, 20, 40]


def test_plan_text(toy_spec, capsys):
    assert main(["plan", str(toy_spec)]) == 0
    out = capsys.readouterr().out
    assert "forward passes   3 to run (of 3)" in out
    assert "toy seed 0: 3 checkpoints [0, 20, 40]" in out


def test_missing_spec_file_exit_2(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "spec file not found" in capsys.readouterr().err


def test_version_and_help_are_fast_and_lazy():
    res = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mispec.cli.main", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert res.returncode == 0
    imported = {
        line.split("|")[-1].strip().split(".")[0] for line in res.stderr.splitlines() if "|" in line
    }
    assert not imported & {"torch", "transformer_lens", "dask", "xarray", "zarr", "transformers"}
    res = mispec("--version")
    assert res.stdout.startswith("mispec ")
