"""Next-token loss, accuracy, per-token loss and the in-context-learning score.

All read the pseudo hooks ``next_logprob`` / ``next_correct`` (``[batch, pos-1]``, entry ``i``
is the prediction of token ``i+1`` from tokens ``0..i``), so the full logits never enter the
activation cache.

**Which predictions count.** Every prediction from a real token to a real token: padding never
counts (a prompt set of texts of different lengths is right-padded and carries an
``attention_mask`` extra; see ``_common``). ``mask`` names a ``[batch, pos-1]`` prompt extra
(e.g. ``loss_mask``: only the repeated half of a repeated-tokens prompt, only the answer of
``a + b =``) whose non-zero entries count; ``split`` keeps the rows whose ``train_mask`` extra is
True (``train``) or False (``test``) — the train / test losses of a grokking run on modular
addition.

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
from mispec.metrics.builtin._common import act, mask_extras, prediction_weights
from mispec.metrics.core import InputDims, metric


def _weighted_mean(values: Any, weights: Any, dim: int | None = None) -> Any:
    total = weights.sum() if dim is None else weights.sum(dim)
    return (values * weights).sum() / total if dim is None else (values * weights).sum(dim) / total


@metric(dims=(), hooks=("next_logprob",), units="nats", extras=mask_extras, version=2)
def loss(
    acts: Any, prompts: Any, mask: str | None = None, split: Literal["all", "train", "test"] = "all"
) -> float:
    """Mean next-token cross-entropy over the predicted positions (nats).

    ``-mean(next_logprob)`` over every counted prediction, pooled over prompts by token (all
    predictions of real tokens by default — padding never counts; ``mask`` / ``split``
    restrict them; see the module docstring). NaN when nothing counts."""
    lp = act(acts, "next_logprob")  # [batch, pos-1]
    w = prediction_weights(prompts, tuple(lp.shape), mask, split)
    return float(-_weighted_mean(lp, w))


@metric(dims=(), hooks=("next_correct",), units="fraction", extras=mask_extras, version=2)
def accuracy(
    acts: Any, prompts: Any, mask: str | None = None, split: Literal["all", "train", "test"] = "all"
) -> float:
    """Fraction of counted next-token predictions whose argmax is the actual next token.

    Phase transitions often look sharper in accuracy than in loss; with ``mask: loss_mask``
    and ``split: test`` this is the test accuracy of a grokking run."""
    correct = act(acts, "next_correct")  # [batch, pos-1]
    w = prediction_weights(prompts, tuple(correct.shape), mask, split)
    return float(_weighted_mean(correct, w))


@metric(dims=("pos",), hooks=("next_logprob",), units="nats", extras=mask_extras, version=2)
def per_token_loss(
    acts: Any, prompts: Any, mask: str | None = None, split: Literal["all", "train", "test"] = "all"
) -> Any:
    """Loss of each token in context, averaged over the batch.

    The ``pos`` coordinate is the position of the PREDICTED token (1 … seq_len-1): the value at
    ``pos=40`` is the mean loss on token 40 given tokens 0..39, over the prompts whose token 40
    is real (padding never counts). Positions where padding, ``mask`` or ``split`` leave
    nothing are NaN."""
    lp = act(acts, "next_logprob")  # [batch, pos-1]
    w = prediction_weights(prompts, tuple(lp.shape), mask, split)
    values = (-_weighted_mean(lp, w, dim=0)).numpy()  # [pos-1]; 0/0 -> NaN
    return xr.DataArray(values, dims=("pos",), coords={"pos": np.arange(1, values.shape[0] + 1)})


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
)
def icl_score(per_token_loss: Any, early: int, late: int) -> Any:
    """In-context-learning score (Olsson et al. 2022): loss on token ``late`` minus loss on
    token ``early``.

    Negative means the model predicts later tokens better than early ones — it learns in
    context; the score drops sharply when induction heads form. ``early`` / ``late`` are token
    positions in the ``pos`` coordinate of ``per_token_loss`` (Olsson et al. use 50 and 500 on
    long text; 2 and 40 suit a 49-token repeated-tokens prompt). Other dims pass through."""
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
    out = ptl.sel(pos=late, drop=True) - ptl.sel(pos=early, drop=True)
    out.attrs = {"early": int(early), "late": int(late)}
    return out
