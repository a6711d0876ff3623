"""The half-way crossing: a transition step that does not depend on where checkpoints are.

``transition_step`` finds the steepest change per log-step after smoothing; its answer moves
with the checkpoint schedule (the smoothing weighs dense stretches more, and its shortest
interval is ``min_interval`` decades, about 12% of the step), so it cannot be pinned down to a
few steps by adding checkpoints. The crossing step can:

1. the *level* is half-way from the series' value at its first checkpoint to its value at its
   last (``level: half``, the default), or a number given in the series' units;
2. the *crossing* is the first checkpoint whose value has reached the level (``>=`` for a
   rise, ``<=`` for a fall; the direction is the sign of last minus first);
3. ``crossing_step`` is that checkpoint's step, ``crossing_width`` the gap to the checkpoint
   before it: the series reached the level after ``step - width`` and by ``step``.

Adding checkpoints between ``step - width`` and ``step`` (what ``refine:`` does, see
``mispec.execute.refine``) narrows the width. The level depends only on the first and the
last checkpoint, which refinement never moves, so a refined schedule and a dense one (every
step) agree within the width whenever the series crosses the level once in that gap. If it
crosses back and forth (noise at the level), bisection finds one of the crossings and the
dense schedule the first: they then differ by the extent of the back-and-forth, which is
reported honestly, not hidden.

A flat series (first == last) or one that never reaches the level gives NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mispec.errors import UserError
from mispec.metrics.builtin.reductions import _finite_sorted, _per_cell, _per_cell_of_series
from mispec.metrics.core import metric

Level = float | str


def crossing_level(y: np.ndarray, level: Level = "half") -> float:
    """The level a series (finite, in step order) must reach: half-way from its first value
    to its last (``"half"``), or ``level`` itself."""
    if isinstance(level, str):
        if level != "half":
            raise UserError(f"crossing level must be a number or 'half', got {level!r}")
        return float(y[0] + (y[-1] - y[0]) / 2.0)
    return float(level)


def crossing_bracket(
    steps: np.ndarray, values: np.ndarray, level: Level = "half"
) -> tuple[int, int] | None:
    """``(before, at)``: the steps of the checkpoint before the first crossing of the level
    and of the crossing itself (module docstring); None when there is none."""
    steps, y = _finite_sorted(np.asarray(steps, float), np.asarray(values, float))
    if steps.size < 2:
        return None
    direction = np.sign(y[-1] - y[0])
    if direction == 0:
        return None
    target = crossing_level(y, level)
    reached = np.flatnonzero(direction * (y - target) >= 0)
    reached = reached[reached > 0]  # the first checkpoint is the baseline, not a crossing
    if reached.size == 0:
        return None
    i = int(reached[0])
    return int(steps[i - 1]), int(steps[i])


def _check_level(name: str, level: Any) -> None:
    if isinstance(level, bool) or not (
        level == "half" or (isinstance(level, int | float) and np.isfinite(level))
    ):
        raise UserError(f"{name}: level must be a number or 'half', got {level!r}")


@metric(dims=_per_cell_of_series, inputs=("series",), reduces="step", units="step")
def crossing_step(series: Any, level: Level = "half") -> Any:
    """Step of the first checkpoint at which ``series`` has reached ``level`` (default
    ``half``: half-way from its first to its last value), for every other dim; NaN when it
    never does or the series is flat. Exact to ``crossing_width`` steps; ``refine:`` narrows
    that width (see the module docstring)."""
    _check_level("crossing_step", level)

    def at(steps: np.ndarray, row: np.ndarray) -> float:
        bracket = crossing_bracket(steps, row, level)
        return float("nan") if bracket is None else float(bracket[1])

    out = _per_cell(series, "crossing_step", at)
    out.attrs = {"units": "step"}
    return out


@metric(dims=_per_cell_of_series, inputs=("series",), reduces="step", units="step")
def crossing_width(series: Any, level: Level = "half") -> Any:
    """Steps between ``crossing_step`` and the checkpoint before it: the crossing happened
    after ``crossing_step - crossing_width`` and by ``crossing_step``. NaN where there is no
    crossing. Give it the same ``level`` as ``crossing_step``."""
    _check_level("crossing_width", level)

    def width(steps: np.ndarray, row: np.ndarray) -> float:
        bracket = crossing_bracket(steps, row, level)
        return float("nan") if bracket is None else float(bracket[1] - bracket[0])

    out = _per_cell(series, "crossing_width", width)
    out.attrs = {"units": "step"}
    return out
