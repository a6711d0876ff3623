"""Losses below float32's spacing keep their value (issue 26, item 10).

A tiny model whose unembedding is scaled up is so sure of its next token (logit margins of
~40-75 nats) that ``logit - logsumexp`` in float32 is exactly 0 for most predictions; the
loss-like metrics must equal an independent float64 computation (math.log1p, math.fsum)
to 1e-6 relative, and the summary must never print ``-0.0000``."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
import xarray as xr

from mispec.metrics.builtin._common import next_token_loss
from mispec.metrics.builtin.checkpoint_values import next_token_logprobs, token_logprobs
from mispec.metrics.builtin.loss import loss, per_token_loss
from mispec.metrics.forward import run_forward
from mispec.prompts.core import PromptSet
from mispec.results.summary import summarize


@functools.cache
def confident_bridge():
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(
        d_model=16, d_head=8, n_layers=1, n_ctx=10, n_heads=2, d_vocab=8, d_mlp=32,
        normalization_type="LN", seed=0,
    )  # fmt: skip
    b = TransformerBridge.boot_native(cfg)
    with torch.no_grad():
        b.unembed.W_U.mul_(30.0)  # logits of tens of nats apart
    b.eval()
    return b


@functools.cache
def setup():
    b = confident_bridge()
    toks = torch.randint(0, 8, (6, 10), generator=torch.Generator().manual_seed(0))
    logits = run_forward(b, toks, ["logits"])["logits"]
    # the tokens the model is sure of: each next token its argmax
    greedy = toks.clone()
    for i in range(1, 10):
        with torch.no_grad():
            greedy[:, i] = b(greedy[:, :i])[:, -1].argmax(-1)
    logits = run_forward(b, greedy, ["logits"])["logits"]
    ps = PromptSet(tokens=greedy.numpy(), extras={})
    acts = run_forward(b, greedy, ["next_logprob", "logits"])
    return ps, acts, logits.double().numpy(), greedy.numpy()


def exact_losses(logits: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """``-log p(next)`` per prediction from the logits, in float64 with math.log1p (row by
    row: ``log p = (x_t - m) - log1p(sum over the others of exp(x - m))``)."""
    out = np.empty((tokens.shape[0], tokens.shape[1] - 1))
    for b in range(tokens.shape[0]):
        for i in range(tokens.shape[1] - 1):
            x = [float(v) for v in logits[b, i]]
            top = max(range(len(x)), key=lambda k: x[k])
            rest = math.fsum(math.exp(v - x[top]) for k, v in enumerate(x) if k != top)
            out[b, i] = -((x[int(tokens[b, i + 1])] - x[top]) - math.log1p(rest))
    return out


def float32_losses(logits: np.ndarray, tokens: np.ndarray) -> torch.Tensor:
    """What ``next_logprob`` was before: ``logsumexp - logit`` in float32."""
    x = torch.from_numpy(logits).float()[:, :-1]
    return x.logsumexp(-1) - x.gather(-1, torch.from_numpy(tokens[:, 1:, None])).squeeze(-1)


def test_a_confident_model_loss_equals_the_float64_computation():
    ps, acts, logits, toks = setup()
    want = exact_losses(logits, toks)
    f32 = float32_losses(logits, toks)
    assert (f32 == 0).float().mean() > 0.25 and (want > 0).all()  # float32 rounds them to 0
    assert float(loss(acts, ps)) == pytest.approx(want.mean(), rel=1e-6)
    np.testing.assert_allclose(per_token_loss(acts, ps).values, want.mean(0), rtol=1e-6)


@functools.cache
def hand_made():
    """Logits whose next token leads the others by 20 … 74 nats (losses 1e-32 … 2e-9)."""
    rng = np.random.default_rng(0)
    n, seq, vocab = 5, 12, 16
    tokens = rng.integers(0, vocab, size=(n, seq))
    logits = rng.normal(size=(n, seq, vocab))
    margin = rng.uniform(20.0, 74.0, size=(n, seq - 1))
    rows, cols = np.meshgrid(np.arange(n), np.arange(seq - 1), indexing="ij")
    logits[rows, cols, tokens[:, 1:]] = logits[:, :-1].max(-1) + margin
    logits = logits.astype(np.float32)
    from mispec.metrics.forward import pseudo_hooks

    t_logits, t_tokens = torch.from_numpy(logits), torch.from_numpy(tokens)
    acts = {
        k: v.float()
        for k, v in pseudo_hooks(t_logits, t_tokens, ["next_logprob", "logits"]).items()
    }
    return PromptSet(tokens=tokens, extras={}), acts, logits.astype(np.float64), tokens


def test_losses_below_float32_spacing_keep_their_value():
    ps, acts, logits, toks = hand_made()
    want = exact_losses(logits, toks)
    assert (float32_losses(logits, toks) == 0).all()  # every one is 0 in float32 ...
    assert want.max() < 3e-9 and want.min() > 1e-33  # ... and none truly is
    assert float(loss(acts, ps)) == pytest.approx(want.mean(), rel=1e-6)
    np.testing.assert_allclose(per_token_loss(acts, ps).values, want.mean(0), rtol=1e-6)
    np.testing.assert_allclose(-token_logprobs(acts, ps).values, want, rtol=1e-6)
    full = next_token_logprobs(acts, ps).values[:, :-1]  # [batch, pos-1, vocab]
    chosen = np.take_along_axis(full, toks[:, 1:, None], -1)[..., 0]
    np.testing.assert_allclose(-chosen.astype(np.float64), want, rtol=1e-6)
    w = torch.ones(want.shape)
    ablation_loss = next_token_loss(torch.from_numpy(logits).float(), torch.from_numpy(toks), w)
    assert float(ablation_loss) == pytest.approx(want.mean(), rel=1e-6)


def test_the_summary_shows_a_tiny_loss_and_never_minus_zero():
    ps, acts, logits, toks = setup()
    value = float(loss(acts, ps))
    ds = xr.Dataset(
        {
            "loss": xr.DataArray(
                [[value, 0.0, -0.0]], dims=("seed", "step"), attrs={"metric_fn": "loss"}
            ).isel(step=[0]),
            "zero": xr.DataArray([[-0.0]], dims=("seed", "step"), attrs={"metric_fn": "loss"}),
        },
        coords={"seed": [0], "step": [5]},
    )
    lines = summarize(xr.DataTree.from_dict({"/toy": ds}))
    text = "\n".join(lines)
    assert "-0" not in text, text
    assert f"seed 0 {value:.3g}" in text and "seed 0 0.0000" in text, text
