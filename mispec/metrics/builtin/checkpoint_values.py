"""Per-checkpoint values that comparisons read: log-probabilities, activations, attention.

A comparison (``mispec.metrics.builtin.comparisons``) is a derived metric of two cells — the
same metric at two (model, seed, step) sides — so what it compares must first be a cell of
each side. These metrics make those cells from the ONE shared forward pass of their
checkpoint; once cached, any number of comparisons read them with no forward pass at all.

**Padding is NaN.** A derived metric does not see the prompts, so these cells mark what does
not count themselves: positions whose token is padding are NaN (a log-prob row, an
activation row, an attention query row), and every comparison averages with ``nanmean``.

**So are the predictions the mask leaves out.** ``token_logprobs`` and
``next_token_logprobs`` take the same ``mask`` as ``loss``: by default (``auto``) the prompt
set's ``loss_mask`` where it has one — a comparison of two seeds of a task model compares
them on the predictions the task trains and scores, not on positions no model was trained
on — and ``mask: none`` keeps every real prediction. A prediction the mask leaves out is NaN
in the cell, on every side alike (the sides share the prompt set), and ``attrs["mask"]``
says which mask was applied; the comparisons pass it on.
A padded key of an attention pattern stays as the model's pattern has it (0 under causal
attention with right padding for every real query).

**Size.** Cells are stored whole. ``n_prompts`` keeps only the first prompts of the set (the
same ones at every side, since the prompt set is shared): full log-probabilities are
``[batch, pos, vocab]``, attention patterns ``[layer, head, batch, pos, k_pos]`` per checkpoint.
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
    real_tokens,
    resolve_mask,
)
from mispec.metrics.core import metric

PATTERN = "blocks.{layer}.attn.hook_pattern"
# hook of ``activations``' ``hook`` arg -> (template, dims of the cell after layer/batch/pos)
ACTIVATION_HOOKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "resid_pre": ("blocks.{layer}.hook_resid_pre", ("d_model",)),
    "resid_mid": ("blocks.{layer}.hook_resid_mid", ("d_model",)),
    "resid_post": ("blocks.{layer}.hook_resid_post", ("d_model",)),
    "attn_out": ("blocks.{layer}.hook_attn_out", ("d_model",)),
    "mlp_out": ("blocks.{layer}.hook_mlp_out", ("d_model",)),
    "z": ("blocks.{layer}.attn.hook_z", ("head", "d_head")),
}


def _rows(n: int, n_prompts: int | None) -> int:
    if n_prompts is not None and n_prompts < 1:
        raise UserError(f"n_prompts must be >= 1 (or null for all), got {n_prompts}")
    return n if n_prompts is None else min(n, n_prompts)


def _real(prompts: Any, rows: int) -> np.ndarray | None:
    """``[rows, pos]`` bool, False at padding; None when the set has no padding."""
    real = real_tokens(prompts)
    return None if real is None else real[:rows].numpy()


def _counted(prompts: Any, shape: tuple[int, int], mask: str | None, rows: int) -> np.ndarray:
    """``[rows, pos-1]`` bool: the next-token predictions ``mask`` counts (never padding)."""
    return prediction_weights(prompts, shape, mask, "all")[:rows].numpy() > 0


@metric(dims=("batch", "pos"), hooks=("next_logprob",), units="nats", extras=mask_extras, version=2)
def token_logprobs(
    acts: Any, prompts: Any, n_prompts: int | None = None, mask: str | None = MASK_AUTO
) -> Any:
    """Log-probability of each actual next token, per prompt and position: entry ``pos`` is
    ``log p(token[pos] | tokens[:pos])`` (``pos`` = 1 … seq_len-1, the PREDICTED token's
    position, as in ``per_token_loss``). NaN where either token is padding, and where
    ``mask`` (as for ``loss``: the prompt set's ``loss_mask`` by default) leaves the
    prediction out.

    Args:
        n_prompts: keep only the first ``n_prompts`` prompts (``null``: all of them); at least 1.
        mask: which predictions count: ``auto`` the prompt set's ``loss_mask`` where it has one
            (else every real prediction), ``none`` every real prediction, another name a ``[batch,
            pos-1]`` prompt extra whose non-zero entries count. Predictions it leaves out are NaN.
    """
    lp = act(acts, "next_logprob").numpy().astype(np.float32)  # [batch, pos-1]
    rows = _rows(lp.shape[0], n_prompts)
    counted = _counted(prompts, lp.shape, mask, rows)
    lp = lp[:rows].copy()
    lp[~counted] = np.nan
    return xr.DataArray(
        lp,
        dims=("batch", "pos"),
        coords={"batch": np.arange(rows), "pos": np.arange(1, lp.shape[1] + 1)},
        attrs={"mask": mask_label(prompts, mask)},
    )


@metric(
    dims=("batch", "pos", "vocab"), hooks=("logits",), units="nats", extras=mask_extras, version=2
)
def next_token_logprobs(
    acts: Any, prompts: Any, n_prompts: int | None = None, mask: str | None = MASK_AUTO
) -> Any:
    """The full next-token distribution as log-probabilities ``log_softmax(logits)``, per
    prompt, position and vocabulary entry. Like ``token_logprobs`` and ``per_token_loss``,
    ``pos`` is the position of the PREDICTED token: entry ``pos`` is the distribution of the
    token at ``pos`` given tokens ``0..pos-1`` (``pos`` = 1 … seq_len; ``seq_len`` is the token
    after the prompt). NaN where the predicting token is padding, and where ``mask`` (as for
    ``loss``: the prompt set's ``loss_mask`` by default) leaves the prediction out — then also
    at ``pos = seq_len``, which predicts no token of the prompt. What ``kl_divergence`` and
    ``top1_agreement`` compare.

    Args:
        n_prompts: keep only the first ``n_prompts`` prompts (``null``: all of them); at least 1.
        mask: which predictions count: ``auto`` the prompt set's ``loss_mask`` where it has one
            (else every real prediction), ``none`` every real prediction, another name a ``[batch,
            pos-1]`` prompt extra whose non-zero entries count. Predictions it leaves out are NaN.
    """
    from mispec.metrics.forward import log_softmax64

    logits = act(acts, "logits")  # [batch, pos, vocab]
    rows = _rows(logits.shape[0], n_prompts)
    lp = log_softmax64(logits[:rows]).float().numpy()
    b, p, v = lp.shape
    if resolve_mask(prompts, mask) is None:
        real = _real(prompts, rows)
        keep = np.ones((b, p), dtype=bool) if real is None else real
    else:  # the masked predictions, and none from the last position (no next token)
        keep = np.zeros((b, p), dtype=bool)
        keep[:, :-1] = _counted(prompts, (logits.shape[0], p - 1), mask, rows)
    lp[~keep] = np.nan
    return xr.DataArray(
        lp,
        dims=("batch", "pos", "vocab"),
        coords={"batch": np.arange(b), "pos": np.arange(1, p + 1), "vocab": np.arange(v)},
        attrs={"mask": mask_label(prompts, mask)},
    )


def _activation_hooks(hook: str = "resid_post", **_: Any) -> tuple[str, ...]:
    return (ACTIVATION_HOOKS[hook][0],) if hook in ACTIVATION_HOOKS else ()


def _activation_dims(hook: str = "resid_post") -> tuple[str, ...]:
    rest = ACTIVATION_HOOKS[hook][1] if hook in ACTIVATION_HOOKS else ("d_model",)
    return ("layer", "batch", "pos", *rest)


@metric(dims=_activation_dims, hooks=_activation_hooks, units="activation")
def activations(
    acts: Any,
    prompts: Any,
    hook: Literal[
        "resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "z"
    ] = "resid_post",
    n_prompts: int | None = None,
) -> Any:
    """One hook's activations in every layer, ``[layer, batch, pos, d_model]`` (the residual
    stream before / between / after the blocks, or a block's attention or MLP output) or
    ``[layer, batch, pos, head, d_head]`` for ``z`` (each head's value-weighted sum, what
    ``W_O`` reads). NaN at padded positions. What ``representation_similarity`` and
    ``cross_model_patching`` read.

    Args:
        hook: which activation: ``resid_pre`` / ``resid_mid`` / ``resid_post`` (the residual stream
            before, between, after a block's attention and MLP), ``attn_out`` / ``mlp_out`` (a
            block's attention or MLP output), ``z`` (each head's ``hook_z``, adds dims ``head,
            d_head``).
        n_prompts: keep only the first ``n_prompts`` prompts (``null``: all of them); at least 1.
    """
    if hook not in ACTIVATION_HOOKS:
        raise UserError(f"arg 'hook' must be one of {sorted(ACTIVATION_HOOKS)}, got {hook!r}")
    template, rest = ACTIVATION_HOOKS[hook]
    x = act(acts, template)  # [layer, batch, pos, ...]
    rows = _rows(x.shape[1], n_prompts)
    values = x[:, :rows].numpy().copy()
    real = _real(prompts, rows)
    if real is not None:
        values[:, ~real] = np.nan
    dims = ("layer", "batch", "pos", *rest)
    return xr.DataArray(
        values, dims=dims, coords={d: np.arange(n) for d, n in zip(dims, values.shape, strict=True)}
    )


@metric(dims=("layer", "head", "batch", "pos", "k_pos"), hooks=(PATTERN,), units="attention")
def attention_patterns(acts: Any, prompts: Any, n_prompts: int | None = 8) -> Any:
    """Every head's attention pattern ``A[q, k]`` on the first ``n_prompts`` prompts, as
    ``[layer, head, batch, pos, k_pos]`` (``pos`` the query). Padded query rows are NaN.
    What ``head_matching`` compares.

    Args:
        n_prompts: keep only the first ``n_prompts`` prompts (default 8: the patterns are ``pos x
            pos`` per head; ``null``: all of them); at least 1.
    """
    pattern = act(acts, PATTERN)  # [layer, batch, head, q, k]
    rows = _rows(pattern.shape[1], n_prompts)
    values = pattern[:, :rows].permute(0, 2, 1, 3, 4).numpy().copy()
    real = _real(prompts, rows)
    if real is not None:
        values[:, :, ~real] = np.nan
    dims = ("layer", "head", "batch", "pos", "k_pos")
    return xr.DataArray(
        values, dims=dims, coords={d: np.arange(n) for d, n in zip(dims, values.shape, strict=True)}
    )
