"""The smaller (or larger) of two numbers: ``OP a b =`` → ``min(a, b)`` or ``max(a, b)``.

Tokens: ``0 … max_value-1`` are numbers, then ``MIN``, ``MAX`` and ``=``; ``d_vocab =
max_value + 3``, no BOS. A sequence is ``[OP, a, b, =, c]`` (``n_ctx = 5``); only the
prediction at ``=`` (position 3) is scored. ``op: min`` or ``max`` fixes the operation (every
row starts with that token); ``op: both`` puts both in the table, so one model learns both and
the first token says which. Finite: the table has ``max_value²`` rows per operation (row
``a * max_value + b``), split into train and test by ``train_frac`` (see
:mod:`mispec.tasks.table`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from mispec.errors import UserError
from mispec.tasks.base import TaskBatch, positive
from mispec.tasks.table import TableTask, answer_at

OPS = ("min", "max", "both")


class MinMax(TableTask):
    name = "min_max"
    has_bos = False

    def __init__(
        self, max_value: int = 24, op: str = "both", train_frac: float = 0.5, split_seed: int = 0
    ):
        if op not in OPS:
            raise UserError(f"task argument 'op' must be one of {list(OPS)}, got {op!r}")
        n = positive("max_value", max_value, 2)
        super().__init__(train_frac, split_seed, max_value=n, op=op)
        self.max_value, self.op = n, op
        self.min_token, self.max_token, self.eq_token = n, n + 1, n + 2
        self.d_vocab, self.n_ctx = n + 3, 5

    def build(self) -> TaskBatch:
        n = self.max_value
        a, b = np.divmod(np.arange(n * n, dtype=np.int64), n)
        parts = []
        for op in ("min", "max") if self.op == "both" else (self.op,):
            c = np.minimum(a, b) if op == "min" else np.maximum(a, b)
            tok = self.min_token if op == "min" else self.max_token
            parts.append(
                np.stack([np.full_like(a, tok), a, b, np.full_like(a, self.eq_token), c], 1)
            )
        tokens = np.concatenate(parts)
        rows = tokens.shape[0]
        extras = {"answer": tokens[:, 4].copy(), "answer_pos": np.full(rows, 3, dtype=np.int64)}
        return TaskBatch(tokens=tokens, loss_mask=answer_at(rows, 5, 3), extras=extras)


def min_max(
    max_value: int = 24,
    op: Literal["min", "max", "both"] = "both",
    train_frac: float = 0.5,
    split_seed: int = 0,
) -> MinMax:
    """``OP a b =`` → ``min(a, b)`` / ``max(a, b)`` for ``a, b < max_value`` (a finite table
    with a train / test split).

    Args:
        max_value: numbers are ``0 … max_value-1`` (at least 2; default 24): ``max_value²`` rows per
            operation.
        op: ``min`` or ``max``: that operation only; ``both`` (default): both in one table, the
            first token says which.
        train_frac: fraction of the rows of the table in the training split, in (0, 1] (default
            0.5); the rest are the test split (``train_mask`` extra).
        split_seed: seed of the fixed train/test split (not of training: the same split for every
            ``seed``).
    """
    return MinMax(max_value=max_value, op=op, train_frac=train_frac, split_seed=split_seed)
