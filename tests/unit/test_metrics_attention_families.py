"""Attention families (start of word, open bracket, BOS, self, declarative) against known
answers on hand-made attention patterns, and the toy IOI prompts' named positions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mispec.metrics.builtin.attention import PATTERN
from mispec.metrics.builtin.attention_families import (
    attention_to,
    bos_score,
    open_bracket_score,
    self_token_score,
    start_of_word_score,
)
from mispec.prompts.core import PromptSet
from mispec.tasks.generators import PROMPT_GENERATORS

STRINGS = ["<bos>", "f", "(", "a", "[", "b", "]", "c", ")", "d"]
# the most recent open bracket before each query (None: no open bracket)
BRACKET = [None, None, None, 2, 2, 4, 4, 2, 2, None]


def one_hot_pattern(targets: list, n: int) -> torch.Tensor:
    """Head 0 attends exactly to the target (BOS where none); head 1 uniformly (causal)."""
    p = torch.zeros(1, 1, 2, n, n)
    for q, k in enumerate(targets):
        p[0, 0, 0, q, 0 if k is None else k] = 1.0
        p[0, 0, 1, q, : q + 1] = 1.0 / (q + 1)
    return p


def uniform_on_targets(targets: list) -> float:
    rows = [1.0 / (q + 1) for q, k in enumerate(targets) if k is not None]
    return float(np.mean(rows))


def test_open_bracket_targets_and_scores():
    n = len(STRINGS)
    ps = PromptSet(
        tokens=np.arange(n)[None],
        extras={"token_strings": np.array([STRINGS])},
    )
    scores = open_bracket_score({PATTERN: one_hot_pattern(BRACKET, n)}, ps)
    assert scores[0, 0] == pytest.approx(1.0)
    assert scores[0, 1] == pytest.approx(uniform_on_targets(BRACKET))


def test_start_of_word_padding_and_scores():
    # words: [bos] | "un" "break" "able" | "is" | "x" "y" ; then padding
    starts = np.array([[False, True, False, False, True, True, False, False, False]])
    real = np.array([[True] * 7 + [False] * 2])
    targets = [None, None, 1, 1, None, None, 5, None, None]
    ps = PromptSet(
        tokens=np.zeros((1, 9), dtype=np.int64),
        extras={"word_start": starts, "attention_mask": real},
    )
    pattern = one_hot_pattern(targets, 9)
    pattern[0, 0, :, 7:] = 0.0  # padded query rows hold anything: here nothing
    pattern[0, 0, 0, 8, 6] = 1.0
    scores = start_of_word_score({PATTERN: pattern}, ps)
    assert scores[0, 0] == pytest.approx(1.0)
    assert scores[0, 1] == pytest.approx(np.mean([1 / 3, 1 / 4, 1 / 7]))


def test_bos_and_self():
    n = 6
    ps = PromptSet(tokens=np.zeros((2, n), dtype=np.int64))
    uniform = torch.zeros(1, 2, 1, n, n)
    for q in range(n):
        uniform[0, :, 0, q, : q + 1] = 1.0 / (q + 1)
    expected = np.mean([1 / (q + 1) for q in range(1, n)])
    assert bos_score({PATTERN: uniform}, ps)[0, 0] == pytest.approx(expected)
    assert self_token_score({PATTERN: uniform}, ps)[0, 0] == pytest.approx(
        np.mean([1 / (q + 1) for q in range(n)])
    )


def test_attention_to_declared_rules():
    gen = torch.Generator().manual_seed(0)
    batch, n = 3, 5
    raw = torch.rand(1, batch, 2, n, n, generator=gen).tril()
    pattern = raw / raw.sum(-1, keepdim=True)
    end, io = np.array([4, 3, 4]), np.array([1, 2, 0])
    tokens = np.array([[0, 5, 6, 5, 7], [0, 6, 6, 8, 6], [0, 9, 5, 9, 9]])
    ps = PromptSet(tokens=tokens, extras={"pos_END": end, "pos_IO": io})
    got = attention_to({PATTERN: pattern}, ps, query_position="END", key_position="IO")
    expected = np.mean([pattern[0, b, :, end[b], io[b]].numpy() for b in range(batch)], axis=0)
    np.testing.assert_allclose(got[0], expected, atol=1e-6)
    # offset -1 = previous token, over every row that has one
    prev = attention_to({PATTERN: pattern}, ps, offset=-1)
    rows = [[pattern[0, b, :, q, q - 1].numpy() for q in range(1, n)] for b in range(batch)]
    np.testing.assert_allclose(prev[0], np.mean(rows, axis=(0, 1)), atol=1e-6)
    # same_token AND from END: earlier copies of END's token, mass summed per row
    dup = attention_to({PATTERN: pattern}, ps, same_token=True, query_position="END")
    per_prompt = []
    for b in range(batch):
        q = end[b]
        keys = [k for k in range(q) if tokens[b, k] == tokens[b, q]]
        if keys:
            per_prompt.append(pattern[0, b, :, q, keys].sum(-1).numpy())
    np.testing.assert_allclose(dup[0], np.mean(per_prompt, axis=0), atol=1e-6)


def test_toy_ioi_named_positions():
    ps = PROMPT_GENERATORS.get("toy_ioi")(seed=3, n=20, n_names=8)
    rows = np.arange(ps.n)
    t, x = ps.tokens, ps.extras
    assert (t[rows, x["pos_IO"]] == x["answer"]).all()
    assert (t[rows, x["pos_S1"]] == x["wrong_answer"]).all()
    assert (t[rows, x["pos_S2"]] == x["wrong_answer"]).all()
    assert (x["pos_END"] == x["answer_pos"]).all()
    assert set(x["pos_IO"]) == {1, 2}  # both templates occur
