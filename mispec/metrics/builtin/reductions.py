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
50%.

**Is there a transition at all?** Steps 1-4 find the steepest stretch of ANY series, noise
included, so the stretch must also be a lasting change that stands out of the series' noise —
the one rule of every event detector (``mispec.metrics.builtin.event_noise``):

5. the *jump* is the level of the checkpoints from the reported step on minus the level of
   those up to the start of the steep stretch (each level the side's median over log-step;
   one checkpoint on a side is enough: a series that rises at its last checkpoint gets its
   size, not 0);
6. the *noise* is the larger of the checkpoint-to-checkpoint scatter (robustly from second
   differences, ``1.4826 * median|y[i+1] - 2 y[i] + y[i-1]| / sqrt(6)``) and the series'
   *wander* about the two levels (``1.4826 *`` the median distance of each checkpoint from its
   own side's level): a random walk wanders as far as it travels, so its jump never stands
   out;
7. the *size* of the transition is ``jump / noise`` (signed: positive for a rise), reported by
   ``transition_size``; ``transition_step`` gives the step only when ``|size| >= min_size``
   (default 8), else NaN.

Measured false-positive rates (flat series, white noise, random walks on 35, 40 and 100
log-spaced checkpoints) and detection rates (noisy sigmoids) are in ``docs/transitions.md``
(``benchmarks/event_noise_rates.py``). A flat series gives size 0 and no step; fewer than
three finite checkpoints give NaN for both (no noise estimate).

**PCA over steps.** Each checkpoint's values (every non-step dim flattened into one vector,
e.g. a ``[layer, head]`` score map, or per-token losses) is a point; centring over steps and
taking the SVD gives the first ``k`` principal components. The projections of the checkpoints
onto them trace the training trajectory; a sharp turn in the (PC1, PC2) plane marks a phase
change. Features that are NaN at any step are dropped; the sign of each component is fixed so
that its largest-magnitude loading is positive.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from mispec.errors import UserError
from mispec.lazy import xr
from mispec.metrics.builtin.event_noise import MIN_SIZE, lasting_change
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


def _finite_sorted(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(values) & np.isfinite(steps)
    steps, y = np.asarray(steps, float)[ok], np.asarray(values, float)[ok]
    order = np.argsort(steps, kind="stable")
    return steps[order], y[order]


def _is_flat(y: np.ndarray) -> bool:
    return bool(np.ptp(y) <= 1e-12 * max(1.0, float(np.abs(y).max())))


def steepest_step(
    steps: np.ndarray,
    values: np.ndarray,
    *,
    smooth: float = 0.05,
    min_interval: float = 0.05,
    tolerance: float = 0.3,
) -> float:
    """The step of the steepest stretch of one series (steps 1-4 of the module docstring),
    whether or not it is a transition; NaN for a flat series or fewer than two points."""
    steps, y = _finite_sorted(steps, values)
    stretch = steep_stretch(steps, y, smooth=smooth, min_interval=min_interval, tolerance=tolerance)
    return float("nan") if stretch is None else float(steps[stretch[1]])


def steep_stretch(
    steps: np.ndarray, y: np.ndarray, *, smooth: float, min_interval: float, tolerance: float
) -> tuple[int, int] | None:
    """Indices ``(start, end)`` of the steep stretch's first interval (steps 1-4 of the module
    docstring) in ``steps`` / ``y`` (finite, sorted by step); None when flat or too short."""
    if steps.size < 2 or _is_flat(y):
        return None
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
        return None
    sign = np.sign(slope[best])
    while best > 0 and sign * slope[best - 1] >= (1.0 - tolerance) * peak:
        best -= 1
    return int(start[best]), int(end[best])


def transition(
    steps: np.ndarray,
    values: np.ndarray,
    *,
    smooth: float = 0.05,
    min_interval: float = 0.05,
    tolerance: float = 0.3,
) -> tuple[float, float]:
    """``(step, size)`` of one series' steepest stretch: the step (steps 1-4 of the module
    docstring) and its lasting change in units of the series' noise (steps 5-7; 0 for a flat
    series). NaN, NaN for fewer than three finite points."""
    steps, y = _finite_sorted(steps, values)
    if steps.size < 3:
        return float("nan"), float("nan")
    stretch = steep_stretch(steps, y, smooth=smooth, min_interval=min_interval, tolerance=tolerance)
    if stretch is None:
        return float("nan"), 0.0
    first, last = stretch
    return float(steps[last]), lasting_change(steps, y, first, last)["size"]


def _per_cell(series: Any, name: str, value: Any) -> Any:
    """``value(steps, row)`` for every cell of ``series`` but ``step``: a DataArray with the
    series' other dims and coordinates."""
    series = _need_step(series, name).transpose(..., "step")
    steps = np.asarray(series["step"].values, dtype=float)
    rows = np.asarray(series.values, dtype=float).reshape(-1, steps.size)
    out = np.array([value(steps, r) for r in rows], dtype=float).reshape(series.shape[:-1])
    coords = {k: v for k, v in series.coords.items() if "step" not in v.dims and k != "step"}
    return xr.DataArray(out, dims=series.dims[:-1], coords=coords)


def _check_args(name: str, smooth: float, min_interval: float, tolerance: float) -> None:
    if smooth < 0 or min_interval < 0 or not 0 <= tolerance < 1:
        raise UserError(f"{name}: smooth, min_interval >= 0 and 0 <= tolerance < 1")


def _per_cell_of_series(series: tuple[str, ...]) -> tuple[str, ...]:
    return series  # one value per cell of the series (its dims without step)


@metric(dims=_per_cell_of_series, inputs=("series",), reduces="step", units="step", version=3)
def transition_step(
    series: Any,
    smooth: float = 0.05,
    min_interval: float = 0.05,
    tolerance: float = 0.3,
    min_size: float = MIN_SIZE,
) -> Any:
    """Training step of the steepest change of ``series`` per log-step, for every other dim
    (e.g. per (layer, head) for an induction score) — NaN where that change is no transition:
    a lasting jump smaller than ``min_size`` times the series' noise, the larger of its
    checkpoint-to-checkpoint scatter and its wander about the levels before and after
    (``transition_size``; ``min_size: 0`` keeps every steepest change, as before version 2).
    ``smooth``: Gaussian bandwidth in decades of step;
    ``min_interval``: shortest interval in decades; ``tolerance``: how much less steep an
    earlier interval may be and still start the steep stretch (see the module docstring).

    Args:
        smooth: bandwidth of the Gaussian smoothing, in decades of step (0 = off; default 0.05).
        min_interval: shortest interval the slope is measured over, in decades of step (default
            0.05).
        tolerance: how much less steep, as a fraction in [0, 1), an earlier interval may be and
            still start the steep stretch (default 0.3).
        min_size: the least ``|transition_size|`` (the lasting jump over the series' noise) for a
            step to be reported; below it NaN (default 8; 0 keeps every steepest change).
    """
    _check_args("transition_step", smooth, min_interval, tolerance)
    if not min_size >= 0:
        raise UserError(f"transition_step: min_size must be >= 0, got {min_size}")

    def step(steps: np.ndarray, row: np.ndarray) -> float:
        kw = {"smooth": smooth, "min_interval": min_interval, "tolerance": tolerance}
        if min_size == 0:  # every steepest stretch, transition or not
            return steepest_step(steps, row, **kw)
        at, size = transition(steps, row, **kw)
        return at if abs(size) >= min_size else float("nan")

    out = _per_cell(series, "transition_step", step)
    out.attrs = {"units": "step"}
    return out


@metric(dims=_per_cell_of_series, inputs=("series",), reduces="step", units="noise", version=2)
def transition_size(
    series: Any, smooth: float = 0.05, min_interval: float = 0.05, tolerance: float = 0.3
) -> Any:
    """Size of the steepest change of ``series`` (the one ``transition_step`` reports) in units
    of the series' noise, for every other dim: its lasting jump over the noise, signed
    (positive for a rise; measured with one checkpoint on a side too); 0 for a flat series,
    NaN for fewer than three checkpoints. ``transition_step`` is NaN where ``|transition_size| < min_size``; give both
    the same ``smooth`` / ``min_interval`` / ``tolerance`` (see the module docstring).

    Args:
        smooth: bandwidth of the Gaussian smoothing, in decades of step (0 = off; default 0.05).
            Give the same as ``transition_step``.
        min_interval: shortest interval the slope is measured over, in decades of step (default
            0.05). Give the same as ``transition_step``.
        tolerance: how much less steep, as a fraction in [0, 1), an earlier interval may be and
            still start the steep stretch (default 0.3). Give the same as ``transition_step``.
    """
    _check_args("transition_size", smooth, min_interval, tolerance)

    def size(steps: np.ndarray, row: np.ndarray) -> float:
        return transition(
            steps, row, smooth=smooth, min_interval=min_interval, tolerance=tolerance
        )[1]

    out = _per_cell(series, "transition_size", size)
    out.attrs = {"units": "noise"}
    return out


def _pca(data: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Projections ``[row, k]`` of ``data [row, feature]`` onto its first ``k`` principal
    components (signs fixed: each component's largest loading positive), with the explained
    variance and its ratio per component (NaN beyond the rank)."""
    n = data.shape[0]
    proj, var, ratio = np.full((n, k), np.nan), np.full(k, np.nan), np.full(k, np.nan)
    centred = data - data.mean(axis=0)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    r = min(k, s.size)
    signs = np.sign(vt[np.arange(r), np.argmax(np.abs(vt[:r]), axis=1)])
    signs[signs == 0] = 1.0
    proj[:, :r] = u[:, :r] * s[:r] * signs
    total = float((s**2).sum())
    var[:r] = s[:r] ** 2 / max(n - 1, 1)
    ratio[:r] = s[:r] ** 2 / total if total > 0 else np.nan
    return proj, var, ratio


def _check_k(k: int) -> dict[str, str]:
    return {"k": f"k = {k}: keep at least 1 component"} if isinstance(k, int) and k < 1 else {}


@metric(
    dims=("step", "pc"),
    inputs=("series",),
    reduces="step",
    units="projection",
    check=_check_k,
    sized_by={"pc": "k"},
)
def pca_over_steps(series: Any, k: int = 2, fit: Literal["all", "past"] = "all") -> Any:
    """Projections of each checkpoint onto the first ``k`` principal components of the series
    across steps (every non-step dim flattened), dims ``(step, pc)`` with ``pc = 1..k``;
    ``attrs``: ``explained_variance_ratio`` and ``explained_variance`` per component (in the
    results: data variables ``<name>__explained_variance[_ratio]`` over ``(seed, pc)``). Components
    beyond the rank of the data are NaN.

    ``fit: past`` uses no information from the future: the checkpoint at step ``t`` is
    projected onto the components fitted (and centred) on the checkpoints at steps ``<= t``
    only, so its value never changes when later checkpoints are added (each step has its own
    basis, so the trajectory is not one rigid picture; the explained variances are those of
    the last fit, over every step).

    Args:
        k: how many principal components to keep (at least 1): the ``pc`` dim is ``1..k``.
        fit: ``all``: one fit over every step; ``past``: each step projected onto components fitted
            on the steps up to it only (no information from the future).
    """
    if k < 1:
        raise UserError(f"pca_over_steps: k must be >= 1, got {k}")
    if fit not in ("all", "past"):
        raise UserError(f"pca_over_steps: fit must be 'all' or 'past', got {fit!r}")
    series = _need_step(series, "pca_over_steps")
    series = series.transpose("step", ...)
    n_steps = series.sizes["step"]
    data = np.asarray(series.values, dtype=float).reshape(n_steps, -1)  # [step, feature]
    data = data[:, np.all(np.isfinite(data), axis=0)]
    proj = np.full((n_steps, k), np.nan)
    var = np.full(k, np.nan)
    ratio = np.full(k, np.nan)
    if data.shape[1] and n_steps > 1:
        full, var, ratio = _pca(data, k)
        if fit == "all":
            proj = full
        else:
            for i in range(1, n_steps):
                proj[i] = _pca(data[: i + 1], k)[0][i]
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
