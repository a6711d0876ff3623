"""A sweep's points back on one DataTree node: every variable of the swept model gains one dim
per swept key (zipped keys share one), labelled with its values and units, beside ``seed``,
``step`` and the rest (``mispec.spec.sweep``).

Steps align by their number. Points whose checkpoints differ (a swept ``steps``, ``refine:``)
lie on the union of their steps; a variable then holds NaN at a step a point has no checkpoint
of, and the node's boolean ``checkpointed`` (sweep dims, ``seed``, ``step``) says which cells
are measured — a NaN there is "not checkpointed", never a measured value. Dims a point lacks
(a layer a 1-layer point does not have) are NaN the same way.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from mispec.coords import coord_attrs
from mispec.spec.sweep import SweepPoint, coord_names, sweep_point


def merge_sweeps(spec: Any, children: dict[str, Any]) -> dict[str, Any]:
    """``children`` (model name -> DataTree node) with each sweep's point nodes replaced by one
    node under the swept entry's name."""
    points: dict[str, list[tuple[SweepPoint, str]]] = defaultdict(list)
    for name, entry in spec.models.items():
        point = sweep_point(entry)
        if point is not None and name in children:
            points[point.of].append((point, name))
    if not points:
        return children
    out = {
        n: c for n, c in children.items() if n not in {m for ps in points.values() for _, m in ps}
    }
    for swept, members in points.items():
        out[swept] = _merged(swept, sorted(members, key=lambda pm: pm[0].index), children)
    return out


def _groups(point: SweepPoint) -> list[list[str]]:
    """The sweep's key groups (zipped keys share a dim), in the sweep's order."""
    by_dim: dict[str, list[str]] = {}
    for key in point.values:
        by_dim.setdefault(point.dims[key], []).append(key)
    return list(by_dim.values())


def _merged(swept: str, members: list[tuple[SweepPoint, str]], children: dict[str, Any]) -> Any:
    import xarray as xr

    groups = _groups(members[0][0])
    coords = coord_names(groups)
    datasets = [(p, children[name].to_dataset()) for p, name in members]
    steps = [tuple(ds.step.values) if "step" in ds.coords else () for _, ds in datasets]
    ragged = len(set(steps)) > 1
    if ragged:
        datasets = [(p, _with_checkpointed(ds)) for p, ds in datasets]
    ds = _nest(datasets, groups, coords, 0)
    if ragged:
        ds["checkpointed"] = ds["checkpointed"].fillna(False).astype(bool)
    for group in groups:
        for key in group:
            name = coords[key]
            ds[name].attrs.update(coord_attrs(key.rsplit(".", 1)[-1]), key_path=f"train.{key}")
    ds.attrs.update(
        model=swept,
        source=datasets[0][1].attrs.get("source", "train"),
        sweep_dims=[coords[g[0]] for g in groups],
        points=len(members),
    )
    return xr.DataTree(ds, name=swept)


def _with_checkpointed(ds: Any) -> Any:
    import xarray as xr

    shape = (ds.sizes["seed"], ds.sizes["step"])
    mask = xr.DataArray(np.ones(shape, bool), dims=("seed", "step"))
    return ds.assign(checkpointed=mask.assign_coords(seed=ds.seed, step=ds.step))


def _nest(
    datasets: list[tuple[SweepPoint, Any]], groups: list[list[str]], coords: dict, level: int
) -> Any:
    """One dataset over the dims of ``groups[level:]``: the points split by the value of the
    level's first key, in grid order, concatenated along its dim (zipped keys as coordinates
    along it)."""
    import pandas as pd
    import xarray as xr

    if level == len(groups):
        ((_, ds),) = datasets
        return ds
    group = groups[level]
    first = group[0]
    order: list[Any] = []
    split: dict[str, list[tuple[SweepPoint, Any]]] = defaultdict(list)
    for point, ds in datasets:
        value = point.values[first]
        if repr(value) not in split:
            order.append(point)
        split[repr(value)].append((point, ds))
    parts = [_nest(split[repr(p.values[first])], groups, coords, level + 1) for p in order]
    dim = coords[first]
    index = pd.Index([p.values[first] for p in order], name=dim)
    out = xr.concat(parts, dim=index, join="outer", combine_attrs="override")
    return out.assign_coords({coords[k]: (dim, [p.values[k] for p in order]) for k in group[1:]})
