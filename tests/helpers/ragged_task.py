"""A plugin task whose batches differ in shape from seed to seed (odd seeds: shorter lists in
fewer rows, from update ``from_step`` on), for training seeds together
(``tests/system/test_training_batched.py``)."""

from __future__ import annotations

from mispec.tasks.base import TRAIN_STREAM, TaskBatch, rng_for
from tests.helpers.reverse_task import Reverse


class Ragged(Reverse):
    """:class:`Reverse`, but from update ``from_step`` on an odd seed reverses ``length - 1``
    values in batches of ``batch_size - 2`` rows (the model's context fits the longest)."""

    name = "ragged"

    def __init__(self, length: int = 4, vocab: int = 8, from_step: int = 0):
        super().__init__(length=length, vocab=vocab)
        self.args["from_step"] = self.from_step = from_step

    def batch(self, seed: int, step: int, batch_size: int | None) -> TaskBatch:
        short = seed % 2 == 1 and step >= self.from_step
        task = Reverse(length=self.length - 1, vocab=self.vocab) if short else self
        rows = (batch_size or 8) - (2 if short else 0)
        return Reverse.sample(task, rng_for(TRAIN_STREAM, seed, step), rows)  # type: ignore[arg-type]


def ragged(length: int = 4, vocab: int = 8, from_step: int = 0) -> Ragged:
    """Reverse ``length`` values (odd seeds: ``length - 1`` from update ``from_step`` on)."""
    return Ragged(length=length, vocab=vocab, from_step=from_step)
