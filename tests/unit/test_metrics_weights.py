"""Weight metrics against direct computations: dense composition products, parameter norms,
an explicit real Fourier basis."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
import torch

from mispec.metrics.builtin.weights import (
    composition_score,
    embed_fourier,
    fourier_norms,
    weight_norm,
)

L, H, D, DH, V = 3, 2, 16, 4, 13


@functools.cache
def bridge():
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(
        d_model=D, d_head=DH, n_layers=L, n_ctx=8, n_heads=H, d_vocab=V,
        attn_only=True, normalization_type="LN", seed=3,
    )  # fmt: skip
    return TransformerBridge.boot_native(cfg)


def fro(m: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(m.double()))


@pytest.mark.parametrize("mode", ["Q", "K", "V"])
def test_composition_equals_dense_elhage_definition(mode):
    b = bridge()
    wq, wk, wv, wo = (w.detach().double() for w in (b.W_Q, b.W_K, b.W_V, b.W_O))
    ours = composition_score(b, mode=mode)
    assert ours.shape == (L, H, L, H)
    for s_l, s_h, d_l, d_h in itertools.product(range(L), range(H), range(L), range(H)):
        if s_l >= d_l:
            assert np.isnan(ours[s_l, s_h, d_l, d_h])
            continue
        ov = wv[s_l, s_h] @ wo[s_l, s_h]  # [d_model, d_model], row-vector convention
        qk = wq[d_l, d_h] @ wk[d_l, d_h].T
        other = {"Q": qk, "K": qk.T, "V": wv[d_l, d_h] @ wo[d_l, d_h]}[mode]
        expected = fro(ov @ other) / (fro(ov) * fro(other))
        assert ours[s_l, s_h, d_l, d_h] == pytest.approx(expected, rel=1e-4)


def test_composition_matches_bridge_method_and_is_in_unit_interval():
    b = bridge()
    ours = composition_score(b, mode="K")
    theirs = b.all_composition_scores("K").scores.detach().numpy()
    later = ~np.isnan(ours)
    np.testing.assert_allclose(ours[later], theirs[later], rtol=1e-5)
    assert np.all((ours[later] > 0) & (ours[later] <= 1))


def hand_folded_scores(wq, wk, wv, wo, ln_w, mode: str, center: bool) -> np.ndarray:
    """numpy, dense: fold ln1's scale into W_Q / W_K / W_V (``W[d, :] * w[d]``), centre them
    over d_model for a LayerNorm, then the Elhage score of every (src, dst) head pair."""
    n_layers, n_heads = wq.shape[:2]
    folded = []
    for w in (wq, wk, wv):
        w = w * ln_w[:, None, :, None]
        folded.append(w - w.mean(axis=2, keepdims=True) if center else w)
    fq, fk, fv = folded
    out = np.full((n_layers, n_heads, n_layers, n_heads), np.nan)
    for s_l, s_h, d_l, d_h in itertools.product(*(range(n) for n in out.shape)):
        if s_l >= d_l:
            continue
        ov = fv[s_l, s_h] @ wo[s_l, s_h]
        qk = fq[d_l, d_h] @ fk[d_l, d_h].T
        other = {"Q": qk, "K": qk.T, "V": fv[d_l, d_h] @ wo[d_l, d_h]}[mode]
        out[s_l, s_h, d_l, d_h] = np.linalg.norm(ov @ other) / (
            np.linalg.norm(ov) * np.linalg.norm(other)
        )
    return out


def weights_of(b) -> tuple[np.ndarray, ...]:
    return tuple(w.detach().double().numpy() for w in (b.W_Q, b.W_K, b.W_V, b.W_O))


@pytest.mark.parametrize("mode", ["Q", "K", "V"])
def test_folded_composition_equals_a_hand_fold_of_the_layer_norm(mode):
    """A model whose ln1 scales are far from 1 (a fresh bridge, scales drawn at random)."""
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(
        d_model=D, d_head=DH, n_layers=L, n_ctx=8, n_heads=H, d_vocab=V,
        attn_only=True, normalization_type="LN", seed=4,
    )  # fmt: skip
    b = TransformerBridge.boot_native(cfg)
    gen = torch.Generator().manual_seed(9)
    with torch.no_grad():
        for layer in range(L):
            b.blocks[layer].ln1.weight.copy_(torch.rand(D, generator=gen) * 2 + 0.1)
    sd = b.state_dict()
    ln_w = np.stack([sd[f"blocks.{layer}.ln1.weight"].double().numpy() for layer in range(L)])
    assert np.abs(ln_w - 1).max() > 0.5
    expected = hand_folded_scores(*weights_of(b), ln_w, mode, center=True)
    folded = composition_score(b, mode=mode, fold_ln=True)
    np.testing.assert_allclose(folded, expected, rtol=0, atol=1e-6)
    raw = composition_score(b, mode=mode)  # the default is the raw weights, unchanged
    np.testing.assert_allclose(
        raw, hand_folded_scores(*weights_of(b), np.ones_like(ln_w), mode, center=False), atol=1e-5
    )
    later = ~np.isnan(raw)
    assert np.abs(folded[later] - raw[later]).max() > 1e-3


def test_folded_composition_of_a_pythia_style_checkpoint(tmp_path):
    """GPT-NeoX (Pythia) from a local HF folder: its own trained-looking ln1 weights."""
    from transformer_lens.model_bridge import TransformerBridge

    try:
        from tests.helpers.tiny_neox import build_checkpoint_folder
    except ImportError:
        from helpers.tiny_neox import build_checkpoint_folder

    root = build_checkpoint_folder(tmp_path / "run", [100])
    b = TransformerBridge.boot_transformers(str(root / "step100"), device="cpu")
    sd = b.state_dict()
    n = b.cfg.n_layers
    ln_w = np.stack([sd[f"blocks.{layer}.ln1.weight"].double().numpy() for layer in range(n)])
    expected = hand_folded_scores(*weights_of(b), ln_w, "K", center=True)
    np.testing.assert_allclose(
        composition_score(b, mode="K", fold_ln=True), expected, rtol=0, atol=1e-6
    )


def test_weight_norm_groups_are_consistent_with_the_state_dict():
    b = bridge()
    sd = b.state_dict()
    total = float(torch.sqrt(sum((v.double() ** 2).sum() for v in sd.values())))
    out = weight_norm(b)
    assert list(out["component"].values) == ["total"]
    assert float(out.sel(component="total")) == pytest.approx(total, rel=1e-9)
    per_param = weight_norm(b, group="parameter")
    assert float(per_param.sel(component="blocks.1.attn.q.weight")) == pytest.approx(
        fro(sd["blocks.1.attn.q.weight"]), rel=1e-9
    )
    layers = weight_norm(b, group="layer")
    assert {"embed", "blocks.0", "blocks.2", "unembed"} <= set(layers["component"].values)
    assert float(np.sqrt((layers.values**2).sum())) == pytest.approx(total, rel=1e-9)


def real_fourier_basis(p: int) -> np.ndarray:
    """Orthonormal rows: constant, then cos/sin pairs per frequency (Nanda et al.)."""
    x = np.arange(p)
    rows, freqs = [np.ones(p) / np.sqrt(p)], [0]
    for k in range(1, p // 2 + 1):
        c = np.cos(2 * np.pi * k * x / p)
        rows.append(c / np.linalg.norm(c))
        freqs.append(k)
        if 2 * k != p:
            s = np.sin(2 * np.pi * k * x / p)
            rows.append(s / np.linalg.norm(s))
            freqs.append(k)
    return np.array(rows), np.array(freqs)


@pytest.mark.parametrize("p", [11, 12])
def test_fourier_norms_equal_projection_on_an_explicit_basis(p):
    basis, freqs = real_fourier_basis(p)
    np.testing.assert_allclose(basis @ basis.T, np.eye(p), atol=1e-12)
    emb = np.random.default_rng(p).normal(size=(p, 7))
    coeffs = basis @ emb  # [basis row, d]
    expected = [np.sqrt((coeffs[freqs == k] ** 2).sum()) for k in range(p // 2 + 1)]
    np.testing.assert_allclose(fourier_norms(emb), expected, rtol=1e-10)
    assert (fourier_norms(emb) ** 2).sum() == pytest.approx((emb**2).sum())  # Parseval


def test_a_single_key_frequency_is_found():
    p, k = 13, 4
    x = np.arange(p)
    emb = np.stack([np.cos(2 * np.pi * k * x / p + 0.3), 2 * np.sin(2 * np.pi * k * x / p)], 1)
    norms = fourier_norms(emb)
    assert int(np.argmax(norms)) == k
    np.testing.assert_allclose(np.delete(norms, k), 0.0, atol=1e-12)


def test_embed_fourier_reads_the_bridge_embedding():
    b = bridge()
    out = embed_fourier(b, p=11)
    assert out.dims == ("freq",) and list(out["freq"].values) == list(range(6))
    np.testing.assert_allclose(out.values, fourier_norms(b.W_E.detach().double().numpy()[:11]))
    assert embed_fourier(b).sizes["freq"] == V // 2 + 1
