"""Sorting a list: ``START x_1 … x_L MID s_1 … s_L`` with ``s`` = sorted ``x``.

Values are ``0 … max_value-1``; ``START = max_value`` and ``MID = max_value + 1``, so
``d_vocab = max_value + 2`` and ``n_ctx = 2 * length + 2``. ``START`` plays the role of BOS.
The loss mask scores the ``length`` predictions of the sorted half (positions
``length + 1 … 2 * length``). With ``distinct`` the list has no repeated values.

**Variable length.** With ``min_length`` each list has a length drawn uniformly from
``min_length … length``; a shorter sequence is ``START x_1 … x_l MID s_1 … s_l`` followed by
``PAD = max_value + 2`` up to ``n_ctx`` (so ``d_vocab = max_value + 3``). The loss mask scores
the ``l`` sorted predictions only, and the prompt set carries the ``attention_mask`` extra
(False at padding; the builtin metrics never count padded positions) and ``length``. Without
``min_length`` the task is exactly the fixed-length one (same data, same identity).
"""

from __future__ import annotations

import numpy as np

from mispec.errors import UserError
from mispec.tasks.base import Task, TaskBatch, positive


class Sorting(Task):
    name = "sorting"
    has_bos = True
    prompt_count = 64

    def __init__(
        self,
        length: int = 6,
        max_value: int = 32,
        distinct: bool = True,
        min_length: int | None = None,
    ):
        args = {
            "length": positive("length", length, 2),
            "max_value": positive("max_value", max_value, 2),
            "distinct": bool(distinct),
        }
        if min_length is not None:  # only then: a fixed-length task keeps its identity
            args["min_length"] = positive("min_length", min_length, 1)
            if min_length > length:
                raise UserError(f"sorting: min_length {min_length} > length {length}")
        super().__init__(**args)
        if distinct and length > max_value:
            raise UserError(
                f"sorting: cannot draw {length} distinct values below max_value={max_value}"
            )
        self.length, self.max_value, self.distinct = length, max_value, bool(distinct)
        self.min_length = min_length
        self.start, self.mid = max_value, max_value + 1
        self.pad = max_value + 2 if min_length is not None else None
        self.d_vocab = max_value + (3 if min_length is not None else 2)
        self.n_ctx = 2 * length + 2

    def sample(self, rng: np.random.Generator, n: int) -> TaskBatch:
        if self.distinct:
            keys = rng.random((n, self.max_value))
            x = np.argsort(keys, axis=1)[:, : self.length].astype(np.int64)
        else:
            x = rng.integers(0, self.max_value, size=(n, self.length), dtype=np.int64)
        if self.min_length is None:
            return self._fixed(x)
        return self._variable(x, rng.integers(self.min_length, self.length + 1, size=n))

    def _fixed(self, x: np.ndarray) -> TaskBatch:
        n = x.shape[0]
        s = np.sort(x, axis=1)
        tokens = np.concatenate(
            [np.full((n, 1), self.start), x, np.full((n, 1), self.mid), s], axis=1
        ).astype(np.int64)
        mask = np.zeros((n, self.n_ctx - 1), dtype=bool)
        mask[:, self.length + 1 :] = True
        return TaskBatch(tokens=tokens, loss_mask=mask)

    def _variable(self, x: np.ndarray, lengths: np.ndarray) -> TaskBatch:
        n = x.shape[0]
        tokens = np.full((n, self.n_ctx), self.pad, dtype=np.int64)
        mask = np.zeros((n, self.n_ctx - 1), dtype=bool)
        for i, ln in enumerate(lengths.tolist()):
            row = x[i, :ln]
            tokens[i, : 2 * ln + 2] = [self.start, *row, self.mid, *np.sort(row)]
            mask[i, ln + 1 : 2 * ln + 1] = True
        real = np.arange(self.n_ctx)[None, :] < (2 * lengths + 2)[:, None]
        extras = {"attention_mask": real, "length": lengths.astype(np.int64)}
        return TaskBatch(tokens=tokens, loss_mask=mask, extras=extras)

    def meta(self) -> dict:
        out = {**super().meta(), "start": self.start, "mid": self.mid}
        return out if self.pad is None else {**out, "pad": self.pad}


def sorting(
    length: int = 6, max_value: int = 32, distinct: bool = True, min_length: int | None = None
) -> Sorting:
    """``START`` + values + ``MID`` + the values sorted ascending; ``length`` values, or a
    length drawn from ``min_length … length`` per list (padded with ``PAD``).

    Args:
        length: values per list (at least 2; default 6); ``n_ctx = 2 * length + 2``.
        max_value: values are ``0 … max_value-1`` (at least 2; default 32).
        distinct: true (default): no value repeats within a list (needs ``length <= max_value``);
            false: values drawn with repetition.
        min_length: draw each list's length from ``min_length … length``, padded with ``PAD``
            (``null``: every list has ``length`` values).
    """
    return Sorting(length=length, max_value=max_value, distinct=distinct, min_length=min_length)
