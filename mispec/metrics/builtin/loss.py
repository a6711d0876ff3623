"""Next-token loss, accuracy, per-token loss and the in-context-learning score.

All read the pseudo hooks ``next_logprob`` / ``next_correct`` (``[batch, pos-1]``, entry ``i``
is the prediction of token ``i+1`` from tokens ``0..i``), so the full logits never enter the
activation cache.

**Which predictions count.** Predictions from a real token to a real token: padding never
counts (a prompt set of texts of different lengths is right-padded and carries an
``attention_mask`` extra; see ``_common``). ``mask`` restricts them further: ``auto`` (the
default) is the prompt set's ``loss_mask`` where it has one (every task's prompt set does: the
predictions the task scores — the repeated half of a repeated-tokens prompt, the answer of
``a + b =``, the positions a previous-token model is trained on), else every real
prediction; ``none`` counts every real prediction; any other name is a ``[batch, pos-1]``
prompt extra whose non-zero entries count. ``split`` keeps the rows whose ``train_mask``
extra is True (``train``) or False (``test``) — the train / test losses of a grokking run on
modular addition. The result's ``attrs["mask"]`` says which mask was applied.

**Precision.** ``next_logprob`` is computed in float64 (``mispec.metrics.forward``) and the
means accumulate in float64: a confident model's loss of ``1e-9`` reads ``1e-9``, not 0.

**How prompts are pooled.** ``loss`` is the mean over all counted predictions of the whole
prompt set, every real token weighing the same (prompts are NOT averaged first): with
``n_i`` counted predictions and mean loss ``L_i`` in prompt ``i``, ``loss = sum_i n_i L_i /
sum_i n_i``. Per prompt, ``L_i`` is exactly what ``transformers`` returns for
``model(ids_i, labels=ids_i).loss`` on that prompt alone, and the pooled value is what it
returns for the padded batch with ``labels`` set to -100 at the padding. ``accuracy`` pools
the same way; ``per_token_loss`` averages, at each position, over the prompts that have a real
token there.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from mispec.errors import UserError
from mispec.lazy import xr
from mispec.metrics.builtin._common import (
    MASK_AUTO,
    act,
    mask_extras,
    mask_label,
    prediction_weights,
)
from mispec.metrics.core import InputDims, metric


def _weighted_mean(values: Any, weights: Any, dim: int | None = None) -> Any:
    """The weighted mean of ``values`` (over all, or along ``dim``), accumulated in float64."""
    values, weights = values.double(), weights.double()
    total = weights.sum() if dim is None else weights.sum(dim)
    return (values * weights).sum() / total if dim is None else (values * weights).sum(dim) / total


def _scalar(value: Any, prompts: Any, mask: str | None) -> Any:
    """A 0-d result (+ 0.0: never a -0.0) that says which mask was applied."""
    return xr.DataArray(float(value) + 0.0, attrs={"mask": mask_label(prompts, mask)})


@metric(dims=(), hooks=("next_logprob",), units="nats", extras=mask_extras, version=3)
def loss(
    acts: Any,
    prompts: Any,
    mask: str | None = MASK_AUTO,
    split: Literal["all", "train", "test"] = "all",
) -> Any:
    """Mean next-token cross-entropy over the predicted positions (nats).

    ``-mean(next_logprob)`` over every counted prediction, pooled over prompts by token (all
    predictions the prompt set's ``loss_mask`` scores by default — padding never counts;
    ``mask`` / ``split`` choose them; see the module docstring). NaN when nothing counts.

    Args:
        mask: which predictions count: ``auto`` the prompt set's ``loss_mask`` where it has one
            (else every real prediction), ``none`` every real prediction, another name a ``[batch,
            pos-1]`` prompt extra whose non-zero entries count.
        split: ``train`` / ``test``: only the prompts whose ``train_mask`` extra is True / False (a
            grokking run's train and test loss); ``all``: every prompt.
    """
    lp = act(acts, "next_logprob")  # [batch, pos-1]
    w = prediction_weights(prompts, tuple(lp.shape), mask, split)
    return _scalar(-_weighted_mean(lp, w), prompts, mask)


@metric(dims=(), hooks=("next_correct",), units="fraction", extras=mask_extras, version=3)
def accuracy(
    acts: Any,
    prompts: Any,
    mask: str | None = MASK_AUTO,
    split: Literal["all", "train", "test"] = "all",
) -> Any:
    """Fraction of counted next-token predictions whose argmax is the actual next token.

    Phase transitions often look sharper in accuracy than in loss; with ``mask: loss_mask``
    and ``split: test`` this is the test accuracy of a grokking run.

    Args:
        mask: which predictions count: ``auto`` the prompt set's ``loss_mask`` where it has one
            (else every real prediction), ``none`` every real prediction, another name a ``[batch,
            pos-1]`` prompt extra whose non-zero entries count.
        split: ``train`` / ``test``: only the prompts whose ``train_mask`` extra is True / False (a
            grokking run's train and test accuracy); ``all``: every prompt.
    """
    correct = act(acts, "next_correct")  # [batch, pos-1]
    w = prediction_weights(prompts, tuple(correct.shape), mask, split)
    return _scalar(_weighted_mean(correct, w), prompts, mask)


@metric(dims=("pos",), hooks=("next_logprob",), units="nats", extras=mask_extras, version=3)
def per_token_loss(
    acts: Any,
    prompts: Any,
    mask: str | None = MASK_AUTO,
    split: Literal["all", "train", "test"] = "all",
) -> Any:
    """Loss of each token in context, averaged over the batch.

    The ``pos`` coordinate is the position of the PREDICTED token (1 … seq_len-1): the value at
    ``pos=40`` is the mean loss on token 40 given tokens 0..39, over the prompts whose token 40
    is real (padding never counts). Positions where padding, ``mask`` or ``split`` leave
    nothing are NaN: with the default mask on a repeated-tokens prompt set, the first half;
    ``mask: none`` gives every position (what ``icl_score`` compares).

    Args:
        mask: which predictions count: ``auto`` the prompt set's ``loss_mask`` where it has one
            (else every real prediction), ``none`` every real prediction, another name a ``[batch,
            pos-1]`` prompt extra whose non-zero entries count.
        split: ``train`` / ``test``: only the prompts whose ``train_mask`` extra is True / False;
            ``all``: every prompt.
    """
    lp = act(acts, "next_logprob")  # [batch, pos-1]
    w = prediction_weights(prompts, tuple(lp.shape), mask, split)
    values = (-_weighted_mean(lp, w, dim=0)).numpy() + 0.0  # [pos-1]; 0/0 -> NaN
    return xr.DataArray(
        values,
        dims=("pos",),
        coords={"pos": np.arange(1, values.shape[0] + 1)},
        attrs={"mask": mask_label(prompts, mask)},
    )


def _without_pos(per_token_loss: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(d for d in per_token_loss if d != "pos")


def _check_positions(early: int, late: int) -> dict[str, str]:
    """``early`` and ``late`` are positions of ``pos`` (1, 2, ...), ``early`` the first."""
    if isinstance(early, int) and early < 1:
        return {"early": f"early = {early} is not a position (positions count from 1)"}
    if isinstance(early, int) and isinstance(late, int) and late <= early:
        return {
            "late": f"late = {late} must come after early = {early} (the score is the loss at "
            "late minus the loss at early): swap them"
        }
    return {}


@metric(
    dims=_without_pos,
    inputs=("per_token_loss",),
    check=_check_positions,
    input_dims={
        "per_token_loss": InputDims(
            ("pos",), why="per-token values (a 'pos' dim, e.g. from per_token_loss)"
        )
    },
    units="nats",
    version=2,
)
def icl_score(per_token_loss: Any, early: int, late: int) -> Any:
    """In-context-learning score (Olsson et al. 2022): loss on token ``late`` minus loss on
    token ``early``.

    Negative means the model predicts later tokens better than early ones — it learns in
    context; the score drops sharply when induction heads form. ``early`` / ``late`` are token
    positions in the ``pos`` coordinate of ``per_token_loss`` (Olsson et al. use 50 and 500 on
    long text; 2 and 40 suit a 49-token repeated-tokens prompt). Other dims pass through.

    Args:
        early: the early position (of the predicted token, from 1) whose loss is subtracted, e.g.
            50.
        late: the late position whose loss the score starts from, e.g. 500; after ``early``.
    """
    ptl = per_token_loss
    if not isinstance(ptl, xr.DataArray):
        values = np.asarray(ptl)
        ptl = xr.DataArray(values, dims=("pos",), coords={"pos": np.arange(1, len(values) + 1)})
    if "pos" not in ptl.dims:
        raise UserError(f"icl_score needs an input with a 'pos' dim, got dims {ptl.dims}")
    if "pos" not in ptl.coords:
        ptl = ptl.assign_coords(pos=np.arange(1, ptl.sizes["pos"] + 1))
    available = ptl["pos"].values
    for name, p in (("early", early), ("late", late)):
        if p not in available:
            raise UserError(
                f"icl_score: {name}={p} is not a position of per_token_loss "
                f"(positions {int(available.min())}..{int(available.max())})"
            )
        masked = str(ptl.attrs.get("mask", "none")).split(":")[0] != "none"
        if masked and bool(np.isnan(np.asarray(ptl.sel(pos=p).values)).all()):
            raise UserError(
                f"icl_score: {name}={p} is a position that per_token_loss's mask "
                f"({ptl.attrs['mask']}) leaves out; give per_token_loss `args: {{mask: none}}` "
                "to have every position"
            )
    out = ptl.sel(pos=late, drop=True) - ptl.sel(pos=early, drop=True)
    out.attrs = {"early": int(early), "late": int(late)}
    return out
