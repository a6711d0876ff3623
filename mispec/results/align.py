"""The models of a run on one ``step`` axis: ``align_steps``.

Each model of a run has its own checkpoints (its own ``steps:``/``schedule:``, its own
training length, a pretrained family's revisions), so its node of the results DataTree has
its own ``step`` coordinate, and ``xr.concat`` over the models pads every step one of them
lacks with NaN (and warns about the join it guessed). ``align_steps`` says which steps it
keeps instead:

* ``join="inner"`` (default): the steps every model has; every value is exactly the one of
  its model's node at that step, with no NaN added;
* ``join="outer"``: every step of any model, with a boolean ``has_step`` variable
  ``(model, step)`` that says which model has which (a NaN where ``has_step`` is False is
  padding; a NaN where it is True is the metric's own).

Variables without a ``step`` dim (one value per model and seed: ``transition``) are kept as
they are. Other coordinates (``seed``, ``layer``, ``head``, ``pos``) must agree between the
models on the variables taken, or the outer join of xarray pads them: choose ``models=``
that share them, or select first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from mispec.errors import ResultsError
from mispec.lazy import xr
from mispec.registry import did_you_mean


def align_steps(
    results: Any,
    variables: Sequence[str] | str | None = None,
    *,
    models: Sequence[str] | None = None,
    join: Literal["inner", "outer"] = "inner",
) -> Any:
    """The run's model nodes stacked along a new ``model`` dim on one ``step`` axis.

    Args:
        results: a results DataTree (``mispec.open_results``) or a run folder.
        variables: the variables to take (default: every one all chosen models have).
        models: the model nodes to take, in this order (default: every model of the run;
            a comparison node ``A_vs_B`` is not a model).
        join: ``inner``: the steps every model has; ``outer``: every step of any model,
            with the ``has_step`` mask.
    """
    if join not in ("inner", "outer"):
        raise ResultsError(f"join must be 'inner' or 'outer', not {join!r}")
    if isinstance(results, str | Path):
        from mispec.results.open import open_results

        results = open_results(results)
    nodes = {
        name: child.to_dataset()
        for name, child in results.children.items()
        if "model_b" not in child.attrs  # a comparison node A_vs_B
    }
    chosen = list(models) if models is not None else list(nodes)
    for name in chosen:
        if name not in nodes:
            raise ResultsError(
                f"no model '{name}' in these results{did_you_mean(name, list(nodes))}"
            )
    if not chosen:
        raise ResultsError("no model to align: the results hold no model node")
    datasets = [nodes[n] for n in chosen]
    names = [variables] if isinstance(variables, str) else variables
    if names is None:
        names = [v for v in datasets[0].data_vars if all(v in ds.data_vars for ds in datasets)]
    for v in names:
        for n, ds in zip(chosen, datasets, strict=True):
            if v not in ds.data_vars:
                found = list(ds.data_vars)
                raise ResultsError(f"model '{n}' has no variable '{v}'{did_you_mean(v, found)}")
    datasets = [ds[list(names)] for ds in datasets]
    stepped = [ds.step.values for ds in datasets if "step" in ds.dims]
    if not stepped:
        steps = None
    elif join == "inner":
        steps = sorted(set.intersection(*(set(s.tolist()) for s in stepped)))
    else:
        steps = sorted(set.union(*(set(s.tolist()) for s in stepped)))
    parts = []
    masks = []
    for n, ds in zip(chosen, datasets, strict=True):
        if steps is not None and "step" in ds.dims:
            own = set(ds.step.values.tolist())
            masks.append(
                xr.DataArray([s in own for s in steps], dims="step", coords={"step": steps})
            )
            ds = ds.reindex(step=steps)  # inner: a subset (no NaN); outer: NaN where absent
        parts.append(ds.expand_dims(model=[n]))
    out = xr.concat(parts, dim="model", join="outer", combine_attrs="drop_conflicts")
    if join == "outer" and len(masks) == len(chosen):
        out["has_step"] = xr.concat(masks, dim="model").assign_coords(model=chosen)
    out.attrs["step_join"] = join
    return out
