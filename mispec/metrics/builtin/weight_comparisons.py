"""How far apart two checkpoints are in weight space, per component.

``parameters`` stores a checkpoint's weights as a cell — one row per ``state_dict`` entry
(``component``), flattened along ``element`` and padded with NaN to the longest entry — so
that ``weight_distance`` can compare two sides (two seeds, a checkpoint and the last one of
its run, a fine-tuned model and its parent) without loading either model again. Meant for
small models: the cell holds every weight (and pads, so its size is the number of entries
times the largest one).

``weight_distance`` is the L2 (Frobenius) distance ``||W_a - W_b||`` per ``state_dict`` entry,
per top-level component (``embed``, ``blocks.0``, …; the root of the sum of its entries'
squares) or in total; ``relative: true`` divides by ``||W_b||`` of the same component (the
distance in units of side b's own size: 0 = the same weights, ~1.4 = two independent random
initialisations of the same scale). Note that two seeds' heads may be a permutation of each
other (see ``head_matching``): weight distance between seeds is not permutation-aware.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from mispec.errors import MetricError
from mispec.lazy import torch, xr
from mispec.metrics.builtin._common import check_choice, weight_tensors
from mispec.metrics.core import InputDims, metric


def _group_of(name: str, group: str) -> str:
    if group == "total":
        return "total"
    if group == "parameter":
        return name
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "blocks" and len(parts) > 1 else parts[0]


@metric(dims=("component", "element"), units="weight")
def parameters(bridge: Any) -> Any:
    """Every floating-point ``state_dict`` entry, flattened, one row per entry (NaN-padded
    to the longest); tensors that share storage (tied embeddings) appear once."""
    rows: dict[str, np.ndarray] = {}
    for name, value in weight_tensors(bridge):
        rows[name] = value.detach().to("cpu", torch.float32).reshape(-1).numpy()
    width = max(r.size for r in rows.values())
    out = np.full((len(rows), width), np.nan, dtype=np.float32)
    for i, r in enumerate(rows.values()):
        out[i, : r.size] = r
    return xr.DataArray(
        out,
        dims=("component", "element"),
        coords={"component": np.array(list(rows), dtype=object), "element": np.arange(width)},
    )


_PARAMS = InputDims(("component", "element"), why="a checkpoint's weights (parameters)")


def _distance_units(relative: bool = False) -> str:
    """L2 distance; with relative: true, relative L2 distance (÷ ||W_b||, dimensionless)"""
    return "relative L2 distance (÷ ||W_b||)" if relative else "L2 distance"


@metric(
    dims=("component",),
    inputs=("a", "b"),
    other_side=("b",),
    input_dims={"a": _PARAMS, "b": _PARAMS},
    comparable=("n_layers", "n_heads", "d_model", "d_head", "d_vocab", "d_mlp", "attn_only"),
    units=_distance_units,
    version=2,
)
def weight_distance(
    a: Any,
    b: Any,
    group: Literal["parameter", "layer", "total"] = "layer",
    relative: bool = False,
) -> Any:
    """``||W_a - W_b||`` per ``state_dict`` entry, per layer or in total (see the module
    docstring); ``relative`` divides by ``||W_b||``.

    Args:
        group: ``layer`` (default): one distance per top-level component (``embed``, ``blocks.0``,
            ..., ``unembed``); ``parameter``: per ``state_dict`` entry; ``total``: one over every
            parameter.
        relative: true: divide each distance by the same group's ``||W_b||`` (dimensionless);
            default false: the L2 distance itself.
    """
    check_choice("group", group, ("parameter", "layer", "total"))
    names_a = [str(n) for n in a.coords["component"].values]
    names_b = [str(n) for n in b.coords["component"].values]
    if names_a != names_b or a.sizes["element"] != b.sizes["element"]:
        missing = sorted(set(names_a) ^ set(names_b))
        raise MetricError(
            "weight_distance: the two sides cannot be compared: their weights differ in "
            + (f"entries ({missing[:4]})" if missing else "shapes")
            + " (models of different architectures)"
        )
    va, vb = a.values.astype(np.float64), b.values.astype(np.float64)
    if not np.array_equal(np.isnan(va), np.isnan(vb)):
        raise MetricError("weight_distance: the two sides' weights differ in shape")
    diff = np.nansum((va - vb) ** 2, axis=1)
    size = np.nansum(vb**2, axis=1)
    sums: dict[str, list[float]] = {}
    for name, d, s in zip(names_a, diff, size, strict=True):
        acc = sums.setdefault(_group_of(name, group), [0.0, 0.0])
        acc[0] += float(d)
        acc[1] += float(s)
    keys = list(sums)
    dist = np.sqrt([sums[k][0] for k in keys])
    if relative:
        with np.errstate(divide="ignore", invalid="ignore"):
            dist = dist / np.sqrt([sums[k][1] for k in keys])
    return xr.DataArray(
        dist, dims=("component",), coords={"component": np.array(keys, dtype=object)}
    )
