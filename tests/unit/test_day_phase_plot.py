"""Phase diagrams draw the results: a value per sweep point over two sweep dims is a heatmap per
seed whose cells are the values and whose ticks are the swept values, NaN cells hatched and
named; over one sweep dim, a line per seed with its NaN points marked. The results tree is built
by hand the way ``mispec.results.assemble_sweeps`` labels a sweep (coordinate attrs with
``key_path``)."""

from __future__ import annotations

import matplotlib  # noqa: F401  (the plot extra, installed by `make venv`)
import numpy as np
import xarray as xr

from mispec.coords import coord_attrs
from mispec.plot.figures import metric_figure
from mispec.plot.phase import NAN_HATCH, is_phase_value
from mispec.plot.report import headline

WD = [0.0, 0.3, 1.0]
FRAC = [0.3, 0.5, 0.7]


def _sweep_coord(name: str, values: list[float], path: str) -> xr.DataArray:
    return xr.DataArray(
        values, dims=(name,), attrs={**coord_attrs(name), "key_path": f"train.{path}"}
    )


def _grokked() -> xr.DataArray:
    """(weight_decay, train_frac, seed): NaN (never) without weight decay and, for seed 1,
    at the smallest fraction with weight decay 0.3."""
    values = np.array(
        [
            [[np.nan, np.nan], [np.nan, np.nan], [np.nan, np.nan]],
            [[1450.0, np.nan], [900.0, 950.0], [600.0, 650.0]],
            [[800.0, 850.0], [400.0, 450.0], [250.0, 300.0]],
        ]
    )
    return xr.DataArray(
        values,
        dims=("weight_decay", "train_frac", "seed"),
        coords={
            "weight_decay": _sweep_coord("weight_decay", WD, "optimizer.weight_decay"),
            "train_frac": _sweep_coord("train_frac", FRAC, "task_args.train_frac"),
            "seed": [0, 1],
        },
        attrs={"units": "step", "metric_fn": "crossing_step"},
        name="grokked",
    )


def _tree(var: xr.DataArray) -> xr.DataTree:
    return xr.DataTree(children={"grid": xr.DataTree(xr.Dataset({var.name: var}))})


def test_two_sweep_dims_draw_a_heatmap_per_seed_equal_to_the_results():
    var = _grokked()
    fig = metric_figure(_tree(var), "grokked")
    maps = {ax.get_title(): ax for ax in fig.axes if ax.images}
    assert sorted(maps) == ["seed 0", "seed 1"]
    for seed in (0, 1):
        ax = maps[f"seed {seed}"]
        drawn = np.ma.filled(np.ma.masked_invalid(ax.images[0].get_array()), np.nan)
        expected = var.sel(seed=seed).transpose("weight_decay", "train_frac").values
        np.testing.assert_array_equal(drawn, expected)  # rows weight decay, columns fraction
        assert ax.get_ylabel() == "weight decay [coefficient]"
        assert ax.get_xlabel() == "training fraction [fraction of the task's examples]"
        assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "0.3", "1"]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["0.3", "0.5", "0.7"]
        hatched = {
            (round(p.get_y() + 0.5), round(p.get_x() + 0.5))
            for p in ax.patches
            if p.get_hatch() == NAN_HATCH
        }
        assert hatched == {tuple(map(int, ij)) for ij in np.argwhere(np.isnan(expected))}
        never = {
            (round(t.get_position()[1]), round(t.get_position()[0]))
            for t in ax.texts
            if t.get_text() == "never"
        }
        assert never == hatched
        numbers = {t.get_text() for t in ax.texts} - {"never"}
        assert numbers == {f"{v:.4g}" for v in expected[np.isfinite(expected)]}
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert legend == ["NaN: never happened"]
    colorbar = [ax for ax in fig.axes if ax.get_ylabel() == "grokked [step]"]
    assert len(colorbar) == 1


def test_one_sweep_dim_draws_a_line_per_seed_with_nan_points_marked():
    var = _grokked().sel(weight_decay=0.3, drop=True)  # (train_frac, seed)
    assert is_phase_value(var)
    fig = metric_figure(_tree(var), "grokked")
    (ax,) = fig.axes
    lines = {line.get_label(): line for line in ax.lines}
    for seed in (0, 1):
        line = lines[f"seed {seed}"]
        np.testing.assert_array_equal(line.get_xdata(), FRAC)
        np.testing.assert_array_equal(line.get_ydata(), var.sel(seed=seed).values)
    (cross,) = [line for label, line in lines.items() if "never happened" in label]
    assert cross.get_label() == "seed 1: NaN: never happened"
    np.testing.assert_array_equal(cross.get_xdata(), [0.3])  # seed 1 at fraction 0.3
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.3", "0.5", "0.7"]
    assert ax.get_xlabel() == "training fraction [fraction of the task's examples]"
    assert ax.get_ylabel() == "grokked [step]"


def test_a_per_step_value_on_a_swept_model_is_no_phase_diagram():
    var = _grokked().expand_dims(step=[0, 50])
    assert not is_phase_value(var)
    plain = xr.DataArray(np.zeros((3, 3, 2)), dims=("layer", "head", "seed"))
    assert not is_phase_value(plain)  # no coordinate with a key_path: no sweep dim


def test_headline_of_a_per_point_value_counts_the_points_with_a_value():
    text = headline(_grokked())
    assert text == ("seed 0: 6 of 9 points, 250–1450; seed 1: 5 of 9 points, 300–950")
