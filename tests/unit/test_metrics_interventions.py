"""logit_diff, activation_patching and head_ablation against hand computations and against
``transformer_lens.patching`` on the same bridge."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformer_lens import patching

from mispec.errors import PromptError, UserError
from mispec.metrics.builtin.interventions import (
    activation_patching,
    head_ablation,
    patching_gap_z,
)
from mispec.metrics.builtin.logits import logit_diff
from mispec.prompts.core import PromptSet

N_LAYERS, N_HEADS, VOCAB, SEQ, BATCH = 2, 4, 20, 8, 6
CORRUPT_POS = 3


@functools.cache
def bridge():
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(
        d_model=32, d_head=8, n_layers=N_LAYERS, n_ctx=16, n_heads=N_HEADS, d_vocab=VOCAB,
        attn_only=True, normalization_type="LN", seed=2,
    )  # fmt: skip
    b = TransformerBridge.boot_native(cfg)
    b.eval()
    return b


@functools.cache
def ioi_like() -> PromptSet:
    """Clean prompts, corrupted copies differing at one position, and answer / wrong answer
    chosen so the clean run prefers the answer and the corrupted run the wrong answer."""
    gen = torch.Generator().manual_seed(5)
    clean = torch.randint(0, VOCAB, (BATCH, SEQ), generator=gen)
    corrupt = clean.clone()
    corrupt[:, CORRUPT_POS] = (clean[:, CORRUPT_POS] + 7) % VOCAB
    with torch.no_grad():
        lc, lx = bridge()(clean)[:, -1], bridge()(corrupt)[:, -1]
    answer = (lc - lx).argmax(-1)
    wrong = (lx - lc).argmax(-1)
    return PromptSet(
        tokens=clean.numpy(),
        extras={"corrupt_tokens": corrupt.numpy(), "answer": answer.numpy(), "wrong_answer": wrong.numpy()},
    )  # fmt: skip


def ld_of(logits: torch.Tensor, ps: PromptSet) -> torch.Tensor:
    a, w = torch.from_numpy(ps.extras["answer"]), torch.from_numpy(ps.extras["wrong_answer"])
    last = logits[:, -1]
    return (last.gather(-1, a[:, None]) - last.gather(-1, w[:, None])).mean()


def test_logit_diff_known_values_and_positions():
    final = torch.zeros(2, 5)
    final[0, 1], final[0, 2] = 3.0, 1.0  # answer 1, wrong 2: +2
    final[1, 4], final[1, 0] = -1.0, 2.0  # answer 4, wrong 0: -3
    ps = PromptSet(
        tokens=np.zeros((2, 3), dtype=np.int64),
        extras={"answer": np.array([1, 4]), "wrong_answer": np.array([2, 0])},
    )
    assert logit_diff({"final_logits": final}, ps) == pytest.approx(-0.5)
    logits = torch.zeros(2, 3, 5)
    logits[0, 1] = final[0]
    logits[1, 2] = final[1]
    at = PromptSet(tokens=ps.tokens, extras={**ps.extras, "answer_pos": np.array([1, -1])})
    assert logit_diff({"logits": logits}, at, position="answer_pos") == pytest.approx(-0.5)
    with pytest.raises(PromptError, match="answer_pos"):
        logit_diff({"final_logits": final}, at)
    hooks = logit_diff.__mispec__.hooks_for({"position": "answer_pos"})
    assert hooks == ("logits",)


def test_patching_per_head_equals_transformer_lens():
    b, ps = bridge(), ioi_like()
    clean, corrupt = torch.from_numpy(ps.tokens), torch.from_numpy(ps.extras["corrupt_tokens"])
    with torch.no_grad():
        clean_logits, cache = b.run_with_cache(clean)
        ld_clean, ld_corrupt = ld_of(clean_logits, ps), ld_of(b(corrupt), ps)
        expected = patching.get_act_patch_attn_head_out_all_pos(
            b, corrupt, cache, lambda lg: (ld_of(lg, ps) - ld_corrupt) / (ld_clean - ld_corrupt)
        )
    ours = activation_patching(b, ps, per="head")
    assert ours.dims == ("layer", "head") and ld_clean > ld_corrupt
    np.testing.assert_allclose(ours.values, expected.numpy(), atol=1e-5)


def final_logits_by_hand(b, resid: torch.Tensor) -> torch.Tensor:
    """ln_final + unembed written out from the weights."""
    sd = b.state_dict()
    x = resid - resid.mean(-1, keepdim=True)
    x = x / (x.pow(2).mean(-1, keepdim=True) + b.cfg.eps).sqrt()
    x = x * sd["ln_final.weight"] + sd["ln_final.bias"]
    return x @ b.W_U + b.b_U


def test_patching_one_head_of_the_last_layer_by_hand():
    """Patching head h of the last layer changes the final residual stream by exactly
    (z_clean - z_corrupt)[h] @ W_O[h]; recompute the logits from that."""
    b, ps = bridge(), ioi_like()
    clean, corrupt = torch.from_numpy(ps.tokens), torch.from_numpy(ps.extras["corrupt_tokens"])
    last, h = N_LAYERS - 1, 2
    z_name, resid = f"blocks.{last}.attn.hook_z", f"blocks.{last}.hook_resid_post"
    with torch.no_grad():
        clean_logits, cc = b.run_with_cache(clean, names_filter=[z_name])
        corrupt_logits, xc = b.run_with_cache(corrupt, names_filter=[z_name, resid])
        # sanity: the hand-written unembedding reproduces the model
        torch.testing.assert_close(final_logits_by_hand(b, xc[resid]), corrupt_logits)
        delta = (cc[z_name][:, :, h] - xc[z_name][:, :, h]) @ b.W_O[last, h]
        patched = final_logits_by_hand(b, xc[resid] + delta)
    ld_clean, ld_corrupt, ld_patched = (
        ld_of(x, ps) for x in (clean_logits, corrupt_logits, patched)
    )
    expected = float((ld_patched - ld_corrupt) / (ld_clean - ld_corrupt))
    ours = activation_patching(b, ps, per="head")
    assert float(ours.sel(layer=last, head=h)) == pytest.approx(expected, abs=1e-5)


def test_patching_per_position_equals_transformer_lens_and_known_answers():
    b, ps = bridge(), ioi_like()
    clean, corrupt = torch.from_numpy(ps.tokens), torch.from_numpy(ps.extras["corrupt_tokens"])
    with torch.no_grad():
        clean_logits, cache = b.run_with_cache(clean)
        ld_clean, ld_corrupt = ld_of(clean_logits, ps), ld_of(b(corrupt), ps)
        expected = patching.get_act_patch_resid_pre(
            b, corrupt, cache, lambda lg: (ld_of(lg, ps) - ld_corrupt) / (ld_clean - ld_corrupt)
        )
    ours = activation_patching(b, ps, per="position")
    assert ours.dims == ("layer", "pos") and ours.shape == (N_LAYERS, SEQ)
    np.testing.assert_allclose(ours.values, expected.numpy(), atol=1e-5)
    # Layer 0, the corrupted position: the whole residual stream becomes the clean one.
    assert float(ours.sel(layer=0, pos=CORRUPT_POS)) == pytest.approx(1.0, abs=1e-5)
    # Layer 0, any position before it: clean and corrupted streams are identical there.
    np.testing.assert_allclose(ours.sel(layer=0, pos=slice(0, CORRUPT_POS - 1)), 0.0, atol=1e-5)


def per_prompt_ld(logits: torch.Tensor, ps: PromptSet, at: np.ndarray) -> np.ndarray:
    a, w = torch.from_numpy(ps.extras["answer"]), torch.from_numpy(ps.extras["wrong_answer"])
    rows = logits[torch.arange(logits.shape[0]), torch.from_numpy(at)]
    return (rows.gather(-1, a[:, None]) - rows.gather(-1, w[:, None]))[:, 0].double().numpy()


def hand_gap_z(clean: np.ndarray, corrupt: np.ndarray) -> float:
    g = clean - corrupt
    eps = 1e-6 * np.sqrt(np.mean(np.r_[clean, corrupt] ** 2))
    return g.mean() / (g.std(ddof=1) / np.sqrt(g.size) + eps)


def test_a_normal_case_keeps_its_values_and_reports_a_large_gap():
    b, ps = bridge(), ioi_like()
    with torch.no_grad():
        at = np.full(BATCH, SEQ - 1)
        c = per_prompt_ld(b(torch.from_numpy(ps.tokens)), ps, at)
        x = per_prompt_ld(b(torch.from_numpy(ps.extras["corrupt_tokens"])), ps, at)
    z = patching_gap_z(b, ps)
    assert z == pytest.approx(hand_gap_z(c, x), rel=1e-5) and z > 3
    np.testing.assert_array_equal(
        activation_patching(b, ps).values, activation_patching(b, ps, min_gap_z=0).values
    )


def test_clean_and_corrupt_that_do_not_differ_give_nan_not_noise():
    """An untrained model on IOI-shaped prompts: the clean and corrupted logit differences
    agree within their noise over the prompts, so every ratio would be noise (the old answer:
    values of either sign and any size). Masked: NaN everywhere, and the gap in standard
    errors says why; corrupting only a token AFTER the answer position gives exactly 0."""
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    from mispec.tasks.generators import PROMPT_GENERATORS

    ps = PROMPT_GENERATORS.get("toy_ioi")(seed=0, n=64)
    cfg = TransformerBridgeConfig(
        d_model=64, d_head=16, n_layers=2, n_ctx=16, n_heads=4, d_vocab=ps.max_token() + 1,
        attn_only=True, normalization_type="LN", seed=0,
    )  # fmt: skip
    b = TransformerBridge.boot_native(cfg)
    b.eval()
    at = ps.extras["answer_pos"]
    with torch.no_grad():
        c = per_prompt_ld(b(torch.from_numpy(ps.tokens)), ps, at)
        x = per_prompt_ld(b(torch.from_numpy(ps.extras["corrupt_tokens"])), ps, at)
    z = patching_gap_z(b, ps)
    assert z == pytest.approx(hand_gap_z(c, x), rel=1e-5) and abs(z) < 3
    masked = activation_patching(b, ps, per="head")
    assert masked.dims == ("layer", "head") and np.isnan(masked.values).all()
    raw = activation_patching(b, ps, per="head", min_gap_z=0)  # the ratio, unmasked
    assert np.isfinite(raw.values).all() and np.abs(raw.values).max() > 0.5
    assert np.isnan(activation_patching(b, ps, per="position").values).all()
    # corrupted only after the answer position: identical logit differences, exactly 0 gap
    later = ps.tokens.copy()
    later[:, -1] = (later[:, -1] + 1) % 4
    same = PromptSet(tokens=ps.tokens, extras={**ps.extras, "corrupt_tokens": later})
    assert patching_gap_z(b, same) == 0.0
    assert np.isnan(activation_patching(b, same, min_gap_z=0).values).all()
    with pytest.raises(UserError, match="min_gap_z"):
        activation_patching(b, ps, min_gap_z=-1)


def test_patching_needs_corrupt_tokens():
    ps = ioi_like()
    bare = PromptSet(tokens=ps.tokens, extras={"answer": ps.extras["answer"]})
    with pytest.raises(PromptError, match="corrupt_tokens"):
        activation_patching(bridge(), bare)


def test_zero_ablation_of_a_last_layer_head_by_hand():
    b, ps = bridge(), ioi_like()
    toks = torch.from_numpy(ps.tokens)
    last, h = N_LAYERS - 1, 1
    z_name, resid = f"blocks.{last}.attn.hook_z", f"blocks.{last}.hook_resid_post"
    with torch.no_grad():
        logits, c = b.run_with_cache(toks, names_filter=[z_name, resid])
        ablated = final_logits_by_hand(b, c[resid] - c[z_name][:, :, h] @ b.W_O[last, h])

    def ce(lg):
        return F.cross_entropy(lg[:, :-1].reshape(-1, VOCAB), toks[:, 1:].reshape(-1))

    out = head_ablation(b, ps, method="zero", measure="loss")
    assert out.dims == ("layer", "head")
    assert float(out.sel(layer=last, head=h)) == pytest.approx(
        float(ce(ablated) - ce(logits)), abs=1e-5
    )
    ld = head_ablation(b, ps, method="zero", measure="logit_diff")
    expected = float(ld_of(ablated, ps) - ld_of(logits, ps))
    assert float(ld.sel(layer=last, head=h)) == pytest.approx(expected, abs=1e-5)


def test_mean_ablation_over_identical_prompts_changes_nothing():
    ps = ioi_like()
    same = PromptSet(tokens=np.repeat(ps.tokens[:1], 4, axis=0))
    out = head_ablation(bridge(), same, method="mean", measure="loss")
    np.testing.assert_allclose(out.values, 0.0, atol=1e-5)
    zero = head_ablation(bridge(), same, method="zero", measure="loss")
    assert np.abs(zero.values).max() > 1e-3  # while zeroing a head does change the loss
