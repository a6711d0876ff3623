"""Sorting a fixed-length list: ``START x_1 … x_L MID s_1 … s_L`` with ``s`` = sorted ``x``.

Values are ``0 … max_value-1``; ``START = max_value`` and ``MID = max_value + 1``, so
``d_vocab = max_value + 2`` and ``n_ctx = 2 * length + 2``. ``START`` plays the role of BOS.
The loss mask scores the ``length`` predictions of the sorted half (positions
``length + 1 … 2 * length``). With ``distinct`` the list has no repeated values.
"""

from __future__ import annotations

import numpy as np

from mispec.errors import UserError
from mispec.tasks.base import Task, TaskBatch, positive


class Sorting(Task):
    name = "sorting"
    has_bos = True
    prompt_count = 64

    def __init__(self, length: int = 6, max_value: int = 32, distinct: bool = True):
        super().__init__(
            length=positive("length", length, 2),
            max_value=positive("max_value", max_value, 2),
            distinct=bool(distinct),
        )
        if distinct and length > max_value:
            raise UserError(
                f"sorting: cannot draw {length} distinct values below max_value={max_value}"
            )
        self.length, self.max_value, self.distinct = length, max_value, bool(distinct)
        self.start, self.mid = max_value, max_value + 1
        self.d_vocab = max_value + 2
        self.n_ctx = 2 * length + 2

    def sample(self, rng: np.random.Generator, n: int) -> TaskBatch:
        if self.distinct:
            keys = rng.random((n, self.max_value))
            x = np.argsort(keys, axis=1)[:, : self.length].astype(np.int64)
        else:
            x = rng.integers(0, self.max_value, size=(n, self.length), dtype=np.int64)
        s = np.sort(x, axis=1)
        tokens = np.concatenate(
            [np.full((n, 1), self.start), x, np.full((n, 1), self.mid), s], axis=1
        ).astype(np.int64)
        mask = np.zeros((n, self.n_ctx - 1), dtype=bool)
        mask[:, self.length + 1 :] = True
        return TaskBatch(tokens=tokens, loss_mask=mask)

    def meta(self) -> dict:
        return {**super().meta(), "start": self.start, "mid": self.mid}


def sorting(length: int = 6, max_value: int = 32, distinct: bool = True) -> Sorting:
    """``START`` + ``length`` values + ``MID`` + the values sorted ascending."""
    return Sorting(length=length, max_value=max_value, distinct=distinct)
