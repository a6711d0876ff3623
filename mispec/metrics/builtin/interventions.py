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

from mispec.errors import PromptError
from mispec.lazy import torch, xr
from mispec.metrics.builtin._common import (
    answer_logit_diff,
    answer_positions,
    check_choice,
    extra,
    mask_extras,
    next_token_loss,
    prediction_weights,
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


def _patched_dims(per: str) -> tuple[str, ...]:
    return ("layer", "head" if per == "head" else "pos")


@metric(
    dims=_patched_dims,
    units="fraction of logit difference restored",
    extras=("corrupt_tokens", "answer", "wrong_answer"),
)
def activation_patching(
    bridge: Any, prompts: Any, per: Literal["head", "position"] = "head"
) -> Any:
    """Normalised logit difference after patching clean activations into the corrupted run,
    per (layer, head) on ``hook_z`` or per (layer, pos) on ``hook_resid_pre`` (see the module
    docstring). Needs the extras ``corrupt_tokens``, ``answer``, ``wrong_answer``."""
    check_choice("per", per, ("head", "position"))
    clean = tokens_of(prompts)
    corrupt = torch.as_tensor(
        extra(prompts, "corrupt_tokens", why="activation_patching"), dtype=torch.long
    )
    if corrupt.shape != clean.shape:
        raise PromptError(
            f"corrupt_tokens has shape {tuple(corrupt.shape)}, tokens {tuple(clean.shape)}: "
            "clean and corrupted prompts must align token for token"
        )
    at = answer_positions(prompts)
    cfg = bridge.cfg
    n_layers = int(cfg.n_layers)
    template, setter = (Z, _patch_head) if per == "head" else (RESID_PRE, _patch_pos)
    size = int(cfg.n_heads) if per == "head" else clean.shape[1]
    names = [template.replace("{layer}", str(layer)) for layer in range(n_layers)]
    device = getattr(cfg, "device", None)
    clean, corrupt = clean.to(device), corrupt.to(device)

    def ld(logits: Any) -> float:
        return float(answer_logit_diff(logits.cpu(), prompts, at=at).mean())

    values = np.full((n_layers, size), np.nan)
    with eval_mode(bridge):
        clean_logits, cache = bridge.run_with_cache(
            clean, names_filter=names, return_cache_object=False
        )
        ld_clean, ld_corrupt = ld(clean_logits), ld(bridge(corrupt))
        for layer, name in enumerate(names):
            for i in range(size):
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


def _ablation_extras(
    measure: str = "loss", mask: str | None = None, split: str = "all"
) -> tuple[str, ...]:
    return ("answer", "wrong_answer") if measure == "logit_diff" else mask_extras(mask, split)


@metric(
    dims=("layer", "head"),
    units="change of loss (nats) or of logit difference",
    extras=_ablation_extras,
)
def head_ablation(
    bridge: Any,
    prompts: Any,
    method: Literal["zero", "mean"] = "zero",
    measure: Literal["loss", "logit_diff"] = "loss",
    mask: str | None = None,
    split: Literal["all", "train", "test"] = "all",
) -> Any:
    """Change of the loss or logit difference when one head's output is zero- or
    mean-ablated, per (layer, head) (see the module docstring). ``mask`` / ``split`` select the
    predictions that count in the loss, as for ``loss``."""
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
            mean = cache[name].mean(0, keepdim=True) if method == "mean" else None
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
        attrs={"units": f"change of {measure} ({units})", "baseline": base},
    )
