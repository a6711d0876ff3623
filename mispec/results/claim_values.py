"""What a claim reads from the results tree (``select``: a metric of a model at chosen labels
and step) and how the measured values are shown beside its verdict (``measured``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mispec.spec.claims import ClaimSpec, Operand

MAX_SHOWN = 6  # entries shown one by one; more are summarised (min, median, max)


class Unevaluable(Exception):  # noqa: N818 (a verdict, not an error)
    """The claim cannot be evaluated on these results; the message says why."""


def models_with(tree: Any, metric: str) -> list[str]:
    """The models (and pair nodes) of ``tree`` whose results hold ``metric``."""
    return [name for name, child in tree.children.items() if metric in child.to_dataset()]


def select(tree: Any, op: Operand) -> Any:
    """``op``'s values: its model's variable at the labels of ``where`` and ``step``."""
    model = op.model
    if model is None:
        found = models_with(tree, op.metric)
        if len(found) != 1:
            raise Unevaluable(
                f"no results for '{op.metric}'"
                if not found
                else f"'{op.metric}' is in several models {found}: name one"
            )
        model = found[0]
    if model not in tree.children:
        raise Unevaluable(f"no results for model '{model}'")
    ds = tree[model].to_dataset()
    if op.metric not in ds:
        raise Unevaluable(f"no results for '{model}/{op.metric}'")
    v = ds[op.metric]
    for dim, label in op.where.items():
        v = _at_label(v, dim, label)
    if op.step is not None:
        if "step" not in v.dims:
            raise Unevaluable(f"'{op.metric}' has no step dim")
        if op.step in ("first", "last"):
            v = v.isel(step=0 if op.step == "first" else -1)
        else:
            v = _at_label(v, "step", op.step)
    if v.dtype.kind not in "biuf":
        raise Unevaluable(f"'{op.metric}' is not numeric ({v.dtype})")
    v = v.copy()
    v.attrs = {"_model": model}
    return v


def computed_pairs(v: Any) -> Any:
    """``v`` with only the seed pairs a ``pairs: seeds`` result computes (``seed < seed_b``;
    the diagonal and ``seed > seed_b`` are NaN by construction, not by measurement): the two
    dims stacked into one ``pair`` dim labelled ``"0-1"``, ``"0-2"``, ...; with one side
    chosen (``where: {seed: 0}``) the other side's dim keeps its computed labels. Other arrays
    are returned as they are."""
    dims = set(v.dims)
    if "seed_b" not in v.coords or "seed" not in v.coords:
        return v
    if {"seed", "seed_b"} <= dims:
        stacked = v.stack(pair=("seed", "seed_b"))
        keep = stacked["seed"].values < stacked["seed_b"].values
        stacked = stacked.isel(pair=np.flatnonzero(keep))
        sides = zip(stacked["seed"].values, stacked["seed_b"].values, strict=True)
        labels = [f"{a}-{b}" for a, b in sides]
        return stacked.drop_vars(["pair", "seed", "seed_b"]).assign_coords(pair=labels)
    if "seed_b" in dims:
        return v.isel(seed_b=np.flatnonzero(v["seed_b"].values > v["seed"].values))
    if "seed" in dims:
        return v.isel(seed=np.flatnonzero(v["seed"].values < v["seed_b"].values))
    return v


def _at_label(v: Any, dim: str, label: Any) -> Any:
    if dim not in v.dims:
        raise Unevaluable(f"no dim '{dim}' in '{v.name}' (dims {list(v.dims)})")
    labels = v[dim].values
    if isinstance(label, str):
        hit = np.flatnonzero(labels.astype(str) == label)
    elif labels.dtype.kind in "biuf":
        hit = np.flatnonzero(np.isclose(labels.astype(float), float(label)))
    else:
        hit = np.flatnonzero(labels.astype(str) == str(label))
    if hit.size == 0:
        raise Unevaluable(f"no {dim} {label!r} in the results")
    return v.isel({dim: int(hit[0])})


def measured(claim: ClaimSpec, arrays: list[Any]) -> str:
    """The values the claim was judged on, short: by seed when few, else a summary."""
    arrays = [computed_pairs(a) for a in arrays]
    if claim.kind == "argmax":
        from mispec.results.claims import argmax_labels

        rest, where = argmax_labels(claim, arrays[0])
        shown = [
            "all NaN" if w is None else " ".join(f"{d} {_fmt(x)}" for d, x in w.items())
            for w in where
        ]
        return _by_entry(rest, shown)
    if claim.kind == "count":
        v, over = arrays[0], claim.over
        counts = (np.isfinite(v) & (v != 0)).sum(over).where(np.isfinite(v).any(over))
        return _values(counts)
    if claim.kind in ("before", "compare"):
        a, b = (op.shown() for _, op in claim.operands())
        return f"{a} {_values(arrays[0])}; {b} {_values(arrays[1])}"
    return _values(arrays[0])


def _values(v: Any) -> str:
    flat = np.asarray(v.values, dtype=float).ravel()
    if flat.size > MAX_SHOWN:
        finite = flat[np.isfinite(flat)]
        nan = flat.size - finite.size
        if not finite.size:
            return f"all {flat.size} NaN"
        return (
            f"min {_fmt(finite.min())}, median {_fmt(np.median(finite))}, "
            f"max {_fmt(finite.max())} over {flat.size}" + (f" ({nan} NaN)" if nan else "")
        )
    return _by_entry(v, [_fmt(x) for x in flat])


def _by_entry(v: Any, shown: list[str]) -> str:
    """``seed 0: 412, seed 1: 380`` (entries labelled by the dims left)."""
    if v.ndim == 0:
        return shown[0]
    stacked = v.stack(_e=list(v.dims))
    names = [
        " ".join(f"{d} {_fmt(x)}" for d, x in zip(v.dims, idx, strict=True))
        for idx in stacked["_e"].values
    ]
    if len(names) > MAX_SHOWN:
        return ", ".join(shown[:MAX_SHOWN]) + f", ... ({len(names)} in all)"
    return ", ".join(f"{n}: {s}" for n, s in zip(names, shown, strict=True))


def _fmt(x: Any) -> str:
    if isinstance(x, str | np.str_):
        return str(x)
    x = float(x)
    if np.isnan(x):
        return "NaN"
    if x == int(x) and abs(x) < 1e9:
        return str(int(x))
    return format(x, ".3g")
