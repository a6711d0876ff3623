"""Reductions over the ``step`` axis: the transition step and PCA across checkpoints.

They receive a metric's whole series over checkpoints (one model, one seed) as an
``xarray.DataArray`` with a ``step`` dim and return a DataArray without it (or with ``step``
and a new ``pc`` dim).

**Transition step.** Training-dynamics phase changes (the induction bump, grokking) happen on a
roughly logarithmic clock, so the change is measured per log-step, ``x = log10(step + 1)``:

1. smooth the series with a Gaussian kernel in ``x`` (bandwidth ``smooth`` decades; 0 = off) —
   checkpoint-to-checkpoint noise otherwise dominates slopes over short intervals;
2. form intervals from each checkpoint to the first one at least ``min_interval`` decades later
   (consecutive checkpoints on a log schedule; several on a late linear one, e.g. Pythia's
   every-1000 steps, where neighbours are only ~0.003 decades apart);
3. take the steepest interval, ``max |Δy / Δx|``; while the interval before it rises (or falls)
   in the same direction at least ``1 - tolerance`` as steeply, step back to it — the steep
   stretch is measured from its start, so a tie between the two intervals around the midpoint
   does not flip the answer one checkpoint late;
4. report the step at the END of that interval: the first checkpoint by which the steepest
   change has happened.

On a sigmoid this lands between the first checkpoint above 10% of the rise and the first above
50%. A flat series (or one with fewer than two finite points) gives NaN.

**PCA over steps.** Each checkpoint's values (every non-step dim flattened into one vector,
e.g. a ``[layer, head]`` score map, or per-token losses) is a point; centring over steps and
taking the SVD gives the first ``k`` principal components. The projections of the checkpoints
onto them trace the training trajectory; a sharp turn in the (PC1, PC2) plane marks a phase
change. Features that are NaN at any step are dropped; the sign of each component is fixed so
that its largest-magnitude loading is positive.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mispec.errors import UserError
from mispec.lazy import xr
from mispec.metrics.core import metric


def _json_floats(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in values]


def _need_step(series: Any, name: str) -> Any:
    if not isinstance(series, xr.DataArray) or "step" not in series.dims:
        dims = getattr(series, "dims", None)
        raise UserError(f"{name} needs a series with a 'step' dim, got dims {dims}")
    if "step" not in series.coords:
        raise UserError(f"{name}: the series has no 'step' coordinate")
    return series.sortby("step")


def steepest_step(
    steps: np.ndarray,
    values: np.ndarray,
    *,
    smooth: float = 0.05,
    min_interval: float = 0.05,
    tolerance: float = 0.3,
) -> float:
    """The transition step of one series (see the module docstring); NaN if there is none."""
    ok = np.isfinite(values) & np.isfinite(steps)
    steps, y = np.asarray(steps, float)[ok], np.asarray(values, float)[ok]
    if steps.size < 2:
        return float("nan")
    order = np.argsort(steps, kind="stable")
    steps, y = steps[order], y[order]
    if np.ptp(y) <= 1e-12 * max(1.0, float(np.abs(y).max())):
        return float("nan")  # flat: no transition
    x = np.log10(steps + 1.0)
    if smooth > 0:
        weights = np.exp(-0.5 * ((x[:, None] - x[None, :]) / smooth) ** 2)
        y = weights @ y / weights.sum(axis=1)
    n = x.size
    end = np.maximum(np.searchsorted(x, x + min_interval - 1e-12), np.arange(n) + 1)
    start = np.arange(n)[end < n]
    end = end[end < n]
    dx = x[end] - x[start]
    slope = np.where(dx > 0, (y[end] - y[start]) / np.where(dx > 0, dx, 1.0), 0.0)
    best = int(np.argmax(np.abs(slope)))
    peak = abs(slope[best])
    if not peak > 0:
        return float("nan")
    sign = np.sign(slope[best])
    while best > 0 and sign * slope[best - 1] >= (1.0 - tolerance) * peak:
        best -= 1
    return float(steps[end[best]])


def _per_cell_of_series(series: tuple[str, ...]) -> tuple[str, ...]:
    return series  # one step per cell of the series


@metric(dims=_per_cell_of_series, inputs=("series",), reduces="step", units="step")
def transition_step(
    series: Any, smooth: float = 0.05, min_interval: float = 0.05, tolerance: float = 0.3
) -> Any:
    """Training step of the steepest change of ``series`` per log-step, for every other dim
    (e.g. per (layer, head) for an induction score). ``smooth``: Gaussian bandwidth in decades
    of step; ``min_interval``: shortest interval in decades; ``tolerance``: how much less steep
    an earlier interval may be and still start the steep stretch (see the module docstring)."""
    if smooth < 0 or min_interval < 0 or not 0 <= tolerance < 1:
        raise UserError("transition_step: smooth, min_interval >= 0 and 0 <= tolerance < 1")
    series = _need_step(series, "transition_step")
    series = series.transpose(..., "step")
    steps = np.asarray(series["step"].values, dtype=float)
    rows = np.asarray(series.values, dtype=float).reshape(-1, steps.size)
    out = np.array(
        [
            steepest_step(steps, r, smooth=smooth, min_interval=min_interval, tolerance=tolerance)
            for r in rows
        ]
    ).reshape(series.shape[:-1])
    coords = {k: v for k, v in series.coords.items() if "step" not in v.dims and k != "step"}
    return xr.DataArray(out, dims=series.dims[:-1], coords=coords, attrs={"units": "step"})


@metric(dims=("step", "pc"), inputs=("series",), reduces="step", units="projection")
def pca_over_steps(series: Any, k: int = 2) -> Any:
    """Projections of each checkpoint onto the first ``k`` principal components of the series
    across steps (every non-step dim flattened), dims ``(step, pc)`` with ``pc = 1..k``;
    ``attrs``: ``explained_variance_ratio`` and ``explained_variance`` per component (in the
    results: data variables ``<name>__explained_variance[_ratio]`` over ``(seed, pc)``). Components
    beyond the rank of the data are NaN."""
    if k < 1:
        raise UserError(f"pca_over_steps: k must be >= 1, got {k}")
    series = _need_step(series, "pca_over_steps")
    series = series.transpose("step", ...)
    n_steps = series.sizes["step"]
    data = np.asarray(series.values, dtype=float).reshape(n_steps, -1)  # [step, feature]
    data = data[:, np.all(np.isfinite(data), axis=0)]
    proj = np.full((n_steps, k), np.nan)
    var = np.full(k, np.nan)
    ratio = np.full(k, np.nan)
    if data.shape[1] and n_steps > 1:
        centred = data - data.mean(axis=0)
        u, s, vt = np.linalg.svd(centred, full_matrices=False)
        r = min(k, s.size)
        signs = np.sign(vt[np.arange(r), np.argmax(np.abs(vt[:r]), axis=1)])
        signs[signs == 0] = 1.0
        proj[:, :r] = u[:, :r] * s[:r] * signs
        total = float((s**2).sum())
        var[:r] = s[:r] ** 2 / (n_steps - 1)
        ratio[:r] = s[:r] ** 2 / total if total > 0 else np.nan
    return xr.DataArray(
        proj,
        dims=("step", "pc"),
        coords={"step": series["step"].values, "pc": np.arange(1, k + 1)},
        attrs={  # JSON-safe: None where a component does not exist
            "explained_variance_ratio": _json_floats(ratio),
            "explained_variance": _json_floats(var),
            "n_features": int(data.shape[1]),
        },
    )
