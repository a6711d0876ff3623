"""Multi-digit addition (or subtraction): ``a_1 … a_n + b_1 … b_n = c …`` digit by digit.

Tokens: digits ``0 … 9``, ``+`` = 10, ``-`` = 11, ``=`` = 12; ``d_vocab = 13``, no BOS. Both
operands are written with exactly ``n_digits`` digits (leading zeros), most significant first;
the answer has ``n_digits + 1`` digits for addition (the last carry) and ``n_digits`` for
subtraction (``a - b`` with the operands ordered so that ``a >= b``), written most significant
first (``order: normal``) or least significant first (``order: reversed``, the order in which
carries are computed). ``n_ctx = 2 * n_digits + 2 + answer digits``. Every answer digit is
scored. Infinite: operands are uniform, drawn per step.

Prompt extras, per answer digit by *place* ``j`` (``j = 0`` the units, the ``digit`` coordinate
of the per-digit metrics):

* ``digit_pos`` ``[batch, digits]``: the index of the next-token prediction that predicts place
  ``j`` (the position of the token before it);
* ``answer_digits`` ``[batch, digits]``: the digit at place ``j``;
* ``carry`` ``[batch, digits]``: whether place ``j`` receives a carry (addition) or a borrow
  (subtraction) from place ``j - 1`` — 0 for the units.

Nanda et al. (2023) report one phase change per answer digit in 5-digit addition (in some
order); the per-digit loss of this task measures that (``digit_loss``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from mispec.errors import UserError
from mispec.tasks.base import Task, TaskBatch, positive

PLUS, MINUS, EQ = 10, 11, 12


def to_digits(x: np.ndarray, n: int) -> np.ndarray:
    """``[batch, n]`` digits of ``x`` by place (column ``j`` = ``10^j``)."""
    return (x[:, None] // 10 ** np.arange(n, dtype=np.int64)) % 10


class MultiDigitAddition(Task):
    name = "multi_digit_addition"
    has_bos = False
    d_vocab = 13

    def __init__(self, n_digits: int = 5, order: str = "normal", subtract: bool = False):
        n = positive("n_digits", n_digits, 1)
        if n > 17:
            raise UserError(f"multi_digit_addition: n_digits must be <= 17 (int64), got {n}")
        if order not in ("normal", "reversed"):
            raise UserError(f"task argument 'order' must be 'normal' or 'reversed', got {order!r}")
        super().__init__(n_digits=n, order=order, subtract=bool(subtract))
        self.n_digits, self.order, self.subtract = n, order, bool(subtract)
        self.n_answer = n if self.subtract else n + 1
        self.n_ctx = 2 * n + 2 + self.n_answer

    def places(self) -> np.ndarray:
        """The place of each answer token, in sequence order."""
        m = self.n_answer
        return np.arange(m) if self.order == "reversed" else np.arange(m)[::-1]

    def sample(self, rng: np.random.Generator, n: int) -> TaskBatch:
        k, m = self.n_digits, self.n_answer
        a = rng.integers(0, 10**k, size=n, dtype=np.int64)
        b = rng.integers(0, 10**k, size=n, dtype=np.int64)
        if self.subtract:
            a, b = np.maximum(a, b), np.minimum(a, b)
            c = a - b
            low = 10 ** np.arange(m, dtype=np.int64)
            carry = (a[:, None] % low) < (b[:, None] % low)  # borrow into place j
        else:
            c = a + b
            low = 10 ** np.arange(m, dtype=np.int64)
            carry = (a[:, None] % low) + (b[:, None] % low) >= low  # carry into place j
        digits = to_digits(c, m)  # by place
        places = self.places()
        tokens = np.concatenate(
            [
                to_digits(a, k)[:, ::-1],
                np.full((n, 1), MINUS if self.subtract else PLUS),
                to_digits(b, k)[:, ::-1],
                np.full((n, 1), EQ),
                digits[:, places],
            ],
            axis=1,
        ).astype(np.int64)
        start = 2 * k + 2  # position of the first answer token
        mask = np.zeros((n, self.n_ctx - 1), dtype=bool)
        mask[:, start - 1 :] = True
        pos_by_place = np.empty(m, dtype=np.int64)
        pos_by_place[places] = start - 1 + np.arange(m)
        extras = {
            "digit_pos": np.tile(pos_by_place, (n, 1)),
            "answer_digits": digits,
            "carry": carry,
        }
        return TaskBatch(tokens=tokens, loss_mask=mask, extras=extras)


def multi_digit_addition(
    n_digits: int = 5, order: Literal["normal", "reversed"] = "normal", subtract: bool = False
) -> MultiDigitAddition:
    """``a + b = c`` (or ``a - b``, ``a >= b``) with ``n_digits``-digit operands, answer digits
    most significant first (``normal``) or units first (``reversed``).

    Args:
        n_digits: digits per operand, leading zeros included (1 to 17; default 5).
        order: the answer's digits most significant first (``normal``) or units first (``reversed``,
            the order carries are computed in).
        subtract: true: ``a - b`` with the operands ordered so ``a >= b`` (``n_digits`` answer
            digits); false (default): ``a + b`` (``n_digits + 1``).
    """
    return MultiDigitAddition(n_digits=n_digits, order=order, subtract=subtract)
