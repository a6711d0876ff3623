"""Intervention metrics: they run their own hooked forward passes on the live bridge.

**Activation patching** (clean → corrupt, "denoising"; Meng et al. 2022, Wang et al. 2022):
run the model on the clean prompts (``tokens``) and cache an activation; run it on the
corrupted prompts (the ``corrupt_tokens`` extra, same shape) with ONE piece of that activation
replaced by its clean value; measure how much of the clean behaviour comes back as the
normalised logit difference

    (LD_patched - LD_corrupt) / (LD_clean - LD_corrupt)

(1 = patching this piece alone restores the clean answer, 0 = no effect; ``LD`` = mean over
prompts of ``logit[answer] - logit[wrong_answer]`` at the answer position). ``per="head"``
patches one head's output ``blocks.{L}.attn.hook_z[:, :, h]`` at every position (dims
``(layer, head)``, as ``transformer_lens.patching.get_act_patch_attn_head_out_all_pos``);
``per="position"`` patches the residual stream ``blocks.{L}.hook_resid_pre[:, p]`` (dims
``(layer, pos)``, as ``get_act_patch_resid_pre``).

**A near-zero denominator is masked, not divided by.** Where the clean and corrupted runs
barely differ (an untrained checkpoint), ``LD_clean - LD_corrupt`` is noise and the ratio
would be noise of any size (±0.5 per head at step 0 of a toy run). With ``g_i`` the per-prompt
difference ``LD_clean,i - LD_corrupt,i`` over the ``n`` prompts, its standard error
``se = std(g_i) / sqrt(n)`` (0 for one prompt) and a float32 rounding floor ``eps = 1e-6 *
rms(LD)``, the gap measured against its noise is

    z = mean(g_i) / (se + eps)

and every cell of the checkpoint is NaN when ``|z| <= min_gap_z`` (default 3: the clean and
corrupted runs are not distinguishable over these prompts). ``min_gap_z: 0`` masks only an
exactly zero difference. The metric ``patching_gap_z`` reports ``z`` per checkpoint — the flag
beside the values (masked exactly where ``|patching_gap_z| <= min_gap_z``).

**Head ablation**: replace one head's output ``hook_z[:, :, h]`` by zero (``method="zero"``)
or by its mean over the prompts at each position (``method="mean"``, which keeps the head's
constant contribution), and report the change of the loss (``measure="loss"``, nats; positive =
the head helps) or of the logit difference (``measure="logit_diff"``; negative = the head helps).

One forward pass per patched or ablated piece, on the whole prompt set at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from mispec.errors import PromptError, UserError
from mispec.lazy import torch, xr
from mispec.metrics.builtin._common import (
    MASK_AUTO,
    answer_logit_diff,
    answer_positions,
    check_choice,
    extra,
    mask_extras,
    mask_label,
    next_token_loss,
    prediction_weights,
    real_tokens,
    tokens_of,
)
from mispec.metrics.core import metric
from mispec.metrics.forward import eval_mode

Z = "blocks.{layer}.attn.hook_z"
RESID_PRE = "blocks.{layer}.hook_resid_pre"


def _patch_head(index: int, clean: Any) -> Callable[..., Any]:
    def hook(x: Any, hook: Any) -> Any:  # x: [batch, pos, head, d_head]
        x[:, :, index] = clean[:, :, index]
        return x

    return hook


def _patch_pos(index: int, clean: Any) -> Callable[..., Any]:
    def hook(x: Any, hook: Any) -> Any:  # x: [batch, pos, d_model]
        x[:, index] = clean[:, index]
        return x

    return hook


def _clean_and_corrupt(prompts: Any, why: str) -> tuple[Any, Any]:
    """The clean tokens and the ``corrupt_tokens`` extra, ``[batch, pos]`` int64 each."""
    clean = tokens_of(prompts)
    corrupt = torch.as_tensor(extra(prompts, "corrupt_tokens", why=why), dtype=torch.long)
    if corrupt.shape != clean.shape:
        raise PromptError(
            f"corrupt_tokens has shape {tuple(corrupt.shape)}, tokens {tuple(clean.shape)}: "
            "clean and corrupted prompts must align token for token"
        )
    return clean, corrupt


def gap_z(ld_clean: Any, ld_corrupt: Any) -> float:
    """``mean(g) / (se + eps)`` of the per-prompt differences ``g = ld_clean - ld_corrupt``
    (``[batch]`` each): the clean-corrupt gap in standard errors (see the module docstring)."""
    clean = np.asarray(ld_clean, dtype=np.float64)
    corrupt = np.asarray(ld_corrupt, dtype=np.float64)
    g = clean - corrupt
    se = float(g.std(ddof=1) / np.sqrt(g.size)) if g.size > 1 else 0.0
    eps = 1e-6 * float(np.sqrt(np.mean(np.r_[clean, corrupt] ** 2)))
    mean = float(g.mean())
    if mean == 0.0:
        return 0.0
    return mean / (se + eps) if se + eps > 0 else float(np.sign(mean)) * float("inf")


@metric(dims=(), units="standard errors", extras=("corrupt_tokens", "answer", "wrong_answer"))
def patching_gap_z(bridge: Any, prompts: Any) -> float:
    """Clean minus corrupted logit difference in standard errors over the prompts — the
    denominator of ``activation_patching`` measured against its noise; that metric is NaN at
    the checkpoints where ``|patching_gap_z| <= min_gap_z`` (see the module docstring)."""
    clean, corrupt = _clean_and_corrupt(prompts, "patching_gap_z")
    at = answer_positions(prompts)
    device = getattr(bridge.cfg, "device", None)
    with eval_mode(bridge):
        lds = [
            answer_logit_diff(bridge(t.to(device)).cpu(), prompts, at=at) for t in (clean, corrupt)
        ]
    return gap_z(*lds)


def _patched_dims(per: str) -> tuple[str, ...]:
    return ("layer", "head" if per == "head" else "pos")


@metric(
    dims=_patched_dims,
    units="fraction of logit difference restored",
    extras=("corrupt_tokens", "answer", "wrong_answer"),
    version=2,
)
def activation_patching(
    bridge: Any,
    prompts: Any,
    per: Literal["head", "position"] = "head",
    min_gap_z: float = 3.0,
) -> Any:
    """Normalised logit difference after patching clean activations into the corrupted run,
    per (layer, head) on ``hook_z`` or per (layer, pos) on ``hook_resid_pre`` (see the module
    docstring). Needs the extras ``corrupt_tokens``, ``answer``, ``wrong_answer``. NaN at
    every cell when the clean and corrupted runs do not differ by more than ``min_gap_z``
    standard errors (``patching_gap_z``).

    Args:
        per: ``head``: patch one head's output ``hook_z`` at every position, dims ``(layer, head)``;
            ``position``: patch the residual stream ``hook_resid_pre`` at one position, dims
            ``(layer, pos)``.
        min_gap_z: the least clean-minus-corrupted logit difference, in standard errors over the
            prompts (``patching_gap_z``), for the checkpoint to be scored; at or below it every cell
            is NaN (default 3; 0 masks only an exactly zero difference).
    """
    check_choice("per", per, ("head", "position"))
    if not min_gap_z >= 0:
        raise UserError(f"activation_patching: min_gap_z must be >= 0, got {min_gap_z}")
    clean, corrupt = _clean_and_corrupt(prompts, "activation_patching")
    at = answer_positions(prompts)
    cfg = bridge.cfg
    n_layers = int(cfg.n_layers)
    template, setter = (Z, _patch_head) if per == "head" else (RESID_PRE, _patch_pos)
    size = int(cfg.n_heads) if per == "head" else clean.shape[1]
    names = [template.replace("{layer}", str(layer)) for layer in range(n_layers)]
    device = getattr(cfg, "device", None)
    clean, corrupt = clean.to(device), corrupt.to(device)

    def per_prompt(logits: Any) -> Any:
        return answer_logit_diff(logits.cpu(), prompts, at=at)

    def ld(logits: Any) -> float:
        return float(per_prompt(logits).mean())

    values = np.full((n_layers, size), np.nan)
    with eval_mode(bridge):
        clean_logits, cache = bridge.run_with_cache(
            clean, names_filter=names, return_cache_object=False
        )
        clean_each, corrupt_each = per_prompt(clean_logits), per_prompt(bridge(corrupt))
        ld_clean, ld_corrupt = float(clean_each.mean()), float(corrupt_each.mean())
        masked = abs(gap_z(clean_each, corrupt_each)) <= min_gap_z
        for layer, name in enumerate(names):
            for i in range(size if not masked else 0):
                hook = setter(i, cache[name])
                values[layer, i] = ld(bridge.run_with_hooks(corrupt, fwd_hooks=[(name, hook)]))
    with np.errstate(divide="ignore", invalid="ignore"):
        restored = (values - ld_corrupt) / (ld_clean - ld_corrupt)
    second = "head" if per == "head" else "pos"
    return xr.DataArray(
        restored,
        dims=("layer", second),
        coords={"layer": np.arange(n_layers), second: np.arange(size)},
        attrs={"ld_clean": ld_clean, "ld_corrupt": ld_corrupt, "patched": template},
    )


def ablation_units(measure: str = "loss") -> str:
    """change of loss (nats); with measure: logit_diff, change of logit difference (logits)"""
    if measure == "logit_diff":
        return "change of logit difference (logits)"
    return "change of loss (nats)"


def _ablation_extras(
    measure: str = "loss", mask: str | None = MASK_AUTO, split: str = "all"
) -> tuple[str, ...]:
    return ("answer", "wrong_answer") if measure == "logit_diff" else mask_extras(mask, split)


@metric(
    dims=("layer", "head"),
    units=ablation_units,
    extras=_ablation_extras,
    version=3,
)
def head_ablation(
    bridge: Any,
    prompts: Any,
    method: Literal["zero", "mean"] = "zero",
    measure: Literal["loss", "logit_diff"] = "loss",
    mask: str | None = MASK_AUTO,
    split: Literal["all", "train", "test"] = "all",
) -> Any:
    """Change of the loss or logit difference when one head's output is zero- or
    mean-ablated, per (layer, head) (see the module docstring). ``mask`` / ``split`` select the
    predictions that count in the loss, as for ``loss``; padding never counts (nor enters the
    mean of a mean ablation).

    Args:
        method: ``zero``: replace the head's output ``hook_z`` by zeros; ``mean``: by its mean over
            the prompts at each position (padding left out), keeping its constant part.
        measure: ``loss``: change of the next-token loss (nats; positive = the head helps);
            ``logit_diff``: change of the mean answer-minus-wrong-answer logit difference (negative
            = the head helps; needs the ``answer``/``wrong_answer`` extras).
        mask: which predictions count: ``auto`` the prompt set's ``loss_mask`` where it has one
            (else every real prediction), ``none`` every real prediction, another name a ``[batch,
            pos-1]`` prompt extra whose non-zero entries count. Only for ``measure: loss``.
        split: ``train`` / ``test``: only the prompts whose ``train_mask`` extra is True / False (a
            grokking run's train and test loss); ``all``: every prompt. Only for ``measure: loss``.
    """
    check_choice("method", method, ("zero", "mean"))
    check_choice("measure", measure, ("loss", "logit_diff"))
    tokens = tokens_of(prompts)
    cfg = bridge.cfg
    n_layers, n_heads = int(cfg.n_layers), int(cfg.n_heads)
    device = getattr(cfg, "device", None)
    if measure == "loss":
        weights = prediction_weights(prompts, (tokens.shape[0], tokens.shape[1] - 1), mask, split)

        def score(logits: Any) -> float:
            return float(next_token_loss(logits, tokens, weights))
    else:
        at = answer_positions(prompts)

        def score(logits: Any) -> float:
            return float(answer_logit_diff(logits.cpu(), prompts, at=at).mean())

    names = [Z.replace("{layer}", str(layer)) for layer in range(n_layers)]
    real = real_tokens(prompts)
    tokens_dev = tokens.to(device)
    values = np.zeros((n_layers, n_heads))
    with eval_mode(bridge):
        if method == "mean":
            logits, cache = bridge.run_with_cache(
                tokens_dev, names_filter=names, return_cache_object=False
            )
        else:
            logits, cache = bridge(tokens_dev), {}
        base = score(logits)
        for layer, name in enumerate(names):
            # [1, pos, head, d_head]: the mean over prompts, or None for zeros
            mean = _mean_over_prompts(cache[name], real) if method == "mean" else None
            for h in range(n_heads):

                def ablate(x: Any, hook: Any, h: int = h, mean: Any = mean) -> Any:
                    x[:, :, h] = 0.0 if mean is None else mean[:, :, h]
                    return x

                values[layer, h] = score(
                    bridge.run_with_hooks(tokens_dev, fwd_hooks=[(name, ablate)])
                )
    units = "nats" if measure == "loss" else "logits"
    return xr.DataArray(
        values - base,
        dims=("layer", "head"),
        coords={"layer": np.arange(n_layers), "head": np.arange(n_heads)},
        attrs={
            "units": f"change of {measure} ({units})",
            "baseline": base,
            **({"mask": mask_label(prompts, mask)} if measure == "loss" else {}),
        },
    )


def _mean_over_prompts(z: Any, real: Any) -> Any:
    """``z [batch, pos, head, d_head]`` averaged over the prompts ``[1, pos, head, d_head]``;
    with ``real`` (``[batch, pos]``, False at padding) over the prompts whose token at that
    position is real (zero where none is)."""
    if real is None:
        return z.mean(0, keepdim=True)
    w = real.to(z.device, z.dtype)[:, :, None, None]
    return (z * w).sum(0, keepdim=True) / w.sum(0, keepdim=True).clamp(min=1.0)
