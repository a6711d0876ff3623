"""Per-head weight change from a reference checkpoint, against direct computations."""

from __future__ import annotations

import functools

import pytest
import torch

from mispec.errors import UserError
from mispec.metrics.builtin.weight_change import head_weight_change
from mispec.metrics.builtin.weight_comparisons import parameters


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


def test_head_weight_change_reads_each_heads_slices():
    ref, now = state(0), state(1)
    got = head_weight_change(bridge(1), parameters(bridge(0)))
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
            expected = (num / den) ** 0.5
            assert got.sel(layer=layer, head=head).item() == pytest.approx(expected, rel=1e-5)
    # against itself: no head moved
    assert (head_weight_change(bridge(0), parameters(bridge(0))).values == 0).all()


def test_a_reference_of_another_architecture_is_refused():
    with pytest.raises(UserError, match="another shape"):
        head_weight_change(bridge(1), parameters(bridge(0, d_model=12)))
