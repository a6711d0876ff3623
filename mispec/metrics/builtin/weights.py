"""Weight metrics: computed from the checkpoint alone, no prompts.

**Composition scores** (Elhage et al. 2021, "A Mathematical Framework for Transformer
Circuits"): how much a later head reads what an earlier head writes. With ``W_OV = W_V W_O``
of the source head and ``W_QK = W_Q W_K^T`` of the destination head (row-vector convention,
``[d_model, d_model]`` each), the score is ``||W_A W_B||_F / (||W_A||_F ||W_B||_F)`` with

* Q-composition: ``W_A = W_OV(src)``, ``W_B = W_QK(dst)`` (the source writes into the query),
* K-composition: ``W_A = W_OV(src)``, ``W_B = W_QK(dst)^T`` (into the key — previous-token
  head → induction head),
* V-composition: ``W_A = W_OV(src)``, ``W_B = W_OV(dst)`` (into the value).

Computed through ``TransformerBridge.all_composition_scores`` (factored, never materialising
the products); pairs with ``src_layer >= dst_layer`` cannot compose and are NaN. Random
matrices already score about ``1/sqrt(d_head)``-ish, so compare against initialisation.

**LayerNorm folding.** By default the scores use the RAW ``W_Q``, ``W_K``, ``W_V``, ``W_O`` of
the checkpoint: the LayerNorm ``ln1`` that every head reads its input through is left out, so
its per-dimension scale ``w`` (and its centring) is not part of the maps. ``fold_ln: true``
folds it in first, as TransformerLens's ``fold_layer_norm`` does (``from_pretrained``'s
default, so TransformerLens-style analyses use these): every reading weight of layer ``l``
becomes ``W[d, :] * w_l[d]`` (``W_Q``, ``W_K``, ``W_V``; ``d`` the residual dimension) and,
for a LayerNorm (which removes the mean of its input), is then centred over ``d``
(``W - mean_d W``); an RMSNorm only scales. The LayerNorm bias moves into the query / key /
value biases, which the scores do not read, and the writing weights ``W_O`` stay as they are
(TransformerLens centres them only under its separate ``center_writing_weights``). On a model
already processed that way (``LNPre``) only the centring applies.

**Weight norms**: L2 (Frobenius) norm of the parameters, per parameter, per layer or in total
— the quantity weight decay shrinks during the cleanup phase of grokking.

**Fourier spectrum of the embedding** (Nanda et al. 2023, "Progress measures for grokking"):
for modular arithmetic mod ``p`` the rows ``W_E[0..p-1]`` of a grokked model are sparse in the
Fourier basis over the token index: a few key frequencies carry almost all the norm.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from mispec.errors import UserError
from mispec.lazy import torch, xr
from mispec.metrics.builtin._common import check_choice, weight_tensors
from mispec.metrics.core import metric
from mispec.metrics.forward import eval_mode


@metric(dims=("src_layer", "src_head", "dst_layer", "dst_head"), units="ratio")
def composition_score(
    bridge: Any, mode: Literal["Q", "K", "V"] = "K", fold_ln: bool = False
) -> Any:
    """Q-, K- or V-composition score between every earlier head (src) and every later head
    (dst), ``||W_OV(src) W(dst)||_F / (||W_OV(src)||_F ||W(dst)||_F)`` (see the module
    docstring); NaN where ``src_layer >= dst_layer``.

    Args:
        mode: ``Q``, ``K`` or ``V``: which input of the later head reads what the earlier head
            writes (default ``K``: previous-token head into induction head).
        fold_ln: fold each layer's ``ln1`` into the weights that read through it first
            (TransformerLens-style); default false: the raw ``W_Q``, ``W_K``, ``W_V``, ``W_O``.
    """
    check_choice("mode", mode, ("Q", "K", "V"))
    if not isinstance(fold_ln, bool):
        raise UserError(f"composition_score: fold_ln must be true or false, got {fold_ln!r}")
    cfg = bridge.cfg
    n_layers, n_heads = int(cfg.n_layers), int(cfg.n_heads)
    with eval_mode(bridge):
        if fold_ln:
            layers, values = folded_composition_scores(bridge, mode)
        else:
            scores = bridge.all_composition_scores(mode)
            values = torch.as_tensor(scores.scores).detach().to("cpu", torch.float64)
            layers = list(scores.layer_indices)  # attention layers (hybrid models skip some)
    out = np.full((n_layers, n_heads, n_layers, n_heads), np.nan)
    idx = np.asarray(layers)
    sub = values.numpy()  # [n_attn, head, n_attn, head]
    out[np.ix_(idx, np.arange(n_heads), idx, np.arange(n_heads))] = sub
    layer = np.arange(n_layers)
    cannot = layer[:, None, None, None] >= layer[None, None, :, None]  # [src, 1, dst, 1]
    out[np.broadcast_to(cannot, out.shape)] = np.nan
    return out


def folded_attention_weights(bridge: Any) -> tuple[list[int], dict[str, Any]]:
    """The attention layers' indices and their ``W_Q``, ``W_K``, ``W_V`` (``[layer, head,
    d_model, d_head]``, K / V expanded to every query head) with ``ln1`` folded in, and ``W_O``
    (``[layer, head, d_head, d_model]``), float64 on the CPU (see the module docstring)."""
    cfg = bridge.cfg
    norm = str(getattr(cfg, "normalization_type", None) or "")
    layers = [int(i) for i, _ in bridge.blocks_with("attn")]
    n_heads = int(cfg.n_heads)

    def stacked(name: str) -> Any:
        w = getattr(bridge, name).detach().to("cpu", torch.float64)
        return w.repeat_interleave(n_heads // w.shape[1], dim=1) if w.shape[1] != n_heads else w

    weights = {name: stacked(name) for name in ("W_Q", "W_K", "W_V", "W_O")}
    if norm in ("LN", "RMS"):
        scale = []
        for i in layers:
            ln = getattr(bridge.blocks[i], "ln1", None)
            w = getattr(ln, "weight", None) if ln is not None else None
            if w is None:
                raise UserError(
                    f"composition_score: fold_ln needs the LayerNorm weight of block {i} "
                    "('ln1'), which this model does not expose; use fold_ln: false"
                )
            scale.append(w.detach().to("cpu", torch.float64))
        ln_w = torch.stack(scale)[:, None, :, None]  # [layer, 1, d_model, 1]
        for name in ("W_Q", "W_K", "W_V"):
            weights[name] = weights[name] * ln_w
    if norm in ("LN", "LNPre"):  # LayerNorm removes the mean: centre what reads through it
        for name in ("W_Q", "W_K", "W_V"):
            weights[name] = weights[name] - weights[name].mean(-2, keepdim=True)
    return layers, weights


def folded_composition_scores(bridge: Any, mode: str) -> tuple[list[int], Any]:
    """``all_composition_scores`` on the ``ln1``-folded weights: the attention layers and the
    scores ``[layer, head, layer, head]`` (float64; factored, as TransformerLens computes them)."""
    from transformer_lens.FactoredMatrix import FactoredMatrix
    from transformer_lens.utilities.matrix import composition_scores

    layers, w = folded_attention_weights(bridge)
    left = FactoredMatrix(w["W_V"], w["W_O"])
    if mode == "V":
        right = left
    else:
        right = FactoredMatrix(w["W_Q"], w["W_K"].transpose(-2, -1))
        right = right.T if mode == "K" else right
    return layers, composition_scores(left, right, broadcast_dims=True)


def _layer_group(name: str) -> str:
    parts = name.split(".")
    if parts[0] == "blocks" and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


@metric(dims=("component",), units="L2 norm")
def weight_norm(bridge: Any, group: Literal["parameter", "layer", "total"] = "total") -> Any:
    """L2 (Frobenius) norm of the weights: ``group="total"`` one number over all parameters
    (component ``total``); ``"layer"`` per top-level component (``embed``, ``blocks.0``, …,
    ``unembed``); ``"parameter"`` per ``state_dict`` entry (``blocks.0.attn.q.weight`` …).
    Tensors that share storage (tied embeddings) count once.

    Args:
        group: ``total``: one norm over every parameter; ``layer``: one per top-level component
            (``embed``, ``blocks.0``, ..., ``unembed``); ``parameter``: one per ``state_dict``
            entry.
    """
    check_choice("group", group, ("parameter", "layer", "total"))
    sums: dict[str, float] = {}
    for name, value in weight_tensors(bridge):
        key = {"total": "total", "layer": _layer_group(name), "parameter": name}[group]
        sq = float(value.detach().to(torch.float64).pow(2).sum())
        sums[key] = sums.get(key, 0.0) + sq
    names = list(sums)
    return xr.DataArray(
        np.sqrt(np.array([sums[k] for k in names])),
        dims=("component",),
        coords={"component": np.array(names, dtype=object)},
    )


def fourier_norms(embed: np.ndarray) -> np.ndarray:
    """Norm of ``embed [p, d]`` in each frequency subspace of the real Fourier basis over the
    token index, ``[p // 2 + 1]``.

    Frequency 0 is the constant direction; ``0 < k < p/2`` the plane of
    ``cos(2πkx/p), sin(2πkx/p)``; ``k = p/2`` (even ``p``) the alternating direction. With
    ``F = fft(embed, axis=0)`` the projection norms are ``|F_0|/√p``, ``√(2/p)|F_k|`` and
    ``|F_{p/2}|/√p``; their squares sum to ``||embed||_F²`` (Parseval)."""
    p = embed.shape[0]
    f = np.fft.rfft(embed, axis=0)  # [p//2 + 1, d]
    scale = np.full(f.shape[0], np.sqrt(2.0 / p))
    scale[0] = np.sqrt(1.0 / p)
    if p % 2 == 0:
        scale[-1] = np.sqrt(1.0 / p)
    return np.linalg.norm(f, axis=1) * scale


@metric(dims=("freq",), units="L2 norm")
def embed_fourier(bridge: Any, p: int | None = None) -> Any:
    """Norm of the token embedding ``W_E[:p]`` in each Fourier frequency ``k = 0 … p//2`` over
    the token index (Nanda et al.'s key frequencies; see ``fourier_norms``). ``p`` defaults to
    the vocabulary size; for ``a + b mod p`` tasks give ``p`` so the ``=`` token is left out.

    Args:
        p: how many token rows ``W_E[:p]`` to transform, between 2 and the vocabulary size
            (``null``: the whole vocabulary); the modulus of an ``a + b mod p`` task leaves its
            ``=`` token out.
    """
    w_e = bridge.W_E.detach().to("cpu", torch.float64).numpy()  # [d_vocab, d_model]
    p = int(p) if p is not None else w_e.shape[0]
    if not 2 <= p <= w_e.shape[0]:
        raise UserError(f"embed_fourier: p={p} must be between 2 and d_vocab={w_e.shape[0]}")
    norms = fourier_norms(w_e[:p])
    return xr.DataArray(norms, dims=("freq",), coords={"freq": np.arange(norms.shape[0])})
