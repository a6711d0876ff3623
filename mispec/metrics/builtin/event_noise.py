"""When does a series move? The one noise criterion of every event detector.

``transition_step``, ``crossing_step``, ``grokking_phases`` and the early-warning scores each
name a checkpoint where something happened. Any series has a steepest stretch, a first
checkpoint above a level, a first touch of a threshold — noise included — so an event counts
only when the series makes a *lasting* change across it that stands out of the series' own
noise. One rule, here, for all of them.

**The two sides.** An event splits the checkpoints (finite, in step order) into the ones
before it and the ones after it. The *level* of a side is its median over log-step: each
checkpoint weighs the stretch of ``x = log10(step + 1)`` it stands for (half the gap to each
neighbour), so checkpoints added inside a gap (``refine:``) hardly move it, and a log
schedule's checkpoints weigh about alike. The *lasting change* (the jump) is the after
side's level minus the before side's.

**The noise** is the larger of two scales:

* the checkpoint-to-checkpoint scatter, robustly from the second differences in checkpoint
  order, ``1.4826 * median|y[i+1] - 2 y[i] + y[i-1]| / sqrt(6)`` (the standard deviation of
  white noise; a smooth trend hardly contributes; floored at ``1e-12`` of the series' scale);
* the *wander*: ``1.4826 *`` the weighted median of every checkpoint's distance from its own
  side's level (both sides pooled) — how far the series strays from the two-level picture
  of "before" and "after". White noise of standard deviation ``s`` wanders about ``s``; a
  random walk wanders as far as it travels (``~ sqrt(n)`` steps), so its jump never stands
  out of it; a slow drift on either side counts against the jump as well.

**Crossings** (``crossing_step``, ``grokking_phases``, the warnings' target) ask a narrower
question: did the series pass a level beyond its checkpoint noise? A steady, smooth trend
passes a level as surely as a jump does, and a random walk does pass its own half-way level,
so their noise is the checkpoint-to-checkpoint scatter alone, without the wander: a crossing
says *when* a series passed a level; whether the series has a transition at all is
``transition_size``'s question (the random-walk rates of both are in the docs).

**The size** of a transition is ``jump / noise`` (signed: positive for a rise), of a crossing
``2 * min(distance of each side's level past the level) / noise``; it is an event when
``|size| >= min_size`` (``MIN_SIZE`` = 8 unless a metric's ``min_size`` says otherwise). Each side needs at least two checkpoints: a change at the first or the last
checkpoint cannot be told from one outlier, so its size is NaN (unknown, not 0) and it is no
event; fewer than three finite checkpoints give NaN too (no noise estimate). The
false-positive rates on flat series, white noise and random walks and the detection rates
on noisy sigmoids are measured by
``benchmarks/event_noise_rates.py`` and written in ``docs/transitions.md``.
"""

from __future__ import annotations

import numpy as np

MIN_SIZE = 8.0
MIN_SIDE = 2  # checkpoints on each side of an event: one alone could be an outlier
_MAD = 1.4826  # MAD -> standard deviation of a Gaussian


def checkpoint_noise(y: np.ndarray) -> float:
    """Robust checkpoint-to-checkpoint noise of ``y`` (in checkpoint order) from its second
    differences (module docstring); NaN for fewer than three points."""
    if y.size < 3:
        return float("nan")
    sigma = _MAD * float(np.median(np.abs(np.diff(y, 2)))) / np.sqrt(6.0)
    return max(sigma, 1e-12 * max(1.0, float(np.abs(y).max())))


def log_step_weights(steps: np.ndarray) -> np.ndarray:
    """The stretch of ``log10(step + 1)`` each checkpoint (sorted) stands for: half the gap
    to each neighbour; equal weights where every gap is 0 (one checkpoint)."""
    x = np.log10(np.asarray(steps, float) + 1.0)
    if x.size < 2 or not np.ptp(x) > 0:
        return np.ones(x.size)
    gaps = np.diff(x)
    w = np.zeros(x.size)
    w[:-1] += gaps / 2
    w[1:] += gaps / 2
    return np.maximum(w, 1e-9 * float(np.ptp(x)))


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The median of ``values`` with ``weights`` (the mean of the lower and the upper weighted
    median: the ordinary median for equal weights)."""
    order = np.argsort(values, kind="stable")
    v, cum = values[order], np.cumsum(weights[order])
    half, tol = cum[-1] / 2, 1e-12 * cum[-1]
    lower = v[np.searchsorted(cum, half - tol)]
    upper = v[min(np.searchsorted(cum, half + tol, side="right"), v.size - 1)]
    return float((lower + upper) / 2)


def lasting_change(
    steps: np.ndarray, y: np.ndarray, before: int, after: int, about: str = "levels"
) -> dict[str, float]:
    """The event between checkpoint ``before`` (the last of the before side) and ``after`` (the
    first of the after side) of ``y`` (finite, sorted by ``steps``), the noise the larger of
    the checkpoint scatter and the wander ``about`` the two ``levels`` (a jump), or the
    checkpoint scatter alone (``checkpoints``: a crossing): ``level_before``,
    ``level_after``, ``jump``, ``noise`` and ``size`` (module docstring). NaN everywhere for
    fewer than three checkpoints or a side of fewer than ``MIN_SIDE`` checkpoints."""
    nan = dict.fromkeys(("level_before", "level_after", "jump", "noise", "size"), float("nan"))
    if y.size < 3 or not MIN_SIDE - 1 <= before < after <= y.size - MIN_SIDE:
        return nan
    w = log_step_weights(steps)
    lo, hi = slice(0, before + 1), slice(after, y.size)
    level_before = weighted_median(y[lo], w[lo])
    level_after = weighted_median(y[hi], w[hi])
    spread = np.concatenate([np.abs(y[lo] - level_before), np.abs(y[hi] - level_after)])
    wander = _MAD * weighted_median(spread, np.concatenate([w[lo], w[hi]]))
    if about == "checkpoints":  # a crossing: a steady trend passes a level too, wander or not
        wander = 0.0
    noise = max(checkpoint_noise(y), wander)
    jump = level_after - level_before
    return {
        "level_before": level_before,
        "level_after": level_after,
        "jump": jump,
        "noise": noise,
        "size": jump / noise,
    }
