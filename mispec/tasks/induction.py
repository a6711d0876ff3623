"""Repeated random tokens: the induction-head task.

Sequence layout (``n_ctx = 1 + 2 * half_len``), with repeat length ``L = half_len``::

    position  0     1 … F            F+1 … F+L      F+L+1 … F+2L  (F = 2*(half_len-L))
    token     BOS   y … (filler)     x_1 … x_L      x_1 … x_L

BOS convention: ``d_vocab = vocab`` and token ``0`` is BOS; every other token is drawn
uniformly (with replacement) from ``1 … vocab-1``.

With ``min_len`` set (training only, typically), each sequence draws its own repeat length
``L`` uniformly from ``min_len … half_len`` and puts fresh random filler *before* the
pattern, so the repeat always ends the sequence (the fixed-length prompts used for analysis
are the case ``L = half_len`` of the same distribution).
That matters: with a fixed ``L`` the repeat sits at a fixed offset and a single layer can
copy *by position* (attend to ``q - L + 1``), no induction circuit needed; a varying
offset leaves only content-based induction (a previous-token head feeding an induction
head), the circuit the study is about.

The model trains on every prediction (``train_mask``). The ``loss_mask`` extra marks the
predictable ones: the ``L`` predictions of the second copy's tokens. Loss
floor on those is 0 nats for the optimal model, and ``ln(vocab - 1)`` elsewhere; so the
mean loss over a fixed-``L`` sequence has floor ``ln(vocab - 1) / 2`` (the repeat is half
the predictions).
"""

from __future__ import annotations

import numpy as np

from mispec.errors import UserError
from mispec.tasks.base import Task, TaskBatch, positive

BOS_ID = 0


class RepeatedTokens(Task):
    name = "repeated_tokens"
    has_bos = True
    prompt_count = 32

    def __init__(self, vocab: int = 64, half_len: int = 24, min_len: int | None = None):
        args = {"vocab": positive("vocab", vocab, 3), "half_len": positive("half_len", half_len)}
        if min_len is not None:  # keeps the identity of fixed-length runs unchanged
            if not 1 <= min_len <= half_len:
                raise UserError(
                    f"min_len must be between 1 and half_len ({half_len}), got {min_len}"
                )
            args["min_len"] = min_len
        super().__init__(**args)
        self.vocab, self.half_len = vocab, half_len
        self.min_len = half_len if min_len is None else min_len
        self.d_vocab = vocab
        self.n_ctx = 1 + 2 * half_len

    def sample(self, rng: np.random.Generator, n: int) -> TaskBatch:
        H = self.half_len
        body = rng.integers(1, self.vocab, size=(n, 2 * H), dtype=np.int64)
        if self.min_len == H:
            lengths = np.full(n, H)
        else:
            lengths = rng.integers(self.min_len, H + 1, size=n)
        mask = np.zeros((n, 2 * H), dtype=bool)
        for i, L in enumerate(lengths):
            f = 2 * (H - L)  # filler first: the repeat always ends the sequence
            body[i, f + L : f + 2 * L] = body[i, f : f + L]
            mask[i, f + L : f + 2 * L] = True
        bos = np.full((n, 1), BOS_ID, dtype=np.int64)
        return TaskBatch(tokens=np.concatenate([bos, body], axis=1), loss_mask=mask)

    def training_loss_mask(self, b: TaskBatch) -> np.ndarray:
        return np.ones_like(b.loss_mask)

    def meta(self) -> dict:
        return {**super().meta(), "bos": BOS_ID, "first_half": [1, self.half_len]}


def repeated_half_mask(n: int, half_len: int) -> np.ndarray:
    """``[n, 2*half_len]`` mask: true for predictions ``half_len … 2*half_len - 1``."""
    mask = np.zeros((n, 2 * half_len), dtype=bool)
    mask[:, half_len:] = True
    return mask


def repeated_tokens(
    vocab: int = 64, half_len: int = 24, min_len: int | None = None
) -> RepeatedTokens:
    """BOS + ``half_len`` random tokens + the same tokens again (induction heads); with
    ``min_len``, a random repeat length per sequence so only real induction solves it.

    Args:
        vocab: ``d_vocab``: token 0 is BOS, the others are drawn from ``1 … vocab-1`` (at least 3;
            default 64).
        half_len: tokens per copy (at least 1; default 24); ``n_ctx = 1 + 2 * half_len``.
        min_len: draw each sequence's repeat length from ``min_len … half_len``, random filler
            before it (``null``: always ``half_len``, a fixed offset a model can copy by position).
    """
    return RepeatedTokens(vocab=vocab, half_len=half_len, min_len=min_len)
