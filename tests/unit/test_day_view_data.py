"""What ``mispec view`` draws, from a results tree built here: each value the page gets is
checked against the tree it came from; bad input exits 2 and writes nothing."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import xarray as xr

from mispec.cli.main import main
from mispec.plot.view import view_page
from mispec.plot.view_data import view_data

STEPS = [0, 10, 100]


def _tree() -> xr.DataTree:
    rng = np.random.default_rng(0)
    heads = xr.DataArray(
        rng.random((2, 3, 2, 4)),
        dims=("seed", "step", "layer", "head"),
        coords={"seed": [0, 1], "step": STEPS, "layer": [0, 1], "head": [0, 1, 2, 3]},
        attrs={"metric_fn": "induction_score", "units": "fraction"},
    )
    pat = rng.random((2, 3, 2, 4, 3, 5, 5))
    pat[0, 1, 0, 0, 2, 4, :] = np.nan  # a padded query row
    patterns = xr.DataArray(
        pat,
        dims=("seed", "step", "layer", "head", "batch", "pos", "k_pos"),
        coords={"seed": [0, 1], "step": STEPS},
        attrs={"metric_fn": "attention_patterns"},
    )
    pca = xr.DataArray(
        rng.normal(size=(2, 3, 3)),
        dims=("seed", "step", "pc"),
        coords={"seed": [0, 1], "step": STEPS, "pc": [1, 2, 3]},
        attrs={"metric_fn": "pca_over_steps"},
    )
    ratio = xr.DataArray([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1]], dims=("seed", "pc"))
    ds = xr.Dataset(
        {
            "induction": heads,
            "patterns": patterns,
            "pca": pca,
            "pca__explained_variance_ratio": ratio,
            "transition": xr.DataArray([5.0, 7.0], dims=("seed",), coords={"seed": [0, 1]}),
        }
    )
    loss = xr.DataArray([3.0, 2.0, np.nan], dims=("step",), coords={"step": STEPS})
    seedless = xr.Dataset({"loss": loss.assign_attrs(metric_fn="loss")})
    return xr.DataTree.from_dict({"/toy": ds, "/pre": seedless}, name="root")


def test_curves_maps_patterns_and_trajectories_carry_the_results_values():
    tree = _tree()
    data = view_data(tree, n_prompts=2)
    toy, pre = data["models"]
    heads = tree["toy"]["induction"]
    curves = {c["name"]: c for c in toy["curves"]}
    assert sorted(curves) == ["induction", "pca PC1", "pca PC2", "pca PC3"]
    assert curves["induction"]["title"] == "induction (max over layer, head)"
    np.testing.assert_allclose(
        curves["induction"]["values"], heads.max(["layer", "head"]).values, rtol=1e-4
    )
    (hmap,) = toy["maps"]
    np.testing.assert_allclose(hmap["values"], heads.values, rtol=1e-4)
    assert (hmap["layers"], hmap["heads"], hmap["steps"]) == ([0, 1], [0, 1, 2, 3], STEPS)
    (traj,) = toy["trajectories"]
    want = tree["toy"]["pca"].sel(pc=[1, 2]).values
    np.testing.assert_allclose(traj["points"], want, rtol=1e-4)
    assert traj["explained_ratio"] == [[0.7, 0.2, 0.1], [0.6, 0.3, 0.1]]
    assert toy["skipped"] == ["transition: no step dim"]
    # a model without seeds: one pseudo-seed; NaN is null (no point drawn)
    assert pre["curves"][0]["seeds"] == ["-"] and pre["curves"][0]["values"] == [[3.0, 2.0, None]]


def test_patterns_are_bytes_of_the_first_prompts_with_missing_rows_marked():
    tree = _tree()
    (p,) = view_data(tree, n_prompts=2)["models"][0]["patterns"]
    assert p["shape"] == [2, 3, 2, 4, 2, 5, 5]  # two of the three prompts
    got = np.frombuffer(base64.b64decode(p["bytes"]), np.uint8).reshape(p["shape"])
    want = tree["toy"]["patterns"].isel(batch=slice(0, 2)).values
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite] / 255, want[finite], atol=0.5 / 255 + 1e-9)
    bits = np.unpackbits(np.frombuffer(base64.b64decode(p["missing"]), np.uint8))
    assert np.array_equal(bits[: want.size].astype(bool), ~finite.ravel())
    # the padded row is in prompt 2: left out with n_prompts=2, marked with 3
    (p3,) = view_data(tree, n_prompts=3)["models"][0]["patterns"]
    bits3 = np.unpackbits(np.frombuffer(base64.b64decode(p3["missing"]), np.uint8))
    assert bits[: want.size].sum() == 0 and bits3.sum() == 5


def test_page_inlines_the_data_so_that_no_string_closes_its_script():
    data = {"study": "x", "models": [], "note": "</script><script>alert(1)"}
    page = view_page(data, title="x</title>")
    blob = page.split('<script id="view-data" type="application/json">')[1].split("</script>")[0]
    assert json.loads(blob) == data
    assert "<title>mispec view — x&lt;/title&gt;</title>" in page


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--prompts", "0"], "--prompts must be >= 1, got 0"),
        (["-o", "view.png"], "a view is written as .html"),
        ([], "is not a mispec run folder"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, argv, message):
    run = tmp_path / "runs" / "none"
    run.mkdir(parents=True)
    assert main(["view", str(run), "--no-serve", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert list(tmp_path.rglob("*.htm*")) == []
