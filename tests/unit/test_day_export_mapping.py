"""The TransformerLens-native → GPT-2 mapping (`mispec.models.hf_gpt2`), checked against
`transformers` itself: a freshly booted native bridge of each exportable architecture and its
mapped weights loaded into `GPT2LMHeadModel` give the same logits; every architecture GPT-2
cannot represent exactly is refused with its reason."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from mispec.models import hf_gpt2, native

BASE = dict(d_model=16, d_head=4, n_layers=2, n_heads=4, n_ctx=10, d_vocab=13, seed=3)

EXPORTABLE = [
    dict(attn_only=True, normalization_type="LN", act_fn="relu"),
    dict(attn_only=False, d_mlp=24, normalization_type="LN", act_fn="relu"),
    dict(attn_only=False, d_mlp=24, normalization_type="LNPre", act_fn="gelu_new"),
    dict(attn_only=False, d_mlp=24, normalization_type="LN", act_fn="gelu"),
    dict(attn_only=False, d_mlp=8, normalization_type="LN", act_fn="silu"),
    dict(attn_only=True, normalization_type="LNPre", act_fn="relu"),
]


def _as_gpt2(bridge) -> GPT2LMHeadModel:
    cfg = bridge.cfg
    assert hf_gpt2.gpt2_refusal(cfg) is None
    config = hf_gpt2.gpt2_config(cfg, dtype="float32")
    model = GPT2LMHeadModel(GPT2Config(**config)).eval()
    state = hf_gpt2.gpt2_state(bridge.state_dict(), cfg)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith("attn.bias") for k in missing), missing
    return model


@pytest.mark.parametrize(
    "arch",
    EXPORTABLE,
    ids=lambda a: f"{a['normalization_type']}-{'attn' if a['attn_only'] else a['act_fn']}",
)
def test_a_mapped_native_model_computes_the_same_logits_in_gpt2(arch):
    bridge = native.boot({**BASE, "positional_embedding_type": "standard", **arch})
    with torch.no_grad():  # non-trivial norm parameters and biases, as a trained model has
        for name, p in bridge.named_parameters():
            if "ln" in name or name.endswith("bias"):
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(len(name))))
    model = _as_gpt2(bridge)
    tokens = torch.randint(0, 13, (3, 10), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = bridge(tokens), model(tokens).logits
    assert ours.abs().max() > 0.1  # logits that could differ
    assert (ours - theirs).abs().max().item() < 1e-5


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"normalization_type": None}, "no normalization"),
        ({"normalization_type": "RMS"}, "normalization is RMS"),
        ({"normalization_type": "RMSPre"}, "normalization is RMSPre"),
        ({"positional_embedding_type": "rotary"}, "positions are rotary"),
        ({"d_head": 8}, "n_heads * d_head = 4 * 8 != d_model = 16"),
        ({"act_fn": "solu_ln"}, "activation solu_ln has no exact GPT-2 form"),
        ({"gated_mlp": True}, "MLP is gated"),
        ({"n_key_value_heads": 2}, "groups key/value heads"),
        ({"attn_scale": 3.0}, "attention scale is 3.0"),
        ({"output_logits_soft_cap": 30.0}, "soft-caps"),
        ({"final_rms": True}, "final norm is RMSNorm"),
    ],
)
def test_what_gpt2_cannot_represent_is_refused_with_its_reason(change, reason):
    kwargs = {
        **BASE,
        "attn_only": False,
        "d_mlp": 24,
        "normalization_type": "LN",
        "act_fn": "relu",
        "positional_embedding_type": "standard",
        **change,
    }
    refusal = hf_gpt2.gpt2_refusal(native.bridge_config(kwargs))
    assert refusal is not None and reason in refusal


def test_a_non_zero_unembedding_bias_is_refused():
    bridge = native.boot({**BASE, "attn_only": True, "normalization_type": "LN"})
    state = bridge.state_dict()
    assert torch.all(state["unembed.bias"] == 0)
    hf_gpt2.gpt2_state(state, bridge.cfg)  # zero: fine
    state["unembed.bias"] = state["unembed.bias"] + 0.5
    with pytest.raises(ValueError, match="non-zero bias"):
        hf_gpt2.gpt2_state(state, bridge.cfg)


def test_an_attention_only_model_gets_an_exactly_zero_mlp():
    bridge = native.boot({**BASE, "attn_only": True, "normalization_type": "LN"})
    model = _as_gpt2(bridge)
    x = torch.randn(2, 5, 16) * 100
    with torch.no_grad():
        out = [block.mlp(block.ln_2(x)) for block in model.transformer.h]
    assert all(torch.equal(o, torch.zeros_like(o)) for o in out)
