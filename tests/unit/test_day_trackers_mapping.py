"""How a run's results map onto tracker runs (issue 31 §5), on a results tree built here: one
tracker run per (model, seed, point of a dim outside the metric vocabulary — a sweep's), keys
labelled by dim, step-less values as summaries, NaN not logged, what cannot be a scalar named;
and a missing tracker library is exit 2 naming the extra, with nothing written."""

from __future__ import annotations

import sys

import numpy as np
import xarray as xr

from mispec.cli.main import main
from mispec.results.tracker_runs import key_of, tracker_runs
from mispec.results.trackers import flat_params


def _tree() -> xr.DataTree:
    seeds, steps, lrs, layers = [0, 1], [0, 10, 100], [0.001, 0.01], [0, 1]
    rng = np.random.default_rng(0)
    loss = rng.normal(size=(2, 3, 2))
    loss[1, 2, 0] = np.nan  # seed 1 lacks step 100 at lr 0.001: padding
    ds = xr.Dataset(
        {
            "loss": (("seed", "step", "lr"), loss),
            "score": (("seed", "step", "lr", "layer"), rng.normal(size=(2, 3, 2, 2))),
            "crossing": (("seed", "lr", "layer"), np.array([[[5.0, np.nan]] * 2] * 2)),
            "big": (("seed", "step", "lr", "pos"), np.zeros((2, 3, 2, 9))),
            "label": (("seed", "lr"), np.array([["a", "b"], ["c", "d"]])),
        },
        coords={
            "seed": seeds,
            "step": steps,
            "lr": lrs,
            "layer": layers,
            "tokens_seen": ("step", [0, 640, 6400]),
        },
        attrs={"source": "train"},
    )
    return xr.DataTree.from_dict({"/": xr.Dataset(attrs={"study": "sw"}), "/m": ds})


def test_one_run_per_seed_and_sweep_point_with_labelled_keys(tmp_path):
    tree = _tree()
    export = tracker_runs(tmp_path, tree, max_values=8)
    ds = tree["m"].to_dataset()
    assert export.study == "sw"
    assert sorted(r.name for r in export.runs) == [
        "m/seed_0/lr_0.001",
        "m/seed_0/lr_0.01",
        "m/seed_1/lr_0.001",
        "m/seed_1/lr_0.01",
    ]
    assert sorted(export.skipped) == [
        "m/big (9 values per step > --max-values 8)",
        "m/label (<U1 values are not scalars)",
    ]
    for run in export.runs:
        seed, lr = run.point["seed"], run.point["lr"]
        assert run.group == "sw/m" and run.point == {"model": "m", "seed": seed, "lr": lr}
        assert run.config["mispec"]["lr"] == lr and run.config["mispec"]["source"] == "train"
        at = ds.sel(seed=seed, lr=lr)
        for i, step in enumerate([0, 10, 100]):
            want = {"tokens_seen": float(at.tokens_seen[i])}
            if not np.isnan(at.loss[i]):
                want["loss"] = float(at.loss[i])
            for layer in (0, 1):
                want[f"score/layer_{layer}"] = float(at.score[i, layer])
            assert run.scalars[step] == want
        assert run.summary == {"crossing/layer_0": 5.0}  # layer 1's NaN is not logged
    padded = next(r for r in export.runs if r.name == "m/seed_1/lr_0.001")
    assert "loss" not in padded.scalars[100] and "loss" in padded.scalars[10]


def test_keys_and_params_are_what_mlflow_accepts():
    assert key_of("induction", {"layer": np.int64(1), "head": 3}) == "induction/layer_1/head_3"
    assert key_of("x", {"component": "attn:0=q"}) == "x/component_attn_0_q"
    assert flat_params({"model": {"train": {"steps": 40, "arch": {}}, "a=b": [1, 2]}}) == {
        "model.train.steps": "40",
        "model.train.arch": "{}",
        "model.a_b": "[1, 2]",
    }


def test_a_missing_tracker_library_names_the_extra_and_writes_nothing(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    out = tmp_path / "mlruns"
    assert main(["export", str(tmp_path / "run"), "--to", "mlflow", "--dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "export --to mlflow needs the optional 'trackers' extra" in err
    assert "pip install 'mispec[trackers]'" in err and "Traceback" not in err
    assert not out.exists()
    import mispec
    from mispec.results.trackers import export_run

    assert mispec.export_run is export_run  # the Python twin of `mispec export`
