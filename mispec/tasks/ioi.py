"""A toy indirect-object-identification task: ``BOS X1 X2 X3 MID → Y``.

Names are tokens ``0 … n_names-1``; ``BOS = n_names``, ``MID = n_names + 1``
(``d_vocab = n_names + 2``, ``n_ctx = 6``: ``BOS X1 X2 X3 MID Y``). Only the prediction at
``MID`` is scored. The rule: *if the last name repeats an earlier one, the answer is the
other earlier name; otherwise it is the last name*.

* half the data (``abc_frac = 0.5`` by default) is IOI-shaped, with two names: the
  templates ``A B A`` and ``B A A`` (subject ``A`` repeated last, like "John" in "… John gave
  a drink to"), answer ``B`` (the indirect object);
* the other half has three distinct names ``A B C``, answer ``C``. These examples stop the
  shortcut "answer the name that is not last" and make duplicate detection necessary.

The prompt generator returns IOI-shaped prompts with ``answer`` (IO), ``wrong_answer``
(subject) and ``corrupt_tokens`` — the same prompt with the repeated subject replaced by a
third name (the "ABC" corruption of IOI patching), on which IO and S are symmetric — and the
named positions of IOI circuit analysis as ``pos_IO``, ``pos_S1``, ``pos_S2`` (the repeated
subject, position 3) and ``pos_END`` (``MID``, where the answer is predicted), as a text
``.jsonl`` IOI set names them.
"""

from __future__ import annotations

import numpy as np

from mispec.prompts.core import PromptSet
from mispec.tasks.base import PROMPT_STREAM, Task, TaskBatch, positive, rng_for

ANSWER_POS = 4


class ToyIOI(Task):
    name = "toy_ioi"
    has_bos = True
    prompt_count = 64

    def __init__(self, n_names: int = 16, abc_frac: float = 0.5):
        super().__init__(n_names=positive("n_names", n_names, 3), abc_frac=float(abc_frac))
        self.n_names, self.abc_frac = n_names, float(abc_frac)
        self.bos, self.mid = n_names, n_names + 1
        self.d_vocab = n_names + 2
        self.n_ctx = 6

    def _names(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``[n, 3]`` distinct names (A, B, C) per row."""
        return np.argsort(rng.random((n, self.n_names)), axis=1)[:, :3].astype(np.int64)

    def _assemble(self, names3: np.ndarray, answer: np.ndarray) -> np.ndarray:
        n = names3.shape[0]
        return np.concatenate(
            [
                np.full((n, 1), self.bos),
                names3,
                np.full((n, 1), self.mid),
                answer[:, None],
            ],
            axis=1,
        ).astype(np.int64)

    def _ioi(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
        """IOI-shaped rows: names (X1, X2, X3), io, s and the ABC corruption."""
        abc = self._names(rng, n)
        a, b, c = abc[:, 0], abc[:, 1], abc[:, 2]
        baa = rng.random(n) < 0.5  # template B A A, else A B A
        x1, x2 = np.where(baa, b, a), np.where(baa, a, b)
        clean = np.stack([x1, x2, a], axis=1)
        corrupt = np.stack([x1, x2, c], axis=1)
        return clean, b, a, corrupt, c

    def _mask(self, n: int) -> np.ndarray:
        mask = np.zeros((n, self.n_ctx - 1), dtype=bool)
        mask[:, ANSWER_POS] = True
        return mask

    def sample(self, rng: np.random.Generator, n: int) -> TaskBatch:
        clean, io, _s, _corrupt, _c = self._ioi(rng, n)
        names3 = self._names(rng, n)
        is_abc = rng.random(n) < self.abc_frac
        x = np.where(is_abc[:, None], names3, clean)
        answer = np.where(is_abc, names3[:, 2], io)
        return TaskBatch(tokens=self._assemble(x, answer), loss_mask=self._mask(n))

    def prompt_set(self, n: int | None, seed: int) -> PromptSet:
        """IOI-shaped prompts with their ABC corruption, ``answer`` (IO) and
        ``wrong_answer`` (S): the pairs a logit difference and patching read."""
        n = self.prompt_n(n)
        clean, io, s, corrupt, c = self._ioi(rng_for(PROMPT_STREAM, seed, 0), n)
        io_first = clean[:, 0] == io  # template B A A: IO is the first name
        extras = {
            "corrupt_tokens": self._assemble(corrupt, c),
            "answer": io,
            "wrong_answer": s,
            "answer_pos": np.full(n, ANSWER_POS, dtype=np.int64),
            "pos_IO": np.where(io_first, 1, 2).astype(np.int64),
            "pos_S1": np.where(io_first, 2, 1).astype(np.int64),
            "pos_S2": np.full(n, 3, dtype=np.int64),
            "pos_END": np.full(n, ANSWER_POS, dtype=np.int64),
        }
        batch = TaskBatch(tokens=self._assemble(clean, io), loss_mask=self._mask(n), extras=extras)
        return self.to_prompt_set(batch)

    def meta(self) -> dict:
        return {**super().meta(), "bos": self.bos, "mid": self.mid, "answer_pos": ANSWER_POS}


def toy_ioi(n_names: int = 16, abc_frac: float = 0.5) -> ToyIOI:
    """``BOS A B A MID → B`` (and ``B A A``), with ``abc_frac`` of three-name ``A B C → C``.

    Args:
        n_names: names are tokens ``0 … n_names-1`` (at least 3; default 16).
        abc_frac: fraction of the training sequences with three distinct names (``A B C → C``;
            default 0.5); the rest are IOI-shaped. The prompts are always IOI-shaped.
    """
    return ToyIOI(n_names=n_names, abc_frac=abc_frac)
