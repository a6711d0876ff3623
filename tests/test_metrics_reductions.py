"""transition_step on synthetic phase transitions (acceptance: between the first checkpoint
above 10% of the rise and the first above 50%); pca_over_steps against numpy's eigen-
decomposition of the covariance matrix."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from mispec.errors import UserError
from mispec.metrics.builtin.reductions import pca_over_steps, steepest_step, transition_step

LOG_GRID = np.unique(np.r_[0, np.round(np.logspace(0, 4, 40))])  # a log checkpoint schedule
PYTHIA_GRID = np.r_[0, 2 ** np.arange(10), np.arange(1000, 143_001, 1000)]


def sigmoid(steps: np.ndarray, centre: float, width: float, low=0.04, high=0.93) -> np.ndarray:
    """A rise from ``low`` to ``high`` centred at ``log10(step+1) = centre`` (width in decades)."""
    x = np.log10(steps + 1.0)
    return low + (high - low) / (1 + np.exp(-(x - centre) / width))


def window(steps: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    """(first step above 10% of the range, first step above 50%) of the noiseless curve."""
    lo, hi = clean.min(), clean.max()
    first = [steps[np.argmax(clean > lo + f * (hi - lo))] for f in (0.1, 0.5)]
    return float(first[0]), float(first[1])


def test_induction_like_curve_lands_in_the_window():
    """The DESIGN's toy: induction score 0.04 -> 0.93 between steps ~100 and ~200."""
    steps = LOG_GRID[LOG_GRID <= 1500]
    clean = sigmoid(steps, np.log10(150), 0.06)
    series = xr.DataArray(clean, dims=("step",), coords={"step": steps})
    got = float(transition_step(series))
    lo, hi = window(steps, clean)
    assert lo <= got <= hi and 100 <= got <= 200


@pytest.mark.parametrize("grid", [LOG_GRID, PYTHIA_GRID], ids=["log40", "pythia"])
def test_noiseless_sigmoids_always_land_in_the_window(grid):
    rng = np.random.default_rng(0)
    top = np.log10(grid.max())
    for _ in range(200):
        centre, width = rng.uniform(1.0, top - 0.8), rng.uniform(0.03, 0.2)
        clean = sigmoid(grid, centre, width)
        lo, hi = window(grid, clean)
        assert lo <= steepest_step(grid, clean) <= hi, (centre, width)
        # a falling curve (a loss) is the same transition
        assert lo <= steepest_step(grid, 1 - clean) <= hi


@pytest.mark.parametrize("grid", [LOG_GRID, PYTHIA_GRID], ids=["log40", "pythia"])
def test_noisy_sigmoids_land_in_the_window(grid):
    """Noise of 2% of the rise: the window holds for at least 95% of random curves (on the
    log grid a transition centred just below a checkpoint can still come out one late)."""
    rng = np.random.default_rng(1)
    top = np.log10(grid.max())
    hits, n = 0, 300
    for _ in range(n):
        centre, width = rng.uniform(1.0, top - 0.8), rng.uniform(0.03, 0.2)
        clean = sigmoid(grid, centre, width)
        noisy = clean + rng.normal(0, 0.02 * 0.89, grid.size)
        lo, hi = window(grid, clean)
        hits += lo <= steepest_step(grid, noisy) <= hi
    assert hits / n >= 0.95


def test_without_smoothing_a_late_linear_schedule_is_dominated_by_noise():
    """Why ``smooth`` / ``min_interval`` exist: Pythia's every-1000 checkpoints are 0.003
    decades apart late in training, so raw slopes there are mostly noise."""
    rng = np.random.default_rng(2)
    clean = sigmoid(PYTHIA_GRID, 2.0, 0.1)
    noisy = clean + rng.normal(0, 0.02, PYTHIA_GRID.size)
    lo, hi = window(PYTHIA_GRID, clean)
    assert lo <= steepest_step(PYTHIA_GRID, noisy) <= hi
    raw = steepest_step(PYTHIA_GRID, noisy, smooth=0, min_interval=0, tolerance=0)
    assert raw > 1000


def test_per_other_dim_nan_and_flat():
    steps = LOG_GRID[:30]
    heads = np.stack([sigmoid(steps, c, 0.05) for c in (1.0, 1.5, 2.0)])  # [head, step]
    heads[1, 5] = np.nan  # a missing checkpoint is skipped
    flat = np.full_like(steps, 0.3)
    data = np.stack([heads, np.stack([flat, flat, flat])])  # [layer, head, step]
    series = xr.DataArray(
        data, dims=("layer", "head", "step"), coords={"step": steps, "layer": [0, 1]}
    )
    out = transition_step(series.transpose("step", "layer", "head"))
    assert out.dims == ("layer", "head") and list(out["layer"].values) == [0, 1]
    for h, c in enumerate((1.0, 1.5, 2.0)):
        lo, hi = window(steps, sigmoid(steps, c, 0.05))
        assert lo <= float(out[0, h]) <= hi
    assert np.all(np.isnan(out[1]))  # flat: no transition
    with pytest.raises(UserError, match="step"):
        transition_step(xr.DataArray(np.ones(3), dims=("pos",)))


def numpy_pca(data: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Projections and explained-variance ratios from the covariance eigen-decomposition."""
    centred = data - data.mean(0)
    cov = np.cov(centred, rowvar=False)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1]
    vals, vecs = vals[order], vecs[:, order]
    return centred @ vecs[:, :k], vals[:k] / vals.sum()


def test_pca_over_steps_matches_numpy():
    rng = np.random.default_rng(3)
    steps = np.array([0, 1, 2, 4, 8, 16, 32, 64, 128, 256])
    data = rng.normal(size=(steps.size, 3, 2)) + np.linspace(0, 5, steps.size)[:, None, None]
    series = xr.DataArray(data, dims=("step", "layer", "head"), coords={"step": steps})
    out = pca_over_steps(series.transpose("layer", "step", "head"), k=3)
    assert out.dims == ("step", "pc") and list(out["pc"].values) == [1, 2, 3]
    np.testing.assert_array_equal(out["step"].values, steps)
    proj, ratio = numpy_pca(data.reshape(steps.size, -1), 3)
    # components are defined up to sign
    np.testing.assert_allclose(np.abs(out.values), np.abs(proj), atol=1e-9)
    np.testing.assert_allclose(out.attrs["explained_variance_ratio"], ratio, rtol=1e-9)
    for c in range(3):  # same axis, same or opposite direction
        dot = out.values[:, c] @ proj[:, c]
        assert abs(abs(dot) - (proj[:, c] ** 2).sum()) < 1e-6


def test_pca_drops_nan_features_and_pads_missing_components():
    steps = np.arange(4)
    data = np.stack([steps * 1.0, steps * 2.0, np.full(4, np.nan)], axis=1)  # rank 1
    series = xr.DataArray(data, dims=("step", "component"), coords={"step": steps})
    out = pca_over_steps(series, k=5)
    assert out.attrs["n_features"] == 2
    assert out.attrs["explained_variance_ratio"][0] == pytest.approx(1.0)
    assert np.all(np.isnan(out.values[:, 4]))  # only min(steps, features) = 2 components exist
    # a turn in the trajectory: first component follows the (monotone) direction of change
    assert np.all(np.diff(out.values[:, 0]) > 0) or np.all(np.diff(out.values[:, 0]) < 0)
