"""Incremental re-runs and the activation-cache policies on the tiny toy spec."""

from __future__ import annotations

import numpy as np
import xarray as xr

import mispec
from mispec.store.store import Store
from tests.conftest import TOY_SPEC


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
    assert dtypes == {"blocks.L.attn.hook_pattern.f16": "float16", "next_logprob.lp64": "float32"}
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
    assert {hook for _, hook in store.activations.entries()} == {"next_logprob.lp64"}
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


def test_an_unchanged_rerun_leaves_the_run_folder_untouched(write_spec, monkeypatch, capsys):
    """A re-run that computes nothing, into a run folder holding this very run, neither
    assembles nor writes: results.zarr, spec, plan, provenance and history/ stay as they
    were; the result and the headline lines are the first run's; the index says unchanged."""
    import json

    import mispec.api
    from mispec.cli.main import main
    from mispec.store.run_folder import RunFolder
    from tests.reliability_helpers import snapshot, snapshot_diff

    spec = write_spec(TOY_SPEC)
    first = mispec.run(spec, progress=False)
    run_dir = first.run_dir
    prov = json.loads((run_dir / "provenance.json").read_text())
    assert first.summary and prov["summary"] == first.summary
    before = snapshot(run_dir)

    def forbidden(*a, **k):
        raise AssertionError("an unchanged re-run assembled or wrote the results")

    with monkeypatch.context() as m:
        m.setattr(mispec.api, "_assemble", forbidden)
        m.setattr(RunFolder, "write", forbidden)
        again = mispec.run(spec, progress=False)
    assert not again.did_work
    c = again.counters
    assert c["forward_passes"] == c["cells_computed"] == c["training_steps"] == 0
    assert c["reductions_computed"] == 0 and c["cells_cached"] == 13
    assert again.run_dir == run_dir and again.results_path == run_dir / "results.zarr"
    assert again.summary == first.summary
    assert snapshot_diff(before, snapshot(run_dir)) == []
    assert not (run_dir / "history").exists()
    xr.testing.assert_identical(again.open()["toy"].to_dataset(), first.open()["toy"].to_dataset())

    runs = _store(spec).runs()
    assert len(runs) == 2 and "unchanged" not in runs[0]
    assert runs[0]["run_id"] == prov["run_id"]
    assert runs[1]["unchanged"] is True and runs[1]["same_as"] == prov["run_id"]
    assert runs[1]["run_id"] != prov["run_id"]
    assert runs[1]["plan_key"] == prov["plan_key"] and runs[1]["run_dir"] == str(run_dir)
    capsys.readouterr()
    assert main(["ls", "--store", str(spec.parent / ".mispec")]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 2 and listed[0].endswith(str(run_dir))
    assert listed[1].endswith(f"(unchanged: results of {prov['run_id']})")


def test_a_rerun_that_computes_nothing_still_rewrites_a_stale_run_folder(write_spec, tmp_path):
    """The skip never leaves a missing or stale run folder: a deleted results.zarr, a spec
    whose text changed (a comment only: same spec_hash, same plan) and a provenance.json of
    an older mispec (no summary) are each written again, with 0 forward passes."""
    import json
    import shutil

    from tests.reliability_helpers import assert_same_results

    spec = write_spec(TOY_SPEC)
    first = mispec.run(spec, progress=False)
    run_dir = first.run_dir
    shutil.copytree(run_dir / "results.zarr", tmp_path / "first.zarr")

    def rerun(n_history: int) -> dict:
        again = mispec.run(spec, progress=False)
        assert not again.did_work and again.counters["forward_passes"] == 0
        assert again.summary == first.summary
        assert_same_results(run_dir, tmp_path / "first.zarr")
        assert len(list((run_dir / "history").iterdir())) == n_history
        prov = json.loads((run_dir / "provenance.json").read_text())
        assert prov["summary"] == first.summary
        last = _store(spec).runs()[-1]
        assert "unchanged" not in last and last["run_id"] == prov["run_id"]
        return prov

    shutil.rmtree(run_dir / "results.zarr")
    rerun(1)

    commented = "# a comment only\n" + TOY_SPEC
    assert (
        mispec.load_spec(spec).spec_hash
        == mispec.load_spec(write_spec(commented, "commented.yaml")).spec_hash
    )
    spec.write_text(commented)
    rerun(2)
    assert (run_dir / "spec.yaml").read_text() == commented

    prov = json.loads((run_dir / "provenance.json").read_text())
    del prov["summary"]  # as an older mispec wrote it
    (run_dir / "provenance.json").write_text(json.dumps(prov))
    rerun(3)
