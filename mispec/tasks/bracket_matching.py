"""Bracket matching: is a string of ``(`` and ``)`` balanced? ``BOS s_1 … s_L =`` →
``YES`` / ``NO``.

Tokens: ``(`` = 0, ``)`` = 1, ``=`` = 2, ``NO`` = 3, ``YES`` = 4, ``BOS`` = 5; ``d_vocab = 6``,
``n_ctx = length + 3``. Only the prediction at ``=`` is scored (``answer``, ``answer_pos``
extras). Half of the strings are balanced (a uniformly random Dyck word of ``length``
brackets, drawn as a random walk conditioned to stay non-negative and end at 0), half are
unbalanced: a uniformly random string that is not balanced among those that *look* balanced
from outside — ``length / 2`` opening and ``length / 2`` closing brackets, the first one
``(`` and the last one ``)`` (every Dyck word has those too). So no cheap shortcut decides:
counting the brackets, or reading the first and the last bracket, says "balanced" for every
string (50% accuracy); the only difference is whether the running depth dips below 0 inside
the string — the model must track it (``tests/unit/test_trust_brackets.py`` measures the
shortcuts). ``length`` is even and at least 6 (the shortest length with such an unbalanced
string: ``())(()``). Infinite (drawn per step).

Data version 2: before it, the unbalanced strings were any arrangement of the brackets, so
"first ``(`` and last ``)``" was right on 93% of length-10 strings; models trained on
version 1 data have another identity and are not reused.
"""

from __future__ import annotations

import numpy as np

from mispec.errors import UserError
from mispec.tasks.base import Task, TaskBatch, positive

OPEN, CLOSE, EQ, NO, YES, BOS = range(6)


def balanced(strings: np.ndarray) -> np.ndarray:
    """``[n]`` bool: each row of ``strings`` (0 = ``(``, 1 = ``)``) is balanced."""
    depth = np.cumsum(np.where(strings == OPEN, 1, -1), axis=1)
    return (depth.min(axis=1) >= 0) & (depth[:, -1] == 0)


def dyck_words(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    """``n`` uniformly random balanced strings of ``length`` brackets, step by step: with
    ``r`` brackets left at depth ``d``, open with probability ``C(r-1, d+1) / C(r, d)``,
    where ``C(r, d)`` counts the non-negative paths of ``r`` steps from ``d`` to 0."""
    out = np.zeros((n, length), dtype=np.int64)
    depth = np.zeros(n, dtype=np.int64)
    for i in range(length):
        r = length - i
        p_open = _paths(r - 1, depth + 1) / np.maximum(_paths(r, depth), 1)
        opened = rng.random(n) < p_open
        out[:, i] = np.where(opened, OPEN, CLOSE)
        depth += np.where(opened, 1, -1)
    return out


def _paths(r: int | np.ndarray, d: np.ndarray) -> np.ndarray:
    """Paths of ``r`` ±1 steps from depth ``d`` to 0 that never go below 0 (ballot numbers:
    ``C(r, (r-d)/2) - C(r, (r-d)/2 - 1)``), as floats."""
    from math import comb

    r = np.broadcast_to(np.asarray(r), d.shape)
    out = np.zeros(d.shape, dtype=float)
    for i, (ri, di) in enumerate(zip(r.tolist(), d.tolist(), strict=True)):
        if ri < 0 or di < 0 or di > ri or (ri - di) % 2:
            continue
        k = (ri - di) // 2
        out[i] = comb(ri, k) - (comb(ri, k - 1) if k else 0)
    return out


class BracketMatching(Task):
    name = "bracket_matching"
    has_bos = True
    d_vocab = 6
    data_version = 2  # unbalanced strings start with '(' and end with ')' (module docstring)

    def __init__(self, length: int = 12):
        length = positive("length", length, 2)
        if length % 2:
            raise UserError(f"bracket_matching: length must be even, got {length}")
        if length < 6:
            raise UserError(
                f"bracket_matching: length must be at least 6, got {length}: shorter strings "
                "that start with '(' and end with ')' with as many of each are all balanced, so "
                "the unbalanced half could be told apart by its first or last bracket"
            )
        super().__init__(length=length)
        self.length, self.n_ctx = length, length + 3

    def sample(self, rng: np.random.Generator, n: int) -> TaskBatch:
        half = self.length // 2
        want_balanced = rng.random(n) < 0.5
        strings = dyck_words(rng, n, self.length)
        todo = ~want_balanced
        inner = [OPEN] * (half - 1) + [CLOSE] * (half - 1)
        while todo.any():  # unbalanced: as many '(' as ')', the first '(' and the last ')'
            k = int(todo.sum())
            middle = rng.permuted(np.tile(inner, (k, 1)), axis=1)
            shuffled = np.concatenate(
                [np.full((k, 1), OPEN), middle, np.full((k, 1), CLOSE)], axis=1
            )
            ok = ~balanced(shuffled)
            rows = np.flatnonzero(todo)[ok]
            strings[rows] = shuffled[ok]
            todo[rows] = False
        answer = np.where(balanced(strings), YES, NO).astype(np.int64)
        tokens = np.concatenate(
            [np.full((n, 1), BOS), strings, np.full((n, 1), EQ), answer[:, None]], axis=1
        ).astype(np.int64)
        mask = np.zeros((n, self.n_ctx - 1), dtype=bool)
        mask[:, self.length + 1] = True
        extras = {"answer": answer, "answer_pos": np.full(n, self.length + 1, dtype=np.int64)}
        return TaskBatch(tokens=tokens, loss_mask=mask, extras=extras)


def bracket_matching(length: int = 12) -> BracketMatching:
    """``BOS`` + ``length`` brackets + ``=`` → ``YES`` if balanced, else ``NO`` (half each;
    every string has as many ``(`` as ``)``, starts with ``(`` and ends with ``)``).

    Args:
        length: brackets per string: even and at least 6 (default 12); ``n_ctx = length + 3``.
    """
    return BracketMatching(length=length)
