"""Comparisons of two sides — two seeds, two models, or two checkpoints of one run — on the
same prompts. Each is a derived metric of two cells of the same per-checkpoint metric
(``mispec.metrics.builtin.checkpoint_values``): its first input reads this cell's own
checkpoint (side a), the inputs in ``other_side`` read the second side (side b), which a
spec's ``pairs:`` chooses. Both sides are cached cells, so a comparison runs no forward pass.

* ``kl_divergence``: ``KL(P_a || P_b) = sum_v P_a(v) (log P_a(v) - log P_b(v))`` of the
  next-token distributions at each (prompt, position), in nats; 0 for a side with itself.
* ``logprob_diff``: ``log P_a(next token) - log P_b(next token)`` per token.
* ``top1_agreement``: 1 where both sides' most likely next token is the same, else 0.
* ``representation_similarity``: linear CKA (Kornblith et al. 2019, "Similarity of Neural
  Network Representations Revisited") per layer between the two sides' activations, the
  (prompt, position) pairs as samples: with column-centred ``X [n, d_a]`` and ``Y [n, d_b]``,
  ``CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)``, 1 for representations equal up to a
  rotation and isotropic scaling, invariant to both.
* ``head_matching``: the attention-pattern overlap of every head of side a with every head
  of side b in the same layer, ``mean over prompts and query rows of sum_k min(A[q, k],
  B[q, k])`` — the attention mass the two patterns share, 1 for identical patterns, 0 for
  disjoint ones — as ``[layer, head, head_b]``. Heads of one layer are interchangeable
  between runs (a permutation of them is the same network), so "is head 1.2 of seed 0 the
  same head as some head of seed 1" is an assignment problem:
  ``mispec.metrics.builtin.head_identity.match_heads`` solves it per layer (Hungarian
  assignment maximising the total overlap) and gives each side-a head its side-b head. The
  overlap has a baseline — two near-uniform causal patterns share most of their mass — so
  read a matched pair's overlap against the unmatched pairs' (the run summary prints both).

Positions that are padding are NaN in the cells and every mean here skips them. So are the
predictions that the cells' ``mask`` leaves out (``token_logprobs`` / ``next_token_logprobs``
take the same ``mask`` as ``loss``: the prompt set's ``loss_mask`` by default, ``mask: none``
for every position), on both sides alike: ``kl_divergence``, ``logprob_diff`` and
``top1_agreement`` compare the predictions the mask counts, and their ``attrs["mask"]`` says
which mask that was.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np

from mispec.errors import MetricError
from mispec.lazy import xr
from mispec.metrics.builtin._common import check_choice
from mispec.metrics.core import InputDims, metric

PER = ("mean", "position", "token")


def _per_dims(per: str = "mean") -> tuple[str, ...]:
    return {"mean": (), "position": ("pos",), "token": ("batch", "pos")}.get(per, ())


def _aligned(a: Any, b: Any, what: str) -> tuple[Any, Any]:
    """Both sides in side a's dim order, with the same shape (else a MetricError saying why)."""
    if set(a.dims) != set(b.dims):
        raise MetricError(f"{what}: the two sides have different dims: {a.dims} and {b.dims}")
    b = b.transpose(*a.dims)
    if a.shape != b.shape:
        raise MetricError(
            f"{what}: the two sides cannot be compared: shapes {dict(a.sizes)} and "
            f"{dict(b.sizes)} differ (same prompts, and the same vocabulary or width?)"
        )
    return a, b


def _pool(values: Any, like: Any, per: str, other: Any = None) -> Any:
    """``values`` over ``(batch, pos)`` (the dims and coordinates of side a's cell ``like``,
    without ``vocab``) pooled as ``per`` says (NaN-skipping means), with ``attrs["mask"]``:
    the mask the two sides' cells (``like``, ``other``) applied."""
    check_choice("per", per, PER)
    dims = tuple(d for d in like.dims if d != "vocab")
    coords = {d: like.coords[d].values for d in dims if d in like.coords}
    arr = xr.DataArray(values, dims=dims, coords=coords)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if per == "token":
            out = arr.transpose("batch", "pos")
        elif per == "position":
            out = arr.mean("batch", skipna=True)
        else:
            out = xr.DataArray(float(arr.mean(skipna=True)))
    out.attrs["mask"] = _masks(like, other)
    return out


def _masks(a: Any, b: Any) -> str:
    """What the two sides' cells say about their mask (one text when they agree)."""
    ma = str(a.attrs.get("mask", "unknown (a cell without attrs['mask'])"))
    mb = ma if b is None else str(b.attrs.get("mask", "unknown (a cell without attrs['mask'])"))
    return ma if ma == mb else f"side a: {ma}; side b: {mb}"


_LOGPROBS = InputDims(("batch", "pos", "vocab"), why="next-token log-probabilities")


@metric(
    dims=_per_dims,
    inputs=("p", "q"),
    other_side=("q",),
    input_dims={"p": _LOGPROBS, "q": _LOGPROBS},
    comparable=("d_vocab",),
    units="nats",
    version=2,
)
def kl_divergence(p: Any, q: Any, per: Literal["mean", "position", "token"] = "mean") -> Any:
    """``KL(P_a || P_b)`` of the next-token distributions (``next_token_logprobs`` cells of
    the two sides), per token, per position (mean over prompts) or the mean over all.

    Args:
        per: ``token``: one value per (batch, pos); ``position``: per ``pos``, mean over prompts;
            ``mean``: one number over every token (NaN at padding skipped; default ``mean``).
    """
    p, q = _aligned(p, q, "kl_divergence")
    lp, lq = p.values.astype(np.float64), q.values.astype(np.float64)
    kl = (np.exp(lp) * (lp - lq)).sum(axis=p.dims.index("vocab"))
    return _pool(kl, p, per, q)


_TOKENS = InputDims(("batch", "pos"), why="per-token values (dims batch, pos)")


@metric(
    dims=_per_dims,
    inputs=("a", "b"),
    other_side=("b",),
    input_dims={"a": _TOKENS, "b": _TOKENS},
    units="nats",
    version=2,
)
def logprob_diff(a: Any, b: Any, per: Literal["mean", "position", "token"] = "token") -> Any:
    """``log P_a(next token) - log P_b(next token)`` (``token_logprobs`` cells of the two
    sides), per token, per position (mean over prompts) or the mean over all.

    Args:
        per: ``token``: one value per (batch, pos); ``position``: per ``pos``, mean over prompts;
            ``mean``: one number over every token (NaN at padding skipped; default ``token``).
    """
    a, b = _aligned(a, b, "logprob_diff")
    diff = a.values.astype(np.float64) - b.values.astype(np.float64)
    return _pool(diff, a, per, b)


@metric(
    dims=_per_dims,
    inputs=("p", "q"),
    other_side=("q",),
    input_dims={"p": _LOGPROBS, "q": _LOGPROBS},
    comparable=("d_vocab",),
    units="fraction",
    version=2,
)
def top1_agreement(p: Any, q: Any, per: Literal["mean", "position", "token"] = "mean") -> Any:
    """1 where the two sides' most likely next token is the same, else 0 (NaN at padding);
    per token, per position (fraction of prompts) or the fraction of all tokens.

    Args:
        per: ``token``: one value per (batch, pos); ``position``: per ``pos``, mean over prompts;
            ``mean``: one number over every token (NaN at padding skipped; default ``mean``).
    """
    p, q = _aligned(p, q, "top1_agreement")
    axis = p.dims.index("vocab")
    lp, lq = p.values, q.values
    same = (
        np.argmax(np.nan_to_num(lp, nan=-np.inf), axis)
        == np.argmax(np.nan_to_num(lq, nan=-np.inf), axis)
    ).astype(np.float64)
    same[np.isnan(lp).any(axis) | np.isnan(lq).any(axis)] = np.nan
    return _pool(same, p, per, q)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of ``x [n, d_a]`` and ``y [n, d_b]`` (rows: the same samples), float64;
    NaN when either side has no variance.

    Bit-reproducible whatever the executor: the products are ``np.einsum`` loops and the
    norms numpy's sums, never BLAS, whose threads (as many as the process allows: all cores
    here, one in a Dask worker) would change the order of the sums and the last bit."""
    x = x - x.mean(0, keepdims=True)
    y = y - y.mean(0, keepdims=True)

    def squared_norm(a: np.ndarray, b: np.ndarray) -> float:  # ||a^T b||_F^2
        gram = np.einsum("ni,nj->ij", a, b)
        return float(np.sum(gram * gram))

    cross = squared_norm(y, x)
    den = np.sqrt(squared_norm(x, x)) * np.sqrt(squared_norm(y, y))
    return float(cross / den) if den > 0 else float("nan")


_ACTS = InputDims(("layer", "batch", "pos"), why="activations per layer (dims layer, batch, pos)")


@metric(
    dims=("layer",),
    inputs=("x", "y"),
    other_side=("y",),
    input_dims={"x": _ACTS, "y": _ACTS},
    comparable=("n_layers",),
    units="CKA",
    version=2,  # 2: thread-independent sums (the last bit, see linear_cka)
)
def representation_similarity(x: Any, y: Any) -> Any:
    """Linear CKA per layer between the two sides' ``activations`` cells, over every real
    (prompt, position) sample; the features (``d_model``, or ``head`` × ``d_head``) may differ
    in width between the sides."""
    if x.sizes["layer"] != y.sizes["layer"] or x.sizes["batch"] != y.sizes["batch"]:
        raise MetricError(
            "representation_similarity: the two sides cannot be compared: "
            f"{dict(x.sizes)} and {dict(y.sizes)} (same number of layers and prompts needed)"
        )
    if x.sizes["pos"] != y.sizes["pos"]:
        raise MetricError("representation_similarity: the sides have different positions")
    out = np.full(x.sizes["layer"], np.nan)
    for layer in range(x.sizes["layer"]):
        xs = _samples(x.isel(layer=layer))
        ys = _samples(y.isel(layer=layer))
        keep = ~(np.isnan(xs).any(1) | np.isnan(ys).any(1))
        out[layer] = linear_cka(xs[keep], ys[keep])
    return xr.DataArray(out, dims=("layer",), coords={"layer": np.arange(out.size)})


def _samples(v: Any) -> np.ndarray:
    """``[batch * pos, features]`` float64 from one layer's activations."""
    features = [d for d in v.dims if d not in ("batch", "pos")]
    arr = v.transpose("batch", "pos", *features).values.astype(np.float64)
    return arr.reshape(arr.shape[0] * arr.shape[1], -1)


_PATTERNS = InputDims(
    ("layer", "head", "batch", "pos", "k_pos"), why="attention patterns (attention_patterns)"
)


@metric(
    dims=("layer", "head", "head_b"),
    inputs=("x", "y"),
    other_side=("y",),
    input_dims={"x": _PATTERNS, "y": _PATTERNS},
    comparable=("n_layers", "n_heads"),
    units="shared attention mass",
)
def head_matching(x: Any, y: Any) -> Any:
    """The attention-pattern overlap of every head of side a (``head``) with every head of
    side b (``head_b``) in the same layer (see the module docstring);
    ``head_identity.match_heads`` assigns them."""
    x, y = _aligned(x, y, "head_matching")
    dims = ("layer", "head", "batch", "pos", "k_pos")
    a = x.transpose(*dims).values.astype(np.float64)
    b = y.transpose(*dims).values.astype(np.float64)
    # [layer, head, head_b, batch, q]: sum_k min(A, B), then the mean over real rows
    shared = np.minimum(a[:, :, None], b[:, None, :]).sum(-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sim = np.nanmean(shared.reshape(*shared.shape[:3], -1), axis=-1)
    n_layers, n_heads = sim.shape[:2]
    return xr.DataArray(
        sim,
        dims=("layer", "head", "head_b"),
        coords={
            "layer": np.arange(n_layers),
            "head": np.arange(n_heads),
            "head_b": np.arange(n_heads),
        },
    )
