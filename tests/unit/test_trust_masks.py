"""Loss-like and comparison metrics count the predictions of the prompt set's ``loss_mask``
by default, and ``mask: none`` every real one (issue 26, item 5).

On the previous-token task (whose ``loss_mask`` marks the predictions a model is trained on),
two differently initialised models are compared by ``kl_divergence``, ``logprob_diff`` and
``top1_agreement`` through their ``next_token_logprobs`` / ``token_logprobs`` cells, against
a numpy float64 computation from the raw logits restricted to the masked predictions."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from mispec.metrics.builtin.checkpoint_values import next_token_logprobs, token_logprobs
from mispec.metrics.builtin.comparisons import kl_divergence, logprob_diff, top1_agreement
from mispec.metrics.builtin.cross_patching import cross_model_patching
from mispec.metrics.builtin.interventions import head_ablation
from mispec.metrics.builtin.loss import accuracy, loss, per_token_loss
from mispec.metrics.builtin.neurons import neuron_ablation
from mispec.metrics.core import get_metric
from mispec.metrics.forward import run_forward
from mispec.tasks import make_task

HOOKS = ["next_logprob", "next_correct", "logits"]


@functools.cache
def bridge(seed: int):
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(
        d_model=32, d_head=8, n_layers=1, n_ctx=13, n_heads=4, d_vocab=7, d_mlp=32,
        normalization_type="LN", seed=seed,
    )  # fmt: skip
    b = TransformerBridge.boot_native(cfg)
    b.eval()
    return b


@functools.cache
def setup():
    ps = make_task("previous_token", {"vocab": 6, "length": 6}).prompt_set(10, seed=4)
    acts = [run_forward(bridge(s), torch.from_numpy(ps.tokens), HOOKS) for s in (1, 2)]
    return ps, acts


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def reference():
    """Per prediction ``[batch, pos-1]`` (prediction i: token i+1 from tokens 0..i): KL, the
    log-prob difference of the actual token, top-1 agreement; and the loss of side a."""
    ps, acts = setup()
    la, lb = (_log_softmax(a["logits"].numpy()) for a in acts)  # [batch, pos, vocab]
    kl = (np.exp(la) * (la - lb)).sum(-1)
    same = (la.argmax(-1) == lb.argmax(-1)).astype(float)
    tok = ps.tokens[:, 1:, None]
    ta = np.take_along_axis(la[:, :-1], tok, -1)[..., 0]
    tb = np.take_along_axis(lb[:, :-1], tok, -1)[..., 0]
    return ps.extras["loss_mask"].astype(bool), kl, ta - tb, same, -ta


def cells(fn, mask):
    ps, acts = setup()
    return fn(acts[0], ps, mask=mask), fn(acts[1], ps, mask=mask)


def test_the_previous_token_mask_leaves_out_half_the_predictions():
    m = reference()[0]
    assert 0 < m.sum() < m.size / 2  # the KL on the unmasked ones must not dilute the mean


@pytest.mark.parametrize("mask", ["auto", "none", "loss_mask"])
def test_comparisons_count_the_masked_predictions_by_default(mask):
    m, kl, diff, same, _ = reference()
    keep = np.ones_like(m) if mask == "none" else m
    # the distributions: also the last position's (it predicts the token after the prompt),
    # which no mask of next-token predictions counts
    keep_all = np.concatenate([keep, np.full((m.shape[0], 1), mask == "none")], axis=1)
    p, q = cells(next_token_logprobs, mask)
    a, b = cells(token_logprobs, mask)

    got_kl = kl_divergence(p, q)
    assert float(got_kl) == pytest.approx(kl[keep_all].mean(), rel=1e-5)
    assert float(top1_agreement(p, q)) == pytest.approx(same[keep_all].mean(), abs=1e-12)
    assert float(logprob_diff(a, b, per="mean")) == pytest.approx(diff[keep].mean(), rel=1e-5)
    # per token: NaN exactly where the mask leaves a prediction out (pos = predicted token)
    tokenwise = kl_divergence(p, q, per="token").values
    np.testing.assert_array_equal(np.isnan(tokenwise), ~keep_all)
    np.testing.assert_allclose(tokenwise[keep_all], kl[keep_all], rtol=1e-5, atol=1e-7)
    position = logprob_diff(a, b, per="position").values
    with np.errstate(invalid="ignore"):
        want = np.where(keep, diff, 0).sum(0) / keep.sum(0)
    np.testing.assert_allclose(position, want, rtol=1e-5, atol=1e-7)

    if mask != "none":  # the data tell the two apart beyond the tolerance above
        assert abs(kl[keep_all].mean() - kl.mean()) > 1e-4 * kl.mean()
    said = got_kl.attrs["mask"]
    assert said.startswith("none") if mask == "none" else said.startswith("loss_mask")
    assert said == p.attrs["mask"] == a.attrs["mask"]


@pytest.mark.parametrize("mask", ["auto", "none"])
def test_loss_like_metrics_take_the_same_mask(mask):
    ps, acts = setup()
    m, *_, ce = reference()
    keep = np.ones_like(m) if mask == "none" else m
    assert float(loss(acts[0], ps, mask=mask)) == pytest.approx(ce[keep].mean(), rel=1e-6)
    assert "mask" in loss(acts[0], ps, mask=mask).attrs
    correct = acts[0]["next_correct"].numpy()
    assert float(accuracy(acts[0], ps, mask=mask)) == pytest.approx(correct[keep].mean())
    ptl = per_token_loss(acts[0], ps, mask=mask).values
    np.testing.assert_array_equal(np.isnan(ptl), ~keep.any(0))


def test_every_loss_like_and_comparison_metric_defaults_to_the_loss_mask():
    """The class: every built-in with a ``mask`` arg defaults to ``auto``."""
    names = [
        "loss", "accuracy", "per_token_loss", "token_logprobs", "next_token_logprobs",
        "head_ablation", "neuron_ablation", "cross_model_patching",
    ]  # fmt: skip
    for name in names:
        args = {a.name: a.default for a in get_metric(name).args}
        assert args.get("mask") == "auto", name


def test_interventions_score_the_masked_predictions():
    """head_ablation / neuron_ablation / cross_model_patching baselines are the masked loss."""
    ps, acts = setup()
    want = float(loss(acts[0], ps))
    b = bridge(1)
    ha = head_ablation(b, ps)
    assert ha.attrs["baseline"] == pytest.approx(want, rel=1e-5)
    assert ha.attrs["mask"].startswith("loss_mask")
    na = neuron_ablation(b, ps, layer=0, neurons=[0])
    assert na.attrs["baseline"] == pytest.approx(want, rel=1e-5)
    z = run_forward(b, torch.from_numpy(ps.tokens), ["blocks.{layer}.attn.hook_z"])
    import xarray as xr

    source = xr.DataArray(
        z["blocks.{layer}.attn.hook_z"].numpy(), dims=("layer", "batch", "pos", "head", "d_head")
    )
    cp = cross_model_patching(b, ps, source, want, normalize=False)
    assert cp.attrs["loss_a"] == pytest.approx(want, rel=1e-5)
    assert cp.attrs["mask"].startswith("loss_mask")
