"""The task interface: an algorithmic dataset a toy model is trained on.

A task is a *deterministic* source of token sequences. ``batch(seed, step, batch_size)``
depends only on its arguments (each call builds its own ``numpy`` generator from
``SeedSequence([stream, seed, step])``), so step ``t`` of seed ``s`` sees the same data
whether training runs straight through or resumes. Tasks are pure numpy: building prompt
sets from them never imports torch.

Every sequence is scored by next-token prediction: prediction ``i`` (the logits at
position ``i``) is scored against token ``i + 1`` wherever ``loss_mask[:, i]`` is true, so
a mask has shape ``[batch, n_ctx - 1]`` — the ``PromptSet`` ``loss_mask`` convention.

A task owns its prompts: :meth:`Task.prompt_set` draws prompts in exactly the training
format, and every task is a prompt generator a spec can name (``generator: <task>``, with
``args: {n: ..., <task args>}``; see :mod:`mispec.tasks.generators`). A task class states
how many prompts that generator draws by default (``prompt_count``), or ``None`` when the
task is finite and its prompt set is always its whole table (the generator takes no ``n``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from mispec.errors import UserError
from mispec.prompts.core import PromptSet

# Independent random streams, so training data never coincides with prompt sets.
TRAIN_STREAM = 0
PROMPT_STREAM = 1
EVAL_STREAM = 2


def rng_for(stream: int, seed: int, step: int = 0) -> np.random.Generator:
    """A generator that depends only on ``(stream, seed, step)``."""
    return np.random.default_rng(np.random.SeedSequence([stream, int(seed), int(step)]))


@dataclass(frozen=True)
class TaskBatch:
    """Tokens ``[batch, n_ctx]`` (int64) and the ``[batch, n_ctx - 1]`` loss mask (bool),
    plus task-specific ``extras`` aligned with the batch (answers, corrupt tokens ...)."""

    tokens: np.ndarray
    loss_mask: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        b, n = self.tokens.shape
        if self.loss_mask.shape != (b, n - 1):
            raise ValueError(f"loss_mask shape {self.loss_mask.shape} != {(b, n - 1)}")


class Task:
    """Base class. Subclasses set ``name``, ``d_vocab``, ``n_ctx``, ``has_bos`` and implement
    :meth:`sample` (``n`` fresh sequences from ``rng``); finite tasks override
    :meth:`batch` / :meth:`eval_batch` (``full_batch = True`` allows ``batch_size: null``)."""

    name: str = "task"
    d_vocab: int
    n_ctx: int
    has_bos: bool = True
    full_batch: bool = False
    # Prompts the task's generator draws when the spec gives no ``n``; ``None``: a finite
    # task whose prompt set is always its whole table (its generator then takes no ``n``).
    prompt_count: ClassVar[int | None] = 64
    # Bumped when the task draws different data for the same arguments (a generator fix): it
    # enters the training identity, so models trained on the old data are not reused.
    data_version: ClassVar[int] = 1

    def __init__(self, **args: Any):
        self.args = dict(args)

    # ------------------------------------------------------------------ data
    def sample(self, rng: np.random.Generator, n: int) -> TaskBatch:
        raise NotImplementedError

    def batch(self, seed: int, step: int, batch_size: int | None) -> TaskBatch:
        """The training batch for update ``step`` (0-based) of run ``seed``."""
        if batch_size is None:
            raise UserError(
                f"task '{self.name}' has no finite training set: set train.batch_size "
                "(batch_size: null means full batch, which only finite tasks such as "
                "modular_addition support)"
            )
        return self.sample(rng_for(TRAIN_STREAM, seed, step), batch_size)

    def training_loss_mask(self, b: TaskBatch) -> np.ndarray:
        """Which predictions the training loss covers; default: the scored ones."""
        return b.loss_mask

    def eval_batch(self, n: int = 256) -> TaskBatch | None:
        """A fixed held-out batch (same for every seed), or the full table where finite."""
        return self.sample(rng_for(EVAL_STREAM, 0, 0), n)

    # ------------------------------------------------------------------ prompts
    def meta(self) -> dict[str, Any]:
        return {"task": self.name, "d_vocab": self.d_vocab, "n_ctx": self.n_ctx, **self.args}

    def prompt_set(self, n: int | None, seed: int) -> PromptSet:
        """``n`` prompts (``None``: ``prompt_count``) in exactly the training format
        (``loss_mask`` as an extra), from a random stream disjoint from training batches."""
        b = self.sample(rng_for(PROMPT_STREAM, seed, 0), self.prompt_n(n))
        return self.to_prompt_set(b)

    def prompt_n(self, n: int | None) -> int:
        """How many prompts to draw: ``n``, else the task's ``prompt_count``."""
        count = self.prompt_count if n is None else n
        if count is None:  # a finite task overrides prompt_set and never asks
            raise TypeError(f"task '{self.name}' builds its whole table as prompts: give no n")
        return count

    def to_prompt_set(self, b: TaskBatch) -> PromptSet:
        extras = {"loss_mask": b.loss_mask, **b.extras}
        return PromptSet(tokens=b.tokens, extras=extras, meta=self.meta(), has_bos=self.has_bos)

    def describe(self) -> dict[str, Any]:
        """What identifies this task's data (enters the training identity); ``data_version``
        only from version 2 on, so the identities of unchanged tasks stay as they were."""
        out: dict[str, Any] = {"task": self.name, "args": self.args}
        if self.data_version != 1:
            out["data_version"] = self.data_version
        return out


def positive(name: str, value: int, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise UserError(f"task argument '{name}' must be an integer >= {minimum}, got {value!r}")
    return value
