"""Direct logit attribution (DLA) and the logit lens.

**DLA.** The residual stream at the answer position is a sum of what each component wrote:
the token (and positional) embedding, each attention layer (each head's ``z_h @ W_O[h]`` plus
the layer's bias ``b_O``) and each MLP layer. The logits read it through the final LayerNorm
and the unembedding. The LayerNorm is not linear, but *given its scale* ``s`` (its cached
``ln_final.hook_scale`` at that position) it is: ``LN(x) = w * (x - mean(x)) / s + b``. So,
with ``u = w * (W_U[:, answer] - W_U[:, wrong_answer])`` (the final LayerNorm's weight folded
into the unembedding), each component ``c`` contributes

    DLA(c) = (c - mean(c)) / s . u

and ``sum_c DLA(c) + b . (W_U[:, answer] - W_U[:, wrong]) + b_U[answer] - b_U[wrong]`` is
exactly the logit difference. This is TransformerLens's DLA (``ActivationCache.logit_attrs``
after ``apply_ln_to_stack``: centre each component, divide by the cached final scale, dot with
the folded unembedding direction), computed on the unprocessed model so that it works on every
bridge (TL's own ``direct_logit_attribution`` needs a bridge in compatibility mode with the
LayerNorm folded in). For RMSNorm nothing is centred; without a final norm ``s = 1``.
``target="logit"`` attributes the answer's logit alone (then ``u`` is ``w * W_U[:, answer]``).
Values are means over the prompts, each read at its answer position (``answer_pos``, else its
last real token).

* ``per="head"`` — dims ``(layer, head)``: each head's direct effect (``z_h @ W_O[h]``, so its
  value bias ``b_V`` and ``ln1``'s bias through ``W_V`` count with the head; TL's weight
  processing folds both into ``b_O`` instead — the two agree where they are zero). ``remainder`` (an attr,
  a data variable ``<metric>__remainder`` in the results) is everything else — embeddings,
  ``b_O``, MLPs, the final LayerNorm's bias and ``b_U`` — so heads + remainder = the logit
  difference (attr ``logit_diff``).
* ``per="component"`` — dims ``(layer, component)`` with ``component`` = ``attn`` (the layer's
  whole output, ``b_O`` included), ``mlp`` (NaN for an attention-only model); the attrs
  ``embed`` (token + positional embedding) and ``remainder`` (the bias terms) complete the sum.

**Logit lens** (nostalgebraist 2020; TL's ``tools.analysis.logit_lens``): the residual stream
after each layer (``blocks.{L}.hook_resid_post``) read through the final LayerNorm (its own
statistics, not the final ones) and the unembedding, as if the model stopped there; the
result is the logit difference (or the answer's log-probability, ``measure="logprob"``) per
layer. The last layer's value is the model's own.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from mispec.lazy import torch, xr
from mispec.metrics.builtin._common import answer_positions, check_choice, extra, tokens_of
from mispec.metrics.core import metric
from mispec.metrics.forward import eval_mode

TARGETS = ("logit_diff", "logit")


def _target_extras(target: str = "logit_diff") -> tuple[str, ...]:
    return ("answer",) if target == "logit" else ("answer", "wrong_answer")


def _dla_dims(per: str) -> tuple[str, ...]:
    return ("layer", "head" if per == "head" else "component")


def unembed_direction(bridge: Any, prompts: Any, target: str) -> tuple[Any, Any]:
    """``u [batch, d_model]`` (final LayerNorm weight folded into ``W_U``'s answer columns,
    minus the wrong answer's for a logit difference) and the constant ``[batch]`` the bias
    terms add (final LayerNorm bias through ``W_U``, plus ``b_U``)."""
    check_choice("target", target, TARGETS)
    answer = torch.as_tensor(extra(prompts, "answer", why="direct logit attribution"))
    w_u = bridge.W_U.detach().float().cpu()
    b_u = getattr(bridge, "b_U", None)
    b_u = torch.zeros(w_u.shape[1]) if b_u is None else b_u.detach().float().cpu()
    cols, bias = w_u[:, answer.long()].T, b_u[answer.long()]
    if target == "logit_diff":
        wrong = torch.as_tensor(extra(prompts, "wrong_answer", why="a logit difference")).long()
        cols, bias = cols - w_u[:, wrong].T, bias - b_u[wrong]
    norm = getattr(bridge, "ln_final", None)
    weight = getattr(norm, "weight", None)
    ln_bias = getattr(norm, "bias", None)
    if isinstance(ln_bias, torch.Tensor):
        bias = bias + cols @ ln_bias.detach().float().cpu()
    if isinstance(weight, torch.Tensor):
        cols = cols * weight.detach().float().cpu()
    return cols, bias


def fold_final_scale(bridge: Any, parts: Any, scale: Any) -> Any:
    """``parts [..., batch, d_model]`` centred (LayerNorm, not RMSNorm) and divided by the
    final norm's cached ``scale [batch]``: what each part adds after the final norm."""
    kind = str(getattr(bridge.cfg, "normalization_type", None) or "")
    if kind.startswith("LN"):
        parts = parts - parts.mean(-1, keepdim=True)
    return parts / scale[:, None]


def _names(n_layers: int, has_mlp: bool) -> list[str]:
    names = ["hook_embed", "hook_pos_embed", "ln_final.hook_scale"]
    for layer in range(n_layers):
        names += [f"blocks.{layer}.attn.hook_z", f"blocks.{layer}.hook_attn_out"]
        names += [f"blocks.{layer}.hook_mlp_out"] if has_mlp else []
    return names


def residual_parts(bridge: Any, prompts: Any) -> dict[str, Any]:
    """One cached run: at each prompt's answer position, ``heads [layer, head, batch, d]``
    (``z @ W_O``), ``attn`` / ``mlp`` ``[layer, batch, d]`` (None without MLPs), ``embed``
    ``[batch, d]``, the final norm's ``scale [batch]`` and the ``logits [batch, vocab]``."""
    cfg = bridge.cfg
    n_layers = int(cfg.n_layers)
    has_mlp = not bool(getattr(cfg, "attn_only", False))
    names = [n for n in _names(n_layers, has_mlp) if n in bridge.hook_dict]
    at = answer_positions(prompts)
    device = getattr(cfg, "device", None)
    with eval_mode(bridge):
        logits, cache = bridge.run_with_cache(
            tokens_of(prompts).to(device), names_filter=names, return_cache_object=False
        )
    rows = torch.arange(at.shape[0])

    def read(name: str) -> Any:
        return cache[name].detach().float().cpu()[rows, at]

    w_o = bridge.W_O.detach().float().cpu()  # [layer, head, d_head, d_model]
    heads = torch.stack(
        [
            torch.einsum("bhd,hdm->hbm", read(f"blocks.{L}.attn.hook_z"), w_o[L])
            for L in range(n_layers)
        ]
    )
    embed = sum(read(n) for n in ("hook_embed", "hook_pos_embed") if n in cache)
    scale = (
        read("ln_final.hook_scale").reshape(-1)
        if "ln_final.hook_scale" in cache
        else torch.ones(at.shape[0])
    )
    return {
        "heads": heads,
        "attn": torch.stack([read(f"blocks.{L}.hook_attn_out") for L in range(n_layers)]),
        "mlp": torch.stack([read(f"blocks.{L}.hook_mlp_out") for L in range(n_layers)])
        if has_mlp
        else None,
        "embed": embed,
        "scale": scale,
        "logits": logits.detach().float().cpu()[rows, at],
    }


@metric(dims=_dla_dims, units="logits", extras=_target_extras)
def direct_logit_attribution(
    bridge: Any,
    prompts: Any,
    per: Literal["head", "component"] = "head",
    target: Literal["logit_diff", "logit"] = "logit_diff",
) -> Any:
    """Each head's (or each layer's attention and MLP) direct contribution to the logit
    difference (or the answer's logit), the final LayerNorm's scale folded in as
    TransformerLens does; attrs ``remainder`` (and ``embed``) complete the sum to the logit
    difference (attr ``logit_diff``). See the module docstring.

    Args:
        per: ``head``: one value per (layer, head); ``component``: per layer, its attention output
            and its MLP output (``component`` = ``attn``, ``mlp``).
        target: ``logit_diff``: the answer's minus the wrong answer's logit (needs
            ``wrong_answer``); ``logit``: the answer's logit alone.
    """
    check_choice("per", per, ("head", "component"))
    parts = residual_parts(bridge, prompts)
    u, const = unembed_direction(bridge, prompts, target)
    scale = parts["scale"]

    def attribute(x: Any) -> Any:  # [..., batch, d] -> [..., batch]
        return (fold_final_scale(bridge, x, scale) * u).sum(-1)

    heads = attribute(parts["heads"])  # [layer, head, batch]
    attn = attribute(parts["attn"])  # [layer, batch]
    mlp = attribute(parts["mlp"]) if parts["mlp"] is not None else None
    embed = attribute(parts["embed"])  # [batch]
    answer = torch.as_tensor(extra(prompts, "answer", why="DLA")).long()
    rows = torch.arange(answer.shape[0])
    total = parts["logits"][rows, answer]
    if target == "logit_diff":
        total = (
            total - parts["logits"][rows, torch.as_tensor(prompts.extras["wrong_answer"]).long()]
        )
    n_layers = heads.shape[0]
    attrs = {"logit_diff" if target == "logit_diff" else "logit": float(total.mean())}
    if per == "head":
        rest = embed + attn.sum(0) - heads.sum((0, 1)) + const
        rest = rest + (mlp.sum(0) if mlp is not None else 0.0)
        values = heads.mean(-1).numpy()
        attrs["remainder"] = float(rest.mean())
        coords = {"layer": np.arange(n_layers), "head": np.arange(heads.shape[1])}
        return xr.DataArray(values, dims=("layer", "head"), coords=coords, attrs=attrs)
    mlp_mean = mlp.mean(-1).numpy() if mlp is not None else np.full(n_layers, np.nan)
    values = np.stack([attn.mean(-1).numpy(), mlp_mean], axis=1)
    attrs.update(embed=float(embed.mean()), remainder=float(const.mean()))
    coords = {"layer": np.arange(n_layers), "component": np.array(["attn", "mlp"], dtype=object)}
    return xr.DataArray(values, dims=("layer", "component"), coords=coords, attrs=attrs)


def _lens_extras(measure: str = "logit_diff") -> tuple[str, ...]:
    return ("answer",) if measure == "logprob" else ("answer", "wrong_answer")


def _lens_units(measure: str = "logit_diff") -> str:
    """logits (logit difference); with measure: logprob, nats (log-probability)"""
    return "nats (log-probability)" if measure == "logprob" else "logits (logit difference)"


@metric(dims=("layer",), units=_lens_units, extras=_lens_extras, version=2)
def logit_lens(
    bridge: Any, prompts: Any, measure: Literal["logit_diff", "logprob"] = "logit_diff"
) -> Any:
    """The logit difference (or the answer's log-probability) read from the residual stream
    after each layer through the final LayerNorm and the unembedding (see the module
    docstring), mean over prompts at their answer positions.

    Args:
        measure: ``logit_diff``: answer minus wrong-answer logit (logits); ``logprob``: the answer's
            log-probability (nats).
    """
    check_choice("measure", measure, ("logit_diff", "logprob"))
    n_layers = int(bridge.cfg.n_layers)
    names = [f"blocks.{layer}.hook_resid_post" for layer in range(n_layers)]
    at = answer_positions(prompts)
    rows = torch.arange(at.shape[0])
    device = getattr(bridge.cfg, "device", None)
    answer = torch.as_tensor(extra(prompts, "answer", why="logit_lens")).long()
    values = np.zeros(n_layers)
    with eval_mode(bridge):
        _, cache = bridge.run_with_cache(
            tokens_of(prompts).to(device), names_filter=names, return_cache_object=False
        )
        for layer, name in enumerate(names):
            resid = cache[name][rows.to(cache[name].device), at.to(cache[name].device)]
            logits = bridge.unembed(bridge.ln_final(resid[:, None]))[:, 0].float().cpu()
            if measure == "logprob":
                score = logits.log_softmax(-1)[rows, answer]
            else:
                wrong = torch.as_tensor(extra(prompts, "wrong_answer", why="logit_lens")).long()
                score = logits[rows, answer] - logits[rows, wrong]
            values[layer] = float(score.mean())
    return xr.DataArray(values, dims=("layer",), coords={"layer": np.arange(n_layers)})
