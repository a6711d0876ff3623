"""Per-checkpoint values that comparisons read: log-probabilities, activations, attention.

A comparison (``mispec.metrics.builtin.comparisons``) is a derived metric of two cells — the
same metric at two (model, seed, step) sides — so what it compares must first be a cell of
each side. These metrics make those cells from the ONE shared forward pass of their
checkpoint; once cached, any number of comparisons read them with no forward pass at all.

**Padding is NaN.** A derived metric does not see the prompts, so these cells mark what does
not count themselves: positions whose token is padding are NaN (a log-prob row, an
activation row, an attention query row), and every comparison averages with ``nanmean``.
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
from mispec.lazy import torch, xr
from mispec.metrics.builtin._common import act, real_tokens
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


@metric(dims=("batch", "pos"), hooks=("next_logprob",), units="nats")
def token_logprobs(acts: Any, prompts: Any, n_prompts: int | None = None) -> Any:
    """Log-probability of each actual next token, per prompt and position: entry ``pos`` is
    ``log p(token[pos] | tokens[:pos])`` (``pos`` = 1 … seq_len-1, the PREDICTED token's
    position, as in ``per_token_loss``). NaN where either token is padding."""
    lp = act(acts, "next_logprob").numpy().astype(np.float32)  # [batch, pos-1]
    rows = _rows(lp.shape[0], n_prompts)
    lp = lp[:rows].copy()
    real = _real(prompts, rows)
    if real is not None:
        lp[~(real[:, :-1] & real[:, 1:])] = np.nan
    return xr.DataArray(
        lp,
        dims=("batch", "pos"),
        coords={"batch": np.arange(rows), "pos": np.arange(1, lp.shape[1] + 1)},
    )


@metric(dims=("batch", "pos", "vocab"), hooks=("logits",), units="nats")
def next_token_logprobs(acts: Any, prompts: Any, n_prompts: int | None = None) -> Any:
    """The full next-token distribution as log-probabilities ``log_softmax(logits)``, per
    prompt, position and vocabulary entry. Like ``token_logprobs`` and ``per_token_loss``,
    ``pos`` is the position of the PREDICTED token: entry ``pos`` is the distribution of the
    token at ``pos`` given tokens ``0..pos-1`` (``pos`` = 1 … seq_len; ``seq_len`` is the token
    after the prompt). NaN where the predicting token is padding. What ``kl_divergence`` and
    ``top1_agreement`` compare."""
    logits = act(acts, "logits")  # [batch, pos, vocab]
    rows = _rows(logits.shape[0], n_prompts)
    lp = torch.log_softmax(logits[:rows].double(), dim=-1).float().numpy()
    real = _real(prompts, rows)
    if real is not None:
        lp[~real] = np.nan
    b, p, v = lp.shape
    return xr.DataArray(
        lp,
        dims=("batch", "pos", "vocab"),
        coords={"batch": np.arange(b), "pos": np.arange(1, p + 1), "vocab": np.arange(v)},
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
    ``cross_model_patching`` read."""
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
    What ``head_matching`` compares."""
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
