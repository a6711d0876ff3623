"""Grokking progress measures against independent numpy computations: least-squares
projections onto explicit cos / sin vectors (no Fourier basis, no orthogonality assumed), a
pairwise Gini coefficient and numpy's FFT."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import xarray as xr

from mispec.errors import PromptError, UserError
from mispec.metrics.builtin.fourier import neuron_frequency_counts
from mispec.metrics.builtin.grokking import (
    excluded_loss,
    fourier_sparsity,
    key_frequencies,
    restricted_loss,
)
from mispec.metrics.builtin.phases import logits as logits_metric
from mispec.tasks import make_task

P = 11


def table_prompts(p: int = P, train_frac: float = 0.5):
    return make_task("modular_addition", {"p": p, "train_frac": train_frac}).prompt_set(None, 0)


def np_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    lse = np.log(np.sum(np.exp(logits - logits.max(1, keepdims=True)), 1)) + logits.max(1)
    return float(np.mean(lse - logits[np.arange(len(labels)), labels]))


def lstsq_part(y: np.ndarray, p: int, freqs: list[int]) -> np.ndarray:
    """Projection of each column of ``y [p*p, out]`` onto span{cos, sin(2πk(a+b)/p)}."""
    a, b = np.divmod(np.arange(p * p), p)
    cols = []
    for k in freqs:
        cols += [np.cos(2 * np.pi * k * (a + b) / p), np.sin(2 * np.pi * k * (a + b) / p)]
    m = np.stack(cols, axis=1)
    coef, *_ = np.linalg.lstsq(m, y, rcond=None)
    return m @ coef


def freq_series(keys: list[int], p: int = P) -> xr.DataArray:
    f = np.arange(1, (p - 1) // 2 + 1)
    return xr.DataArray(np.isin(f, keys).astype(float), dims=("freq",), coords={"freq": f})


@pytest.mark.parametrize(("split", "keys"), [("all", [2, 3]), ("train", [1]), ("test", [4, 5])])
def test_restricted_and_excluded_loss_equal_a_lstsq_projection(split, keys):
    prompts = table_prompts()
    rng = np.random.default_rng(0)
    full = rng.normal(size=(P * P, 4, P + 1)) * 3
    acts = {"logits": torch.tensor(full, dtype=torch.float32)}
    logits = full.astype(np.float32).astype(np.float64)[:, 2, :P]  # at '=', number tokens
    answer = np.asarray(prompts.extras["answer"])
    train = np.asarray(prompts.extras["train_mask"])
    rows = {"all": np.ones_like(train), "train": train, "test": ~train}[split]
    part = lstsq_part(logits, P, keys)
    restricted = part + (logits - part).mean(axis=0)
    freqs = freq_series(keys)
    got_r = restricted_loss(acts, prompts, freqs, split=split)
    got_e = excluded_loss(acts, prompts, freqs, split=split)
    table = logits_metric(acts, prompts)  # [batch, vocab] at '=', extras as coordinates
    np.testing.assert_allclose(table.values[:, :P], logits, rtol=0, atol=0)
    np.testing.assert_array_equal(table["train_mask"].values, train)
    assert got_r == pytest.approx(np_cross_entropy(restricted[rows], answer[rows]), abs=1e-5)
    assert got_e == pytest.approx(np_cross_entropy((logits - part)[rows], answer[rows]), abs=1e-5)


def test_a_perfect_fourier_model_has_low_restricted_and_high_excluded_loss():
    """Logits ``sum_k cos(w_k(a+b-c))`` (the paper's algorithm) are all key-frequency
    directions: keeping them keeps the loss, removing them leaves chance (log p)."""
    prompts = table_prompts()
    a, b = np.divmod(np.arange(P * P), P)
    c = np.arange(P)
    logits = sum(8 * np.cos(2 * np.pi * k * (a[:, None] + b[:, None] - c) / P) for k in (1, 3))
    full = np.zeros((P * P, 4, P + 1))
    full[:, 2, :P] = logits
    acts = {"logits": torch.tensor(full)}
    base = np_cross_entropy(logits, np.asarray(prompts.extras["answer"]))
    assert restricted_loss(acts, prompts, freq_series([1, 3])) == pytest.approx(base, abs=1e-5)
    excluded = excluded_loss(acts, prompts, freq_series([1, 3]), split="all")
    assert excluded == pytest.approx(np.log(P), abs=1e-5)


def test_key_frequencies_equal_a_lstsq_share_of_variance():
    p, n = 13, 40
    a, b = np.divmod(np.arange(p * p), p)
    rng = np.random.default_rng(1)
    truth = rng.integers(1, 7, size=n)
    x = np.stack(
        [
            np.maximum(np.cos(2 * np.pi * k * (a + b) / p + rng.uniform(0, 6)), 0)
            * rng.uniform(1, 3)
            + rng.normal(size=p * p) * rng.uniform(0.0, 0.8)
            for k in truth
        ],
        axis=1,
    )
    x[:, 0] = 0.0  # a dead neuron counts nowhere
    counts, explained = neuron_frequency_counts(x, p, min_share=0.6)
    # independent: share of each neuron's centred variance in span{cos/sin(wa), cos/sin(wb),
    # their four products}, fitted by least squares on explicit vectors
    expected, live = np.zeros(6), 0
    for j in range(n):
        y = x[:, j] - x[:, j].mean()
        if not np.any(y):
            continue
        live += 1
        shares = []
        for k in range(1, 7):
            w = 2 * np.pi * k / p
            ca, sa, cb, sb = np.cos(w * a), np.sin(w * a), np.cos(w * b), np.sin(w * b)
            m = np.stack([ca, sa, cb, sb, ca * cb, ca * sb, sa * cb, sa * sb], axis=1)
            coef, *_ = np.linalg.lstsq(m, y, rcond=None)
            shares.append(np.sum((m @ coef) ** 2) / np.sum(y**2))
        if max(shares) >= 0.6:
            expected[int(np.argmax(shares))] += 1
    np.testing.assert_array_equal(counts, expected)
    assert explained == pytest.approx(expected.sum() / live, abs=1e-12)
    assert expected.sum() > n / 3  # the test exercises both sides of the threshold
    assert expected.sum() < live


def test_key_frequencies_reads_the_neurons_at_the_answer_position():
    p = 7
    prompts = table_prompts(p)
    a, b = np.divmod(np.arange(p * p), p)
    post = np.random.default_rng(2).normal(size=(1, p * p, 4, 3))
    post[0, :, 2, :] = np.stack([np.cos(2 * np.pi * 2 * (a + b) / p)] * 3, axis=1)
    out = key_frequencies({"blocks.{layer}.mlp.hook_post": torch.tensor(post)}, prompts)
    assert out.dims == ("freq",)
    np.testing.assert_array_equal(out["freq"].values, [1, 2, 3])
    np.testing.assert_array_equal(out.values, [0, 3, 0])


def test_progress_measures_refuse_a_prompt_set_that_is_not_the_table():
    prompts = table_prompts()
    shuffled = type(prompts)(
        tokens=prompts.tokens[::-1].copy(),
        extras={k: v[::-1].copy() for k, v in prompts.extras.items()},
        meta=prompts.meta,
        has_bos=False,
    )
    acts = {"logits": torch.zeros(P * P, 4, P + 1)}
    with pytest.raises(PromptError, match="row-major"):
        restricted_loss(acts, shuffled, freq_series([1]))
    with pytest.raises(PromptError, match="row-major"):
        key_frequencies({"blocks.{layer}.mlp.hook_post": torch.zeros(1, P * P, 4, 3)}, shuffled)
    with pytest.raises(UserError, match="outside"):
        restricted_loss(acts, prompts, freq_series([5]).assign_coords(freq=[1, 2, 3, 4, 9]))


@functools.cache
def bridge(p: int = P):
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(
        d_model=16, d_head=4, n_layers=1, n_ctx=4, n_heads=2, d_vocab=p + 1, d_mlp=24,
        normalization_type=None, act_fn="relu", seed=3,
    )  # fmt: skip
    return TransformerBridge.boot_native(cfg)


def np_gini(x: np.ndarray) -> float:
    """Mean absolute difference over twice the mean."""
    return float(np.abs(x[:, None] - x[None, :]).sum() / (2 * x.size**2 * x.mean()))


def np_fourier_norms(m: np.ndarray) -> np.ndarray:
    """Norm of each real Fourier basis coefficient of ``m [p, d]`` along axis 0 (odd p)."""
    p = m.shape[0]
    f = np.fft.fft(m, axis=0)
    out = [np.linalg.norm(f[0].real) / np.sqrt(p)]
    for k in range(1, (p - 1) // 2 + 1):
        out += [np.linalg.norm(f[k].real), np.linalg.norm(f[k].imag)]
    return np.array(out) * np.array([1.0] + [np.sqrt(2 / p)] * (p - 1))


def test_fourier_sparsity_equals_gini_of_numpy_fft_norms():
    bri = bridge()
    out = fourier_sparsity(bri, p=P)
    w_e = bri.W_E.detach().double().numpy()[:P]
    w_l = bri.W_out.detach().double().numpy()[0] @ bri.W_U.detach().double().numpy()[:, :P]
    assert list(out["component"].values) == ["embed", "neuron_logit"]
    assert float(out.sel(component="embed")) == pytest.approx(
        np_gini(np_fourier_norms(w_e)), abs=1e-5
    )
    assert float(out.sel(component="neuron_logit")) == pytest.approx(
        np_gini(np_fourier_norms(w_l.T)), abs=1e-5
    )
    # one frequency only: Gini (n - 2)/n for two equal non-zero of n values
    norms = np.zeros(P)
    norms[[3, 4]] = 1.0
    assert np_gini(norms) == pytest.approx((P - 2) / P)


def test_flat_weights_is_every_parameter_once():
    from mispec.metrics.builtin.phases import flat_weights
    from mispec.metrics.builtin.weights import weight_norm

    bri = bridge()
    flat = flat_weights(bri)
    total = float(weight_norm(bri).sel(component="total"))
    assert float(np.linalg.norm(flat.values)) == pytest.approx(total, rel=1e-12)
    mlp = flat_weights(bri, include=["blocks.0.mlp"])
    sizes = {n: v.numel() for n, v in bri.state_dict().items() if n.startswith("blocks.0.mlp")}
    assert mlp.sizes["param"] == sum(sizes.values()) and mlp.attrs["parameters"] == list(sizes)
    with pytest.raises(UserError, match="no parameter"):
        flat_weights(bri, include=["nothing"])
