"""The embedded default study end to end: training, one forward pass per checkpoint and
prompt set, labelled results, incremental re-runs, and the induction-head transition."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mispec


@pytest.fixture(scope="module")
def ds(default_study):
    _, _, result = default_study
    return mispec.open_results(result.run_dir)["toy2l"].to_dataset()


def test_first_run_did_the_work_once(default_study):
    _, _, result = default_study
    c = result.counters
    assert c["training_steps"] == 2 * 1000
    assert c["forward_passes"] == 2 * 40  # ONE per (seed, checkpoint, prompt set)
    assert c["checkpoints_loaded"] == 2 * 40
    for name in ("spec.yaml", "plan.json", "provenance.json"):
        assert (result.run_dir / name).is_file()
    prov = json.loads((result.run_dir / "provenance.json").read_text())
    assert prov["versions"]["torch"] and prov["versions"]["transformer-lens"].startswith("4.")
    assert prov["seeds"] == {"toy2l": [0, 1]}


def test_results_are_labelled(ds):
    assert ds.induction.dims == ("seed", "step", "layer", "head")
    assert ds.sizes == {
        "seed": 2,
        "step": 40,
        "layer": 2,
        "head": 4,
        "pos": 48,
        "src_layer": 2,
        "src_head": 4,
        "dst_layer": 2,
        "dst_head": 4,
    }
    assert list(ds.seed.values) == [0, 1] and ds.step.values[0] == 0 and ds.step.values[-1] == 1000
    assert (ds.tokens_seen.values == ds.step.values * 64 * 49).all()
    assert ds.loss.dims == ("seed", "step") and ds.transition.dims == ("seed",)
    assert ds.induction.attrs["units"] and ds.induction.attrs["metric_fn"] == "induction_score"


def test_the_induction_transition(ds):
    peak = ds.induction.max(["layer", "head"])
    assert (peak.isel(step=0) < 0.2).all()
    assert (peak.isel(step=-1) > 0.5).all()
    for seed in (0, 1):
        series = peak.sel(seed=seed)
        steps = series.step.values
        first_01 = steps[np.argmax(series.values > 0.1)]
        first_05 = steps[np.argmax(series.values > 0.5)]
        t = float(ds.transition.sel(seed=seed))
        assert first_01 <= t <= first_05, (first_01, t, first_05)
        # a real transition: its jump stands far out of the series' noise (min_size 8)
        assert float(ds.transition_size.sel(seed=seed)) > 100


def test_a_real_two_layer_circuit_forms(ds):
    last = ds.isel(step=-1).mean("seed")
    # induction heads in layer 1, fed by previous-token heads in layer 0
    assert float(last.induction.sel(layer=1).max()) > 0.5 > float(last.induction.sel(layer=0).max())
    assert float(last.prev_token.sel(layer=0).max()) > 0.2
    # the in-context-learning score drops: late tokens are predicted far better than early ones
    assert (ds.icl.isel(step=-1) < -2).all() and (abs(ds.icl.isel(step=0)) < 0.5).all()
    # K-composition of layer-0 heads into layer-1 heads grows over training
    kc = ds.k_composition.sel(src_layer=0, dst_layer=1).max(["src_head", "dst_head"])
    assert (kc.isel(step=-1) > kc.isel(step=0)).all()


def test_induction_score_equals_transformer_lens_head_detector(default_study, ds):
    """Independent check: TL's detection pattern and similarity score on the same patterns."""
    import torch
    from transformer_lens.head_detector import (
        compute_head_attention_similarity_score,
        get_induction_head_detection_pattern,
    )

    from mispec.sources import source_for
    from mispec.tasks.generators import PROMPT_GENERATORS

    project, spec_path, _ = default_study
    spec = mispec.load_spec(spec_path).spec
    prompts = PROMPT_GENERATORS.get("repeated_tokens")(seed=123, **spec.prompts["repeats"].args)
    tokens = torch.from_numpy(prompts.tokens)
    step = int(ds.step.values[-5])
    handle = source_for("toy2l", spec.models["toy2l"], project).open(1, project / ".mispec")
    with torch.no_grad():
        _, cache = handle.load(step).run_with_cache(
            tokens, names_filter=lambda n: "hook_pattern" in n
        )
    handle.close()
    expected = np.zeros((2, 4))
    for b in range(tokens.shape[0]):
        det = get_induction_head_detection_pattern(tokens[b])
        rows = int((det.sum(-1) > 0).sum())
        for layer in range(2):
            for head in range(4):
                pattern = cache[f"blocks.{layer}.attn.hook_pattern"][b, head]
                tl = compute_head_attention_similarity_score(
                    pattern,
                    det,
                    exclude_bos=False,
                    exclude_current_token=False,
                    error_measure="mul",
                )
                expected[layer, head] += tl * tokens.shape[1] / rows / tokens.shape[0]
    got = ds.induction.sel(seed=1, step=step).values
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_rerun_does_nothing(default_study):
    project, spec, result = default_study
    prov = (result.run_dir / "provenance.json").read_text()
    store = project / ".mispec"
    before = {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()}
    again = mispec.run(spec, progress=False)
    assert not again.did_work and again.counters["forward_passes"] == 0
    assert again.counters["cells_cached"] > 0
    # no work of any kind: counted, not timed (a busy machine must not fail this test)
    for counter in (
        "cells_computed",
        "reductions_computed",
        "activations_read",
        "activations_written",
        "checkpoints_loaded",
        "training_steps",
    ):
        assert again.counters[counter] == 0, counter
    # nothing in the store was rewritten; only the run index may have grown
    after = {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()}
    changed = {p.name for p in after if before.get(p) != after[p]}
    assert changed <= {"runs.jsonl"}, changed
    # the run folder already held this run: left as it was, the same headline lines
    assert again.results_path == result.results_path
    assert (again.run_dir / "provenance.json").read_text() == prov
    assert not (again.run_dir / "history").exists()
    assert again.summary == result.summary and again.summary


def test_changing_icl_args_recomputes_only_icl(default_study, tmp_path):
    project, spec, _ = default_study
    edited = project / "edited.yaml"
    edited.write_text(spec.read_text().replace("late: 40", "late: 45"))
    result = mispec.run(edited, out=tmp_path / "run", progress=False)
    c = result.counters
    assert c["forward_passes"] == 0 and c["training_steps"] == 0 and c["checkpoints_loaded"] == 0
    assert c["cells_computed"] == 2 * 40  # icl at every (seed, step), nothing else
    assert c["reductions_computed"] == 0  # transition reads induction, which did not change


def test_fast_stacking_equals_xarray_concat(ds):
    """The assembly stacks uniform cells with numpy; it must give what xarray's concat gives."""
    import numpy as np
    import xarray as xr

    from mispec.results.assemble import concat_cells, stack_cells

    for name in ("induction", "per_token_loss", "loss"):
        var = ds[name]
        seeds, steps = [int(s) for s in var.seed.values], [int(s) for s in var.step.values]
        cells = {}
        for seed in seeds:
            for st in steps:
                v = var.sel(seed=seed, step=st)  # a cell as the store holds it: no name, attrs
                cells[(seed, st)] = xr.DataArray(
                    v.values, dims=v.dims, coords={d: v[d].values for d in v.dims}
                )
        fast = stack_cells(cells, seeds, steps)
        assert fast is not None
        xr.testing.assert_identical(fast, concat_cells(cells, seeds, steps))
        np.testing.assert_array_equal(fast.values, var.values)
    # cells that disagree on a coordinate fall back to the outer join
    a = xr.DataArray([1.0, 2.0], dims=("pos",), coords={"pos": [1, 2]})
    b = xr.DataArray([3.0, 4.0], dims=("pos",), coords={"pos": [2, 3]})
    uneven = {(0, 0): a, (0, 1): b}
    assert stack_cells(uneven, [0], [0, 1]) is None
    joined = concat_cells(uneven, [0], [0, 1])
    np.testing.assert_array_equal(joined.pos.values, [1, 2, 3])
    assert np.isnan(joined.sel(step=0, pos=3).item())
