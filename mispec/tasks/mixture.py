"""A weighted mixture of tasks, whose weights may change at given steps (``train.mixture``).

Batch of update ``t``: the number of sequences of each task is drawn from a multinomial with
the weights in force at ``t`` (the last schedule phase at or before ``t``, else the tasks' own
``weight``), from a generator that depends only on ``(seed, t)``; each task then gives its
share with its own ``batch(part_seed(seed, i), t, count)``, so a mixture stays deterministic and resumable
like any task. Sequences shorter than the longest task's are padded on the right with token
0; padding is never scored and, attention being causal, never seen by a scored position.

Vocabulary rule (``vocab``):

* ``shared`` (default): token ids mean the same in every task; ``d_vocab`` is the largest
  task's. Two tasks *clash* when the same tokens before a scored position ask for different
  next tokens (e.g. modular addition and subtraction with the same ``=`` token): the model
  could not learn both. :func:`clashes` looks for that on each task's evaluation batch and
  validation reports it.
* ``offset``: task ``i``'s ids are shifted by the sum of the earlier tasks' ``d_vocab``, in
  the order the spec lists them; ``d_vocab`` is the sum. No clash is possible, but prompt
  sets drawn from a single task's generator are *not* shifted.

Only the loss sees the mixture: the mean cross-entropy over every scored prediction of the
batch (a task with more scored positions per sequence weighs more per sequence).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mispec.errors import UserError
from mispec.tasks.base import Task, TaskBatch, rng_for

if TYPE_CHECKING:
    from mispec.spec.mixture import MixtureSpec

MIXTURE_STREAM = 3  # disjoint from the train, prompt and eval streams of mispec.tasks.base


class Mixture(Task):
    """Tasks ``parts`` (name → task) mixed with ``weights`` and a ``schedule`` of
    ``(step, weights)`` phases, under the ``vocab`` rule."""

    name = "mixture"

    def __init__(
        self,
        parts: dict[str, Task],
        weights: dict[str, float],
        schedule: list[tuple[int, dict[str, float]]] | None = None,
        vocab: str = "shared",
    ):
        super().__init__()
        self.parts, self.vocab = dict(parts), vocab
        self.phases = [(0, dict(weights)), *(schedule or [])]
        self.offsets = dict.fromkeys(self.parts, 0)
        if vocab == "offset":
            total = 0
            for name, task in self.parts.items():
                self.offsets[name], total = total, total + task.d_vocab
            self.d_vocab = total
        else:
            self.d_vocab = max(t.d_vocab for t in self.parts.values())
        self.n_ctx = max(t.n_ctx for t in self.parts.values())
        self.has_bos = all(t.has_bos for t in self.parts.values())

    def weights_at(self, step: int) -> np.ndarray:
        """The normalised weights of update ``step``, in the tasks' order: divided by the
        largest first, so that weights near the float range (``1e308`` each, whose sum
        overflows) keep their ratios."""
        current = [w for start, w in self.phases if start <= step][-1]
        w = np.array([float(current.get(n, 0.0)) for n in self.parts], dtype=np.float64)
        if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
            raise UserError(
                f"mixture weights at update {step} must be finite, >= 0 and not all 0; got "
                f"{dict(zip(self.parts, w.tolist(), strict=True))}"
            )
        w = w / w.max()
        return w / w.sum()

    def batch(self, seed: int, step: int, batch_size: int | None) -> TaskBatch:
        if batch_size is None:
            raise UserError("a task mixture needs train.batch_size (its weights share a batch)")
        counts = rng_for(MIXTURE_STREAM, seed, step).multinomial(batch_size, self.weights_at(step))
        pieces = [
            (name, task, task.batch(part_seed(seed, i), step, int(n)))
            for i, ((name, task), n) in enumerate(zip(self.parts.items(), counts, strict=True))
            if n > 0
        ]
        return self._join([(n, b, t.training_loss_mask(b)) for n, t, b in pieces])

    def sample(self, rng: np.random.Generator, n: int) -> TaskBatch:
        counts = rng.multinomial(n, self.weights_at(0))
        parts = [
            (name, t.sample(rng, int(k)))
            for (name, t), k in zip(self.parts.items(), counts, strict=True)
            if k
        ]
        return self._join([(name, b, b.loss_mask) for name, b in parts])

    def training_loss_mask(self, b: TaskBatch) -> np.ndarray:
        return b.extras["training_loss_mask"]

    def eval_batch(self, n: int = 256) -> TaskBatch | None:
        return None  # each task has its own: evaluate on their prompt sets

    def _join(self, pieces: list[tuple[str, TaskBatch, np.ndarray]]) -> TaskBatch:
        """Offset, right-pad and stack the tasks' shares; ``extras['task']`` names each row's
        task (its index in the mixture)."""
        n = self.n_ctx
        tokens, masks, train_masks, which = [], [], [], []
        index = {name: i for i, name in enumerate(self.parts)}
        for name, b, train_mask in pieces:
            rows, width = b.tokens.shape
            t = np.zeros((rows, n), dtype=np.int64)
            t[:, :width] = b.tokens + self.offsets[name]
            m = np.zeros((rows, n - 1), dtype=bool)
            m[:, : width - 1] = b.loss_mask
            tm = np.zeros((rows, n - 1), dtype=bool)
            tm[:, : width - 1] = train_mask
            tokens.append(t)
            masks.append(m)
            train_masks.append(tm)
            which.append(np.full(rows, index[name], dtype=np.int64))
        return TaskBatch(
            tokens=np.concatenate(tokens),
            loss_mask=np.concatenate(masks),
            extras={
                "training_loss_mask": np.concatenate(train_masks),
                "task": np.concatenate(which),
            },
        )

    def describe(self) -> dict[str, Any]:
        return {
            "task": "mixture",
            "vocab": self.vocab,
            "tasks": {n: t.describe() for n, t in self.parts.items()},
            "phases": [[s, w] for s, w in self.phases],
        }

    def meta(self) -> dict[str, Any]:
        return {"task": "mixture", "d_vocab": self.d_vocab, "n_ctx": self.n_ctx}


def part_seed(seed: int, index: int) -> int:
    """The seed task ``index`` of a mixture draws its batches with: its own stream, so two
    tasks with the same data (e.g. one train split) never draw the same rows together."""
    return int(np.random.SeedSequence([MIXTURE_STREAM, int(seed), index]).generate_state(1)[0])


def mixture_task(spec: MixtureSpec) -> Mixture:
    """The :class:`Mixture` a ``train.mixture`` entry describes."""
    from mispec.tasks import make_task

    parts = {name: make_task(t.task, t.task_args) for name, t in spec.tasks.items()}
    weights = {name: t.weight for name, t in spec.tasks.items()}
    schedule = [(p.step, dict(p.weights)) for p in spec.schedule]
    return Mixture(parts, weights, schedule, spec.vocab)


def clashes(mixture: Mixture, limit: int = 256) -> list[str]:
    """Pairs of tasks that ask for different next tokens after the same tokens, with one
    example each (``shared`` vocabulary only), looked for on each task's evaluation batch
    (or ``limit`` prompts) — a contradiction the model could not learn."""
    if mixture.vocab != "shared":
        return []
    seen: dict[bytes, tuple[str, int]] = {}
    found: dict[tuple[str, str], str] = {}
    for name, task in mixture.parts.items():
        b = task.eval_batch(limit) or task.sample(rng_for(2, 0, 0), limit)
        rows, cols = np.nonzero(b.loss_mask)
        for r, c in zip(rows[: 50 * limit], cols[: 50 * limit], strict=True):
            prefix = b.tokens[r, : c + 1]
            key = prefix.tobytes()
            target = int(b.tokens[r, c + 1])
            other = seen.setdefault(key, (name, target))
            if other[0] != name and other[1] != target and (other[0], name) not in found:
                found[(other[0], name)] = (
                    f"tasks '{other[0]}' and '{name}' ask for different next tokens after the "
                    f"same tokens {prefix.tolist()} ({other[1]} vs {target})"
                )
    return list(found.values())
