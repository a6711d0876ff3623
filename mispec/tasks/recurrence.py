"""A linear recurrence mod ``p`` (Fibonacci-style): predict each element from the previous
two, ``x_t = (a · x_{t-1} + b · x_{t-2}) mod p``.

Tokens ``0 … p-1``; ``d_vocab = p``, no BOS. A sequence is ``x_0 … x_{length-1}`` from a
starting pair ``(x_0, x_1)``; every prediction of ``x_2 …`` is scored (predictions 1 …
length-2). Finite: one row per starting pair (``p²`` rows, row ``x_0 * p + x_1``), split into
train and test by ``train_frac`` — the test sequences start from pairs never trained on, so
solving them needs the rule, not a lookup (although later elements of a test sequence may be
pairs seen as neighbours in training sequences).
"""

from __future__ import annotations

import numpy as np

from mispec.tasks.base import TaskBatch, positive
from mispec.tasks.table import TableTask


class Recurrence(TableTask):
    name = "recurrence"
    has_bos = False

    def __init__(
        self,
        p: int = 17,
        length: int = 8,
        a: int = 1,
        b: int = 1,
        train_frac: float = 0.5,
        split_seed: int = 0,
    ):
        p = positive("p", p, 2)
        length = positive("length", length, 3)
        super().__init__(train_frac, split_seed, p=p, length=length, a=int(a), b=int(b))
        self.p, self.length, self.a, self.b = p, length, int(a) % p, int(b) % p
        self.d_vocab, self.n_ctx = p, length

    def build(self) -> TaskBatch:
        p = self.p
        x0, x1 = np.divmod(np.arange(p * p, dtype=np.int64), p)
        seq = [x0, x1]
        for _ in range(2, self.length):
            seq.append((self.a * seq[-1] + self.b * seq[-2]) % p)
        tokens = np.stack(seq, axis=1)
        mask = np.zeros((p * p, self.length - 1), dtype=bool)
        mask[:, 1:] = True  # predictions of x_2 … x_{length-1}
        return TaskBatch(tokens=tokens, loss_mask=mask)


def recurrence(
    p: int = 17,
    length: int = 8,
    a: int = 1,
    b: int = 1,
    train_frac: float = 0.5,
    split_seed: int = 0,
) -> Recurrence:
    """``x_0 x_1 …`` with ``x_t = (a x_{t-1} + b x_{t-2}) mod p`` (Fibonacci for ``a = b = 1``),
    one sequence per starting pair, split into train and test.

    Args:
        p: the modulus: tokens ``0 … p-1`` (at least 2; default 17), ``p²`` starting pairs.
        length: elements per sequence, the starting pair included (at least 3; default 8).
        a: coefficient of ``x_{t-1}`` (taken mod ``p``; default 1).
        b: coefficient of ``x_{t-2}`` (taken mod ``p``; default 1).
        train_frac: fraction of the starting pairs in the training split, in (0, 1] (default 0.5);
            the rest are the test split (``train_mask`` extra).
        split_seed: seed of the fixed train/test split (not of training: the same split for every
            ``seed``).
    """
    return Recurrence(p=p, length=length, a=a, b=b, train_frac=train_frac, split_seed=split_seed)
