"""The run's headline lines never pool a sweep's points: a value per seed is told per point,
and the strongest head names the point it is in (induction_depth's numbers)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from mispec.results.summary import summarize


def _tree() -> xr.DataTree:
    depth = {"n_layers": [1, 2, 3], "seed": [0, 1]}
    transition = xr.DataArray(
        [[390.0, 390.0], [534.0, 624.0], [534.0, np.nan]],
        dims=("n_layers", "seed"),
        coords=depth,
        attrs={"metric_fn": "transition_step"},
    )
    crossing = transition.copy(data=[[np.nan, 12.0], [np.nan, np.nan], [3.0, 4.0]])
    crossing.attrs = {"metric_fn": "crossing_step"}
    # induction per head at the last step: seed 0's strongest head is in the 3-layer model,
    # seed 1's in the 2-layer one
    scores = np.zeros((3, 2, 1, 3, 4))
    scores[0, :, 0, 0, 1] = 0.08  # 1 layer: weak
    scores[1, 0, 0, 1, 2], scores[1, 1, 0, 1, 0] = 0.70, 0.73
    scores[2, 0, 0, 1, 3], scores[2, 1, 0, 2, 1] = 0.80, 0.71
    induction = xr.DataArray(
        scores,
        dims=("n_layers", "seed", "step", "layer", "head"),
        coords={**depth, "step": [1000], "layer": [0, 1, 2], "head": [0, 1, 2, 3]},
        attrs={"metric_fn": "induction_score"},
    )
    ds = xr.Dataset({"induction": induction, "transition": transition, "grokked": crossing})
    node = xr.DataTree(ds)
    node.attrs["sweep_dims"] = ["n_layers"]
    return xr.DataTree(children={"depth": node})


def test_each_sweep_point_is_told_apart():
    assert summarize(_tree()) == [
        "depth: strongest induction at the last step: seed 0 n_layers=3 layer 1 head 3 = 0.800, "
        "seed 1 n_layers=2 layer 1 head 0 = 0.730",
        "depth seed 0: transition: n_layers=1: 390, n_layers=2: 534, n_layers=3: 534",
        "depth seed 1: transition: n_layers=1: 390, n_layers=2: 624, n_layers=3: none",
        "depth seed 0: grokked: n_layers=1: never, n_layers=2: never, n_layers=3: 3",
        "depth seed 1: grokked: n_layers=1: 12, n_layers=2: never, n_layers=3: 4",
    ]


def test_without_a_sweep_a_crossing_that_never_happened_says_so():
    tree = _tree()
    ds = tree["depth"].to_dataset().sel(n_layers=2, drop=True)[["grokked"]]
    assert summarize(xr.DataTree(children={"toy": xr.DataTree(ds)})) == [
        "toy seed 0: grokked = never (not crossed)",
        "toy seed 1: grokked = never (not crossed)",
    ]
