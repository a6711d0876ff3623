"""Modular addition (grokking): ``a b = c`` with ``c = (a + b) mod p``.

Tokens: ``0 … p-1`` are numbers and ``p`` is ``=``; ``d_vocab = p + 1``, no BOS. A
sequence is ``[a, b, =, c]`` (``n_ctx = 4``) and only the prediction at ``=`` (position 2)
is scored, which is the usual "logits at the last input position" set-up written as
next-token prediction.

The dataset is the full ``p × p`` table in row-major order (row ``a * p + b``); a fixed
permutation drawn from ``split_seed`` puts the first ``round(train_frac * p²)`` pairs in
the training split. Training is full batch (``batch_size: null``) or, given a batch size,
draws pairs from the training split with the ``(seed, step)`` generator. ``train_mask``
(over the table) is exposed so metrics can report train and test loss.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from mispec.errors import UserError
from mispec.prompts.core import PromptSet
from mispec.tasks.base import TRAIN_STREAM, Task, TaskBatch, positive, rng_for


class ModularAddition(Task):
    name = "modular_addition"
    has_bos = False
    full_batch = True
    prompt_count = None  # the prompt set is the full table

    def __init__(self, p: int = 113, train_frac: float = 0.3, split_seed: int = 0):
        if not 0.0 < float(train_frac) <= 1.0:
            raise UserError(f"task argument 'train_frac' must be in (0, 1], got {train_frac!r}")
        super().__init__(
            p=positive("p", p, 2), train_frac=float(train_frac), split_seed=int(split_seed)
        )
        self.p, self.train_frac, self.split_seed = p, float(train_frac), int(split_seed)
        self.d_vocab = p + 1
        self.n_ctx = 4

    @property
    def eq_token(self) -> int:
        return self.p

    @cached_property
    def table(self) -> TaskBatch:
        """Every pair ``(a, b)``, row ``a * p + b``, with ``answer`` and ``train_mask``."""
        p = self.p
        a, b = np.divmod(np.arange(p * p, dtype=np.int64), p)
        c = (a + b) % p
        tokens = np.stack([a, b, np.full_like(a, self.eq_token), c], axis=1)
        mask = np.zeros((p * p, 3), dtype=bool)
        mask[:, 2] = True
        extras = {
            "answer": c,
            "answer_pos": np.full(p * p, 2, dtype=np.int64),
            "train_mask": self.train_mask,
        }
        return TaskBatch(tokens=tokens, loss_mask=mask, extras=extras)

    @cached_property
    def train_indices(self) -> np.ndarray:
        """Rows of the table in the training split (sorted)."""
        n = self.p * self.p
        perm = np.random.default_rng(
            np.random.SeedSequence([3, self.split_seed, self.p])
        ).permutation(n)
        n_train = max(1, int(round(self.train_frac * n)))
        return np.sort(perm[:n_train])

    @cached_property
    def train_mask(self) -> np.ndarray:
        mask = np.zeros(self.p * self.p, dtype=bool)
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


def modular_addition(p: int = 113, train_frac: float = 0.3, split_seed: int = 0) -> ModularAddition:
    """``a b =`` → ``(a + b) mod p`` on a fixed train/test split of the ``p × p`` table."""
    return ModularAddition(p=p, train_frac=train_frac, split_seed=split_seed)
