"""Logit difference between a correct and an incorrect answer token.

The standard measure of an IOI-style circuit (Wang et al. 2022): on prompts such as
"When Mary and John went to the store, John gave a drink to", the difference
``logit[" Mary"] - logit[" John"]`` at the position that predicts the answer, averaged over
prompts. Logits, not probabilities: a logit difference is linear in the residual stream, so
head contributions add up. The prompt set supplies the ``answer`` and ``wrong_answer`` extras
(``[batch]`` token ids) and optionally ``answer_pos`` (``[batch]``; default each prompt's last
real token). Padding never enters: on a right-padded set of prompts of different lengths the
last position is padding for the shorter ones, so ``position="last"`` refuses such a set and
``position="answer_pos"`` reads each prompt at its own last real token.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from mispec.errors import PromptError
from mispec.metrics.builtin._common import (
    act,
    answer_logit_diff,
    answer_positions,
    check_choice,
    padded_at_last_position,
)
from mispec.metrics.core import metric


def _logit_diff_hooks(position: str = "last", **_: Any) -> tuple[str, ...]:
    return ("final_logits",) if position == "last" else ("logits",)


def _check_answer_pos(prompts: Any, position: str = "last", **_: Any) -> None:
    """With ``position="last"`` every prompt's answer must be predicted at the last token, and
    that token is no padding (run at validate on the prompt sets it can build, generated or
    text, and again on every call)."""
    if position == "last":
        padded = padded_at_last_position(prompts)
        if padded:
            raise PromptError(
                f"logit_diff: the last position is padding for {padded} of {prompts.n} prompts "
                "(they differ in length); set args: {position: answer_pos} to read each prompt "
                "at its own last token (or its 'answer_pos' extra)"
            )
    extras = getattr(prompts, "extras", {}) or {}
    if position == "last" and "answer_pos" in extras:
        seq = np.asarray(prompts.tokens).shape[1]
        pos = np.asarray(extras["answer_pos"])
        if not np.all((pos == seq - 1) | (pos == -1)):
            raise PromptError(
                "logit_diff: this prompt set has answers before the last position "
                "(its 'answer_pos' extra); set args: {position: answer_pos}"
            )


@metric(
    dims=(),
    hooks=_logit_diff_hooks,
    units="logits",
    extras=("answer", "wrong_answer"),
    check_prompts=_check_answer_pos,
    version=2,
)
def logit_diff(acts: Any, prompts: Any, position: Literal["last", "answer_pos"] = "last") -> float:
    """Mean ``logit[answer] - logit[wrong_answer]`` over prompts.

    ``position="last"`` reads the cheap ``final_logits`` pseudo hook (the answer is predicted
    at the last token of every prompt); ``position="answer_pos"`` reads the full logits at each
    prompt's ``answer_pos`` extra, or at each prompt's last real token when there is none
    (prompts of different lengths padded to one width).

    Args:
        position: ``last``: read the logits at the last position of every prompt (the cheap
            ``final_logits``); ``answer_pos``: at each prompt's ``answer_pos`` extra, else its last
            real token (prompts of different lengths).
    """
    check_choice("position", position, ("last", "answer_pos"))
    if position == "last":
        _check_answer_pos(prompts, position)
        diff = answer_logit_diff(act(acts, "final_logits"), prompts, at=None)
    else:
        diff = answer_logit_diff(act(acts, "logits"), prompts, at=answer_positions(prompts))
    return float(diff.mean())
