"""A result's labels across its cells: what every cell says alike stays an attr of the
assembled array; what each cell measured (or what differs between cells) becomes a data
variable over ``(seed, step)``, so that no cell's value is lost or read as another's."""

from __future__ import annotations

from typing import Any

import numpy as np


def split_attrs(
    metric: str, var: Any, cells: list[Any], seeds: list[int], steps: list[int]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A result's labels, split into what holds for the whole array and what each cell
    measured. ``cells`` are in (seed, step) order over ``seeds`` × ``steps`` (steps empty for a
    reduction). An attr stays an attr only when every cell carries the same value and it is
    not a measurement (a float or a list of floats, such as ``head_ablation``'s ``baseline`` or
    ``pca_over_steps``' ``explained_variance``): those — and any attr that differs between
    cells — become data variables ``<metric>__<attr>`` over ``(seed, step)`` or ``(seed,)``
    (plus the result's dim of the same length, or ``<attr>_index``, for a list), so that no
    cell's value is lost or read as another cell's."""
    import xarray as xr

    names: list[str] = []
    present = [cell for cell in cells if cell is not None]
    for cell in present:
        names.extend(k for k in cell.attrs if k not in names)
    constant: dict[str, Any] = {}
    per_cell: dict[str, Any] = {}
    grid_dims = ("seed", "step") if steps else ("seed",)
    grid_shape = (len(seeds), len(steps)) if steps else (len(seeds),)
    grid_coords: dict[str, Any] = {"seed": seeds, **({"step": steps} if steps else {})}
    for name in names:
        values = [None if cell is None else cell.attrs.get(name) for cell in cells]
        known = [cell.attrs.get(name) for cell in present]
        same = all(_same(v, known[0]) for v in known[1:])
        if same and not _measured(known[0]):
            constant[name] = known[0]
            continue
        data, extra = _as_array(values, var, name)
        shape = grid_shape + data.shape[1:]
        per_cell[f"{metric}__{name}"] = xr.DataArray(
            data.reshape(shape), dims=grid_dims + extra, coords=grid_coords
        )
    return constant, per_cell


def _measured(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return any(isinstance(v, float) for v in value) or (
            all(v is None for v in value) and len(value) > 0
        )
    return isinstance(value, (float, np.floating))


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object)))
    except Exception:
        return a == b


def _as_array(values: list[Any], var: Any, name: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Per-cell attr values as one array ``[cell, ...]`` and the names of its trailing dims."""
    lists = [v for v in values if isinstance(v, (list, tuple))]
    if not lists:
        if all(isinstance(v, (bool, np.bool_)) for v in values):
            return np.asarray(values, dtype=bool), ()
        if all(v is None or isinstance(v, (int, float, np.number)) for v in values):
            return np.asarray([np.nan if v is None else v for v in values], dtype=float), ()
        return np.asarray(["" if v is None else str(v) for v in values], dtype=str), ()
    width = max(len(v) for v in lists)
    out = np.full((len(values), width), np.nan)
    for i, v in enumerate(values):
        if isinstance(v, (list, tuple)):
            out[i, : len(v)] = [np.nan if x is None else float(x) for x in v]
    sized = [d for d in var.dims if d not in ("seed", "step") and var.sizes[d] == width]
    return out, ((sized[0],) if len(sized) == 1 else (f"{name}_index",))
