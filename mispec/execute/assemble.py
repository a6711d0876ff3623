"""Assembly: metric cells → one ``xarray.DataTree`` per run, one child per model (models
differ in layers and steps), every variable labelled with dims from the closed vocabulary."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from mispec.errors import ResultsError
from mispec.metrics.core import ASSEMBLED_COORDS
from mispec.planning.graph import Plan
from mispec.planning.nodes import CellNode, ReductionNode
from mispec.store.store import Store

_INDEX_DIMS = (
    "layer",
    "head",
    "pos",
    "src_layer",
    "src_head",
    "dst_layer",
    "dst_head",
    "neuron",
    "batch",
    "component",
    "pc",
    "freq",
    "digit",
)


def assemble(plan: Plan, store: Store, fresh: dict[str, Any] | None = None) -> Any:
    """``fresh``: cells this run computed, by key (read from memory, not from the store)."""
    import xarray as xr

    fresh = fresh or {}
    per_model: dict[str, dict[str, Any]] = defaultdict(dict)
    by_metric: dict[tuple[str, str], dict[tuple[int, int | None], Any]] = defaultdict(dict)
    for node in plan.nodes(CellNode) + plan.nodes(ReductionNode):
        arr = fresh.get(node.key)
        if arr is None:
            arr = store.cells.read(node.key)
        if arr is None:
            raise ResultsError(f"cell {node.id} is missing from the store; run the spec again")
        step = node.step if isinstance(node, CellNode) else None
        by_metric[(node.model, node.metric)][(node.seed, step)] = arr
    for (model, metric), cells in sorted(by_metric.items()):
        seeds = sorted({s for s, _ in cells})
        steps = sorted({st for _, st in cells if st is not None})
        if steps:  # per checkpoint: stack (seed, step, ...)
            first = next(iter(cells.values()))
            var = stack_cells(cells, seeds, steps)
            if var is None:
                var = concat_cells(cells, seeds, steps)
            var.attrs = dict(first.attrs)
        else:
            first = cells[(seeds[0], None)]
            var = xr.concat(
                [cells[(s, None)] for s in seeds], dim="seed", join="outer", coords="minimal"
            ).assign_coords(seed=seeds)
            var.attrs = dict(first.attrs)
        var.attrs["metric_fn"] = plan.spec.metrics[metric].fn
        per_model[model][metric] = var
    children = {}
    for model, variables in per_model.items():
        ds = xr.Dataset(variables)
        for dim in _INDEX_DIMS:
            if dim in ds.dims and dim not in ds.coords:
                ds = ds.assign_coords({dim: np.arange(ds.sizes[dim])})
        series = plan.resolution.series
        if "step" in ds.coords:
            seed0 = plan.spec.models[model].seeds[0]
            tps = series[(model, seed0)].tokens_per_step if (model, seed0) in series else None
            if tps:
                tokens = ("step", np.asarray(ds.step.values) * tps)
                ds = ds.assign_coords({ASSEMBLED_COORDS[0]: tokens})
            ds.step.attrs.update(units="training steps", long_name="training step")
        ds.attrs.update(model=model, source=plan.resolution.sources[model].kind)
        children[model] = xr.DataTree(ds, name=model)
    tree = xr.DataTree(
        xr.Dataset(attrs={"study": plan.spec.name, "plan_key": plan.key}), children=children
    )
    return tree


def concat_cells(cells: dict[tuple[int, Any], Any], seeds: list[int], steps: list[int]) -> Any:
    """``(seed, step, ...)`` from per-checkpoint cells of any shapes and coordinates (outer
    join: a cell missing a coordinate value gets NaN there)."""
    import xarray as xr

    rows = [
        xr.concat(
            [cells[(seed, st)] for st in steps], dim="step", coords="minimal", join="outer"
        ).assign_coords(step=steps)
        for seed in seeds
    ]
    return xr.concat(rows, dim="seed", join="outer").assign_coords(seed=seeds)


def stack_cells(cells: dict[tuple[int, Any], Any], seeds: list[int], steps: list[int]) -> Any:
    """What :func:`concat_cells` gives, by one ``numpy.stack``, when every cell has the same
    dims, shape, dtype and dimension coordinates (the usual case; ~10x faster than xarray's
    concat for a 100-checkpoint sweep) — else None."""
    import xarray as xr

    first = cells[(seeds[0], steps[0])]
    if any(c not in first.dims for c in first.coords):
        return None
    grid = [[cells.get((seed, st)) for st in steps] for seed in seeds]
    for row in grid:
        for cell in row:
            if (
                cell is None
                or cell.dims != first.dims
                or cell.shape != first.shape
                or cell.dtype != first.dtype
                or cell.coords.keys() != first.coords.keys()
                or any(
                    not np.array_equal(cell.coords[c].values, first.coords[c].values)
                    for c in first.coords
                )
            ):
                return None
    values = np.stack([np.stack([cell.values for cell in row if cell is not None]) for row in grid])
    coords = {"seed": seeds, "step": steps}
    coords.update({c: first.coords[c].values for c in first.coords})
    return xr.DataArray(values, dims=("seed", "step", *first.dims), coords=coords)
