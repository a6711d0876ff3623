"""Direct logit attribution and the logit lens against TransformerLens's own DLA (on a
compatibility-mode copy of the same weights) and against a hand computation on the cache."""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
import torch

from mispec.metrics.builtin.dla import direct_logit_attribution, logit_lens
from mispec.prompts.core import PromptSet

N_LAYERS, N_HEADS, VOCAB, SEQ, BATCH = 2, 4, 20, 7, 5


@functools.cache
def bridge(attn_only: bool = False):
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(
        d_model=32, d_head=8, n_layers=N_LAYERS, n_ctx=16, n_heads=N_HEADS, d_vocab=VOCAB,
        d_mlp=None if attn_only else 64, act_fn="gelu", attn_only=attn_only,
        normalization_type="LN", seed=3,
    )  # fmt: skip
    b = TransformerBridge.boot_native(cfg)
    with torch.no_grad():  # non-trivial LayerNorm and unembedding biases
        gen = torch.Generator().manual_seed(0)
        for name, p in b.named_parameters():
            # LayerNorm scales and the final norm's bias, b_U: not the blocks' LayerNorm biases,
            # which TL's processing would move (through W_V, as a value bias) into b_O
            block_bias = "layers." in name and "ln" in name and name.endswith("bias")
            if ("ln" in name or "unembed.bias" in name) and not block_bias:
                p.add_(torch.randn(p.shape, generator=gen) * 0.3)
    b.eval()
    return b


@functools.cache
def prompts() -> PromptSet:
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, VOCAB, (BATCH, SEQ), generator=gen)
    answer = torch.randint(0, VOCAB, (BATCH,), generator=gen)
    wrong = (answer + 1 + torch.randint(0, VOCAB - 1, (BATCH,), generator=gen)) % VOCAB
    return PromptSet(
        tokens=tokens.numpy(), extras={"answer": answer.numpy(), "wrong_answer": wrong.numpy()}
    )


def logit_diffs(b) -> torch.Tensor:
    ps = prompts()
    with torch.no_grad():
        last = b(torch.from_numpy(ps.tokens))[:, -1]
    a, w = torch.from_numpy(ps.extras["answer"]), torch.from_numpy(ps.extras["wrong_answer"])
    return last.gather(-1, a[:, None])[:, 0] - last.gather(-1, w[:, None])[:, 0]


def test_dla_per_head_equals_transformer_lens_and_sums_to_the_logit_diff():
    from transformer_lens.tools.analysis import direct_logit_attribution as tl_dla

    b = bridge()
    ours = direct_logit_attribution(b, prompts(), per="head")
    folded = copy.deepcopy(b)
    # TL's DLA needs the final LayerNorm folded in; its processing also moves each head's
    # value bias (and ln1's bias through W_V) into b_O: both zero here, like for like
    folded.enable_compatibility_mode()
    ps = prompts()
    ans, wrong = torch.from_numpy(ps.extras["answer"]), torch.from_numpy(ps.extras["wrong_answer"])
    res = tl_dla(folded, torch.from_numpy(ps.tokens), ans, wrong, unit="head")
    tl_heads = res.attribution[: N_LAYERS * N_HEADS].mean(-1).reshape(N_LAYERS, N_HEADS)
    assert res.labels[: N_LAYERS * N_HEADS][N_HEADS + 2] == "L1H2"
    np.testing.assert_allclose(ours.values, tl_heads.detach().numpy(), atol=1e-5)
    # per component too: TL's labels embed, pos_embed, 0_attn_out, 0_mlp_out, 1_attn_out, ...
    comp = tl_dla(folded, torch.from_numpy(ps.tokens), ans, wrong, unit="component")
    tl_comp = comp.attribution.mean(-1).detach().numpy()
    mine = direct_logit_attribution(b, ps, per="component")
    assert comp.labels[2:4] == ["0_attn_out", "0_mlp_out"]
    np.testing.assert_allclose(mine.values.ravel(), tl_comp[2:], atol=1e-5)
    assert mine.attrs["embed"] == pytest.approx(float(tl_comp[0] + tl_comp[1]), abs=1e-5)
    ld = float(logit_diffs(b).mean())
    assert ours.attrs["logit_diff"] == pytest.approx(ld, abs=1e-5)
    assert float(ours.sum()) + ours.attrs["remainder"] == pytest.approx(ld, abs=1e-5)
    assert np.abs(ours.values).max() > 0.05  # not a trivially zero attribution


def test_dla_per_component_by_hand_and_complete():
    """By hand: the residual parts from the cache, centred, divided by the final scale, dotted
    with ln_final.w * (W_U[:, a] - W_U[:, b])."""
    b, ps = bridge(), prompts()
    ours = direct_logit_attribution(b, ps, per="component")
    with torch.no_grad():
        _, cache = b.run_with_cache(torch.from_numpy(ps.tokens))
    a, w = torch.from_numpy(ps.extras["answer"]), torch.from_numpy(ps.extras["wrong_answer"])
    u = ((b.W_U[:, a] - b.W_U[:, w]).T * b.ln_final.weight).detach()  # [batch, d]
    scale = cache["ln_final.hook_scale"][:, -1, 0]

    def direct(x):  # x: [batch, pos, d]
        x = x[:, -1]
        return float((((x - x.mean(-1, keepdim=True)) / scale[:, None]) * u).sum(-1).mean())

    for layer in range(N_LAYERS):
        assert ours.sel(layer=layer, component="attn") == pytest.approx(
            direct(cache[f"blocks.{layer}.hook_attn_out"]), abs=1e-5
        )
        assert ours.sel(layer=layer, component="mlp") == pytest.approx(
            direct(cache[f"blocks.{layer}.hook_mlp_out"]), abs=1e-5
        )
    embed = direct(cache["hook_embed"] + cache["hook_pos_embed"])
    assert ours.attrs["embed"] == pytest.approx(embed, abs=1e-5)
    bias = ((b.W_U[:, a] - b.W_U[:, w]).T @ b.ln_final.bias + b.b_U[a] - b.b_U[w]).detach()
    assert ours.attrs["remainder"] == pytest.approx(float(bias.mean()), abs=1e-5)
    total = float(ours.sum()) + ours.attrs["embed"] + ours.attrs["remainder"]
    assert total == pytest.approx(float(logit_diffs(b).mean()), abs=1e-5)


def test_dla_attention_only_has_no_mlp_and_still_sums():
    b = bridge(attn_only=True)
    comp = direct_logit_attribution(b, prompts(), per="component")
    assert np.isnan(comp.sel(component="mlp")).all()
    heads = direct_logit_attribution(b, prompts(), per="head", target="logit")
    ps = prompts()
    with torch.no_grad():
        logit = b(torch.from_numpy(ps.tokens))[:, -1].gather(
            -1, torch.from_numpy(ps.extras["answer"])[:, None]
        )
    assert float(heads.sum()) + heads.attrs["remainder"] == pytest.approx(
        float(logit.mean()), abs=1e-5
    )


def test_logit_lens_last_layer_is_the_model_and_earlier_layers_by_hand():
    b, ps = bridge(), prompts()
    lens = logit_lens(b, ps)
    assert lens.sel(layer=N_LAYERS - 1) == pytest.approx(float(logit_diffs(b).mean()), abs=1e-5)
    with torch.no_grad():
        _, cache = b.run_with_cache(torch.from_numpy(ps.tokens))
        x = cache["blocks.0.hook_resid_post"][:, -1]
        normed = torch.nn.functional.layer_norm(
            x, (x.shape[-1],), b.ln_final.weight, b.ln_final.bias, eps=b.cfg.eps
        )
        logits = normed @ b.W_U + b.b_U
    a, w = torch.from_numpy(ps.extras["answer"]), torch.from_numpy(ps.extras["wrong_answer"])
    rows = torch.arange(BATCH)
    expected = float((logits[rows, a] - logits[rows, w]).mean())
    assert lens.sel(layer=0) == pytest.approx(expected, abs=1e-5)
    lp = logit_lens(b, ps, measure="logprob")
    assert lp.sel(layer=0) == pytest.approx(float(logits.log_softmax(-1)[rows, a].mean()), abs=1e-5)


def test_logit_lens_equals_transformer_lens_logit_lens():
    """TL's stack is resid_pre of every layer then the final resid_post: our layer L (after
    the layer) is its entry L + 1."""
    from transformer_lens.tools.analysis import logit_lens as tl_lens

    b, ps = bridge(), prompts()
    ours = logit_lens(b, ps)
    with torch.no_grad():
        res = tl_lens(b, torch.from_numpy(ps.tokens))
    logits = res.values  # [stack, batch, vocab] at the last position
    assert res.labels[-1] == "final_post" and len(res.labels) == N_LAYERS + 1
    a, w = torch.from_numpy(ps.extras["answer"]), torch.from_numpy(ps.extras["wrong_answer"])
    rows = torch.arange(BATCH)
    tl = (logits[:, rows, a] - logits[:, rows, w]).mean(-1)[1:]
    np.testing.assert_allclose(ours.values, tl.numpy(), atol=1e-5)
