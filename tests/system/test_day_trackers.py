"""`mispec export RUN --to wandb|mlflow` (issue 31 §5): a real two-seed run exported with the
real client libraries, then read back with each tracker's own reader — MLflow's
``MlflowClient.get_metric_history`` on the file store, W&B's ``wandb leet inspect --json`` on
the offline run's ``.wandb`` log — and every logged (step, value) compared with the run's
xarray results, read here independently of the exporter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import mispec
from mispec.cli.main import main
from tests.conftest import TOY_SPEC

TWO_SEEDS = TOY_SPEC.replace("seeds: [0]", "seeds: [0, 1]")


@pytest.fixture(scope="module")
def two_seed_run(tmp_path_factory):
    project = tmp_path_factory.mktemp("trackers")
    (project / "spec.yaml").write_text(TWO_SEEDS)
    result = mispec.run(project / "spec.yaml", store=project / ".mispec", progress=False)
    return project, result.run_dir


def _expected(run_dir: Path, seed: int) -> dict[str, list[tuple[int, float]]]:
    """Per key, the (step, value) series of one seed, spelled out by hand from the results
    (``transition``, step-less, is NaN — no crossing in 40 steps — so not logged)."""
    ds = mispec.open_results(run_dir).load()["toy"].to_dataset().sel(seed=seed)
    steps = [int(s) for s in ds.step.values]
    series: dict[str, list[tuple[int, float]]] = {}

    def add(key: str, values) -> None:
        series[key] = [(st, float(v)) for st, v in zip(steps, values, strict=True)]

    add("loss", ds.loss.values)
    add("icl", ds.icl.values)
    add("tokens_seen", ds.tokens_seen.values)
    for layer in ds.layer.values:
        for head in ds["head"].values:
            add(
                f"induction/layer_{layer}/head_{head}",
                ds.induction.sel(layer=layer, head=head).values,
            )
    for pos in ds.pos.values:
        add(f"per_token_loss/pos_{pos}", ds.per_token_loss.sel(pos=pos).values)
    assert np.isnan(ds.transition.values).all()
    return series


def test_mlflow_file_store_holds_every_value_at_its_step(
    two_seed_run, tmp_path, capsys, monkeypatch
):
    project, run_dir = two_seed_run
    out = tmp_path / "mlruns"
    assert main(["export", str(run_dir), "--to", "mlflow", "--dir", str(out)]) == 0
    assert "exported 2 run(s) to MLflow" in capsys.readouterr().out

    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow >= 3.7 reads a file store so
    client = MlflowClient(tracking_uri=out.as_uri())
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["toy/seed_0", "toy/seed_1"]
    provenance = json.loads((run_dir / "provenance.json").read_text())
    for run in runs:
        seed = int(run.data.tags["mispec.seed"])
        assert run.info.run_name == f"toy/seed_{seed}" and run.data.tags["mispec.model"] == "toy"
        expected = _expected(run_dir, seed)
        assert set(run.data.metrics) == set(expected)
        for key, series in expected.items():
            got = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
            assert sorted(got) == series, key
        params = run.data.params
        assert params["model.train.steps"] == "40"
        assert params["model.train.task"] == "repeated_tokens"
        assert params["mispec.run_id"] == provenance["run_id"]
        assert params["provenance.versions.torch"] == provenance["versions"]["torch"]
        arts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert arts == {"spec.yaml", "provenance.json"}
        local = client.download_artifacts(run.info.run_id, "spec.yaml", str(tmp_path / str(seed)))
        assert Path(local).read_text() == (run_dir / "spec.yaml").read_text()


def _wandb_records(log: Path) -> list[dict]:
    """The records of an offline run's ``.wandb`` log, through W&B's own reader."""
    exe = Path(sys.executable).parent / "wandb"
    done = subprocess.run(
        [str(exe), "leet", "inspect", "--json", str(log)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "WANDB_MODE": "offline"},
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_wandb_offline_run_holds_every_value_at_its_step(two_seed_run, tmp_path, capsys):
    project, run_dir = two_seed_run
    out = tmp_path / "wb"
    assert main(["export", str(run_dir), "--to", "wandb", "--dir", str(out)]) == 0
    report = capsys.readouterr().out
    assert "exported 2 run(s) to W&B (offline)" in report
    folders = sorted((out / "wandb").glob("offline-run-*"))
    assert len(folders) == 2
    spec = yaml.safe_load((run_dir / "spec.yaml").read_text())
    seen = set()
    for folder in folders:
        records = _wandb_records(next(folder.glob("run-*.wandb")))
        (run,) = [r["run"] for r in records if r["type"] == "run"]
        config = run["config"]["update"]
        seed = config["mispec"]["seed"]
        seen.add(seed)
        assert run["display_name"] == f"toy/seed_{seed}" and run["project"] == "tiny"
        assert run["run_group"] == "tiny/toy"
        assert config["model"] == spec["models"]["toy"]  # the train block among it
        expected = _expected(run_dir, seed)
        got: dict[str, list[tuple[int, float]]] = {}
        for r in records:
            if r["type"] != "history":
                continue
            step = r["history"]["step"]["num"]
            for key, value in r["history"]["item"].items():
                if not key.startswith("_"):
                    got.setdefault(key, []).append((step, float(value)))
        assert got == expected
        files = folder / "files"
        assert (files / "spec.yaml").read_text() == (run_dir / "spec.yaml").read_text()
        assert (
            json.loads((files / "provenance.json").read_text())["run_id"]
            == (config["mispec"]["run_id"])
        )
    assert seen == {0, 1}


def test_bad_input_exits_2_and_writes_nothing(two_seed_run, tmp_path, capsys):
    project, run_dir = two_seed_run
    out = tmp_path / "out"
    assert main(["export", str(tmp_path / "no-such-run"), "--to", "mlflow", "--dir", str(out)]) == 2
    assert "no results at" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["export", str(run_dir), "--to", "neptune", "--dir", str(out)])
    assert exit_.value.code == 2
    assert "invalid choice: 'neptune'" in capsys.readouterr().err
    assert (
        main(["export", str(run_dir), "--to", "wandb", "--max-values", "0", "--dir", str(out)]) == 2
    )
    assert "--max-values must be at least 1" in capsys.readouterr().err
    assert not out.exists()
