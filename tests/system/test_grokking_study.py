"""A miniature grokking study run end to end: train / test splits labelled in the results, the
progress measures with key frequencies taken from the last step, the phase rule and the
no-future PCA, each checked against a direct computation on the assembled results."""

from __future__ import annotations

import numpy as np
import pytest

import mispec
from mispec.results.summary import summarize
from tests.unit.test_metrics_grokking import lstsq_part, np_cross_entropy

SPEC = """\
mispec: 1
name: mini-grokking
models:
  mod7:
    train:
      task: modular_addition
      task_args: {p: 7, train_frac: 0.6}
      arch: {n_layers: 1, n_heads: 2, d_model: 32, d_head: 16, d_mlp: 64, normalization: null}
      steps: 40
      batch_size: null
      loss_dtype: float64
      optimizer: {name: adamw, lr: 1.0e-2, weight_decay: 1.0, betas: [0.9, 0.98]}
    checkpoints: {steps: [0, 5, 10, 20, 40]}
prompts:
  table: {generator: modular_addition, args: {p: 7, train_frac: 0.6}}
metrics:
  train_accuracy: {fn: accuracy, prompts: table, args: {mask: loss_mask, split: train}}
  test_accuracy:  {fn: accuracy, prompts: table, args: {mask: loss_mask, split: test}}
  key_freqs:  {fn: key_frequencies, prompts: table, args: {min_share: 0.3}}
  restricted: {fn: restricted_loss, prompts: table, inputs: {frequencies: {metric: key_freqs, step: last}}}
  excluded:   {fn: excluded_loss, prompts: table, inputs: {frequencies: {metric: key_freqs, step: last}}}
  logits:     {fn: logits, prompts: table}
  pca_past:   {fn: pca_over_steps, inputs: {series: logits}, args: {k: 2, fit: past}}
  phases:
    fn: grokking_phases
    inputs: {train_accuracy: train_accuracy, test_accuracy: test_accuracy}
    # min_size 0: the bare threshold rule (5 checkpoints are too few to judge noise; the
    # noise rule is tested in tests/unit/test_trust_events.py)
    args: {memorised: 0.5, cleanup_start: 0.2, grokked: 0.3, min_size: 0}
"""


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mini_grokking")
    (folder / "spec.yaml").write_text(SPEC)
    return mispec.run(folder / "spec.yaml", progress=False).open()


@pytest.fixture(scope="module")
def results(tree):
    return tree["mod7"].to_dataset()


def test_progress_measures_use_the_last_steps_key_frequencies(results):
    ds = results.isel(seed=0)
    keys = ds.key_freqs.isel(step=-1)
    chosen = [int(k) for k in keys["freq"].values[keys.values > 0]]
    assert chosen  # the run grew at least one frequency cluster at this threshold
    for i in range(ds.sizes["step"]):
        logits = ds.logits.isel(step=i)
        values = logits.values[:, :7]
        answer = logits["answer"].values.astype(int)
        train = logits["train_mask"].values.astype(bool)
        part = lstsq_part(values, 7, chosen)
        restricted = np_cross_entropy(part + (values - part).mean(0), answer)
        excluded = np_cross_entropy((values - part)[train], answer[train])
        assert float(ds.restricted.isel(step=i)) == pytest.approx(restricted, abs=1e-5)
        assert float(ds.excluded.isel(step=i)) == pytest.approx(excluded, abs=1e-5)


def test_results_say_which_split_they_measure(results):
    assert results.train_accuracy.attrs["split"] == "train"
    assert results.test_accuracy.attrs["split"] == "test"
    assert results.excluded.attrs["split"] == "train"
    assert results.restricted.attrs["split"] == "all"
    assert "split" not in results.logits.attrs


def test_phases_follow_the_threshold_rule(results, tree):
    ds = results.isel(seed=0)
    steps = ds.step.values
    train, test = ds.train_accuracy.values, ds.test_accuracy.values

    def first(ok, after):
        hits = [s for s, o in zip(steps, ok, strict=True) if o and s >= after]
        return float(hits[0]) if hits else np.nan

    mem = first(train >= 0.5, -1)
    circuit = first(test >= 0.2, mem) if not np.isnan(mem) else np.nan
    cleanup = first(test >= 0.3, circuit) if not np.isnan(circuit) else np.nan
    got = ds.phases.sel(phase=["memorisation", "circuit_formation", "cleanup"]).values
    np.testing.assert_array_equal(got, [mem, circuit, cleanup])
    assert not np.isnan(mem)  # 40 full-batch steps at lr 1e-2 memorise most of 29 pairs
    [line] = [x for x in summarize(tree) if "phases" in x]
    assert line.startswith(f"mod7 seed 0: phases: memorisation ends at step {mem:.0f}, ")


def test_pca_fit_on_the_past_never_sees_later_steps(results):
    ds = results.isel(seed=0)
    flat = ds.logits.values.reshape(ds.sizes["step"], -1)
    got = ds.pca_past.values  # (step, pc)
    assert np.isnan(got[0]).all()  # one checkpoint has no direction of variance
    for i in range(1, flat.shape[0]):
        past = flat[: i + 1] - flat[: i + 1].mean(0)
        u, s, _ = np.linalg.svd(past, full_matrices=False)
        expected = np.abs(u[i, :2] * s[:2])  # sign conventions aside
        np.testing.assert_allclose(np.abs(got[i, : min(2, i)]), expected[: min(2, i)], rtol=1e-6)
