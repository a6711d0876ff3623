"""Previous token: after each new token, say the token before it.

A sequence interleaves random tokens ``x_1 … x_L`` with answers: ``BOS x_1 y_1 x_2 y_2 …
x_L y_L`` where ``y_i = x_{i-1}`` (``y_1 = BOS``): reading ``x_i``, the model predicts the
previous *input* token, two positions back. It is the task a previous-token head solves (the
first half of an induction circuit). Tokens ``0 … vocab-1`` and ``BOS = vocab``; ``d_vocab =
vocab + 1``, ``n_ctx = 2 * length + 1``; every ``y`` is scored (predictions at the positions
of ``x_2 … x_L``; ``y_1``, always ``BOS``, is not). Infinite (drawn per step).
"""

from __future__ import annotations

import numpy as np

from mispec.tasks.base import Task, TaskBatch, positive


class PreviousToken(Task):
    name = "previous_token"
    has_bos = True

    def __init__(self, vocab: int = 32, length: int = 12):
        super().__init__(vocab=positive("vocab", vocab, 2), length=positive("length", length, 2))
        self.vocab, self.length = vocab, length
        self.bos = vocab
        self.d_vocab, self.n_ctx = vocab + 1, 2 * length + 1

    def sample(self, rng: np.random.Generator, n: int) -> TaskBatch:
        x = rng.integers(0, self.vocab, size=(n, self.length), dtype=np.int64)
        prev = np.concatenate([np.full((n, 1), self.bos), x[:, :-1]], axis=1)
        tokens = np.empty((n, self.n_ctx), dtype=np.int64)
        tokens[:, 0] = self.bos
        tokens[:, 1::2], tokens[:, 2::2] = x, prev
        mask = np.zeros((n, self.n_ctx - 1), dtype=bool)
        mask[:, 3::2] = True  # prediction at x_i (position 2i - 1) scores y_i, for i >= 2
        return TaskBatch(tokens=tokens, loss_mask=mask)

    def meta(self) -> dict:
        return {**super().meta(), "bos": self.bos}


def previous_token(vocab: int = 32, length: int = 12) -> PreviousToken:
    """``BOS x_1 y_1 … x_L y_L`` with ``y_i = x_{i-1}``: predict the previous input token.

    Args:
        vocab: random tokens are ``0 … vocab-1`` (at least 2; default 32); ``BOS = vocab``.
        length: input tokens ``x`` per sequence (at least 2; default 12); ``n_ctx = 2 * length +
            1``.
    """
    return PreviousToken(vocab=vocab, length=length)
