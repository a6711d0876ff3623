"""``sweep:`` on a trained model: its points are the hand-written entries (the same training,
the same results bit for bit, cached across specs), its results lie on labelled sweep dims,
a grown sweep trains only its new points, and lanes give the serial results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import mispec

HEAD = """\
mispec: 1
name: {name}
models:
"""
ENTRY = """\
  {name}:
    train:
      task: repeated_tokens
      task_args: {{vocab: 16, half_len: 6}}
      arch: {{n_layers: {layers}, n_heads: 2, d_model: 16, d_head: 8, attn_only: true}}
      steps: 20
      batch_size: 16
      optimizer: {{lr: {lr}}}
    seeds: [0]
    checkpoints: {{steps: [0, 10, 20]}}
"""
TAIL = """\
prompts:
  rep:
    generator: repeated_tokens
    args: {n: 8, vocab: 16, half_len: 6}
    seed: 1
metrics:
  loss: {fn: loss, prompts: rep}
  induction: {fn: induction_score, prompts: rep}
  transition: {fn: transition_step, inputs: {series: induction}}
"""
LRS, LAYERS = [0.001, 0.003], [1, 2]


def sweep_spec(lrs: list[float]) -> str:
    entry = ENTRY.format(name="toy", layers=1, lr=0.001)
    entry += f"    sweep:\n      optimizer.lr: {lrs}\n      arch.n_layers: {LAYERS}\n"
    return HEAD.format(name="sweep") + entry + TAIL


def hand_spec() -> str:
    entries = "".join(
        ENTRY.format(name=f"m{i}{j}", layers=n, lr=lr)
        for i, lr in enumerate(LRS)
        for j, n in enumerate(LAYERS)
    )
    return HEAD.format(name="hand") + entries + TAIL


def _project(root: Path, name: str, text: str) -> Path:
    (root / name / ".mispec").mkdir(parents=True)
    spec = root / name / "spec.yaml"
    spec.write_text(text)
    return spec


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweeps")
    swept = mispec.run(_project(root, "a", sweep_spec(LRS)), progress=False)
    hand = mispec.run(_project(root, "b", hand_spec()), progress=False)
    return root, swept, hand


def test_a_2x2_sweep_equals_four_hand_written_entries_bit_for_bit(runs):
    _, swept, hand = runs
    ds = swept.open()["toy"].to_dataset()
    assert dict(ds.sizes)["lr"] == 2 and dict(ds.sizes)["n_layers"] == 2
    assert swept.counters["training_steps"] == hand.counters["training_steps"] == 80
    tree = hand.open()
    for i, lr in enumerate(LRS):
        for j, n in enumerate(LAYERS):
            one = tree[f"m{i}{j}"].to_dataset()
            point = ds.sel(lr=lr, n_layers=n).isel(layer=slice(0, n))
            for var in ("loss", "induction", "transition"):
                np.testing.assert_array_equal(point[var].values, one[var].values)
                assert point[var].dtype == one[var].dtype
    # a 1-layer point has no layer 1: NaN there (the grid's layer axis is the 2-layer one's)
    assert np.isnan(ds.induction.sel(n_layers=1, layer=1)).all()
    assert not np.isnan(ds.induction.sel(n_layers=2)).any()


def test_points_are_cached_across_specs(runs):
    root, _, _ = runs
    # the hand-written spec in the sweep's project: every point is already there
    again = mispec.run(_project(root, "a2", hand_spec()), progress=False)
    assert again.counters["training_steps"] == 80  # a fresh store trains
    same = root / "a" / "hand.yaml"
    same.write_text(hand_spec())
    cached = mispec.run(same, progress=False)
    assert cached.counters["training_steps"] == 0
    assert cached.counters["forward_passes"] == 0
    xr.testing.assert_identical(cached.open()["m10"].to_dataset(), again.open()["m10"].to_dataset())


def test_sweep_dims_carry_labels_and_units(runs):
    _, swept, _ = runs
    ds = swept.open()["toy"].to_dataset()
    assert list(ds.lr.values) == LRS and list(ds.n_layers.values) == LAYERS
    assert ds.lr.attrs == {
        "long_name": "learning rate",
        "units": "per update",
        "key_path": "train.optimizer.lr",
    }
    assert ds.n_layers.attrs["units"] == "blocks"
    assert ds.attrs["sweep_dims"] == ["lr", "n_layers"] and ds.attrs["points"] == 4
    assert ds.induction.dims == ("lr", "n_layers", "seed", "step", "layer", "head")
    assert ds.transition.dims == ("lr", "n_layers", "seed", "layer", "head")


def test_adding_a_value_trains_and_measures_only_the_new_points(runs):
    root, swept, _ = runs
    old = swept.open()["toy"].to_dataset().load()  # the run folder is the spec name's: read first
    grown = root / "a" / "grown.yaml"
    grown.write_text(sweep_spec([*LRS, 0.01]))
    planned = mispec.plan(grown)
    (sweep,) = planned.sweeps()
    assert (sweep.points, sweep.cached, sweep.training_points, sweep.training_steps) == (
        6,
        4,
        2,
        40,
    )
    assert sweep.dims == {"lr": 3, "n_layers": 2}
    assert "toy: 6 points (3 lr x 2 n_layers), 4 cached, 2 to train (~40 steps in all)" in str(
        planned._repr_markdown_()
    )
    changes = mispec.diff(str(root / "a" / "spec.yaml"), str(grown), results=False).spec
    assert [(c.path, c.change) for c in changes] == [
        ("models.toy.points.lr=0.01, n_layers=1", "added"),
        ("models.toy.points.lr=0.01, n_layers=2", "added"),
    ]
    plan = planned.status
    assert plan.training_steps_todo == {
        "toy.lr_0.01.n_layers_1/s0": 20,
        "toy.lr_0.01.n_layers_2/s0": 20,
    }
    more = mispec.run(grown, progress=False)
    assert more.counters["training_steps"] == 40  # two new points x 20 steps
    assert more.counters["forward_passes"] == 6  # two new points x 3 checkpoints
    new = more.open()["toy"].to_dataset()
    xr.testing.assert_identical(old.loss, new.loss.sel(lr=LRS))
    # removing it again recomputes nothing
    less = mispec.run(root / "a" / "spec.yaml", progress=False)
    assert less.counters["training_steps"] == 0 and less.counters["forward_passes"] == 0
    xr.testing.assert_identical(old, less.open()["toy"].to_dataset())


def test_lanes_run_points_side_by_side_with_identical_results(runs, tmp_path):
    _, swept, _ = runs
    profile = tmp_path / "lanes.yaml"
    profile.write_text(
        "name: lanes\nkind: local\ntorch_threads: 1\nprocesses: 2\nparallel_min_steps: 1\n"
    )
    spec = _project(tmp_path, "c", sweep_spec(LRS))
    laned = mispec.run(spec, executor=str(profile), progress=False)
    assert laned.counters["training_steps"] == 80
    xr.testing.assert_identical(laned.open()["toy"].to_dataset(), swept.open()["toy"].to_dataset())


def test_points_of_different_lengths_align_by_step_and_say_what_is_measured(tmp_path):
    text = sweep_spec(LRS).replace(
        "arch.n_layers: [1, 2]", "steps: [10, 20]\n      zip: [[optimizer.lr, steps]]"
    )
    text = text.replace("checkpoints: {steps: [0, 10, 20]}", "checkpoints: {every: 10}")
    result = mispec.run(_project(tmp_path, "z", text), progress=False)
    assert result.counters["training_steps"] == 30
    ds = result.open()["toy"].to_dataset()
    assert ds.loss.dims == ("lr", "seed", "step") and list(ds.step.values) == [0, 10, 20]
    assert list(ds.steps.values) == [10, 20] and ds.steps.dims == ("lr",)  # zipped: a coordinate
    mask = ds.checkpointed.sel(seed=0).values
    np.testing.assert_array_equal(mask, [[True, True, False], [True, True, True]])
    assert np.isnan(ds.loss.sel(lr=0.001, step=20)).all()
    assert np.isfinite(ds.loss.where(ds.checkpointed, 0.0)).all()
