"""Plots that say what they draw: a reduced dim is named in the title, a signed quantity
sits on a diverging map centred on 0, a transition marker sits only on the series it was
computed from, each seed's line runs over its own checkpoints, an all-NaN panel says so
without a legend, the report's contents link only to plots it has, and units follow args."""

from __future__ import annotations

import re

import matplotlib  # noqa: F401  (the plot extra, installed by `make venv`)
import numpy as np
import pytest
import xarray as xr

from mispec.plot.figures import metric_figure

STEPS = [0, 10, 100, 1000]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def _tree(**children):
    return xr.DataTree(children={name: xr.DataTree(xr.Dataset(v)) for name, v in children.items()})


def _markers(ax):
    """``{label: x}`` of the vertical transition lines on an axis."""
    return {
        line.get_label(): float(line.get_xdata()[0])
        for line in ax.lines
        if "transition" in line.get_label() or "step" in line.get_label()
        if len(set(np.ravel(line.get_xdata()))) == 1 and len(line.get_xdata()) == 2
    }


def test_a_transition_marker_sits_only_on_the_series_it_was_computed_from():
    rng = np.random.default_rng(0)
    induction = xr.DataArray(
        rng.uniform(size=(1, 4, 2, 2)),
        dims=("seed", "step", "layer", "head"),
        coords={"seed": [0], "step": STEPS},
    )
    strongest = induction.max(["layer", "head"])
    strongest.attrs = {"metric_fn": "reduce", "inputs": ["induction"]}
    icl = xr.DataArray(rng.uniform(size=(1, 4)), dims=("seed", "step"), coords=strongest.coords)
    icl.attrs = {"metric_fn": "icl_score", "inputs": ["per_token_loss"]}
    # alphabetically first: the ICL transition, which the induction plot once showed
    a_icl_transition = xr.DataArray([955.0], dims=("seed",), coords={"seed": [0]})
    a_icl_transition.attrs = {"metric_fn": "transition_step", "inputs": ["icl"]}
    transition = xr.DataArray([759.0], dims=("seed",), coords={"seed": [0]})
    transition.attrs = {"metric_fn": "transition_step", "inputs": ["strongest"]}
    tree = _tree(
        toy={
            "induction": induction,
            "strongest": strongest,
            "icl": icl,
            "a_icl_transition": a_icl_transition,
            "transition": transition,
        }
    )

    series = metric_figure(tree, "induction", heatmap=False).axes[0]
    assert _markers(series) == {"transition seed 0: step 759": 760.0}  # log axis: step + 1
    through_reduce = metric_figure(tree, "strongest").axes[0]
    assert list(_markers(through_reduce).values()) == [760.0]
    on_icl = metric_figure(tree, "icl", log_x=False).axes[0]
    assert _markers(on_icl) == {"a_icl_transition seed 0: step 955": 955.0}
    # a series no transition read: no marker at all
    tree["toy"] = xr.DataTree(tree["toy"].to_dataset().assign(loss=icl.copy(deep=True)))
    tree["toy"]["loss"].attrs = {"metric_fn": "loss"}
    assert _markers(metric_figure(tree, "loss").axes[0]) == {}
    # the heatmap steps bracket this series' transition (759), not the ICL one (955)
    rich = induction.reindex(step=[0, 10, 100, 700, 800, 900, 1000])
    tree2 = _tree(
        toy={
            "induction": rich.fillna(0.5),
            "strongest": strongest,
            "a_icl_transition": a_icl_transition,
            "transition": transition,
            "icl": icl,
        }
    )
    maps = metric_figure(tree2, "induction").axes
    titles = sorted(ax.get_title() for ax in maps if ax.images)
    assert titles == ["seed 0, step 0", "seed 0, step 1000", "seed 0, step 700", "seed 0, step 800"]


def _comparison(dims, shape, coords, **attrs):
    rng = np.random.default_rng(1)
    return xr.DataArray(rng.uniform(size=shape), dims=dims, coords=coords, attrs=attrs)


@pytest.mark.parametrize(
    ("dims", "shape", "named"),
    [
        # kl_divergence per position, seed pairs: averaged over pos
        (("seed", "seed_b", "step", "pos"), (2, 2, 4, 5), ["mean over pos"]),
        # cross_model_patching per head, seed pairs: a panel per layer, averaged over head
        (("seed", "seed_b", "step", "layer", "head"), (2, 2, 4, 2, 3), ["mean over head"]),
        # weight_distance per component against the last step
        (
            ("seed", "step", "step_b", "component"),
            (2, 4, 1, 3),
            ["against step 1000", "mean over component"],
        ),
    ],
)
def test_a_comparison_names_every_dim_it_reduces(dims, shape, named):
    coords = {"seed": [0, 1], "step": STEPS}
    if "seed_b" in dims:
        coords["seed_b"] = [0, 1]
    if "step_b" in dims:
        coords["step_b"] = [1000]
    var = _comparison(dims, shape, coords, units="nats", metric_fn="x")
    fig = metric_figure(_tree(toy={"cmp": var}), "cmp")
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles and all(all(n in t for n in named) for t in titles), titles
    # the line drawn is the mean it says
    ax = fig.axes[0]
    line = ax.lines[0]
    expected = var.sel(seed=0)
    if "seed_b" in dims:
        expected = var.sel(seed=0, seed_b=0)
    if "layer" in dims:
        expected = expected.sel(layer=0)
    if "step_b" in dims:
        expected = expected.isel(step_b=0)
    expected = expected.mean([d for d in expected.dims if d != "step"])
    np.testing.assert_allclose(line.get_ydata(), expected.values)


def test_a_comparison_against_each_seeds_own_last_step_keeps_every_seed():
    """``pairs: {steps: last}`` with runs of different length: one step_b per seed, NaN
    elsewhere. Each seed is drawn against its own, never only against the first step_b."""
    values = np.full((2, 3, 2), np.nan)
    values[0, :, 0] = [1.0, 2.0, 3.0]  # seed 0 against step 100
    values[1, :, 1] = [4.0, 5.0, 6.0]  # seed 1 against step 200
    var = xr.DataArray(
        values,
        dims=("seed", "step", "step_b"),
        coords={"seed": [0, 1], "step": [0, 10, 100], "step_b": [100, 200]},
    )
    (ax,) = metric_figure(_tree(toy={"d": var}), "d").axes
    drawn = {line.get_label(): list(line.get_ydata()) for line in ax.lines}
    assert drawn == {"seed 0": [1.0, 2.0, 3.0], "seed 1": [4.0, 5.0, 6.0]}
    assert "step_b (100, 200)" in ax.get_title()


def test_head_maps_of_a_per_position_result_name_the_mean_over_pos():
    rng = np.random.default_rng(2)
    var = xr.DataArray(
        rng.uniform(size=(1, 2, 2, 3, 4)),
        dims=("seed", "step", "layer", "head", "pos"),
        coords={"seed": [0], "step": [0, 10]},
        attrs={"units": "fraction"},
    )
    fig = metric_figure(_tree(toy={"patch": var}), "patch")
    series = next(ax for ax in fig.axes if ax.lines)
    assert "maps: mean over pos" in series.get_title()
    (last,) = [ax for ax in fig.axes if ax.images and ax.get_title() == "seed 0, step 10"]
    np.testing.assert_allclose(
        np.asarray(last.images[0].get_array()), var.sel(seed=0, step=10).mean("pos").values
    )


def test_a_signed_quantity_gets_a_diverging_map_centred_on_zero():
    dla = xr.DataArray(
        [[[[-2.0, 0.5], [1.0, 0.1]]]],
        dims=("seed", "step", "layer", "head"),
        coords={"seed": [0], "step": [10]},
        attrs={"units": "logits"},
    )
    fig = metric_figure(_tree(toy={"dla": dla}), "dla")
    (im,) = [ax.images[0] for ax in fig.axes if ax.images]
    assert im.get_cmap().name == "RdBu_r"
    assert im.norm.vcenter == 0.0 and im.norm.vmin == -2.0 and im.norm.vmax == 2.0
    np.testing.assert_array_equal(np.asarray(im.get_array()), dla.values[0, 0])
    unsigned = metric_figure(_tree(toy={"ind": abs(dla)}), "ind")
    (im,) = [ax.images[0] for ax in unsigned.axes if ax.images]
    assert im.get_cmap().name == "viridis"
    assert (im.norm.vmin, im.norm.vmax) == (0.1, 2.0)


def test_each_seed_is_drawn_over_its_own_checkpoints():
    """``refine:`` added steps 15 and 18 to seed 0 only; seed 1's line is not broken there."""
    steps = [0, 10, 15, 18, 100]
    values = np.array([[1.0, 2, 3, 4, 5], [6, 7, np.nan, np.nan, 9]])
    var = xr.DataArray(values, dims=("seed", "step"), coords={"seed": [0, 1], "step": steps})
    (ax,) = metric_figure(_tree(toy={"loss": var}), "loss", log_x=False).axes
    lines = {line.get_label(): line for line in ax.lines}
    assert list(lines["seed 1"].get_xdata()) == [0, 10, 100]
    assert list(lines["seed 1"].get_ydata()) == [6, 7, 9]
    assert list(lines["seed 0"].get_xdata()) == steps
    # per head too, and the top heads are ranked at the seed's own last checkpoint
    heads = xr.DataArray(
        np.stack([values, values * 0], axis=-1),
        dims=("seed", "step", "head"),
        coords={"seed": [0, 1], "step": steps},
    )
    (ax,) = metric_figure(_tree(toy={"h": heads}), "h", log_x=False, top_k=1).axes
    (top,) = [line for line in ax.lines if line.get_label() == "seed 1 H0"]
    assert list(top.get_ydata()) == [6, 7, 9]


def test_an_all_nan_result_says_so_and_has_no_legend():
    nan = xr.DataArray(
        np.full((2, 3, 2, 2), np.nan),
        dims=("seed", "step", "layer", "head"),
        coords={"seed": [0, 1], "step": [0, 10, 100]},
    )
    fig = metric_figure(_tree(toy={"patching": nan}), "patching")
    series = fig.axes[0]
    assert series.get_legend() is None
    assert "no values (all NaN)" in [t.get_text() for t in series.texts]
    pairs = nan.rename(layer="seed_b").assign_coords(seed_b=[0, 1])
    (ax, *_) = metric_figure(_tree(toy={"cmp": pairs}), "cmp").axes
    assert ax.get_legend() is None
    assert "no values (all NaN)" in [t.get_text() for t in ax.texts]


RUN_SPEC = """\
mispec: 1
name: trust-plots
models:
  toy:
    train:
      task: repeated_tokens
      task_args: {vocab: 16, half_len: 6}
      arch: {n_layers: 2, n_heads: 2, d_model: 16, d_head: 8, attn_only: true}
      steps: 20
      batch_size: 8
    seeds: [0]
    checkpoints: {steps: [0, 10, 20]}
prompts:
  rep:
    generator: repeated_tokens
    args: {n: 4, vocab: 16, half_len: 6}
    seed: 1
metrics:
  loss: {fn: loss, prompts: rep}
  induction: {fn: induction_score, prompts: rep}
  transition: {fn: transition_step, inputs: {series: induction}}
  weights: {fn: parameters}
  drift:
    fn: weight_distance
    inputs: {a: weights, b: weights}
    args: {relative: true}
    pairs: {steps: last}
"""


def test_report_contents_link_only_to_plots_it_has_and_units_follow_args(write_spec):
    import mispec
    from mispec.plot.report import build_report

    result = mispec.run(write_spec(RUN_SPEC), progress=False)
    ds = result.open()["toy"].to_dataset()
    assert ds.drift.attrs["units"] == "relative L2 distance (÷ ||W_b||)"
    assert ds.transition.attrs["inputs"] == ["induction"]  # what a marker follows
    page = build_report(result.run_dir).read_text()
    links = re.findall(r'<a href="#([^"]+)"', page)
    ids = set(re.findall(r' id="([^"]+)"', page))
    assert "plot-weights" not in links  # drawn through the comparison that reads it
    assert links and [link for link in links if link not in ids] == []
    assert {"plot-drift", "plot-induction", "plot-loss"} <= set(links)
    fig = metric_figure(result.open(), "drift")
    assert fig.axes[0].get_ylabel() == "relative L2 distance (÷ ||W_b||)"
    assert "mean over component" in fig.axes[0].get_title()


def test_units_follow_args_in_the_metric_record():
    from mispec.execute.work.invoke import call_metric
    from mispec.metrics.core import get_metric, metric

    def per(scale: str = "raw") -> str:
        return "nats" if scale == "raw" else "fraction of the baseline"

    @metric(dims=("layer",), inputs=("x",), units=per, register=False)
    def rescaled(x, scale: str = "raw"):
        return x

    mdef = rescaled.__mispec__
    x = xr.DataArray([1.0, 2.0], dims=("layer",))
    for args, units in (({}, "nats"), ({"scale": "baseline"}, "fraction of the baseline")):
        out = call_metric(mdef, args, node="n", inputs={"x": x.copy()})
        assert out.attrs["units"] == units
    assert mdef.units == "nats"  # no docstring: the catalogue shows the default's units

    with pytest.raises(TypeError, match="units function's parameter 'nope' is not an arg"):

        def bad(nope: int = 0) -> str:
            return ""

        metric(dims=(), inputs=("x",), units=bad, register=False)(lambda x: x)

    cases = {
        "weight_distance": ({"relative": True}, "relative L2 distance (÷ ||W_b||)"),
        "head_ablation": ({"measure": "logit_diff"}, "change of logit difference (logits)"),
        "neuron_ablation": ({}, "change of loss (nats)"),
        "logit_lens": ({"measure": "logprob"}, "nats (log-probability)"),
        "cross_model_patching": ({"normalize": False}, "loss with the piece patched in (nats)"),
    }
    for name, (args, units) in cases.items():
        assert get_metric(name).units_for(args) == units, name
    assert get_metric("weight_distance").units_for({}) == "L2 distance"
    assert "relative" in get_metric("weight_distance").units  # the catalogue's text
