"""Head scores against TransformerLens's head_detector on a random bridge, and against known
answers on hand-made attention patterns."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
import torch
from transformer_lens import head_detector as hd

from mispec.metrics.builtin.attention import (
    PATTERN,
    detection_patterns,
    duplicate_token_score,
    head_scores,
    induction_score,
    previous_token_score,
)
from mispec.metrics.forward import run_forward
from mispec.prompts.core import PromptSet

TL_PATTERN = {
    "induction": hd.get_induction_head_detection_pattern,
    "previous_token": hd.get_previous_token_head_detection_pattern,
    "duplicate_token": hd.get_duplicate_token_head_detection_pattern,
}
SCORE = {
    "induction": induction_score,
    "previous_token": previous_token_score,
    "duplicate_token": duplicate_token_score,
}


def repeated_tokens(n: int, half: int, vocab: int, seed: int = 0) -> np.ndarray:
    """BOS (= 0) + random tokens + the same tokens again, ``[n, 1 + 2*half]``."""
    rng = np.random.default_rng(seed)
    first = rng.integers(1, vocab, size=(n, half))
    return np.concatenate([np.zeros((n, 1), dtype=np.int64), first, first], axis=1)


@functools.cache
def bridge_acts():
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(
        d_model=32, d_head=8, n_layers=2, n_ctx=32, n_heads=4, d_vocab=12,
        attn_only=True, normalization_type="LN", seed=0,
    )  # fmt: skip
    bridge = TransformerBridge.boot_native(cfg)
    ps = PromptSet(tokens=repeated_tokens(6, 8, 12, seed=1))  # vocab 12: many duplicates
    return ps, run_forward(bridge, torch.from_numpy(ps.tokens), [PATTERN], batch_size=None)


@pytest.mark.parametrize("kind", list(TL_PATTERN))
def test_detection_patterns_equal_head_detector(kind):
    toks = torch.from_numpy(repeated_tokens(5, 6, 5, seed=2))
    ours = detection_patterns(kind, toks)
    for b in range(toks.shape[0]):
        torch.testing.assert_close(ours[b], TL_PATTERN[kind](toks[b : b + 1]))


def tl_score(pattern, det, normalize, exclude_bos, exclude_current_token):
    """head_detector's "mul" score; for target_rows the same on the target rows only (rows
    without a surviving target zeroed in the pattern)."""
    pattern = pattern.clone()
    if normalize == "target_rows":
        keep = det.clone()
        if exclude_bos:
            keep[:, 0] = 0
        if exclude_current_token:
            keep.fill_diagonal_(0)
        rows = keep.sum(-1) > 0
        if not rows.any():
            return float("nan")
        pattern[~rows] = 0
    return hd.compute_head_attention_similarity_score(
        pattern,
        det,
        exclude_bos=exclude_bos,
        exclude_current_token=exclude_current_token,
        error_measure="mul",
    )


@pytest.mark.parametrize("kind", list(TL_PATTERN))
@pytest.mark.parametrize("normalize", ["all_rows", "target_rows"])
def test_scores_equal_head_detector_on_a_random_bridge(kind, normalize):
    ps, acts = bridge_acts()
    patterns = acts[PATTERN]  # [layer, batch, head, q, k]
    toks = torch.from_numpy(ps.tokens)
    dets = [TL_PATTERN[kind](toks[b : b + 1]) for b in range(toks.shape[0])]
    for exclude_bos, exclude_current in itertools.product([False, True], repeat=2):
        ours = SCORE[kind](
            acts,
            ps,
            normalize=normalize,
            exclude_bos=exclude_bos,
            exclude_current_token=exclude_current,
        )
        expected = np.zeros((2, 4))
        for layer, head in itertools.product(range(2), range(4)):
            per_prompt = [
                tl_score(patterns[layer, b, head], det, normalize, exclude_bos, exclude_current)
                for b, det in enumerate(dets)
            ]
            expected[layer, head] = np.nanmean(per_prompt)
        np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_target_rows_is_the_mul_score_rescaled():
    """target_rows = mul * (attention mass of all rows) / (mass of the target rows)."""
    ps, acts = bridge_acts()
    patterns = acts[PATTERN]
    toks = torch.from_numpy(ps.tokens)
    det = detection_patterns("induction", toks)
    target_rows = head_scores(patterns, det, normalize="target_rows")
    factors = []
    for b in range(toks.shape[0]):
        rows = det[b].sum(-1) > 0
        factors.append(patterns.shape[-1] / rows.sum())  # unmasked rows sum to 1 each
    mul = np.zeros((2, 4))
    for layer, head in itertools.product(range(2), range(4)):
        mul[layer, head] = np.mean(
            [
                hd.compute_head_attention_similarity_score(
                    patterns[layer, b, head],
                    TL_PATTERN["induction"](toks[b : b + 1]),
                    exclude_bos=False,
                    exclude_current_token=False,
                    error_measure="mul",
                )
                * float(factors[b])
                for b in range(toks.shape[0])
            ]
        )
    np.testing.assert_allclose(target_rows.numpy(), mul, atol=1e-5)


def perfect_patterns(kind: str, toks: torch.Tensor) -> torch.Tensor:
    """``[1 layer, batch, 1 head, q, k]``: each row spread evenly over its targets, or all on
    BOS when it has none (what a trained head does)."""
    det = detection_patterns(kind, toks).clone()
    none = det.sum(-1) == 0
    det[..., 0] = torch.where(none, 1.0, det[..., 0])
    return (det / det.sum(-1, keepdim=True))[None, :, None]


def test_perfect_induction_head_on_repeated_tokens():
    # vocab large enough that the first half has no repeats: targets only in the second half
    toks = torch.from_numpy(repeated_tokens(4, 10, 10_000, seed=3))
    acts = {PATTERN: perfect_patterns("induction", toks)}
    ps = PromptSet(tokens=toks.numpy())
    assert induction_score(acts, ps)[0, 0] == pytest.approx(1.0)
    # all_rows: the 10 target rows (the second half) out of 21 rows
    assert induction_score(acts, ps, normalize="all_rows")[0, 0] == pytest.approx(10 / 21)
    # nor a previous-token head: of rows 1..20 only row 1 (parked on BOS = its previous token)
    assert previous_token_score(acts, ps)[0, 0] == pytest.approx(1 / 20)


def test_perfect_previous_token_head_and_bos_exclusion():
    toks = torch.from_numpy(repeated_tokens(3, 5, 10_000, seed=4))
    ps = PromptSet(tokens=toks.numpy())
    acts = {PATTERN: perfect_patterns("previous_token", toks)}
    assert previous_token_score(acts, ps)[0, 0] == pytest.approx(1.0)
    # row 0 attends to BOS (no target): all_rows counts it, 10 of 11 rows on target
    assert previous_token_score(acts, ps, normalize="all_rows")[0, 0] == pytest.approx(10 / 11)
    # excluding BOS removes row 1's target (key 0) and row 0's mass: 9 of 9 remaining
    assert previous_token_score(acts, ps, exclude_bos=True)[0, 0] == pytest.approx(1.0)


def test_uniform_attention_scores_the_target_fraction():
    """Uniform causal attention on ``a b a b``: row q spreads 1/(q+1) over keys 0..q."""
    toks = torch.tensor([[0, 5, 6, 5, 6]])
    n = toks.shape[1]
    uniform = torch.tril(torch.ones(n, n)) / torch.arange(1, n + 1)[:, None]
    acts = {PATTERN: uniform[None, None, None]}
    ps = PromptSet(tokens=toks.numpy())
    # duplicate targets: row 3 -> key 1, row 4 -> key 2: (1/4 + 1/5) over 2 rows
    assert duplicate_token_score(acts, ps)[0, 0] == pytest.approx((1 / 4 + 1 / 5) / 2)
    # induction targets: row 3 -> key 2, row 4 -> key 3
    assert induction_score(acts, ps)[0, 0] == pytest.approx((1 / 4 + 1 / 5) / 2)
    assert induction_score(acts, ps, normalize="all_rows")[0, 0] == pytest.approx(
        (1 / 4 + 1 / 5) / 5
    )


def test_prompts_without_targets_are_skipped_not_zero():
    toks = torch.tensor([[0, 1, 2, 3], [0, 1, 2, 1]])  # prompt 0 has no duplicates
    n = toks.shape[1]
    uniform = torch.tril(torch.ones(n, n)) / torch.arange(1, n + 1)[:, None]
    acts = {PATTERN: uniform.expand(1, 2, 1, n, n)}
    score = duplicate_token_score(acts, PromptSet(tokens=toks.numpy()))
    assert score[0, 0] == pytest.approx(1 / 4)  # prompt 1 only (row 3 -> key 1)


def test_cached_targets_follow_the_prompt_tokens():
    """The detection targets are cached per prompt set: a second prompt set of the same shape
    must get its own targets, and every call must equal the uncached computation."""
    _, acts = bridge_acts()
    patterns = acts[PATTERN]
    for seed in (1, 3, 1, 4):  # same shape, different tokens; seed 1 twice (a cache hit)
        ps = PromptSet(tokens=repeated_tokens(6, 8, 12, seed=seed))
        for kind, fn in SCORE.items():
            for flags in itertools.product([False, True], repeat=2):
                got = fn(acts, ps, exclude_bos=flags[0], exclude_current_token=flags[1])
                det = detection_patterns(kind, torch.from_numpy(ps.tokens))
                want = head_scores(
                    patterns, det, exclude_bos=flags[0], exclude_current_token=flags[1]
                ).numpy()
                np.testing.assert_array_equal(got, want)
    a = induction_score(acts, PromptSet(tokens=repeated_tokens(6, 8, 12, seed=1)))
    b = induction_score(acts, PromptSet(tokens=repeated_tokens(6, 8, 12, seed=3)))
    assert not np.array_equal(a, b)  # the patterns are the same: only the targets differ
