"""``mispec.align_steps``: the models of a real run, whose checkpoint steps differ, on one
``step`` axis — the common steps (no padding), or every step with an explicit mask — each
value the one of its model's own node."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

import mispec
from mispec.errors import ResultsError
from tests.conftest import TOY_SPEC

TWO_MODELS = TOY_SPEC.replace(
    "    checkpoints: {steps: [0, 20, 40]}\n",
    "    checkpoints: {steps: [0, 20, 40]}\n"
    "  other:\n"
    "    train:\n"
    "      task: repeated_tokens\n"
    "      task_args: {vocab: 16, half_len: 6}\n"
    "      arch: {n_layers: 2, n_heads: 2, d_model: 16, d_head: 8, attn_only: true}\n"
    "      steps: 40\n"
    "      batch_size: 16\n"
    "    seeds: [0]\n"
    "    checkpoints: {steps: [0, 10, 30, 40]}\n",
)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("align")
    (root / "spec.yaml").write_text(TWO_MODELS)
    run = mispec.run(root / "spec.yaml", store=root / ".mispec", progress=False)
    return mispec.open_results(run.run_dir)


def test_inner_join_keeps_the_common_steps_with_the_models_own_values(tree):
    toy, other = tree["toy"].to_dataset(), tree["other"].to_dataset()
    assert toy.step.values.tolist() == [0, 20, 40]
    assert other.step.values.tolist() == [0, 10, 30, 40]
    with warnings.catch_warnings():  # the friction: concat pads with NaN (and may warn)
        warnings.simplefilter("ignore")
        naive = xr.concat([toy.loss, other.loss], dim="model", join="outer")
    assert int(naive.isnull().sum()) == 3  # 20 for other; 10 and 30 for toy

    ds = mispec.align_steps(tree)
    assert ds.model.values.tolist() == ["other", "toy"]  # the tree's order
    assert ds.step.values.tolist() == [0, 40]
    assert set(ds.data_vars) == {"loss", "per_token_loss", "induction", "icl", "transition"}
    for name, own in (("toy", toy), ("other", other)):
        for var in ("loss", "induction", "icl", "per_token_loss"):
            xr.testing.assert_identical(
                ds[var].sel(model=name, drop=True).drop_attrs(),
                own[var].sel(step=[0, 40]).drop_attrs(),
            )
        xr.testing.assert_identical(  # no step dim: as it is
            ds.transition.sel(model=name, drop=True).drop_attrs(), own.transition.drop_attrs()
        )
    assert not ds.loss.isnull().any()
    assert "has_step" not in ds


def test_outer_join_keeps_every_step_and_says_which_model_has_it(tree):
    ds = mispec.align_steps(tree, ["loss", "induction"], join="outer")
    assert ds.step.values.tolist() == [0, 10, 20, 30, 40]
    assert ds.has_step.dims == ("model", "step")
    assert ds.model.values.tolist() == ["other", "toy"]
    assert ds.has_step.values.tolist() == [
        [True, True, False, True, True],  # other: 0, 10, 30, 40
        [True, False, True, False, True],  # toy: 0, 20, 40
    ]
    picked = mispec.align_steps(tree, "loss", models=["toy", "other"], join="outer")
    assert picked.model.values.tolist() == ["toy", "other"]  # models= gives the order
    xr.testing.assert_identical(picked.has_step, ds.has_step.sel(model=["toy", "other"]))
    for name in ("toy", "other"):
        own = tree[name].to_dataset()
        got = ds.loss.sel(model=name, seed=0).values
        present = ds.has_step.sel(model=name).values
        np.testing.assert_array_equal(got[present], own.loss.sel(seed=0).values)
        assert got[~present].size and np.isnan(got[~present]).all()
    assert ds.attrs["step_join"] == "outer"


def test_bad_names_point_at_the_cause(tree):
    with pytest.raises(ResultsError, match="no model 'toyy'.*did you mean 'toy'"):
        mispec.align_steps(tree, models=["toyy"])
    with pytest.raises(ResultsError, match="no variable 'los'.*did you mean 'loss'"):
        mispec.align_steps(tree, "los")
    with pytest.raises(ResultsError, match="join must be 'inner' or 'outer'"):
        mispec.align_steps(tree, join="left")
