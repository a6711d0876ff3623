"""loss / accuracy / per_token_loss / icl_score against independent computations: the loss
``transformers`` returns with ``labels=tokens``, its ``ForCausalLMLoss``, ``F.cross_entropy``."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import xarray as xr

from mispec.errors import PromptError, UserError
from mispec.metrics.builtin.loss import accuracy, icl_score, loss, per_token_loss
from mispec.metrics.forward import run_forward
from mispec.prompts.core import PromptSet

HOOKS = ["next_logprob", "next_correct", "logits"]


@functools.cache
def native_bridge():
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(
        d_model=32, d_head=8, n_layers=2, n_ctx=24, n_heads=4, d_vocab=16,
        attn_only=True, normalization_type="LN", seed=1,
    )  # fmt: skip
    return TransformerBridge.boot_native(cfg)


def prompts(n: int = 12, seq: int = 13, **extras: np.ndarray) -> PromptSet:
    toks = torch.randint(0, 16, (n, seq), generator=torch.Generator().manual_seed(3)).numpy()
    return PromptSet(tokens=toks, extras=extras)


def acts_for(bridge, ps: PromptSet) -> dict:
    return run_forward(bridge, torch.from_numpy(ps.tokens), HOOKS, batch_size=5)


def test_loss_is_what_transformers_returns_with_labels(tmp_path):
    """A tiny GPT-NeoX (Pythia-style) through boot_transformers, against HF's own loss."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    cfg = GPTNeoXConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=32, rotary_pct=0.25,
        tie_word_embeddings=False, attn_implementation="eager",
    )  # fmt: skip
    hf = GPTNeoXForCausalLM(cfg).eval()
    hf.save_pretrained(tmp_path)
    bridge = TransformerBridge.boot_transformers(str(tmp_path), hf_model=hf)
    gen = torch.Generator().manual_seed(4)
    ps = PromptSet(tokens=torch.randint(0, 64, (6, 20), generator=gen).numpy())
    toks = torch.from_numpy(ps.tokens)
    with torch.no_grad():
        expected = float(hf(toks, labels=toks).loss)
    acts = run_forward(bridge, toks, ["next_logprob"], batch_size=4)
    assert loss(acts, ps) == pytest.approx(expected, rel=1e-5)


def test_loss_matches_for_causal_lm_loss_and_accuracy_matches_argmax():
    from transformers.loss.loss_utils import ForCausalLMLoss

    ps = prompts()
    acts = acts_for(native_bridge(), ps)
    logits, toks = acts["logits"], torch.from_numpy(ps.tokens)
    assert loss(acts, ps) == pytest.approx(float(ForCausalLMLoss(logits, toks, 16)), rel=1e-5)
    expected_acc = (logits[:, :-1].argmax(-1) == toks[:, 1:]).float().mean()
    assert accuracy(acts, ps) == pytest.approx(float(expected_acc))


def test_mask_and_split_select_predictions_and_rows():
    n, seq = 12, 13
    mask = np.zeros((n, seq - 1), dtype=bool)
    mask[:, 6:] = True  # only the second half counts
    train = np.arange(n) % 3 == 0
    ps = prompts(n, seq, loss_mask=mask, train_mask=train)
    acts = acts_for(native_bridge(), ps)
    logits, toks = acts["logits"], torch.from_numpy(ps.tokens)
    ce = F.cross_entropy(logits[:, :-1].transpose(1, 2), toks[:, 1:], reduction="none")  # [b, p-1]
    m = torch.from_numpy(mask)
    assert loss(acts, ps, mask="loss_mask") == pytest.approx(float(ce[m].mean()), rel=1e-5)
    sel = m & torch.from_numpy(train)[:, None]
    assert loss(acts, ps, mask="loss_mask", split="train") == pytest.approx(
        float(ce[sel].mean()), rel=1e-5
    )
    test_rows = ~torch.from_numpy(train)
    assert loss(acts, ps, mask="none", split="test") == pytest.approx(
        float(ce[test_rows].mean()), rel=1e-5
    )
    correct = (logits[:, :-1].argmax(-1) == toks[:, 1:]).float()
    assert accuracy(acts, ps, mask="loss_mask", split="train") == pytest.approx(
        float(correct[sel].mean())
    )


def test_missing_extras_and_bad_split_are_user_errors():
    ps = prompts()
    acts = acts_for(native_bridge(), ps)
    with pytest.raises(PromptError, match="train_mask"):
        loss(acts, ps, split="test")
    with pytest.raises(PromptError, match="loss_mask"):
        loss(acts, ps, mask="loss_mask")
    with pytest.raises(UserError, match="split"):
        loss(acts, ps, split="validation")


def test_per_token_loss_is_batch_mean_indexed_by_predicted_token():
    ps = prompts()
    acts = acts_for(native_bridge(), ps)
    logits, toks = acts["logits"], torch.from_numpy(ps.tokens)
    ce = F.cross_entropy(logits[:, :-1].transpose(1, 2), toks[:, 1:], reduction="none")
    out = per_token_loss(acts, ps)
    assert out.dims == ("pos",)
    assert list(out["pos"].values) == list(range(1, 13))
    np.testing.assert_allclose(out.values, ce.mean(0).numpy(), rtol=1e-5)
    assert float(out.mean()) == pytest.approx(float(loss(acts, ps)), rel=1e-5)


def test_icl_score_is_late_minus_early_loss():
    ptl = xr.DataArray([3.0, 2.9, 2.5, 1.0, 0.4], dims=("pos",), coords={"pos": [1, 2, 3, 4, 5]})
    assert float(icl_score(ptl, early=2, late=5)) == pytest.approx(0.4 - 2.9)
    # other dims pass through (e.g. a per-step series)
    stacked = xr.concat([ptl, ptl * 2], dim="step").assign_coords(step=[0, 10])
    out = icl_score(stacked, early=1, late=4)
    assert out.dims == ("step",)
    np.testing.assert_allclose(out.values, [1.0 - 3.0, 2.0 - 6.0])
    with pytest.raises(UserError, match="late=9"):
        icl_score(ptl, early=1, late=9)


def test_icl_score_on_a_model_that_learns_in_context():
    """A hand-wired 'model' whose loss falls along the context gives a negative ICL score."""
    n, seq = 4, 10
    lp = -torch.linspace(3.0, 0.5, seq - 1).repeat(n, 1)  # loss falls with position
    ps = prompts(n, seq)
    ptl = per_token_loss({"next_logprob": lp}, ps)
    assert float(icl_score(ptl, early=1, late=9)) == pytest.approx(0.5 - 3.0)
