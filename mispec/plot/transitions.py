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
    """One transition variable's step per line of its series: per seed, and per value of
    each dim the series draws a line for too (a sweep's ``n_layers``: each depth's
    transition on that depth's line, never a median across depths)."""

    name: str  # the transition variable
    at: dict[tuple[int, tuple[Any, ...]], float]  # (seed, its coords on unit_dims) -> step
    how: str  # how it became one step per line ("" or "median over layer, head")
    unit_dims: tuple[str, ...] = ()  # dims of the series' lines the transition has too

    @property
    def steps(self) -> list[float]:
        return list(self.at.values())


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
    model's results, one step per line the series draws: per seed, and per value of every
    dim both have besides ``step`` (a sweep dim). Over the dims only the transition has (a
    per-head transition of a series reduced over heads) it is the median over the cells
    that have one, said in ``how``; lines without a transition (NaN) are left out."""
    if model not in tree.children:
        return []
    ds = tree[model].to_dataset()
    lines = set(ds[variable].dims) - {"seed", "step"} if variable in ds.data_vars else set()
    found = []
    for name, var in ds.data_vars.items():
        if var.attrs.get("metric_fn") not in TRANSITION_FNS or "seed" not in var.dims:
            continue
        if variable not in series_read(ds, str(name)):
            continue
        units = tuple(str(d) for d in var.dims if d != "seed" and d in lines)
        other = [str(d) for d in var.dims if d != "seed" and d not in units]
        stacked = var.stack(_line=["seed", *units]) if units else var.rename(seed="_line")
        at: dict[tuple[int, tuple[Any, ...]], float] = {}
        for i in range(stacked.sizes["_line"]):
            values = np.asarray(stacked.isel(_line=i).values, dtype=float)
            values = values[np.isfinite(values)]
            if not values.size:
                continue
            key = np.atleast_1d(np.asarray(stacked._line.values[i], dtype=object)).tolist()
            at[(int(key[0]), tuple(key[1:]))] = float(np.median(values))
        how = f"median over {', '.join(other)}" if other else ""
        found.append(Transition(str(name), at, how, units))
    return sorted(found, key=lambda t: t.name)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(np.ravel(np.asarray(value, dtype=object)))
