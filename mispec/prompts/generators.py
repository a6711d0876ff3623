"""Built-in prompt generators, registered in ``GENERATORS``.

Each is ``fn(*, seed, n=..., **task_args) -> PromptSet`` and reuses the training task of
the same name (``mispec.models.tasks``), so a prompt set is *exactly* the training format
of a model trained on that task with the same arguments: same BOS, vocabulary, layout
and ``loss_mask``. Prompts come from their own random stream, disjoint from training
batches. Pure numpy (no torch import).
"""

from __future__ import annotations

from mispec.models.tasks import make_task
from mispec.prompts.core import GENERATORS, PromptSet


@GENERATORS.decorator()
def repeated_tokens(*, seed: int, n: int = 32, vocab: int = 64, half_len: int = 24) -> PromptSet:
    """``n`` sequences ``BOS x_1…x_L x_1…x_L`` (BOS = 0, x uniform over 1…vocab-1).

    Extras: ``loss_mask`` [n, 2L] (the repeated half). Meta: ``vocab``, ``half_len``."""
    return make_task("repeated_tokens", {"vocab": vocab, "half_len": half_len}).prompt_set(n, seed)


@GENERATORS.decorator()
def modular_addition(
    *, seed: int = 0, p: int = 113, train_frac: float = 0.3, split_seed: int = 0
) -> PromptSet:
    """The full ``p × p`` table ``[a, b, =, c]`` in row-major order (``seed`` is unused).

    Extras: ``loss_mask``, ``answer`` (c), ``answer_pos`` (2), ``train_mask`` (the pair
    is in the training split of ``modular_addition`` with the same arguments)."""
    args = {"p": p, "train_frac": train_frac, "split_seed": split_seed}
    return make_task("modular_addition", args).prompt_set(p * p, seed)


@GENERATORS.decorator()
def toy_ioi(*, seed: int, n: int = 64, n_names: int = 16, abc_frac: float = 0.5) -> PromptSet:
    """IOI-shaped prompts ``BOS X1 X2 S MID IO`` (templates ``A B A`` / ``B A A``).

    Extras: ``answer`` (IO), ``wrong_answer`` (S), ``answer_pos`` (4), ``corrupt_tokens``
    (the repeated subject replaced by a third name), ``loss_mask``."""
    args = {"n_names": n_names, "abc_frac": abc_frac}
    return make_task("toy_ioi", args).prompt_set(n, seed)


@GENERATORS.decorator()
def sorting(
    *, seed: int, n: int = 64, length: int = 6, max_value: int = 32, distinct: bool = True
) -> PromptSet:
    """``START x_1…x_L MID s_1…s_L`` with ``s`` sorted. Extras: ``loss_mask``."""
    args = {"length": length, "max_value": max_value, "distinct": distinct}
    return make_task("sorting", args).prompt_set(n, seed)
