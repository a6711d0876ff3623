"""Derived summaries of another metric at the same checkpoint: max / mean / min over dims."""

from __future__ import annotations

from typing import Any, Literal

from mispec.errors import UserError
from mispec.metrics.core import InputDims, metric


def _without_over(x: tuple[str, ...], over: list[str]) -> tuple[str, ...]:
    return tuple(d for d in x if d not in over)


@metric(
    dims=_without_over,
    inputs=("x",),
    input_dims={"x": InputDims(arg="over", why="to reduce over")},
    units="",
)
def reduce(x: Any, over: list[str], how: Literal["max", "mean", "min", "sum"] = "max") -> Any:
    """``how`` of the input over the dims ``over`` (e.g. the strongest induction head:
    ``{fn: reduce, inputs: {x: induction}, args: {over: [layer, head]}}``). Other dims pass
    through; units follow the input.

    Args:
        over: the input's dims to reduce over (each must be one of its dims).
        how: the reduction: ``max``, ``mean``, ``min`` or ``sum`` (NaN skipped, as xarray does).
    """
    missing = [d for d in over if d not in x.dims]
    if missing:
        raise UserError(f"reduce: the input has no dims {missing} (its dims: {list(x.dims)})")
    out = getattr(x, how)(over)
    out.attrs = {"units": x.attrs.get("units", ""), "reduced": f"{how} over {', '.join(over)}"}
    return out
