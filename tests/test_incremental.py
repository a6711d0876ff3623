"""Incremental re-runs and the activation-cache policies on the tiny toy spec."""

from __future__ import annotations

import numpy as np
import xarray as xr

import mispec
from mispec.store.store import Store

from .conftest import TOY_SPEC


def _store(path):
    return Store(path.parent / ".mispec")


def test_adding_checkpoints_runs_only_the_new_steps(write_spec, tmp_path):
    spec = write_spec(TOY_SPEC)
    first = mispec.run(spec, progress=False)
    assert first.counters["forward_passes"] == 3
    more = write_spec(TOY_SPEC.replace("[0, 20, 40]", "[0, 10, 20, 30, 40]"), "more.yaml")
    second = mispec.run(more, progress=False, out=tmp_path / "more")
    c = second.counters
    assert c["forward_passes"] == 2 and c["checkpoints_loaded"] == 2
    assert c["training_steps"] == 30  # resumed from step 0 to reach 10 and 30; 20/40 kept
    a = first.open()["toy"].to_dataset()
    b = second.open()["toy"].to_dataset()
    xr.testing.assert_identical(a.loss, b.loss.sel(step=[0, 20, 40]))


def test_plan_reports_cached_work_and_a_true_size_estimate(write_spec):
    spec = write_spec(TOY_SPEC)
    before = mispec.plan(spec).status
    assert before.forward_passes == 3 and before.cells_cached == 0
    assert before.training_steps_todo == {"toy/s0": 40}
    mispec.run(spec, progress=False)
    after = mispec.plan(spec).status
    assert after.up_to_date and after.forward_passes == 0 and after.cells_cached == 13
    # the estimate (uncompressed bytes) equals what the cache holds, before compression
    store = _store(spec)
    held = 0
    for fkey, hook in store.activations.entries():
        info = store.activations.info(fkey, hook)
        held += int(np.prod(info["shape"])) * np.dtype(info["dtype"]).itemsize
    assert held == before.activation_bytes_new == before.activation_bytes_total


def test_float16_policy_is_what_metrics_read_cold_and_warm(write_spec, tmp_path):
    text = TOY_SPEC.replace(
        "  induction: {fn: induction_score, prompts: rep}",
        "  induction: {fn: induction_score, prompts: rep, cache: float16}",
    )
    spec = write_spec(text)
    cold = mispec.run(spec, progress=False)
    store = _store(spec)
    dtypes = {
        hook: store.activations.info(f, hook)["dtype"] for f, hook in store.activations.entries()
    }
    assert dtypes == {"blocks.L.attn.hook_pattern.f16": "float16", "next_logprob": "float32"}
    # drop the metric cells: a warm run recomputes them from the float16 cache, identically
    import shutil

    shutil.rmtree(store.cells.root)
    warm = mispec.run(spec, progress=False, out=tmp_path / "warm")
    assert warm.counters["forward_passes"] == 0 and warm.counters["cells_computed"] == 12
    xr.testing.assert_identical(cold.open()["toy"].to_dataset(), warm.open()["toy"].to_dataset())
    full = write_spec(TOY_SPEC, "full.yaml")  # float32 pattern: a different cell key and value
    f32 = mispec.run(full, progress=False, out=tmp_path / "f32")
    assert f32.counters["forward_passes"] == 3  # a float16 entry is not a float32 entry
    a = f32.open()["toy"].to_dataset().induction.values
    b = cold.open()["toy"].to_dataset().induction.values
    assert 0 < np.abs(a - b).max() < 1e-3


def test_skip_policy_stores_nothing_and_recomputes(write_spec):
    text = TOY_SPEC + "cache: {'blocks.{layer}.attn.hook_pattern': skip}\n"
    spec = write_spec(text)
    mispec.run(spec, progress=False)
    store = _store(spec)
    assert {hook for _, hook in store.activations.entries()} == {"next_logprob"}
    plan = mispec.plan(spec)
    assert plan.status.up_to_date
    changed = write_spec(
        text.replace(
            "{fn: induction_score, prompts: rep}",
            "{fn: induction_score, prompts: rep, args: {exclude_bos: true}}",
        ),
        "changed.yaml",
    )
    assert mispec.plan(changed).status.forward_passes == 3  # skipped hooks need the model again


def test_entry_point_plugins_register_and_broken_ones_warn(monkeypatch):
    import importlib.metadata as md
    import warnings

    from mispec.registry import Registry

    class EP:
        def __init__(self, name, value, obj=None, error=None):
            self.name, self.value, self._obj, self._error = name, value, obj, error

        def load(self):
            if self._error:
                raise self._error
            return self._obj

    def fn():
        return 1

    eps = [EP("good", "pkg:fn", obj=fn), EP("broken", "pkg:nope", error=ImportError("no pkg"))]
    monkeypatch.setattr(md, "entry_points", lambda group: eps if group == "test.group" else [])
    reg: Registry = Registry("thing", entry_point_group="test.group")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert reg.names() == ["good"]
    assert reg.get("good") is fn
    assert any("broken" in str(w.message) and "no pkg" in str(w.message) for w in caught)
