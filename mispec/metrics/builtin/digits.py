"""Per-digit loss and accuracy of multi-digit arithmetic (a ``digit`` dim).

Nanda et al. (2023) find that a transformer learning 5-digit addition goes through one phase
change per answer digit: each digit's loss drops sharply at its own step. ``digit_loss`` and
``digit_accuracy`` measure each answer digit apart, so ``transition_step`` over their series
gives one step per digit. They read the prompt set's ``digit_pos`` extra (``[batch, digits]``:
for answer place ``j`` — ``j = 0`` the units — the index of the next-token prediction that
predicts it; the ``multi_digit_addition`` task provides it), and the ``digit`` coordinate is
that place. ``split`` keeps the rows of the ``train_mask`` extra (``train``) or the others
(``test``), as for ``loss``; ``carry: with | without`` keeps, per place, only the prompts
whose that place does (or does not) receive a carry (the ``carry`` extra), the split by which
the paper explains the order of the phase changes.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from mispec.errors import PromptError
from mispec.lazy import torch, xr
from mispec.metrics.builtin._common import SPLITS, act, check_choice, extra
from mispec.metrics.core import metric


def _digit_extras(split: str = "all", carry: str = "any") -> tuple[str, ...]:
    return (
        ("digit_pos",)
        + (("train_mask",) if split != "all" else ())
        + (("carry",) if carry != "any" else ())
    )


def per_digit(values: Any, prompts: Any, split: str, carry: str, name: str) -> Any:
    """Mean of ``values [batch, pos-1]`` at each place's prediction, over the prompts that
    ``split`` and ``carry`` keep: ``[digit]`` (NaN where none is kept)."""
    check_choice("split", split, SPLITS)
    check_choice("carry", carry, ("any", "with", "without"))
    pos = torch.as_tensor(extra(prompts, "digit_pos", why=name), dtype=torch.long)
    if pos.ndim != 2 or pos.shape[0] != values.shape[0]:
        raise PromptError(f"{name}: the 'digit_pos' extra must be [batch, digits]")
    at = values.gather(1, pos).double()  # [batch, digit]
    keep = torch.ones(at.shape, dtype=torch.float64)
    if split != "all":
        train = torch.as_tensor(extra(prompts, "train_mask", why=f"split '{split}'")).bool()
        keep = keep * (train if split == "train" else ~train).double()[:, None]
    if carry != "any":
        c = torch.as_tensor(extra(prompts, "carry", why=f"carry '{carry}'")).bool()
        keep = keep * (c if carry == "with" else ~c).double()
    mean = (at * keep).sum(0) / keep.sum(0)  # 0/0 -> NaN
    return xr.DataArray(mean.numpy(), dims=("digit",), coords={"digit": np.arange(at.shape[1])})


@metric(dims=("digit",), hooks=("next_logprob",), units="nats", extras=_digit_extras, version=2)
def digit_loss(
    acts: Any,
    prompts: Any,
    split: Literal["all", "train", "test"] = "all",
    carry: Literal["any", "with", "without"] = "any",
) -> Any:
    """Next-token cross-entropy (nats) of each answer digit, by place (``digit`` 0 = units),
    mean over the prompts ``split`` and ``carry`` keep (see the module docstring); the
    log-probabilities are float64-exact (see ``loss``).

    Args:
        split: ``train`` / ``test``: only the prompts whose ``train_mask`` extra is True / False (a
            grokking run's train and test loss); ``all``: every prompt.
        carry: ``with`` / ``without``: per place, only the prompts whose that place does / does not
            receive a carry (the ``carry`` extra); ``any``: every prompt.
    """
    return per_digit(-act(acts, "next_logprob"), prompts, split, carry, "digit_loss") + 0.0


@metric(dims=("digit",), hooks=("next_correct",), units="fraction", extras=_digit_extras)
def digit_accuracy(
    acts: Any,
    prompts: Any,
    split: Literal["all", "train", "test"] = "all",
    carry: Literal["any", "with", "without"] = "any",
) -> Any:
    """Fraction of prompts whose answer digit at each place is predicted exactly (argmax),
    by place (``digit`` 0 = units; see the module docstring).

    Args:
        split: ``train`` / ``test``: only the prompts whose ``train_mask`` extra is True / False (a
            grokking run's train and test loss); ``all``: every prompt.
        carry: ``with`` / ``without``: per place, only the prompts whose that place does / does not
            receive a carry (the ``carry`` extra); ``any``: every prompt.
    """
    return per_digit(act(acts, "next_correct"), prompts, split, carry, "digit_accuracy")
