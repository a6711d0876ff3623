"""Composing permutations: ``g h =`` → ``g ∘ h`` in the symmetric group ``S_n`` (the
non-commutative group task of grokking studies; Chughtai et al. 2023, "A toy model of
universality").

Tokens ``0 … n!-1`` are the permutations of ``0 … n-1`` in lexicographic order, then ``=``;
``d_vocab = n! + 1``, no BOS. A sequence is ``[g, h, =, g∘h]`` with ``(g∘h)(i) = g(h(i))``
(``n_ctx = 4``); only the prediction at ``=`` is scored. Finite: ``(n!)²`` rows (row ``g * n! +
h``), split into train and test by ``train_frac``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from mispec.errors import UserError
from mispec.tasks.base import TaskBatch, positive
from mispec.tasks.table import TableTask, answer_at


def permutations(n: int) -> np.ndarray:
    """All permutations of ``0 … n-1`` in lexicographic order, ``[n!, n]``."""
    return np.array(list(itertools.permutations(range(n))), dtype=np.int64)


class Permutation(TableTask):
    name = "permutation"
    has_bos = False

    def __init__(self, n: int = 4, train_frac: float = 0.5, split_seed: int = 0):
        n = positive("n", n, 2)
        if n > 6:
            raise UserError(
                f"permutation: n = {n} makes a table of {math.factorial(n)}² rows; use n <= 6"
            )
        super().__init__(train_frac, split_seed, n=n)
        self.n, self.order = n, math.factorial(n)
        self.eq_token = self.order
        self.d_vocab, self.n_ctx = self.order + 1, 4

    def build(self) -> TaskBatch:
        perms = permutations(self.n)
        index = {tuple(p): i for i, p in enumerate(perms.tolist())}
        g, h = np.divmod(np.arange(self.order**2, dtype=np.int64), self.order)
        composed = perms[g][np.arange(g.size)[:, None], perms[h]]  # (g∘h)(i) = g[h[i]]
        c = np.array([index[tuple(row)] for row in composed.tolist()], dtype=np.int64)
        tokens = np.stack([g, h, np.full_like(g, self.eq_token), c], axis=1)
        rows = tokens.shape[0]
        extras = {"answer": c, "answer_pos": np.full(rows, 2, dtype=np.int64)}
        return TaskBatch(tokens=tokens, loss_mask=answer_at(rows, 4, 2), extras=extras)


def permutation(n: int = 4, train_frac: float = 0.5, split_seed: int = 0) -> Permutation:
    """``g h =`` → ``g ∘ h`` in ``S_n`` (a finite table with a train / test split).

    Args:
        n: the group ``S_n``: permutations of ``0 … n-1``, ``2 <= n <= 6`` (default 4: ``(4!)² =
            576`` rows).
        train_frac: fraction of the (g, h) pairs in the training split, in (0, 1] (default 0.5); the
            rest are the test split (``train_mask`` extra).
        split_seed: seed of the fixed train/test split (not of training: the same split for every
            ``seed``).
    """
    return Permutation(n=n, train_frac=train_frac, split_seed=split_seed)
