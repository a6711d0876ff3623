"""Assembly of comparison cells (``pairs:``): explicit dims for the second side.

* ``pairs: seeds`` — a variable of the model's dataset with dims ``(seed, seed_b, step,
  ...)``: the value at ``(seed=a, seed_b=b)`` compares seed ``a`` (first side) with seed
  ``b``; only ``a < b`` is computed, every other entry (the diagonal, ``a > b``) is NaN.
* ``pairs: {steps: last}`` — dims ``(seed, step, step_b, ...)``, ``step_b`` holding the step
  compared against (one entry, or one per distinct step when runs differ: NaN elsewhere).
* ``pairs: {models: [A, B]}`` — dims ``(seed, step, ...)`` in a DataTree node of its own,
  ``A_vs_B`` (attrs ``model`` = A, ``model_b`` = B), beside the models' nodes; with
  ``steps: last`` too, ``(seed, step, step_b)`` there (``step`` is A's, ``step_b`` B's).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np

from mispec.planning.graph import Plan
from mispec.planning.nodes import CellNode


def comparison_node_name(model_a: str, model_b: str) -> str:
    """The DataTree node of the comparisons of model A against model B."""
    return f"{model_a}_vs_{model_b}"


def assemble_pairs(
    plan: Plan, cells: list[tuple[CellNode, Any]]
) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str], dict[str, Any]]]:
    """``(per model: {metric: variable}, per (A, B): {metric: variable})`` from comparison
    cells and their values."""
    by_metric: dict[tuple[str, str], list[tuple[CellNode, Any]]] = defaultdict(list)
    for node, arr in cells:
        by_metric[(node.model, node.metric)].append((node, arr))
    per_model: dict[str, dict[str, Any]] = defaultdict(dict)
    per_pair: dict[tuple[str, str], dict[str, Any]] = defaultdict(dict)
    for (model, metric), items in sorted(by_metric.items()):
        pairs = plan.spec.metrics[metric].pairs
        assert pairs is not None
        target: dict[str, Any]
        where: Callable[[CellNode], tuple[Any, ...]]
        dims: tuple[str, ...]
        if pairs.seeds is not None:
            where, dims = (lambda n: (n.seed, _other(n)[1], n.step)), ("seed", "seed_b", "step")
            target = per_model[model]
        elif pairs.steps is not None and pairs.models is None:
            where, dims = (lambda n: (n.seed, n.step, _other(n)[2])), ("seed", "step", "step_b")
            target = per_model[model]
        elif pairs.steps is not None:  # models with a fixed step of B
            where, dims = (lambda n: (n.seed, n.step, _other(n)[2])), ("seed", "step", "step_b")
            target = per_pair[pairs.models or ("", "")]
        else:
            where, dims = (lambda n: (n.seed, n.step)), ("seed", "step")
            target = per_pair[pairs.models or ("", "")]
        variables = _grid(metric, items, where, dims)
        if pairs.seeds is not None:  # the full square: seed_b runs over the same seeds
            seeds = sorted(
                set(variables[metric].seed.values) | set(variables[metric].seed_b.values)
            )
            variables = {k: v.reindex(seed=seeds, seed_b=seeds) for k, v in variables.items()}
        variables[metric].attrs["metric_fn"] = plan.spec.metrics[metric].fn
        target.update(variables)
    return dict(per_model), dict(per_pair)


def _other(node: CellNode) -> tuple[str, int, int]:
    assert node.pair is not None
    return node.pair


def _grid(
    metric: str, items: list[tuple[CellNode, Any]], where: Any, dims: tuple[str, ...]
) -> dict[str, Any]:
    """``{metric: one array over dims}`` (labelled by the values ``where(node)`` gives, NaN
    where no cell is, followed by the cells' own dims); string attrs every cell shares stay
    attrs, numeric attrs (what each cell measured, e.g. ``loss_a``) become variables
    ``<metric>__<attr>`` over ``dims``."""
    import xarray as xr

    labels = [sorted({where(n)[i] for n, _ in items}) for i in range(len(dims))]
    first = items[0][1]
    shape = tuple(len(v) for v in labels) + first.shape
    values = np.full(shape, np.nan)
    index = [{v: i for i, v in enumerate(vs)} for vs in labels]
    for node, arr in items:
        at = tuple(index[i][v] for i, v in enumerate(where(node)))
        values[at] = np.asarray(arr.transpose(*first.dims).values, dtype=np.float64)
    coords: dict[str, Any] = {d: vs for d, vs in zip(dims, labels, strict=True)}
    coords.update({c: first.coords[c].values for c in first.coords if c in first.dims})
    attrs = {
        k: v
        for k, v in first.attrs.items()
        if isinstance(v, str) and all(arr.attrs.get(k) == v for _, arr in items)
    }
    grid_coords = {d: coords[d] for d in dims}
    out = {metric: xr.DataArray(values, dims=dims + first.dims, coords=coords, attrs=attrs)}
    for name, value in first.attrs.items():
        if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            measured = np.full(shape[: len(dims)], np.nan)
            for node, arr in items:
                at = tuple(index[i][v] for i, v in enumerate(where(node)))
                measured[at] = float(arr.attrs.get(name, np.nan))
            out[f"{metric}__{name}"] = xr.DataArray(measured, dims=dims, coords=grid_coords)
    return out
