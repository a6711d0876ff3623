"""Early warning of a transition, from a progress measure, using no future information.

The question (open problems 5.4 and 5.12): can a measure read *during* training say that a
transition of a target series (the induction score, test accuracy) is coming, before it
comes? The rule here looks, at each checkpoint ``t``, only at the progress measure's values at
checkpoints ``<= t`` (:func:`alarms` computes checkpoint ``i`` from ``p[: i + 1]`` alone).

**The rule: the progress measure accelerates in log-time.** With ``x = log10(step + 1)`` and
``w = window`` checkpoints, at checkpoint ``i``:

1. the recent trend is the slope ``s1 = (p[i] - p[i-w]) / (x[i] - x[i-w])`` and the trend
   before it ``s0 = (p[i-w] - p[i-2w]) / (x[i-w] - x[i-2w])``;
2. the *acceleration* is how much further the measure moved over the last ``w`` checkpoints
   than the earlier trend predicts: ``a = (s1 - s0) * (x[i] - x[i-w])``;
3. the *noise* ``sigma`` is the checkpoint-to-checkpoint scatter of ``p[: i + 1]``, from its
   second differences (``1.4826 * median|second difference| / sqrt(6)``, as
   ``transition_size``); white noise of that size gives ``a`` a standard error of
   ``sigma * sqrt(1 + (1 + r)^2 + r^2)`` with ``r = (x[i] - x[i-w]) / (x[i-w] - x[i-2w])``;
4. the alarm is on at ``i`` when ``z = a / that standard error >= threshold`` in the chosen
   ``direction`` (``up``: the measure speeds up rising, ``down``: falling, ``either``); it
   needs ``2w + 1`` checkpoints, so the first ``2w`` are never alarmed.

Training usually starts fast and slows (a decelerating measure); a plateau has no
acceleration; a circuit that starts forming makes its progress measure speed up, which is what
the alarm looks for. Defaults (``window: 3``, ``threshold: 4``) were fixed before looking at any
study; they are not tuned.

**Scoring against the target (this part uses the whole target series, as a score must).**
The transition ``T`` is the target's ``crossing_step`` (``mispec.metrics.builtin.crossing``,
level ``level``). Alarms come in *episodes* (runs of consecutive alarmed checkpoints).

* no transition, no score: where the target does not cross its level beyond its noise
  (``crossing_step``'s rule, ``min_size`` 8 by default; a model that never grokked), every
  score is NaN;
* the *warning* is the episode still on at the last checkpoint before ``T``;
  ``warning_step`` is its first step and ``warning_lead = T - warning_step`` (NaN, a miss,
  when no episode is on just before ``T``, or when the target has no crossing);
* ``false_alarms`` counts the episodes that started and ended before ``T`` (the alarm went
  quiet and no transition followed); alarms after ``T`` are not counted.

A lead as long as the whole run before ``T`` (an alarm on since the first checkpoints it can
judge) is no warning at all: read ``warning_step`` beside the lead.

**Refined checkpoints are future information.** ``refine:`` places checkpoints where the
target crosses, i.e. knowing the transition; an alarm read at them (dense just before ``T``)
would be judged on checkpoints a live run never had. ``log_count: N`` keeps, for the alarm,
only the checkpoints of the log schedule of ``N`` checkpoints from the first to the last step
(the model's own ``checkpoints: {schedule: log, count: N}``); the crossing ``T`` still uses
every checkpoint.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from mispec.errors import UserError
from mispec.lazy import xr
from mispec.metrics.builtin.crossing import Level, _check_level, _check_min_size, crossing_bracket
from mispec.metrics.builtin.event_noise import MIN_SIZE, checkpoint_noise
from mispec.metrics.builtin.reductions import _need_step
from mispec.metrics.core import metric
from mispec.spec.selectors import log_schedule

Direction = Literal["up", "down", "either"]
_SIGN = {"up": 1.0, "down": -1.0}


def alarms(
    steps: np.ndarray,
    progress: np.ndarray,
    *,
    window: int = 3,
    threshold: float = 4.0,
    direction: Direction = "either",
) -> np.ndarray:
    """Alarm state per checkpoint (module docstring, steps 1-4); checkpoint ``i`` is decided
    from ``steps[: i + 1]`` and ``progress[: i + 1]`` only. ``steps`` sorted, values finite."""
    x = np.log10(np.asarray(steps, float) + 1.0)
    p = np.asarray(progress, float)
    out = np.zeros(p.size, dtype=bool)
    for i in range(2 * window, p.size):
        a, b, c = i - 2 * window, i - window, i
        if not (x[c] > x[b] > x[a]):
            continue
        s1 = (p[c] - p[b]) / (x[c] - x[b])
        s0 = (p[b] - p[a]) / (x[b] - x[a])
        r = (x[c] - x[b]) / (x[b] - x[a])
        stderr = checkpoint_noise(p[: i + 1]) * np.sqrt(1.0 + (1.0 + r) ** 2 + r**2)
        z = (s1 - s0) * (x[c] - x[b]) / stderr
        out[i] = (abs(z) if direction == "either" else _SIGN[direction] * z) >= threshold
    return out


def score(
    steps: np.ndarray,
    alarm: np.ndarray,
    target: np.ndarray,
    level: Level = "half",
    judged: np.ndarray | None = None,
    min_size: float = MIN_SIZE,
) -> dict[str, float]:
    """``transition``, ``warning_step``, ``warning_lead`` and ``false_alarms`` (module
    docstring, scoring) of an alarm series against a target series on the same steps;
    ``judged`` marks the checkpoints the alarm was computed at (default: all). Every score is
    NaN when the target has no crossing beyond its noise (``crossing_step`` with
    ``min_size``): no transition, nothing to warn of."""
    nan = float("nan")
    bracket = crossing_bracket(steps, target, level, min_size)
    if bracket is None:
        return dict.fromkeys(("transition", "warning_step", "warning_lead", "false_alarms"), nan)
    at = bracket[1]
    judged = np.ones(len(steps), dtype=bool) if judged is None else judged
    before = np.flatnonzero((np.asarray(steps) < at) & judged)
    episodes: list[tuple[int, int]] = []  # (first index, last index)
    previous = -2  # the judged checkpoint before i
    for i in before:
        if alarm[i]:
            if episodes and episodes[-1][1] == previous:
                episodes[-1] = (episodes[-1][0], int(i))
            else:
                episodes.append((int(i), int(i)))
        previous = int(i)
    last = int(before[-1]) if before.size else -1
    warning = episodes[-1] if episodes and episodes[-1][1] == last else None
    false = len(episodes) - (warning is not None)
    start = float(steps[warning[0]]) if warning else nan
    return {
        "transition": float(at),
        "warning_step": start,
        "warning_lead": float(at - start) if warning else nan,
        "false_alarms": float(false),
    }


def _check(window: int, threshold: float, direction: str, level: Any, log_count: Any) -> None:
    if log_count is not None and (
        isinstance(log_count, bool) or not isinstance(log_count, int) or log_count < 2
    ):
        raise UserError(f"early warning: log_count must be an integer >= 2, got {log_count!r}")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise UserError(f"early warning: window must be a positive integer, got {window!r}")
    if not threshold > 0:
        raise UserError(f"early warning: threshold must be > 0, got {threshold!r}")
    if direction not in ("up", "down", "either"):
        raise UserError(f"early warning: direction must be up, down or either, got {direction!r}")
    _check_level("early warning", level)


def _one(progress: Any, target: Any, what: str, **args: Any) -> Any:
    """One score of the rule, for a progress and a target series of one number per step."""
    _check(args["window"], args["threshold"], args["direction"], args["level"], args["log_count"])
    _check_min_size("early warning", args["min_size"])
    p = _need_step(progress, "early warning (progress)")
    t = _need_step(target, "early warning (target)")
    if p.ndim != 1 or t.ndim != 1:
        raise UserError(
            "early warning: progress and target need one number per checkpoint (dims "
            f"{p.dims} and {t.dims}); reduce them first (fn: reduce)"
        )
    both = np.intersect1d(p["step"].values, t["step"].values)
    pv = np.asarray(p.sel(step=both).values, float)
    tv = np.asarray(t.sel(step=both).values, float)
    ok = np.isfinite(pv) & np.isfinite(tv)
    steps = both[ok].astype(float)
    on = np.ones(steps.size, dtype=bool)
    if args["log_count"] is not None and steps.size:
        first, last = int(steps[0]), int(steps[-1])
        on = np.isin(steps, log_schedule(last, min(args["log_count"], last - first + 1), first))
    alarm = np.zeros(steps.size, dtype=bool)
    alarm[on] = alarms(
        steps[on],
        pv[ok][on],
        window=args["window"],
        threshold=args["threshold"],
        direction=args["direction"],
    )
    value = score(steps, alarm, tv[ok], args["level"], judged=on, min_size=args["min_size"])[what]
    return xr.DataArray(value, attrs={"units": "count" if what == "false_alarms" else "step"})


@metric(dims=(), inputs=("progress", "target"), reduces="step", units="step", version=2)
def warning_step(
    progress: Any,
    target: Any,
    window: int = 3,
    threshold: float = 4.0,
    direction: Direction = "either",
    level: Level = "half",
    log_count: int | None = None,
    min_size: float = MIN_SIZE,
) -> Any:
    """First step of the early-warning alarm episode still on just before ``target``'s
    crossing; the alarm reads ``progress`` at steps up to each checkpoint only. NaN: missed
    (see the module docstring for the rule and the scoring).

    Args:
        window: ``w``: checkpoints per trend; the alarm compares the slope over the last ``w``
            checkpoints with the ``w`` before (a positive integer, default 3; the first ``2w``
            checkpoints are never alarmed).
        threshold: the alarm is on where the acceleration is at least this many standard errors of
            the progress measure's noise (> 0, default 4).
        direction: ``up``: alarm when the measure speeds up rising; ``down``: falling; ``either``:
            both.
        level: the target's crossing level, as ``crossing_step``: ``half`` (half-way from its first
            value to its last) or a number in its units.
        log_count: judge the alarm only at the checkpoints of a log schedule of this many steps from
            the first to the last (>= 2; ``null``: every checkpoint, refined ones included).
        min_size: the least size of the target's crossing over its noise for it to count as a
            transition, as ``crossing_step`` (default 8); without one every score is NaN.
    """
    return _one(
        progress,
        target,
        "warning_step",
        **_args(window, threshold, direction, level, log_count, min_size),
    )


@metric(dims=(), inputs=("progress", "target"), reduces="step", units="step", version=2)
def warning_lead(
    progress: Any,
    target: Any,
    window: int = 3,
    threshold: float = 4.0,
    direction: Direction = "either",
    level: Level = "half",
    log_count: int | None = None,
    min_size: float = MIN_SIZE,
) -> Any:
    """Steps from ``warning_step`` to ``target``'s crossing (the lead time); NaN when the
    transition was missed or there is none (module docstring).

    Args:
        window: ``w``: checkpoints per trend; the alarm compares the slope over the last ``w``
            checkpoints with the ``w`` before (a positive integer, default 3; the first ``2w``
            checkpoints are never alarmed).
        threshold: the alarm is on where the acceleration is at least this many standard errors of
            the progress measure's noise (> 0, default 4).
        direction: ``up``: alarm when the measure speeds up rising; ``down``: falling; ``either``:
            both.
        level: the target's crossing level, as ``crossing_step``: ``half`` (half-way from its first
            value to its last) or a number in its units.
        log_count: judge the alarm only at the checkpoints of a log schedule of this many steps from
            the first to the last (>= 2; ``null``: every checkpoint, refined ones included).
        min_size: the least size of the target's crossing over its noise for it to count as a
            transition, as ``crossing_step`` (default 8); without one every score is NaN.
    """
    return _one(
        progress,
        target,
        "warning_lead",
        **_args(window, threshold, direction, level, log_count, min_size),
    )


@metric(dims=(), inputs=("progress", "target"), reduces="step", units="count", version=2)
def false_alarms(
    progress: Any,
    target: Any,
    window: int = 3,
    threshold: float = 4.0,
    direction: Direction = "either",
    level: Level = "half",
    log_count: int | None = None,
    min_size: float = MIN_SIZE,
) -> Any:
    """Alarm episodes that started and ended before ``target``'s crossing with no transition
    following them (module docstring).

    Args:
        window: ``w``: checkpoints per trend; the alarm compares the slope over the last ``w``
            checkpoints with the ``w`` before (a positive integer, default 3; the first ``2w``
            checkpoints are never alarmed).
        threshold: the alarm is on where the acceleration is at least this many standard errors of
            the progress measure's noise (> 0, default 4).
        direction: ``up``: alarm when the measure speeds up rising; ``down``: falling; ``either``:
            both.
        level: the target's crossing level, as ``crossing_step``: ``half`` (half-way from its first
            value to its last) or a number in its units.
        log_count: judge the alarm only at the checkpoints of a log schedule of this many steps from
            the first to the last (>= 2; ``null``: every checkpoint, refined ones included).
        min_size: the least size of the target's crossing over its noise for it to count as a
            transition, as ``crossing_step`` (default 8); without one every score is NaN.
    """
    return _one(
        progress,
        target,
        "false_alarms",
        **_args(window, threshold, direction, level, log_count, min_size),
    )


def _args(
    window: int,
    threshold: float,
    direction: str,
    level: Level,
    log_count: int | None,
    min_size: float,
) -> dict[str, Any]:
    return {
        "min_size": min_size,
        "window": window,
        "threshold": threshold,
        "direction": direction,
        "level": level,
        "log_count": log_count,
    }
