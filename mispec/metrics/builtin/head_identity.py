"""Which head is which across runs: the assignment behind ``head_matching``, and the
relabelling that plots and reports need before comparing or averaging head-indexed values
over seeds.

Heads of one layer are interchangeable between two runs (any permutation of them is the same
network), so "head 1.2" of seed 0 and "head 1.2" of seed 1 are in general different heads.
``head_matching`` measures the attention-pattern overlap of every pair of heads of a layer;
:func:`match_heads` assigns them one to one (Hungarian assignment maximising the total
overlap per layer: scipy's ``linear_sum_assignment``); :func:`align_heads` moves one side's
head-indexed values onto the other side's heads, :func:`align_seeds` every seed's onto the
smallest seed's heads.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mispec.lazy import xr


def assign(similarity: np.ndarray) -> np.ndarray:
    """For a square ``[n, n]`` similarity, the column assigned to each row so that the total
    similarity is maximal (a permutation; Hungarian assignment)."""
    from scipy.optimize import linear_sum_assignment

    sim = np.nan_to_num(np.asarray(similarity, dtype=np.float64), nan=-1.0)
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
