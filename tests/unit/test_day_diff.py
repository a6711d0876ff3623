"""``diff``'s relative change stays meaningful when a value moves from 0, and a renamed model
is compared under its new name: results trees built by hand, numbers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from mispec.diffing.compare import Diff, PlanDiff, relative_change, results_diff
from mispec.diffing.render import RENDERERS


def _tree(model: str, loss: list[float]) -> xr.DataTree:
    ds = xr.Dataset(
        {"loss": (("seed", "step"), np.array([loss])), "width": ("seed", [3.0])},
        coords={"seed": [0], "step": list(range(len(loss)))},
    )
    return xr.DataTree.from_dict({model: ds})


OLD = [0.0, 2.0, 1e-14, 5.0]
NEW = [0.37, 2.2, 3e-14, 5.0]  # from 0; +10%; noise far below atol; same


def test_relative_change_is_symmetric_and_bounded():
    old = np.array([0.0, 2.0, 1.0, 0.0, 4.0, np.nan])
    new = np.array([0.37, 2.2, -1.0, 0.0, 0.0, 1.0])
    expected = [1.0, 0.2 / 2.2, 2.0, 0.0, 1.0, 1.0]
    np.testing.assert_allclose(relative_change(old, new), expected)
    np.testing.assert_allclose(relative_change(new, old), expected)  # symmetric


def test_a_value_moving_from_zero_gives_a_bounded_max_rel():
    (loss, width) = results_diff(_tree("toy", OLD), _tree("toy", NEW), atol=1e-6, rtol=1e-5)
    assert (loss.variable, loss.change, width.change) == ("loss", "changed", "same")
    assert loss.n_changed == 2 and loss.n_compared == 4
    assert loss.n_from_zero == 1
    assert loss.max_abs == pytest.approx(0.37)
    # the largest among the changed values: 0 → 0.37 is 100%; the old definition
    # (|Δ| / max(|old|, 1e-12)) gave 3.7e11 here; the noise at 1e-14 (67%) is within atol
    assert loss.max_rel == pytest.approx(1.0)
    assert [(w["step"], w["old"], w["new"]) for w in loss.where] == [(0, 0, 0.37), (1, 2, 2.2)]
    d = Diff("a", "b", [], PlanDiff(), [loss, width], "", 1e-6, 1e-5)
    text = RENDERERS["text"](d)
    assert "toy/loss: changed — 2/4 values beyond tolerance, max |Δ| 0.37, max rel 100% " in text
    assert "(1 from 0)" in text
    same = results_diff(_tree("toy", OLD), _tree("toy", OLD), atol=1e-6, rtol=1e-5)
    assert [(v.change, v.max_rel) for v in same] == [("same", 0.0), ("same", 0.0)]


def test_a_renamed_model_is_compared_under_its_new_name():
    renames = {"toy": "toy2"}
    out = results_diff(_tree("toy", OLD), _tree("toy2", NEW), atol=1e-6, rtol=1e-5, renames=renames)
    assert [(v.model, v.variable, v.change, v.renamed_from) for v in out] == [
        ("toy2", "loss", "changed", "toy"),
        ("toy2", "width", "same", "toy"),
    ]
    assert out[0].n_changed == 2
    unmatched = results_diff(_tree("toy", OLD), _tree("toy2", NEW), atol=1e-6, rtol=1e-5)
    assert [(v.model, v.change) for v in unmatched] == [
        ("toy", "removed"),
        ("toy", "removed"),
        ("toy2", "added"),
        ("toy2", "added"),
    ]
    d = Diff("a", "b", [], PlanDiff(), out, "", 1e-6, 1e-5, renames)
    assert "toy2/loss (renamed from toy): changed" in RENDERERS["text"](d)
    assert "| `toy2/loss` (renamed from toy) | changed | 2/4 |" in RENDERERS["markdown"](d)
