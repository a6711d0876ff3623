"""MLP neurons: activations, their top examples followed over training, and ablation.

A neuron is one unit of an MLP's hidden layer: ``blocks.{L}.mlp.hook_post`` (after the
nonlinearity) ``[batch, pos, d_mlp]``.

* ``neuron_activation`` — dims ``(layer, neuron)``: each neuron's mean activation over the
  real tokens of the prompt set (``position: all``), or at each prompt's answer position
  (``position: answer``: ``answer_pos``, else the last real token).
* ``neuron_top_examples`` — dims ``(neuron, batch, pos)`` for the ``neurons`` of one
  ``layer``: 1 at each neuron's ``k`` highest-activating (prompt, position) pairs (real
  tokens only; ties broken by the first), else 0 — a selection of examples.
* ``top_examples`` — dims ``(neuron,)``: each neuron's mean activation over the examples an
  input selection marks. Chosen at a reference step and read at every step, it follows how the
  neuron's response to ITS examples forms::

      top:    {fn: neuron_top_examples, prompts: text, args: {layer: 0, neurons: [3, 7], k: 8}}
      on_top: {fn: top_examples, prompts: text, args: {layer: 0, neurons: [3, 7]},
               inputs: {examples: {metric: top, step: last}}}

  (here the last step's top examples; ``step: first`` or a step number picks another
  reference checkpoint).
* ``neuron_ablation`` — dims ``(neuron,)``: the change of the loss (or logit difference) when
  one neuron of ``layer`` is set to zero (or to its mean over the prompts at each position),
  one forward pass per neuron.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from mispec.errors import UserError
from mispec.lazy import torch, xr
from mispec.metrics.builtin._common import (
    MASK_AUTO,
    act,
    answer_logit_diff,
    answer_positions,
    check_choice,
    mask_extras,
    mask_label,
    next_token_loss,
    prediction_weights,
    real_tokens,
    tokens_of,
)
from mispec.metrics.builtin.interventions import ablation_units
from mispec.metrics.core import InputDims, metric
from mispec.metrics.forward import eval_mode

POST = "blocks.{layer}.mlp.hook_post"


def _real(prompts: Any, shape: tuple[int, int]) -> Any:
    real = real_tokens(prompts)
    return torch.ones(shape, dtype=torch.bool) if real is None else real


@metric(dims=("layer", "neuron"), hooks=(POST,), units="activation")
def neuron_activation(acts: Any, prompts: Any, position: Literal["all", "answer"] = "all") -> Any:
    """Each MLP neuron's mean activation over the real tokens (or at the answer position).

    Args:
        position: ``all``: mean over every real token; ``answer``: at each prompt's answer position
            (``answer_pos``, else the last real token).
    """
    check_choice("position", position, ("all", "answer"))
    post = act(acts, POST)  # [layer, batch, pos, d_mlp]
    if position == "answer":
        at = answer_positions(prompts)
        return post[:, torch.arange(at.shape[0]), at].mean(1).numpy()
    w = _real(prompts, tuple(post.shape[1:3])).float()[None, :, :, None]
    return ((post * w).sum((1, 2)) / w.sum((1, 2))).numpy()


def _chosen(layer: int, neurons: list[int] | None, post: Any) -> tuple[Any, list[int]]:
    """``post`` of ``layer`` ``[batch, pos, d_mlp]`` and the neuron ids asked for."""
    if not 0 <= layer < post.shape[0]:
        raise UserError(f"layer {layer} does not exist (the model has {post.shape[0]})")
    d_mlp = post.shape[-1]
    ids = list(range(d_mlp)) if neurons is None else [int(n) for n in neurons]
    bad = [n for n in ids if not 0 <= n < d_mlp]
    if bad:
        raise UserError(f"neurons {bad} do not exist (layer {layer} has {d_mlp})")
    return post[layer], ids


def _check_k(k: int) -> dict[str, str]:
    return {"k": f"k = {k}: select at least 1 example"} if isinstance(k, int) and k < 1 else {}


NEURON_INDEXES = {"layer": "layer", "neurons": "neuron"}


@metric(
    dims=("neuron", "batch", "pos"),
    hooks=(POST,),
    units="selection (1 = top example)",
    indexes=NEURON_INDEXES,
    check=_check_k,
)
def neuron_top_examples(
    acts: Any, prompts: Any, layer: int, neurons: list[int] | None = None, k: int = 10
) -> Any:
    """1 at each chosen neuron's ``k`` highest-activating (prompt, position) pairs.

    Args:
        layer: the block whose MLP neurons (``blocks.{layer}.mlp.hook_post``) are read.
        neurons: the neuron ids of that layer (each in ``0..d_mlp-1``); ``null``: every neuron.
        k: how many (prompt, position) pairs each neuron marks, between 1 and the number of real
            tokens (default 10).
    """
    post, ids = _chosen(layer, neurons, act(acts, POST))
    batch, pos, _ = post.shape
    real = _real(prompts, (batch, pos))
    if not 0 < k <= int(real.sum()):
        raise UserError(f"k must be between 1 and the number of real tokens, got {k}")
    out = np.zeros((len(ids), batch, pos))
    for i, n in enumerate(ids):
        values = post[:, :, n].masked_fill(~real, -torch.inf).reshape(-1)
        top = torch.topk(values, k, sorted=True).indices.numpy()
        out[i].reshape(-1)[top] = 1.0
    return xr.DataArray(
        out,
        dims=("neuron", "batch", "pos"),
        coords={"neuron": np.asarray(ids), "batch": np.arange(batch), "pos": np.arange(pos)},
    )


@metric(
    dims=("neuron",),
    hooks=(POST,),
    inputs=("examples",),
    input_dims={"examples": InputDims(("neuron", "batch", "pos"), why="a selection of examples")},
    units="activation",
    indexes=NEURON_INDEXES,
)
def top_examples(
    acts: Any, prompts: Any, examples: Any, layer: int, neurons: list[int] | None = None
) -> Any:
    """Each neuron's mean activation over the examples ``examples`` marks (a
    ``neuron_top_examples`` result, typically from a reference step).

    Args:
        layer: the block whose MLP neurons (``blocks.{layer}.mlp.hook_post``) are read. The same as
            the ``neuron_top_examples`` that chose the examples.
        neurons: the neuron ids of that layer (each in ``0..d_mlp-1``); ``null``: every neuron.
    """
    post, ids = _chosen(layer, neurons, act(acts, POST))
    marks = examples.sel(neuron=ids).transpose("neuron", "batch", "pos").values
    if marks.shape[1:] != tuple(post.shape[:2]):
        raise UserError(
            f"the examples mark a prompt set of shape {marks.shape[1:]}, this one is "
            f"{tuple(post.shape[:2])}: select them on the same prompt set"
        )
    sel = post[:, :, ids].permute(2, 0, 1).numpy()  # [neuron, batch, pos]
    with np.errstate(invalid="ignore", divide="ignore"):
        values = (sel * marks).sum((1, 2)) / marks.sum((1, 2))
    return xr.DataArray(values, dims=("neuron",), coords={"neuron": np.asarray(ids)})


def _ablation_extras(measure: str = "loss", mask: str | None = MASK_AUTO) -> tuple[str, ...]:
    return ("answer", "wrong_answer") if measure == "logit_diff" else mask_extras(mask)


@metric(
    dims=("neuron",),
    units=ablation_units,
    extras=_ablation_extras,
    indexes=NEURON_INDEXES,
    version=2,
)
def neuron_ablation(
    bridge: Any,
    prompts: Any,
    layer: int,
    neurons: list[int] | None = None,
    method: Literal["zero", "mean"] = "zero",
    measure: Literal["loss", "logit_diff"] = "loss",
    mask: str | None = MASK_AUTO,
) -> Any:
    """Change of the loss (or logit difference) when one neuron of ``layer`` is zeroed (or
    set to its mean over the prompts at each position), per neuron. ``mask`` selects the
    predictions the loss counts, as for ``loss`` (the prompt set's ``loss_mask`` by
    default).

    Args:
        layer: the block whose MLP neurons (``blocks.{layer}.mlp.hook_post``) are read.
        neurons: the neuron ids of that layer (each in ``0..d_mlp-1``); ``null``: every neuron.
        method: ``zero``: set the neuron's activation to 0; ``mean``: to its mean over the prompts
            at each position (padding left out).
        measure: ``loss``: change of the next-token loss (nats; positive = the neuron helps);
            ``logit_diff``: change of the mean answer-minus-wrong-answer logit difference.
        mask: which predictions count: ``auto`` the prompt set's ``loss_mask`` where it has one
            (else every real prediction), ``none`` every real prediction, another name a ``[batch,
            pos-1]`` prompt extra whose non-zero entries count. Only for ``measure: loss``.
    """
    check_choice("method", method, ("zero", "mean"))
    check_choice("measure", measure, ("loss", "logit_diff"))
    tokens = tokens_of(prompts)
    name = POST.format(layer=layer)
    device = getattr(bridge.cfg, "device", None)
    toks = tokens.to(device)
    if measure == "loss":
        weights = prediction_weights(prompts, (tokens.shape[0], tokens.shape[1] - 1), mask, "all")

        def score(logits: Any) -> float:
            return float(next_token_loss(logits.cpu(), tokens, weights))
    else:
        at = answer_positions(prompts)

        def score(logits: Any) -> float:
            return float(answer_logit_diff(logits.cpu(), prompts, at=at).mean())

    with eval_mode(bridge):
        logits, cache = bridge.run_with_cache(toks, names_filter=[name], return_cache_object=False)
        base = score(logits)
        post = cache[name]
        _, ids = _chosen(
            layer, neurons, torch.zeros(int(bridge.cfg.n_layers), 1, 1, post.shape[-1])
        )
        real = _real(prompts, tuple(post.shape[:2])).to(post.device, post.dtype)[:, :, None]
        mean = (post * real).sum(0, keepdim=True) / real.sum(0, keepdim=True).clamp(min=1.0)
        values = np.zeros(len(ids))
        for i, n in enumerate(ids):

            def ablate(x: Any, hook: Any, n: int = n) -> Any:
                x[:, :, n] = 0.0 if method == "zero" else mean[:, :, n]
                return x

            values[i] = score(bridge.run_with_hooks(toks, fwd_hooks=[(name, ablate)])) - base
    return xr.DataArray(
        values,
        dims=("neuron",),
        coords={"neuron": np.asarray(ids)},
        attrs={
            "baseline": base,
            **({"mask": mask_label(prompts, mask)} if measure == "loss" else {}),
        },
    )
