"""Live metrics (``live:``): computed inside the training loop from the weights it saves, then
cached under the plan's keys, so the results equal a run without ``live:``, bit for bit."""

from __future__ import annotations

import numpy as np
import xarray as xr

import mispec
from mispec.execute.context import RunContext
from mispec.execute.work.live import live_callback
from mispec.store.store import Store
from tests.conftest import TOY_SPEC

LIVE = TOY_SPEC.replace(
    "    checkpoints: {steps: [0, 20, 40]}\n",
    "    checkpoints: {steps: [0, 20, 40]}\n    live: [loss, icl]\n",
)


def test_live_metrics_are_cached_as_if_computed_afterwards(tmp_path):
    runs = {}
    for name, text in (("live", LIVE), ("after", TOY_SPEC)):
        project = tmp_path / name
        (project / ".mispec").mkdir(parents=True)
        (project / "spec.yaml").write_text(text)
        runs[name] = mispec.run(project / "spec.yaml", progress=False)
    live, after = runs["live"], runs["after"]
    # loss and icl (with the per_token_loss it reads) ran in the training loop: the groups
    # afterwards computed only induction, from one forward pass per checkpoint
    assert live.counters["cells_computed"] == after.counters["cells_computed"] == 12
    assert live.counters["forward_passes"] == 6 and after.counters["forward_passes"] == 3
    a, b = live.open()["toy"].to_dataset(), after.open()["toy"].to_dataset()
    xr.testing.assert_identical(a, b)
    for var in ("loss", "per_token_loss", "icl"):  # the same bits, not just close
        assert np.array_equal(a[var].values.view(np.uint8), b[var].values.view(np.uint8))
    # the same cell keys: every cell of the live run is in the other run's store
    live_keys = {p.stem for p in Store(tmp_path / "live" / ".mispec").cells.root.glob("*/*.npz")}
    after_keys = {p.stem for p in Store(tmp_path / "after" / ".mispec").cells.root.glob("*/*.npz")}
    assert live_keys == after_keys and len(live_keys) == 13
    assert (
        mispec.plan(tmp_path / "live" / "spec.yaml").plan.key
        == mispec.plan(tmp_path / "after" / "spec.yaml").plan.key
    )


def test_the_live_callback_returns_the_scalar_results_it_cached(write_spec):
    spec = write_spec(LIVE)
    planned = mispec.plan(spec)
    ctx = RunContext(planned.plan, spec.parent, Store(spec.parent / ".mispec"))
    from mispec.models import ensure_trained

    shown = {}
    callback = live_callback(ctx, "toy", 0)
    assert callback is not None

    def record(step, weights):
        shown[step] = callback(step, weights)
        return shown[step]

    train = planned.loaded.spec.models["toy"].train
    ensure_trained(
        "toy", train, 0, [0, 20, 40], ctx.store.root, progress=False, on_checkpoint=record
    )
    assert sorted(shown) == [0, 20, 40]
    assert all(set(values) == {"loss", "icl"} for values in shown.values())
    result = mispec.run(spec, progress=False)
    ds = result.open()["toy"].to_dataset()
    for step, values in shown.items():
        assert values["loss"] == float(ds.loss.sel(seed=0, step=step))
        assert values["icl"] == float(ds.icl.sel(seed=0, step=step))
    assert result.counters["training_steps"] == 0
