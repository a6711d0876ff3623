"""transition_step on synthetic phase transitions (acceptance: between the first checkpoint
above 10% of the rise and the first above 50%), no step on flat or noise-only series, the
size beside it (transition_size) against a hand computation; pca_over_steps against numpy's
eigen-decomposition of the covariance matrix."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from mispec.errors import UserError
from mispec.metrics.builtin.reductions import (
    pca_over_steps,
    steepest_step,
    transition_size,
    transition_step,
)

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


def series_of(values: np.ndarray, steps: np.ndarray) -> xr.DataArray:
    return xr.DataArray(values, dims=("step",), coords={"step": steps})


# The default study's strongest induction score per checkpoint (induction_max, rounded to 4
# decimals) of seeds 0 and 1: transitions at steps 534 and 624.
DEFAULT_STEPS = np.array(
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 14, 17, 20, 23, 27, 32, 37, 43, 51, 59, 69, 81, 95]
    + [111, 130, 152, 178, 208, 243, 285, 333, 390, 456, 534, 624, 731, 855, 1000]
)
INDUCTION_MAX = {
    0: [0.0473, 0.0474, 0.0475, 0.0475, 0.0476, 0.0476, 0.0477, 0.0476, 0.0475, 0.0474]
    + [0.0471, 0.047, 0.047, 0.047, 0.047, 0.047, 0.047, 0.047, 0.047, 0.047, 0.047, 0.047]
    + [0.047, 0.0469, 0.0469, 0.047, 0.0472, 0.0473, 0.0476, 0.0479, 0.0477, 0.047, 0.0425]
    + [0.0392, 0.0438, 0.3936, 0.6829, 0.7141, 0.7144, 0.7247],
    1: [0.0496, 0.0493, 0.0492, 0.049, 0.0488, 0.0486, 0.0483, 0.048, 0.0478, 0.0475, 0.047]
    + [0.0468, 0.0465, 0.0462, 0.046, 0.0458, 0.0457, 0.0457, 0.0456, 0.0456, 0.0456, 0.0455]
    + [0.0455, 0.0456, 0.0455, 0.0456, 0.0457, 0.0459, 0.0462, 0.0463, 0.0466, 0.0467, 0.0471]
    + [0.0408, 0.0378, 0.0377, 0.2738, 0.6199, 0.7023, 0.7008],
}


def hand_size(steps: np.ndarray, y: np.ndarray, first: int, last: int) -> float:
    """The documented size, written out: (level after - level before) / noise, each level the
    median over log-step (the minimiser of the weighted absolute deviation), the noise the
    larger of the second-difference scatter and the wander about the two levels."""
    x = np.log10(steps + 1.0)
    w = np.r_[x[1] - x[0], x[2:] - x[:-2], x[-1] - x[-2]] / 2

    def wmedian(v, wv):
        return v[np.argmin([np.sum(wv * np.abs(v - m)) for m in v])]

    lo, hi = slice(0, first + 1), slice(last, None)
    before, after = wmedian(y[lo], w[lo]), wmedian(y[hi], w[hi])
    spread = np.r_[np.abs(y[lo] - before), np.abs(y[hi] - after)]
    wander = 1.4826 * wmedian(spread, np.r_[w[lo], w[hi]])
    second = y[2:] - 2 * y[1:-1] + y[:-2]
    noise = max(1.4826 * np.median(np.abs(second)) / np.sqrt(6), wander)
    return (after - before) / noise


def test_a_real_induction_run_has_its_transition():
    for seed, expected in ((0, 534), (1, 624)):
        series = series_of(np.array(INDUCTION_MAX[seed]), DEFAULT_STEPS)
        assert float(transition_step(series)) == expected
        size = float(transition_size(series))
        assert size > 300  # a jump of ~0.6 over its noise (the wander of the later rise)
        # the steep stretch starts one checkpoint before the reported step here
        last = list(DEFAULT_STEPS).index(expected)
        y = np.array(INDUCTION_MAX[seed])
        assert size == pytest.approx(hand_size(DEFAULT_STEPS, y, last - 1, last), rel=1e-12)


@pytest.mark.parametrize(
    "grid", [LOG_GRID, PYTHIA_GRID, DEFAULT_STEPS], ids=["log40", "pythia", "default"]
)
def test_pure_noise_has_no_transition(grid):
    """White noise (several seeds, two scales): no step, and a size far below min_size."""
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        for scale in (1e-3, 1.0):
            noise = series_of(0.5 + scale * rng.normal(size=grid.size), grid)
            assert np.isnan(float(transition_step(noise))), seed
            assert not abs(float(transition_size(noise))) >= 8, seed  # NaN at an edge
            # while the steepest stretch alone (the old answer) always names a step
            assert np.isfinite(float(transition_step(noise, min_size=0)))


def test_flat_series_has_no_transition_and_size_zero():
    flat = series_of(np.full(LOG_GRID.size, 0.3), LOG_GRID)
    assert np.isnan(float(transition_step(flat))) and float(transition_size(flat)) == 0.0
    short = series_of(np.array([0.1, 0.9]), np.array([0, 10]))  # no noise estimate
    assert np.isnan(float(transition_step(short))) and np.isnan(float(transition_size(short)))


@pytest.mark.parametrize("grid", [LOG_GRID, PYTHIA_GRID], ids=["log40", "pythia"])
def test_clean_and_noisy_sigmoids_are_transitions(grid):
    """Every noiseless sigmoid, and every one with noise of 2% of its rise, is a transition
    at its steepest step (which lands in the window: the tests above), sized about rise / noise
    (falling ones with a negative size)."""
    rng = np.random.default_rng(7)
    top = np.log10(grid.max())
    for _ in range(100):
        centre, width = rng.uniform(1.0, top - 0.8), rng.uniform(0.03, 0.2)
        clean = sigmoid(grid, centre, width)
        for y in (clean, clean + rng.normal(0, 0.02 * 0.89, grid.size)):
            for sign in (1, -1):
                series = series_of(sign * y, grid)
                step = float(transition_step(series))
                assert step == steepest_step(grid, sign * y), (centre, width)
                assert sign * float(transition_size(series)) >= 15


def test_a_step_needs_two_checkpoints_on_each_side_and_min_size_is_the_threshold():
    steps = LOG_GRID
    rng = np.random.default_rng(3)
    y = 0.01 * rng.normal(size=steps.size)
    spike = y.copy()
    spike[-1] += 1.0  # one outlier at the last checkpoint: no lasting jump
    assert np.isnan(float(transition_step(series_of(spike, steps))))
    jump = y.copy()
    jump[-5:] += 0.06  # 6 noise units over the last 5 checkpoints
    series = series_of(jump, steps)
    size = float(transition_size(series))
    assert 3 < size < 8 and np.isnan(float(transition_step(series)))
    assert float(transition_step(series, min_size=3)) == steps[-5]
    with pytest.raises(UserError, match="min_size"):
        transition_step(series, min_size=-1)


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


def test_the_run_summary_says_when_there_is_no_transition():
    from mispec.results.summary import summarize

    def var(values, fn):
        return xr.DataArray(
            values, dims=("seed",), coords={"seed": [0, 1]}, attrs={"metric_fn": fn}
        )

    ds = xr.Dataset(
        {
            "transition": var([534.0, np.nan], "transition_step"),
            "transition_size": var([13603.2, 2.5], "transition_size"),
        }
    )
    tree = xr.DataTree(children={"toy": xr.DataTree(ds)})
    assert summarize(tree) == [
        "toy seed 0: transition = 534",
        "toy seed 1: transition = none (no transition)",
        "toy seed 0: transition_size = 1.36e+04",
        "toy seed 1: transition_size = 2.5",
    ]
