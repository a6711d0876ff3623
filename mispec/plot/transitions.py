"""Transition markers, each on the plot of the series it was computed from.

A ``transition_step`` variable records the metrics it read (attr ``inputs``, written at
assembly). Its marker belongs to that series, and — through a ``reduce`` (the strongest
head: ``reduce`` of ``induction`` over ``layer, head``) — to the series that one reduced;
never to another metric's plot. Results assembled before the attr existed get no marker
(which series a transition came from cannot be told).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

TRANSITION_FNS = frozenset({"transition_step"})


@dataclass(frozen=True)
class Transition:
    """One transition variable's step per seed, as drawn on a series."""

    name: str  # the transition variable
    steps: dict[int, float]  # per seed with a value
    how: str  # how it became one step per seed ("" or "median over layer, head")

    def label(self, seed: int) -> str:
        how = f", {self.how}" if self.how else ""
        return f"{self.name} seed {seed}: step {self.steps[seed]:.0f}{how}"


def series_read(ds: Any, name: str) -> list[str]:
    """The series a variable was computed from, followed through ``reduce``: the metrics in
    its ``inputs`` attr, and for each that is a ``reduce``, what that one read."""
    out: list[str] = []
    todo = [str(i) for i in _as_list(ds[name].attrs.get("inputs"))]
    while todo:
        source = todo.pop(0)
        if source in out or source not in ds.data_vars:
            continue
        out.append(source)
        if ds[source].attrs.get("metric_fn") == "reduce":
            todo.extend(str(i) for i in _as_list(ds[source].attrs.get("inputs")))
    return out


def transitions_of(tree: Any, model: str, variable: str) -> list[Transition]:
    """The transitions computed from ``variable`` (or from a ``reduce`` of it) in this
    model's results, per seed: a per-head transition is the median over the cells that have
    one (said in the label); seeds without a transition (NaN) are left out."""
    if model not in tree.children:
        return []
    ds = tree[model].to_dataset()
    found = []
    for name, var in ds.data_vars.items():
        if var.attrs.get("metric_fn") not in TRANSITION_FNS or "seed" not in var.dims:
            continue
        if variable not in series_read(ds, str(name)):
            continue
        steps = {}
        for s in var.seed.values:
            values = np.asarray(var.sel(seed=s).values, dtype=float)
            values = values[np.isfinite(values)]
            if values.size:
                steps[int(s)] = float(np.median(values))
        other = [str(d) for d in var.dims if d != "seed"]
        how = f"median over {', '.join(other)}" if other else ""
        found.append(Transition(str(name), steps, how))
    return sorted(found, key=lambda t: t.name)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(np.ravel(np.asarray(value, dtype=object)))
