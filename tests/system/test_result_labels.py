"""Issue 14 item 6: a result's per-cell labels (head_ablation's baseline, activation_patching's
clean/corrupt logit differences, pca_over_steps' explained variance) are kept for every seed
and step as data variables, never copied from the first cell onto the whole array."""

from __future__ import annotations

import numpy as np
import pytest

import mispec

SPEC = """\
mispec: 1
name: labels
models:
  toy:
    train:
      task: toy_ioi
      task_args: {n_names: 6}
      arch: {n_layers: 2, n_heads: 2, d_model: 16, d_head: 8, attn_only: true}
      steps: 40
      batch_size: 16
    seeds: [0, 1]
    checkpoints: {steps: [0, 20, 40]}
prompts:
  ioi:
    generator: toy_ioi
    args: {n: 8, n_names: 6}
    seed: 1
metrics:
  loss: {fn: loss, prompts: ioi}
  ld: {fn: logit_diff, prompts: ioi, args: {position: answer_pos}}
  ablation: {fn: head_ablation, prompts: ioi}
  patching: {fn: activation_patching, prompts: ioi}
  pca: {fn: pca_over_steps, inputs: {series: ablation}, args: {k: 2}}
"""


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    project = tmp_path_factory.mktemp("labels")
    (project / ".mispec").mkdir()
    spec = project / "spec.yaml"
    spec.write_text(SPEC)
    return mispec.run(spec, progress=False).open()["toy"].to_dataset()


def test_head_ablation_baseline_is_kept_per_seed_and_step(ds):
    base = ds["ablation__baseline"]
    assert base.dims == ("seed", "step")
    # the baseline is the unablated loss: the loss metric, computed independently
    np.testing.assert_allclose(base.values, ds["loss"].values, rtol=1e-5)
    assert len(np.unique(base.values)) == base.size  # really a value per cell
    assert "baseline" not in ds["ablation"].attrs


def test_activation_patching_logit_differences_are_kept_per_cell(ds):
    clean = ds["patching__ld_clean"]
    assert clean.dims == ("seed", "step")
    np.testing.assert_allclose(clean.values, ds["ld"].values, rtol=1e-5, atol=1e-6)
    assert ds["patching__ld_corrupt"].dims == ("seed", "step")
    assert "ld_clean" not in ds["patching"].attrs
    assert ds["patching"].attrs["patched"] == "blocks.{layer}.attn.hook_z"  # constant stays


def test_pca_explained_variance_is_kept_per_seed(ds):
    ratio = ds["pca__explained_variance_ratio"]
    var = ds["pca__explained_variance"]
    assert ratio.dims == ("seed", "pc") and var.dims == ("seed", "pc")
    for seed in ds.seed.values:
        data = ds["ablation"].sel(seed=seed).transpose("step", ...).values.reshape(3, -1)
        s = np.linalg.svd(data - data.mean(0), compute_uv=False)
        np.testing.assert_allclose(var.sel(seed=seed).values, s[:2] ** 2 / 2, rtol=1e-6)
        np.testing.assert_allclose(
            ratio.sel(seed=seed).values, s[:2] ** 2 / (s**2).sum(), rtol=1e-6
        )
    assert not np.allclose(var.sel(seed=0).values, var.sel(seed=1).values)
