"""Pictures that tell the truth: per-seed values per seed, head maps never averaged over
seeds, labelled axes, snapped steps said out loud, coordinates that carry their meaning."""

from __future__ import annotations

import matplotlib  # noqa: F401  (the plot extra, installed by `make venv`)
import numpy as np
import xarray as xr

from mispec.plot.figures import metric_figure, snap_steps
from mispec.plot.report import caption, headline


def _tree(**variables):
    return xr.DataTree(children={"toy": xr.DataTree(xr.Dataset(variables))})


def _heads(rng):
    """(seed, step, layer, head): seed 0's strongest head at the end is L1H1, seed 1's L1H2."""
    values = rng.uniform(0, 0.1, size=(2, 3, 2, 4))
    values[0, -1, 1, 1] = 0.9
    values[1, -1, 1, 2] = 0.8
    return xr.DataArray(
        values,
        dims=("seed", "step", "layer", "head"),
        coords={"seed": [0, 1], "step": [0, 10, 100]},
        attrs={"units": "fraction of attention", "description": "Induction score."},
    )


def test_head_heatmaps_are_per_seed_never_the_seed_mean():
    var = _heads(np.random.default_rng(0))
    fig = metric_figure(_tree(induction=var), "induction", heatmap_steps=[0, 100])
    maps = [ax for ax in fig.axes if ax.images and ax.get_title().startswith("seed")]
    assert sorted(ax.get_title() for ax in maps) == [
        "seed 0, step 0",
        "seed 0, step 100",
        "seed 1, step 0",
        "seed 1, step 100",
    ]
    for ax in maps:
        seed, step = (int(w.strip(",")) for w in ax.get_title().split()[1::2])
        shown = np.asarray(ax.images[0].get_array())
        np.testing.assert_array_equal(shown, var.sel(seed=seed, step=step).values)
    last = {ax.get_title(): np.asarray(ax.images[0].get_array()) for ax in maps}
    assert np.unravel_index(last["seed 0, step 100"].argmax(), (2, 4)) == (1, 1)
    assert np.unravel_index(last["seed 1, step 100"].argmax(), (2, 4)) == (1, 2)


def test_a_value_per_seed_is_a_labelled_point_per_seed():
    var = xr.DataArray(
        [534.0, np.nan, 624.0], dims=("seed",), coords={"seed": [0, 1, 2]}, attrs={"units": "step"}
    )
    fig = metric_figure(_tree(transition=var), "transition")
    (ax,) = fig.axes
    points = {int(line.get_xdata()[0]): float(line.get_ydata()[0]) for line in ax.lines}
    assert points == {0: 534.0, 2: 624.0}  # each seed's own value; the NaN seed has no point
    texts = [t.get_text() for t in ax.texts]
    assert "534" in texts and "624" in texts and "no value (NaN)" in texts
    assert ax.get_ylabel() == "transition [step]"
    assert ax.get_xlabel() == "training seed [seed]"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["seed 0", "seed 1", "seed 2"]
    lo, hi = ax.get_ylim()
    assert lo < 534 < 624 < hi and hi - lo < 200  # the axis spans the values, not ±0.4


def test_series_axes_are_labelled_with_units():
    var = _heads(np.random.default_rng(1))
    fig = metric_figure(_tree(induction=var), "induction", heatmap=False)
    (ax,) = fig.axes
    assert ax.get_ylabel() == "induction [fraction of attention]"
    assert ax.get_xlabel().startswith("training step + 1 [optimizer updates]")


def test_requested_steps_that_are_no_checkpoint_are_named():
    steps, notes = snap_steps([100, 500, 1000], [0, 95, 534, 1000])
    assert steps == [95, 534, 1000]
    assert notes == [
        "step 100 is not a checkpoint; showing the nearest, step 95",
        "step 500 is not a checkpoint; showing the nearest, step 534",
    ]
    notes = []
    metric_figure(
        _tree(induction=_heads(np.random.default_rng(2))),
        "induction",
        heatmap_steps=[0, 99],
        notes=notes,
    )
    assert notes == ["induction (toy): step 99 is not a checkpoint; showing the nearest, step 100"]


def test_headline_is_per_seed_with_the_spread():
    var = _heads(np.random.default_rng(3))
    assert headline(var) == (
        "seed 0: max 0.9 at layer 1, head 1; seed 1: max 0.8 at layer 1, head 2 (spread 0.1)"
    )
    per_seed = xr.DataArray([534.0, np.nan], dims=("seed",), coords={"seed": [0, 1]})
    assert headline(per_seed) == "seed 0: 534; seed 1: no value"
    assert caption("induction", var) == "induction: Induction score. [fraction of attention]"


def test_every_result_coordinate_has_a_long_name_and_units(toy_spec):
    import mispec

    result = mispec.run(toy_spec, progress=False)
    ds = result.open()["toy"].to_dataset()
    assert set(ds.coords) >= {"seed", "step", "layer", "head", "pos"}
    for name, coord in ds.coords.items():
        assert coord.attrs.get("long_name") and coord.attrs.get("units"), name
    assert ds.step.attrs == {"long_name": "training step", "units": "optimizer updates"}


def test_head_maps_without_steps_say_their_numbers_and_their_nans():
    values = np.full((2, 2, 2), np.nan)
    values[0, 1, 0] = 34.0  # seed 0: one head has a transition; seed 1: none
    var = xr.DataArray(
        values, dims=("seed", "layer", "head"), coords={"seed": [0, 1]}, attrs={"units": "step"}
    )
    fig = metric_figure(_tree(transition=var), "transition")
    maps = {ax.get_title(): ax for ax in fig.axes if ax.images}
    assert set(maps) == {"seed 0", "seed 1"}
    seed0 = sorted(t.get_text() for t in maps["seed 0"].texts)
    assert seed0 == ["34", "NaN", "NaN", "NaN"]
    assert [t.get_text() for t in maps["seed 1"].texts] == ["no value (all NaN)"]
