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
  same head as some head of seed 1" is an assignment problem: :func:`match_heads` solves it
  per layer (Hungarian assignment maximising the total overlap; scipy's
  ``linear_sum_assignment``) and gives each side-a head its side-b head and their overlap.

Positions that are padding are NaN in the cells and every mean here skips them.
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


def _pool(values: Any, dims: tuple[str, ...], per: str) -> Any:
    """``values`` over ``(batch, pos)`` pooled as ``per`` says (NaN-skipping means)."""
    check_choice("per", per, PER)
    arr = xr.DataArray(values, dims=dims)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if per == "token":
            return arr.transpose("batch", "pos")
        if per == "position":
            return arr.mean("batch", skipna=True)
        return float(arr.mean(skipna=True))


_LOGPROBS = InputDims(("batch", "pos", "vocab"), why="next-token log-probabilities")


@metric(
    dims=_per_dims,
    inputs=("p", "q"),
    other_side=("q",),
    input_dims={"p": _LOGPROBS, "q": _LOGPROBS},
    comparable=("d_vocab",),
    units="nats",
)
def kl_divergence(p: Any, q: Any, per: Literal["mean", "position", "token"] = "mean") -> Any:
    """``KL(P_a || P_b)`` of the next-token distributions (``next_token_logprobs`` cells of
    the two sides), per token, per position (mean over prompts) or the mean over all."""
    p, q = _aligned(p, q, "kl_divergence")
    lp, lq = p.values.astype(np.float64), q.values.astype(np.float64)
    kl = (np.exp(lp) * (lp - lq)).sum(axis=p.dims.index("vocab"))
    rest = tuple(d for d in p.dims if d != "vocab")
    return _pool(kl, rest, per)


_TOKENS = InputDims(("batch", "pos"), why="per-token values (dims batch, pos)")


@metric(
    dims=_per_dims,
    inputs=("a", "b"),
    other_side=("b",),
    input_dims={"a": _TOKENS, "b": _TOKENS},
    units="nats",
)
def logprob_diff(a: Any, b: Any, per: Literal["mean", "position", "token"] = "token") -> Any:
    """``log P_a(next token) - log P_b(next token)`` (``token_logprobs`` cells of the two
    sides), per token, per position (mean over prompts) or the mean over all."""
    a, b = _aligned(a, b, "logprob_diff")
    diff = a.values.astype(np.float64) - b.values.astype(np.float64)
    out = _pool(diff, a.dims, per)
    if per != "mean" and "pos" in a.coords:
        out = out.assign_coords(pos=a.coords["pos"].values)
    return out


@metric(
    dims=_per_dims,
    inputs=("p", "q"),
    other_side=("q",),
    input_dims={"p": _LOGPROBS, "q": _LOGPROBS},
    comparable=("d_vocab",),
    units="fraction",
)
def top1_agreement(p: Any, q: Any, per: Literal["mean", "position", "token"] = "mean") -> Any:
    """1 where the two sides' most likely next token is the same, else 0 (NaN at padding);
    per token, per position (fraction of prompts) or the fraction of all tokens."""
    p, q = _aligned(p, q, "top1_agreement")
    axis = p.dims.index("vocab")
    lp, lq = p.values, q.values
    same = (
        np.argmax(np.nan_to_num(lp, nan=-np.inf), axis)
        == np.argmax(np.nan_to_num(lq, nan=-np.inf), axis)
    ).astype(np.float64)
    same[np.isnan(lp).any(axis) | np.isnan(lq).any(axis)] = np.nan
    return _pool(same, tuple(d for d in p.dims if d != "vocab"), per)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of ``x [n, d_a]`` and ``y [n, d_b]`` (rows: the same samples), float64;
    NaN when either side has no variance."""
    x = x - x.mean(0, keepdims=True)
    y = y - y.mean(0, keepdims=True)
    cross = np.linalg.norm(y.T @ x) ** 2
    den = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(cross / den) if den > 0 else float("nan")


_ACTS = InputDims(("layer", "batch", "pos"), why="activations per layer (dims layer, batch, pos)")


@metric(
    dims=("layer",),
    inputs=("x", "y"),
    other_side=("y",),
    input_dims={"x": _ACTS, "y": _ACTS},
    comparable=("n_layers",),
    units="CKA",
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
    side b (``head_b``) in the same layer (see the module docstring); :func:`match_heads`
    assigns them."""
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


def assign(similarity: np.ndarray) -> np.ndarray:
    """For a square ``[n, n]`` similarity, the column assigned to each row so that the total
    similarity is maximal (a permutation; Hungarian assignment)."""
    sim = np.nan_to_num(np.asarray(similarity, dtype=np.float64), nan=-1.0)
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:  # scipy is a dependency; an older environment still gets the answer
        from mispec.metrics.builtin._assignment import max_assignment

        return max_assignment(sim)
    rows, cols = linear_sum_assignment(sim, maximize=True)
    out = np.empty(sim.shape[0], dtype=np.int64)
    out[rows] = cols
    return out


def match_heads(similarity: Any) -> Any:
    """Which head of side b is each head of side a, from a ``head_matching`` result.

    ``similarity``: dims ``(..., layer, head, head_b)`` (any leading dims, e.g. ``seed``,
    ``seed_b``, ``step``, are matched independently). Returns an ``xarray.Dataset`` with
    ``head_b`` (the matched head of side b, int; -1 where the similarity is all NaN) and
    ``similarity`` (their overlap), both with the dims of the input minus ``head_b``.
    Use it wherever values indexed by head are compared or averaged across runs: map side
    b's head ``head_b[l, h]`` onto side a's head ``h`` first (:func:`align_heads`)."""
    sim = similarity.transpose(..., "layer", "head", "head_b")
    lead = sim.shape[:-3]
    flat = sim.values.reshape(-1, *sim.shape[-3:])
    matched = np.full(flat.shape[:-1], -1, dtype=np.int64)
    score = np.full(flat.shape[:-1], np.nan)
    for i, block in enumerate(flat):
        for layer, square in enumerate(block):
            if np.isnan(square).all():
                continue
            cols = assign(square)
            matched[i, layer] = cols
            score[i, layer] = square[np.arange(square.shape[0]), cols]
    dims = sim.dims[:-1]
    coords = {d: sim.coords[d] for d in dims if d in sim.coords}
    shape = (*lead, *sim.shape[-3:-1])
    return xr.Dataset(
        {
            "head_b": xr.DataArray(matched.reshape(shape), dims=dims, coords=coords),
            "similarity": xr.DataArray(score.reshape(shape), dims=dims, coords=coords),
        }
    )


def align_heads(values_b: Any, matched: Any) -> Any:
    """Side b's head-indexed ``values_b`` (dims ``layer``, ``head``, ...) relabelled onto side
    a's heads: the result at ``(layer, head=h)`` is ``values_b`` at ``(layer,
    head=matched[layer, h])`` (``matched``: ``match_heads(...).head_b`` for one pair)."""
    idx = matched.rename(head="head_a").drop_vars(["head_a"], errors="ignore")
    layers = xr.DataArray(np.arange(matched.sizes["layer"]), dims="layer")
    picked = values_b.drop_vars(["layer", "head"], errors="ignore").isel(
        layer=layers, head=idx.clip(min=0)
    )
    picked = picked.where(idx >= 0)
    return picked.rename(head_a="head").assign_coords(
        layer=np.arange(matched.sizes["layer"]), head=np.arange(matched.sizes["head"])
    )


def align_seeds(values: Any, matching: Any, *, step: int | None = None) -> Any:
    """Head-indexed ``values`` of several seeds (dims ``seed``, ``layer``, ``head``, ...)
    relabelled so that ``head`` names the REFERENCE seed's heads (the smallest seed) in every
    seed: what a plot or report must do before averaging head-indexed values over seeds.

    ``matching``: a ``head_matching`` result with ``pairs: seeds`` (dims ``seed``, ``seed_b``,
    ``step``, ``layer``, ``head``, ``head_b``); the assignment at ``step`` (default: the last
    step) is used at every step. A seed never compared with the reference seed is all NaN."""
    sim = matching.sel(step=step) if step is not None else matching.isel(step=-1)
    seeds = [int(s) for s in values["seed"].values]
    ref = min(seeds)
    rows = []
    for seed in seeds:
        v = values.sel(seed=seed)
        if seed == ref:
            rows.append(v)
            continue
        pair = sim.sel(seed=ref, seed_b=seed) if seed in sim["seed_b"].values else None
        if pair is None or np.isnan(pair.values).all():
            rows.append(v * np.nan)
            continue
        rows.append(align_heads(v, match_heads(pair).head_b).transpose(*v.dims))
    out = xr.concat(rows, dim="seed").assign_coords(seed=seeds)
    out.attrs = dict(values.attrs, heads_of_seed=ref)
    return out.transpose(*values.dims)
