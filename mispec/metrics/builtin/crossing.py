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

**Does the series cross at all?** Noise crosses any level (0.070 -> 0.068 "crosses" 0.069),
so a crossing counts only when the series moves from one side of the level to the other
beyond its noise, by the rule every event detector shares
(``mispec.metrics.builtin.event_noise``): the checkpoints before the crossing and those from
it on each have a level (their median over log-step, which checkpoints added by ``refine:``
inside the gap hardly move), and each of those levels must lie beyond ``level`` on its own
side by at least ``min_size / 2`` times the series' checkpoint-to-checkpoint noise (a
steady trend passes a level as surely as a jump does, so the wander of ``transition_size``
does not count here; a random walk does pass its own half-way level: whether a series has a
transition at all is ``transition_size``'s question). ``crossing_size`` reports ``2 * min(distance before, distance
after) / noise``, signed by the direction of the crossing (for a crossing of the half-way
level with plateaus on both sides, about the lasting jump over the noise, as
``transition_size``); ``crossing_step`` and ``crossing_width`` are NaN where ``|size| <
min_size`` (default 8; ``min_size: 0`` takes every crossing, as before version 2).

A flat series (first == last), one that never reaches the level, or one of fewer than three
checkpoints (no noise estimate) gives NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mispec.errors import UserError
from mispec.metrics.builtin.event_noise import MIN_SIZE, lasting_change
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


def crossing(
    steps: np.ndarray, values: np.ndarray, level: Level = "half", min_size: float = MIN_SIZE
) -> dict[str, float]:
    """``step``, ``width`` and ``size`` of the first crossing of the level (module docstring):
    step and width NaN where there is none or it is no more than noise (``|size| <
    min_size``); size 0 for a flat series, NaN where the level is never reached or there are
    fewer than three checkpoints."""
    nan = float("nan")
    out = {"step": nan, "width": nan, "size": nan}
    steps, y = _finite_sorted(np.asarray(steps, float), np.asarray(values, float))
    if steps.size < 2:
        return out
    direction = float(np.sign(y[-1] - y[0]))
    if direction == 0:
        return {**out, "size": 0.0}
    target = crossing_level(y, level)
    reached = np.flatnonzero(direction * (y - target) >= 0)
    reached = reached[reached > 0]  # the first checkpoint is the baseline, not a crossing
    if reached.size == 0:
        return out
    i = int(reached[0])
    change = lasting_change(steps, y, i - 1, i, about="checkpoints")
    below = direction * (target - change["level_before"])
    above = direction * (change["level_after"] - target)
    size = direction * 2.0 * min(below, above) / change["noise"]
    out["size"] = size
    if min_size == 0 or (abs(size) >= min_size and direction * size > 0):
        out["step"], out["width"] = float(steps[i]), float(steps[i] - steps[i - 1])
    return out


def crossing_bracket(
    steps: np.ndarray, values: np.ndarray, level: Level = "half", min_size: float = MIN_SIZE
) -> tuple[int, int] | None:
    """``(before, at)``: the steps of the checkpoint before the first crossing of the level
    and of the crossing itself (module docstring); None when there is none or it is no
    more than noise."""
    found = crossing(steps, values, level, min_size)
    if not np.isfinite(found["step"]):
        return None
    return int(found["step"] - found["width"]), int(found["step"])


def _check_level(name: str, level: Any) -> None:
    if isinstance(level, bool) or not (
        level == "half" or (isinstance(level, int | float) and np.isfinite(level))
    ):
        raise UserError(f"{name}: level must be a number or 'half', got {level!r}")


def _check_min_size(name: str, min_size: Any) -> None:
    if isinstance(min_size, bool) or not (isinstance(min_size, int | float) and min_size >= 0):
        raise UserError(f"{name}: min_size must be a number >= 0, got {min_size!r}")


def _per_crossing(series: Any, name: str, what: str, level: Level, min_size: float) -> Any:
    _check_level(name, level)
    _check_min_size(name, min_size)

    def one(steps: np.ndarray, row: np.ndarray) -> float:
        return crossing(steps, row, level, min_size)[what]

    out = _per_cell(series, name, one)
    out.attrs = {"units": "noise" if what == "size" else "step"}
    return out


@metric(
    dims=_per_cell_of_series,
    inputs=("series",),
    reduces="step",
    units="step",
    version=2,
    bracket=crossing_bracket,  # what makes it a ``refine:`` transition
)
def crossing_step(series: Any, level: Level = "half", min_size: float = MIN_SIZE) -> Any:
    """Step of the first checkpoint at which ``series`` has reached ``level`` (default
    ``half``: half-way from its first to its last value), for every other dim; NaN when it
    never does, the series is flat, or the crossing is no more than noise (``crossing_size``
    below ``min_size``). Exact to ``crossing_width`` steps; ``refine:`` narrows that width
    (see the module docstring).

    Args:
        level: the level to cross: ``half`` (half-way from the series' first value to its last) or a
            number in the series' units.
        min_size: the least ``|crossing_size|`` (the crossing over the series' noise) that counts;
            below it the result is NaN (default 8; 0 takes every crossing).
    """
    return _per_crossing(series, "crossing_step", "step", level, min_size)


@metric(dims=_per_cell_of_series, inputs=("series",), reduces="step", units="step", version=2)
def crossing_width(series: Any, level: Level = "half", min_size: float = MIN_SIZE) -> Any:
    """Steps between ``crossing_step`` and the checkpoint before it: the crossing happened
    after ``crossing_step - crossing_width`` and by ``crossing_step``. NaN where there is no
    crossing. Give it the same ``level`` and ``min_size`` as ``crossing_step``.

    Args:
        level: the level to cross: ``half`` (half-way from the series' first value to its last) or a
            number in the series' units. Give the same as ``crossing_step``.
        min_size: the least ``|crossing_size|`` (the crossing over the series' noise) that counts;
            below it the result is NaN (default 8; 0 takes every crossing). Give the same as
            ``crossing_step``.
    """
    return _per_crossing(series, "crossing_width", "width", level, min_size)


@metric(dims=_per_cell_of_series, inputs=("series",), reduces="step", units="noise")
def crossing_size(series: Any, level: Level = "half") -> Any:
    """How far beyond its noise the series moves across ``level`` at its first crossing:
    twice the smaller distance of the levels before and after the crossing from ``level``,
    over the series' noise, signed by the crossing's direction (module docstring); 0 for a flat
    series, NaN where the level is never reached. ``crossing_step`` is NaN where
    ``|crossing_size| < min_size``.

    Args:
        level: the level to cross: ``half`` (half-way from the series' first value to its last) or a
            number in the series' units.
    """
    return _per_crossing(series, "crossing_size", "size", level, 0.0)
