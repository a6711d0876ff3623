"""Modular arithmetic (grokking): ``a b = c`` with ``c = (a + b) mod p`` — and the
``modular_subtraction`` (``a - b``) and ``modular_division`` (``a · b⁻¹``, ``b ≠ 0``, ``p``
prime) variants, which may give ``=`` a token of its own (``eq_token``) so that a mixture
with shared vocabulary can tell the operations apart.

Tokens: ``0 … p-1`` are numbers and ``p`` is ``=``; ``d_vocab = p + 1``, no BOS. A
sequence is ``[a, b, =, c]`` (``n_ctx = 4``) and only the prediction at ``=`` (position 2)
is scored, which is the usual "logits at the last input position" set-up written as
next-token prediction.

The dataset is the full ``p × p`` table in row-major order (row ``a * p + b``); a fixed
permutation drawn from ``split_seed`` puts the first ``round(train_frac * p²)`` pairs in
the training split (``split_method: python_shuffle`` instead reproduces Nanda et al.'s
``random.shuffle`` split, the first ``int(train_frac * p²)``). Training is full batch (``batch_size: null``) or, given a batch size,
draws pairs from the training split with the ``(seed, step)`` generator. ``train_mask``
(over the table) is exposed so metrics can report train and test loss.
"""

from __future__ import annotations

import random
from functools import cached_property

import numpy as np

from mispec.errors import UserError
from mispec.prompts.core import PromptSet
from mispec.tasks.base import TRAIN_STREAM, Task, TaskBatch, positive, rng_for

# How the table is split into train and test rows (``split_method``); the first is the default.
SPLIT_METHODS = ("permutation", "python_shuffle")


class ModularAddition(Task):
    """``(a + b) mod p`` over the full ``p × p`` table (the grokking task)."""

    name = "modular_addition"
    has_bos = False
    full_batch = True
    prompt_count = None  # the prompt set is the full table

    def __init__(
        self,
        p: int = 113,
        train_frac: float = 0.3,
        split_seed: int = 0,
        split_method: str = "permutation",
    ):
        if not 0.0 < float(train_frac) <= 1.0:
            raise UserError(f"task argument 'train_frac' must be in (0, 1], got {train_frac!r}")
        if split_method not in SPLIT_METHODS:
            raise UserError(
                f"task argument 'split_method' must be one of {', '.join(SPLIT_METHODS)}, "
                f"got {split_method!r}"
            )
        super().__init__(
            p=positive("p", p, 2), train_frac=float(train_frac), split_seed=int(split_seed)
        )
        if split_method != "permutation":  # the default stays out: identities are unchanged
            self.args["split_method"] = split_method
        self.p, self.train_frac, self.split_seed = p, float(train_frac), int(split_seed)
        self.split_method = split_method
        self.d_vocab = p + 1
        self.n_ctx = 4

    @property
    def eq_token(self) -> int:
        return self.p

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """The operands of every row of the table: ``a * p + b`` for all ``a, b < p``."""
        return np.divmod(np.arange(self.p * self.p, dtype=np.int64), self.p)

    def answers(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a + b) % self.p

    @cached_property
    def table(self) -> TaskBatch:
        """Every pair ``(a, b)`` in :meth:`pairs` order, with ``answer`` and ``train_mask``."""
        a, b = self.pairs()
        n = len(a)
        c = self.answers(a, b)
        tokens = np.stack([a, b, np.full_like(a, self.eq_token), c], axis=1)
        mask = np.zeros((n, 3), dtype=bool)
        mask[:, 2] = True
        extras = {
            "answer": c,
            "answer_pos": np.full(n, 2, dtype=np.int64),
            "train_mask": self.train_mask,
        }
        return TaskBatch(tokens=tokens, loss_mask=mask, extras=extras)

    @cached_property
    def train_indices(self) -> np.ndarray:
        """Rows of the table in the training split (sorted)."""
        n = len(self.pairs()[0])
        if self.split_method == "python_shuffle":
            return python_shuffle_split(n, self.train_frac, self.split_seed)
        perm = np.random.default_rng(
            np.random.SeedSequence([3, self.split_seed, self.p])
        ).permutation(n)
        n_train = max(1, int(round(self.train_frac * n)))
        return np.sort(perm[:n_train])

    @cached_property
    def train_mask(self) -> np.ndarray:
        mask = np.zeros(len(self.pairs()[0]), dtype=bool)
        mask[self.train_indices] = True
        return mask

    def _rows(self, rows: np.ndarray) -> TaskBatch:
        t = self.table
        return TaskBatch(
            tokens=t.tokens[rows],
            loss_mask=t.loss_mask[rows],
            extras={k: v[rows] for k, v in t.extras.items()},
        )

    def sample(self, rng: np.random.Generator, n: int) -> TaskBatch:
        return self._rows(rng.choice(self.train_indices, size=n, replace=True))

    def batch(self, seed: int, step: int, batch_size: int | None) -> TaskBatch:
        if batch_size is None:
            return self._rows(self.train_indices)
        return self.sample(rng_for(TRAIN_STREAM, seed, step), batch_size)

    def eval_batch(self, n: int = 0) -> TaskBatch:
        """The full table (train and test pairs; see ``extras['train_mask']``)."""
        return self.table

    def prompt_set(self, n: int | None, seed: int) -> PromptSet:
        """The full table, whatever ``n`` and ``seed``."""
        return self.to_prompt_set(self.table)


def python_shuffle_split(n: int, train_frac: float, seed: int) -> np.ndarray:
    """Nanda et al.'s split (``gen_train_test`` in their ``transformers.py``): the table's rows
    in row order, shuffled by Python's ``random`` seeded with ``seed``, the first
    ``int(train_frac * n)`` of them (sorted)."""
    rows = list(range(n))
    random.Random(seed).shuffle(rows)
    return np.sort(np.asarray(rows[: max(1, int(train_frac * n))], dtype=np.int64))


def modular_addition(
    p: int = 113, train_frac: float = 0.3, split_seed: int = 0, split_method: str = "permutation"
) -> ModularAddition:
    """``a b =`` → ``(a + b) mod p`` on a fixed train/test split of the ``p × p`` table;
    ``split_method``: ``permutation`` (mispec's: a NumPy permutation, the first
    ``round(train_frac · p²)`` rows) or ``python_shuffle`` (Nanda et al.'s: ``random.shuffle``
    seeded with ``split_seed``, the first ``int(train_frac · p²)``).

    Args:
        p: the modulus: numbers are tokens ``0 … p-1`` (at least 2; default 113).
        train_frac: fraction of the (a, b) pairs in the training split, in (0, 1] (default 0.3); the
            rest are the test split (``train_mask`` extra).
        split_seed: seed of the fixed train/test split (not of training: the same split for every
            ``seed``).
        split_method: ``permutation`` (mispec's: a NumPy permutation, the first ``round(train_frac ·
            rows)`` rows) or ``python_shuffle`` (Nanda et al.'s: ``random.shuffle`` seeded with
            ``split_seed``, the first ``int(train_frac · rows)``).
    """
    return ModularAddition(
        p=p, train_frac=train_frac, split_seed=split_seed, split_method=split_method
    )


class _ModularOp(ModularAddition):
    """A modular operation other than addition, with an optional ``=`` token of its own."""

    def __init__(
        self,
        p: int = 113,
        train_frac: float = 0.3,
        split_seed: int = 0,
        eq_token: int | None = None,
        split_method: str = "permutation",
    ):
        super().__init__(
            p=p, train_frac=train_frac, split_seed=split_seed, split_method=split_method
        )
        eq = p if eq_token is None else positive("eq_token", eq_token, p)
        self.args["eq_token"] = eq
        self._eq = eq
        self.d_vocab = eq + 1

    @property
    def eq_token(self) -> int:
        return self._eq


class ModularSubtraction(_ModularOp):
    """``(a - b) mod p`` over the full ``p × p`` table."""

    name = "modular_subtraction"

    def answers(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a - b) % self.p


class ModularDivision(_ModularOp):
    """``a · b⁻¹ mod p`` (``p`` prime) over the ``p × (p - 1)`` table of ``b ≠ 0``."""

    name = "modular_division"

    def __init__(
        self,
        p: int = 113,
        train_frac: float = 0.3,
        split_seed: int = 0,
        eq_token: int | None = None,
        split_method: str = "permutation",
    ):
        if isinstance(p, int) and p >= 2 and any(p % k == 0 for k in range(2, int(p**0.5) + 1)):
            raise UserError(f"task argument 'p' must be prime for division, got {p}")
        super().__init__(p, train_frac, split_seed, eq_token, split_method)

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Row ``a * (p - 1) + (b - 1)`` for ``a < p`` and ``0 < b < p``."""
        a, b = np.divmod(np.arange(self.p * (self.p - 1), dtype=np.int64), self.p - 1)
        return a, b + 1

    def answers(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        inverse = np.array([pow(int(x), -1, self.p) for x in range(1, self.p)], dtype=np.int64)
        return (a * inverse[b - 1]) % self.p


def modular_subtraction(
    p: int = 113,
    train_frac: float = 0.3,
    split_seed: int = 0,
    eq_token: int | None = None,
    split_method: str = "permutation",
) -> ModularSubtraction:
    """``a b =`` → ``(a - b) mod p``; ``eq_token`` (default ``p``) is the ``=`` token.

    Args:
        p: the modulus: numbers are tokens ``0 … p-1`` (at least 2; default 113).
        train_frac: fraction of the (a, b) pairs in the training split, in (0, 1] (default 0.3); the
            rest are the test split (``train_mask`` extra).
        split_seed: seed of the fixed train/test split (not of training: the same split for every
            ``seed``).
        eq_token: the token id of ``=``, at least ``p`` (``null``: ``p``); ``d_vocab = eq_token +
            1``, so a mixture can give each operation an ``=`` of its own.
        split_method: ``permutation`` (mispec's: a NumPy permutation, the first ``round(train_frac ·
            rows)`` rows) or ``python_shuffle`` (Nanda et al.'s: ``random.shuffle`` seeded with
            ``split_seed``, the first ``int(train_frac · rows)``).
    """
    return ModularSubtraction(
        p=p, train_frac=train_frac, split_seed=split_seed, eq_token=eq_token,
        split_method=split_method,
    )  # fmt: skip


def modular_division(
    p: int = 113,
    train_frac: float = 0.3,
    split_seed: int = 0,
    eq_token: int | None = None,
    split_method: str = "permutation",
) -> ModularDivision:
    """``a b =`` → ``a · b⁻¹ mod p`` (``p`` prime, ``b ≠ 0``); ``eq_token`` as for subtraction.

    Args:
        p: the modulus, a prime: numbers are tokens ``0 … p-1`` (default 113).
        train_frac: fraction of the (a, b) pairs in the training split, in (0, 1] (default 0.3); the
            rest are the test split (``train_mask`` extra).
        split_seed: seed of the fixed train/test split (not of training: the same split for every
            ``seed``).
        eq_token: the token id of ``=``, at least ``p`` (``null``: ``p``); ``d_vocab = eq_token +
            1``, so a mixture can give each operation an ``=`` of its own.
        split_method: ``permutation`` (mispec's: a NumPy permutation, the first ``round(train_frac ·
            rows)`` rows) or ``python_shuffle`` (Nanda et al.'s: ``random.shuffle`` seeded with
            ``split_seed``, the first ``int(train_frac · rows)``).
    """
    return ModularDivision(
        p=p, train_frac=train_frac, split_seed=split_seed, eq_token=eq_token,
        split_method=split_method,
    )  # fmt: skip
