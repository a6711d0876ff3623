"""Inputs taken from another checkpoint: a fixed step of the run, another seed, another model
(``inputs: {ref: {metric: loss, step: last}}``), on the tiny toy spec, for real."""

from __future__ import annotations

import numpy as np
import pytest

import mispec
from mispec.errors import SpecError
from mispec.store.store import Store
from mispec.validation.load import load_spec
from tests.conftest import TOY_SPEC

PLUGIN = '''
from mispec.metrics.core import metric


@metric(dims=(), inputs=("value", "ref"))
def minus(value, ref, scale: float = 1.0):
    """value - ref, times scale (a derived metric)."""
    return scale * (value - ref)


@metric(dims=(), inputs=("ref",), units="ratio")
def norm_over(bridge, ref):
    """The total weight norm of this checkpoint over ``ref`` (a weights metric with an input)."""
    import torch

    total = torch.sqrt(sum((p.detach().double() ** 2).sum() for p in bridge.parameters()))
    return float(total) / float(ref.squeeze())
'''

BASE = TOY_SPEC.replace("seeds: [0]", "seeds: [0, 1]").replace(
    "  transition: {fn: transition_step, inputs: {series: induction}}\n", ""
)
REL_LAST = (
    '  rel: {fn: "refs_plugin_metrics:minus", '
    "inputs: {value: loss, ref: {metric: loss, step: last}}}\n"
)


@pytest.fixture
def plugin(tmp_path):
    (tmp_path / "refs_plugin_metrics.py").write_text(PLUGIN)


def test_an_input_from_the_last_step_is_read_at_every_step(write_spec, plugin, tmp_path):
    spec = write_spec(BASE + REL_LAST)
    result = mispec.run(spec, progress=False)
    ds = result.open()["toy"].to_dataset()
    loss = ds.loss.values  # (seed, step)
    np.testing.assert_array_equal(ds.rel.values, loss - loss[:, -1:])
    assert ds.rel.values[:, -1].tolist() == [0.0, 0.0]
    assert np.all(ds.rel.values[:, 0] > 0)  # untrained loss is above trained loss


def test_the_reference_is_part_of_the_key_and_cached_sides_are_reused(write_spec, plugin, tmp_path):
    first = mispec.run(write_spec(BASE + REL_LAST), progress=False)
    plan_a = mispec.plan(write_spec(BASE + REL_LAST)).plan
    first_spec = write_spec(BASE + REL_LAST.replace("step: last", "step: first"), "first.yaml")
    plan_b = mispec.plan(first_spec).plan
    keys_a = {n.id: n.key for n in plan_a.nodes()}
    keys_b = {n.id: n.key for n in plan_b.nodes()}
    changed = sorted(i for i in keys_a if keys_a[i] != keys_b[i])
    # exactly the rel cells (3 steps x 2 seeds) and the assembly change
    assert [i for i in changed if i != "assemble"] == sorted(
        f"cell:rel/toy/s{s}/step{t}" for s in (0, 1) for t in (0, 20, 40)
    )
    second = mispec.run(first_spec, progress=False, out=tmp_path / "runs" / "first")
    c = second.counters
    assert c["forward_passes"] == 0 and c["training_steps"] == 0 and c["cells_computed"] == 6
    loss = first.open()["toy"].to_dataset().loss.values
    rel = second.open()["toy"].to_dataset().rel.values
    np.testing.assert_array_equal(rel, loss - loss[:, :1])


def test_an_input_from_another_seed(write_spec, plugin):
    text = BASE + (
        '  vs1: {fn: "refs_plugin_metrics:minus", '
        "inputs: {value: loss, ref: {metric: loss, seed: 1}}}\n"
    )
    result = mispec.run(write_spec(text), progress=False)
    ds = result.open()["toy"].to_dataset()
    loss = ds.loss.sel(seed=[0, 1]).values
    np.testing.assert_array_equal(ds.vs1.sel(seed=0).values, loss[0] - loss[1])
    np.testing.assert_array_equal(ds.vs1.sel(seed=1).values, np.zeros(3))
    assert np.abs(loss[0] - loss[1])[1:].max() > 0  # the seeds differ: the test has teeth


def test_a_weights_metric_with_an_input_from_another_model(write_spec, plugin):
    one = BASE.replace("seeds: [0, 1]", "seeds: [0]")
    toy = one.split("models:\n")[1].split("prompts:")[0]
    twin = toy.replace("  toy:", "  twin:", 1)  # the same run under another name
    text = one.replace("models:\n", "models:\n" + twin, 1) + (
        "  wnorm: {fn: weight_norm}\n"
        '  ratio: {fn: "refs_plugin_metrics:norm_over", models: [toy], '
        "inputs: {ref: {metric: wnorm, model: twin, step: 0}}}\n"
    )
    tree = mispec.run(write_spec(text), progress=False).open()
    ratio = tree["toy"].to_dataset().ratio.sel(seed=0).values
    own = tree["toy"].to_dataset().wnorm.sel(seed=0).values.reshape(-1)
    ref = float(tree["twin"].to_dataset().wnorm.sel(seed=0, step=0).values.squeeze())
    np.testing.assert_allclose(ratio, own / ref, rtol=1e-6)
    assert ratio[0] == pytest.approx(1.0, rel=1e-6)  # same arch, seed and init at step 0
    assert abs(ratio[-1] - 1.0) > 1e-4  # training moved the weights
    assert "ratio" not in tree["twin"].to_dataset()


def test_a_lost_input_of_another_checkpoint_is_computed_again(write_spec, plugin, tmp_path):
    spec = write_spec(BASE + REL_LAST)
    first = mispec.run(spec, progress=False)
    plan = mispec.plan(spec).plan
    last = plan.node("cell:loss/toy/s0/step40")
    store = Store(tmp_path / ".mispec")
    store.cells.path(last.key).unlink()
    assert not store.cells.has(last.key)
    scaled = write_spec(BASE + REL_LAST.replace("step: last}}", "step: last}}, args: {scale: 2}"))
    second = mispec.run(scaled, progress=False, out=tmp_path / "runs" / "scaled")
    assert store.cells.has(last.key)
    loss = first.open()["toy"].to_dataset().loss.values
    rel = second.open()["toy"].to_dataset().rel.values
    np.testing.assert_array_equal(rel, 2.0 * (loss - loss[:, -1:]))


@pytest.mark.parametrize(
    ("ref", "where", "message"),
    [
        ("{metric: loss, seed: 7}", "seed", "model 'toy' has no seed 7"),
        ("{metric: loss, step: 30}", "step", "has no checkpoint at step(s) 30"),
        ("{metric: loss, model: nope}", "model", "unknown model 'nope'"),
        ("{metric: lsos, step: last}", "metric", "unknown metric 'lsos'"),
    ],
)
def test_bad_references_are_located_at_validate(write_spec, plugin, ref, where, message):
    text = (
        BASE + f'  rel: {{fn: "refs_plugin_metrics:minus", inputs: {{value: loss, ref: {ref}}}}}\n'
    )
    spec = write_spec(text)
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    shown = str(err.value)
    assert message in shown
    line = text.splitlines().index(text.splitlines()[-1]) + 1
    assert f"spec.yaml:{line}:" in shown


def test_groups_that_would_wait_on_each_other_are_refused(write_spec, plugin):
    text = BASE + (
        '  a: {fn: "refs_plugin_metrics:minus", inputs: {value: loss, ref: {metric: loss, step: 0}}}\n'
        '  b: {fn: "refs_plugin_metrics:minus", inputs: {value: a, ref: {metric: a, step: 40}}}\n'
    )
    # found at validate since issue 26 (the planner keeps its own check)
    with pytest.raises(SpecError, match="metrics.b.inputs.ref: .*wait on each other in a ring"):
        mispec.plan(write_spec(text))
