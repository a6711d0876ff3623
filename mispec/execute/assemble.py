"""Assembly: metric cells → one ``xarray.DataTree`` per run, one child per model (models
differ in layers and steps), every variable labelled with dims from the closed vocabulary."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from mispec.errors import ResultsError
from mispec.planning.graph import Plan
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
    for node in plan.nodes():
        if node.kind not in ("cell", "reduction"):
            continue
        arr = fresh.get(node.key)
        if arr is None:
            arr = store.cells.read(node.key)
        if arr is None:
            raise ResultsError(f"cell {node.id} is missing from the store; run the spec again")
        by_metric[(node.model, node.metric)][(node.seed, node.step)] = arr  # type: ignore[index]
    for (model, metric), cells in sorted(by_metric.items()):
        seeds = sorted({s for s, _ in cells})
        steps = sorted({st for _, st in cells if st is not None})
        if steps:  # per checkpoint: stack (seed, step, ...)
            first = next(iter(cells.values()))
            rows = []
            for seed in seeds:
                rows.append(
                    xr.concat(
                        [cells[(seed, st)] for st in steps],
                        dim="step",
                        coords="minimal",
                        join="outer",
                    ).assign_coords(step=steps)
                )
            var = xr.concat(rows, dim="seed", join="outer").assign_coords(seed=seeds)
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
                ds = ds.assign_coords(tokens_seen=("step", np.asarray(ds.step.values) * tps))
            ds.step.attrs.update(units="training steps", long_name="training step")
        ds.attrs.update(model=model, source=plan.spec.models[model].source_kind)
        children[model] = xr.DataTree(ds, name=model)
    tree = xr.DataTree(
        xr.Dataset(attrs={"study": plan.spec.name, "plan_key": plan.key}), children=children
    )
    return tree
