"""Weight change from a reference checkpoint, against direct computations on state dicts."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from mispec.errors import UserError
from mispec.metrics.builtin.weight_change import (
    head_weight_change,
    weight_change,
    weight_vector,
)


@functools.cache
def bridge(seed: int, d_model: int = 16):
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(
        d_model=d_model, d_head=4, n_layers=2, n_ctx=8, n_heads=3, d_vocab=11,
        attn_only=False, d_mlp=32, normalization_type="LN", seed=seed,
    )  # fmt: skip
    return TransformerBridge.boot_native(cfg)


def state(seed: int) -> dict[str, torch.Tensor]:
    return {k: v.double() for k, v in bridge(seed).state_dict().items() if v.is_floating_point()}


def test_weight_change_per_component_and_parameter():
    ref, now = state(0), state(1)
    got = weight_change(bridge(1), weight_vector(bridge(0)), group="parameter")
    assert list(got.component.values) == list(now)
    for k in now:
        expected = float((now[k] - ref[k]).norm() / ref[k].norm()) if ref[k].norm() else np.nan
        if np.isnan(expected):
            assert not np.isfinite(got.sel(component=k).item()), k
        else:
            assert got.sel(component=k).item() == pytest.approx(expected, rel=1e-5), k
    layers = weight_change(bridge(1), weight_vector(bridge(0)))
    block = [k for k in now if k.startswith("blocks.1.")]
    num = sum(float(((now[k] - ref[k]) ** 2).sum()) for k in block)
    den = sum(float((ref[k] ** 2).sum()) for k in block)
    assert layers.sel(component="blocks.1").item() == pytest.approx((num / den) ** 0.5, rel=1e-5)
    assert list(layers.component.values) == [
        "embed",
        "pos_embed",
        "blocks.0",
        "blocks.1",
        "ln_final",
        "unembed",
    ]
    # against itself: no change anywhere
    assert np.all(weight_change(bridge(0), weight_vector(bridge(0))).values == 0)


def test_head_weight_change_reads_each_heads_slices():
    ref, now = state(0), state(1)
    got = head_weight_change(bridge(1), weight_vector(bridge(0)))
    assert got.dims == ("layer", "head") and got.shape == (2, 3)
    for layer in range(2):
        for head in range(3):
            rows = slice(4 * head, 4 * head + 4)
            b = f"blocks.{layer}.attn"
            pieces = [(f"{b}.{p}.weight", (rows, slice(None))) for p in "qkv"]
            pieces += [(f"{b}.{p}.bias", (rows,)) for p in "qkv"]
            pieces.append((f"{b}.o.weight", (slice(None), rows)))
            num = sum(float(((now[k][i] - ref[k][i]) ** 2).sum()) for k, i in pieces)
            den = sum(float((ref[k][i] ** 2).sum()) for k, i in pieces)
            assert got.sel(layer=layer, head=head).item() == pytest.approx(
                (num / den) ** 0.5, rel=1e-5
            )


def test_a_reference_of_another_architecture_is_refused():
    with pytest.raises(UserError, match="the reference"):
        weight_change(bridge(1), weight_vector(bridge(0, d_model=12)))
