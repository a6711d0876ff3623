"""Finite tasks: a whole table of sequences, a fixed train / test split, full-batch training.

A :class:`TableTask` subclass builds its table once (:meth:`TableTask.build`: tokens
``[rows, n_ctx]`` and the loss mask ``[rows, n_ctx - 1]``, plus extras such as ``answer``); the
base class draws the split (a permutation from ``split_seed`` puts the first
``round(train_frac * rows)`` rows in the training split), exposes it as the ``train_mask``
extra (so ``loss`` / ``accuracy`` with ``split: train | test`` measure each side), trains on
the training rows (full batch with ``batch_size: null``, else rows drawn by ``(seed, step)``)
and uses the whole table as its prompt set and evaluation batch.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from mispec.errors import UserError
from mispec.prompts.core import PromptSet
from mispec.tasks.base import TRAIN_STREAM, Task, TaskBatch, rng_for


def check_fraction(train_frac: float) -> float:
    if isinstance(train_frac, bool) or not 0.0 < float(train_frac) <= 1.0:
        raise UserError(f"task argument 'train_frac' must be in (0, 1], got {train_frac!r}")
    return float(train_frac)


class TableTask(Task):
    """Base class of finite tasks (see the module docstring)."""

    full_batch = True
    prompt_count = None  # the prompt set is the whole table
    split_stream = 4  # the split's random stream (disjoint from the training batches)

    def __init__(self, train_frac: float, split_seed: int, **args: Any):
        super().__init__(train_frac=check_fraction(train_frac), split_seed=int(split_seed), **args)
        self.train_frac, self.split_seed = float(train_frac), int(split_seed)

    def build(self) -> TaskBatch:
        """Every sequence of the task (its rows in a fixed order), without ``train_mask``."""
        raise NotImplementedError

    @cached_property
    def built(self) -> TaskBatch:
        return self.build()

    @cached_property
    def table(self) -> TaskBatch:
        b = self.built
        return TaskBatch(b.tokens, b.loss_mask, {**b.extras, "train_mask": self.train_mask})

    @cached_property
    def n_rows(self) -> int:
        return int(self.built.tokens.shape[0])

    @cached_property
    def train_indices(self) -> np.ndarray:
        """Rows of the table in the training split (sorted)."""
        seq = np.random.SeedSequence([self.split_stream, self.split_seed, self.n_rows])
        perm = np.random.default_rng(seq).permutation(self.n_rows)
        return np.sort(perm[: max(1, int(round(self.train_frac * self.n_rows)))])

    @cached_property
    def train_mask(self) -> np.ndarray:
        mask = np.zeros(self.n_rows, dtype=bool)
        mask[self.train_indices] = True
        return mask

    def rows(self, rows: np.ndarray) -> TaskBatch:
        t = self.table
        extras = {k: v[rows] for k, v in t.extras.items()}
        return TaskBatch(tokens=t.tokens[rows], loss_mask=t.loss_mask[rows], extras=extras)

    def sample(self, rng: np.random.Generator, n: int) -> TaskBatch:
        return self.rows(rng.choice(self.train_indices, size=n, replace=True))

    def batch(self, seed: int, step: int, batch_size: int | None) -> TaskBatch:
        if batch_size is None:
            return self.rows(self.train_indices)
        return self.sample(rng_for(TRAIN_STREAM, seed, step), batch_size)

    def eval_batch(self, n: int = 0) -> TaskBatch:
        """The whole table (train and test rows; see ``extras['train_mask']``)."""
        return self.table

    def prompt_set(self, n: int | None, seed: int) -> PromptSet:
        """The whole table, whatever ``n`` and ``seed``."""
        return self.to_prompt_set(self.table)


def answer_at(n_rows: int, n_ctx: int, pos: int) -> np.ndarray:
    """A loss mask ``[n_rows, n_ctx - 1]`` that scores only the prediction at ``pos``."""
    mask = np.zeros((n_rows, n_ctx - 1), dtype=bool)
    mask[:, pos] = True
    return mask
