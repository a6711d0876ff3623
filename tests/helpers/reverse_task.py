"""A plugin task written as a third party would write one: a ``Task`` subclass and its
factory, and no prompt generator — mispec derives that from the task. Named in specs as
``tests.helpers.reverse_task:reverse`` (``tests/system/test_task_plugin.py``)."""

from __future__ import annotations

import numpy as np

from mispec.tasks.base import Task, TaskBatch, positive


class Reverse(Task):
    """``BOS x_1 … x_L SEP x_L … x_1``: copy a list backwards.

    Values ``0 … vocab-1``, ``BOS = vocab``, ``SEP = vocab + 1``; the loss mask scores the
    ``L`` predictions of the reversed half. Its generator draws 16 prompts by default."""

    name = "reverse"
    has_bos = True
    prompt_count = 16

    def __init__(self, length: int = 4, vocab: int = 8):
        super().__init__(length=positive("length", length), vocab=positive("vocab", vocab, 2))
        self.length, self.vocab = length, vocab
        self.bos, self.sep = vocab, vocab + 1
        self.d_vocab = vocab + 2
        self.n_ctx = 2 * length + 2

    def sample(self, rng: np.random.Generator, n: int) -> TaskBatch:
        x = rng.integers(0, self.vocab, size=(n, self.length), dtype=np.int64)
        bos, sep = np.full((n, 1), self.bos), np.full((n, 1), self.sep)
        tokens = np.concatenate([bos, x, sep, x[:, ::-1]], axis=1).astype(np.int64)
        mask = np.zeros((n, self.n_ctx - 1), dtype=bool)
        mask[:, self.length + 1 :] = True  # predictions of the reversed tokens
        return TaskBatch(tokens=tokens, loss_mask=mask)


def reverse(length: int = 4, vocab: int = 8) -> Reverse:
    """Copy ``length`` values from ``0 … vocab-1`` backwards."""
    return Reverse(length=length, vocab=vocab)
