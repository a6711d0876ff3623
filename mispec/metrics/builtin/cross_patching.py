"""Cross-model activation patching: how much of side b's behaviour one piece of its
activations carries into side a's model.

Side a (this cell's checkpoint: the live bridge) runs the prompts; ONE piece of one of its
activations is replaced by side b's activation on the same prompts (an ``activations`` cell
of side b, read through a spec's ``pairs:``), and the loss on the prompts is measured:

* ``per="head"``: head ``h``'s output ``blocks.{L}.attn.hook_z[:, :, h]`` at every position
  (the source cell holds ``hook="z"``), dims ``(layer, head)``;
* ``per="layer"``: the whole residual stream entering block ``L``
  (``blocks.{L}.hook_resid_pre``; source ``hook="resid_pre"``), dims ``(layer,)``;
* ``per="position"``: the residual stream entering block ``L`` at one position, dims
  ``(layer, pos)``.

Normalised as ``activation_patching`` normalises (side b plays "clean", side a "corrupt"):

    recovered = (L_patched - L_a) / (L_b - L_a)

1 = this piece alone moves side a's loss all the way to side b's, 0 = no effect. ``L_b`` is
side b's ``loss`` cell (the ``source_loss`` input, same prompts and mask). Where the two
sides' losses differ by less than ``min_gap`` nats the ratio is noise and every cell is NaN
(two identical models: always); ``normalize: false`` returns ``L_patched`` itself.

Side b's activations at padded positions are NaN in its cell and are patched in as 0: under
causal attention with right padding no real position reads them, and only real
predictions count in the loss. For the fine-tuning question (parent → fine-tuned) side a is
the fine-tuned model and side b its parent, or the other way round.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from mispec.errors import MetricError, UserError
from mispec.lazy import torch, xr
from mispec.metrics.builtin._common import (
    MASK_AUTO,
    check_choice,
    mask_extras,
    mask_label,
    next_token_loss,
    prediction_weights,
    tokens_of,
)
from mispec.metrics.core import InputDims, metric
from mispec.metrics.forward import eval_mode

_HOOKS = {"head": "blocks.{layer}.attn.hook_z", "layer": "blocks.{layer}.hook_resid_pre"}
_HOOKS["position"] = _HOOKS["layer"]


def _patched_dims(per: str = "head") -> tuple[str, ...]:
    return {"head": ("layer", "head"), "layer": ("layer",)}.get(per, ("layer", "pos"))


def _patching_units(normalize: bool = True) -> str:
    """fraction of the loss gap recovered; with normalize: false, loss with the piece
    patched in (nats)"""
    return (
        "fraction of the loss gap recovered"
        if normalize
        else "loss with the piece patched in (nats)"
    )


def _extras(mask: str | None = MASK_AUTO) -> tuple[str, ...]:
    return mask_extras(mask)


def _setter(per: str, index: int | None, source: Any) -> Callable[..., Any]:
    """A forward hook writing side b's piece into side a's activation (``x`` as the hook
    fires it: ``[batch, pos, head, d_head]`` for z, ``[batch, pos, d_model]`` for the
    residual stream)."""

    def hook(x: Any, hook: Any) -> Any:
        src = source.to(x.device, x.dtype)
        if per == "head":
            x[:, :, index] = src[:, :, index]
        elif per == "layer":
            x[...] = src
        else:
            x[:, index] = src[:, index]
        return x

    return hook


@metric(
    dims=_patched_dims,
    inputs=("source", "source_loss"),
    other_side=("source", "source_loss"),
    input_dims={"source": InputDims(("layer", "batch", "pos"), why="activations per layer")},
    comparable=("n_layers", "n_heads", "d_model", "d_head"),
    units=_patching_units,
    extras=_extras,
    version=2,
)
def cross_model_patching(
    bridge: Any,
    prompts: Any,
    source: Any,
    source_loss: Any,
    per: Literal["head", "layer", "position"] = "head",
    normalize: bool = True,
    min_gap: float = 1e-3,
    mask: str | None = MASK_AUTO,
) -> Any:
    """Side a's loss with one piece of side b's activations patched in, per (layer, head),
    layer, or (layer, position), normalised to the fraction of the loss gap between the two
    sides it recovers (see the module docstring).

    Args:
        per: which piece of side b is patched in: ``head`` one head's ``hook_z`` at every position
            (source ``hook: z``), ``layer`` the whole residual stream entering a block, ``position``
            that stream at one position (source ``hook: resid_pre``).
        normalize: true: the fraction of the loss gap between the sides recovered (1 = side b's
            loss); false: the patched loss itself (nats).
        min_gap: the least loss difference between the two sides (nats) to normalise by; below it
            every cell is NaN. Only with ``normalize: true``.
        mask: which predictions count: ``auto`` the prompt set's ``loss_mask`` where it has one
            (else every real prediction), ``none`` every real prediction, another name a ``[batch,
            pos-1]`` prompt extra whose non-zero entries count.
    """
    check_choice("per", per, ("head", "layer", "position"))
    if not min_gap >= 0:
        raise UserError(f"cross_model_patching: min_gap must be >= 0, got {min_gap}")
    tokens = tokens_of(prompts)
    cfg = bridge.cfg
    n_layers = int(cfg.n_layers)
    src = _source_tensor(source, per, tokens.shape, n_layers)
    width = int(cfg.d_head) if per == "head" else int(cfg.d_model)
    if src.shape[-1] != width:
        raise MetricError(
            "cross_model_patching: the two sides cannot be compared: side b's activations "
            f"have width {src.shape[-1]}, side a's {width} (models of different sizes)"
        )
    weights = prediction_weights(prompts, (tokens.shape[0], tokens.shape[1] - 1), mask, "all")
    device = getattr(cfg, "device", None)
    tokens_dev = tokens.to(device)
    size = {"head": int(cfg.n_heads), "layer": 1, "position": int(tokens.shape[1])}[per]
    values = np.full((n_layers, size), np.nan)
    template = _HOOKS[per]
    with eval_mode(bridge):
        base = float(next_token_loss(bridge(tokens_dev), tokens_dev, weights))
        for layer in range(n_layers):
            name = template.replace("{layer}", str(layer))
            for i in range(size):
                hook = _setter(per, i, src[layer])
                logits = bridge.run_with_hooks(tokens_dev, fwd_hooks=[(name, hook)])
                values[layer, i] = float(next_token_loss(logits, tokens_dev, weights))
    target = float(np.asarray(getattr(source_loss, "values", source_loss)))
    gap = target - base
    if normalize:
        values = (values - base) / gap if abs(gap) >= min_gap and gap == gap else values * np.nan
    dims = _patched_dims(per)
    out = values[:, 0] if per == "layer" else values
    coords: dict[str, Any] = {"layer": np.arange(n_layers)}
    if per != "layer":
        coords[dims[1]] = np.arange(size)
    return xr.DataArray(
        out,
        dims=dims,
        coords=coords,
        attrs={
            "loss_a": base,
            "loss_b": target,
            "patched": template,
            "mask": mask_label(prompts, mask),
        },
    )


def _source_tensor(source: Any, per: str, shape: tuple[int, ...], n_layers: int) -> Any:
    """Side b's activations as a float32 tensor ``[layer, batch, pos, ...]`` (NaN → 0), checked
    against side a's prompts and layers."""
    if per == "head":
        want: tuple[str, ...] = ("layer", "batch", "pos", "head", "d_head")
        hook = "z"
    else:
        want = ("layer", "batch", "pos", "d_model")
        hook = "resid_pre"
    if set(source.dims) != set(want):
        raise MetricError(
            f"cross_model_patching with per={per!r} needs side b's activations with "
            f"hook: {hook} (dims {want}); got dims {source.dims}"
        )
    arr = source.transpose(*want).values
    if arr.shape[0] != n_layers or tuple(arr.shape[1:3]) != tuple(shape):
        raise MetricError(
            "cross_model_patching: the two sides cannot be compared: side b's activations "
            f"have (layer, batch, pos) = {arr.shape[:3]}, side a has {n_layers} layers and "
            f"prompts {tuple(shape)} (the source must hold every prompt: n_prompts: null)"
        )
    return torch.as_tensor(np.nan_to_num(arr, nan=0.0), dtype=torch.float32)
