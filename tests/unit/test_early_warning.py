"""The early-warning rule: causal (each checkpoint's alarm reads no later checkpoint), quiet
on noise, on when a measure accelerates, and scored against the target's crossing as its
docstring says."""

from __future__ import annotations

import numpy as np
import xarray as xr

from mispec.metrics.builtin.early_warning import (
    alarms,
    false_alarms,
    score,
    warning_lead,
    warning_step,
)
from mispec.spec.selectors import log_schedule

STEPS = np.asarray(log_schedule(1000, 40), dtype=float)


def test_an_alarm_reads_no_later_checkpoint():
    rng = np.random.default_rng(0)
    for _ in range(15):
        p = np.cumsum(rng.normal(size=STEPS.size))
        full = alarms(STEPS, p, window=2, threshold=1.0)
        for i in range(STEPS.size):
            changed = p.copy()
            changed[i + 1 :] = rng.normal(scale=100.0, size=STEPS.size - i - 1)
            assert alarms(STEPS, changed, window=2, threshold=1.0)[: i + 1].tolist() == (
                full[: i + 1].tolist()
            )
            # and the alarm at i is what the history up to i alone gives
            assert alarms(STEPS[: i + 1], p[: i + 1], window=2, threshold=1.0)[i] == full[i]


def test_white_noise_rarely_alarms():
    """Under white noise the acceleration over its standard error is about N(0, 1): at the
    default threshold of 4 an alarm is rare (the noise estimate from few checkpoints is itself
    noisy, so more than the Gaussian 3e-5 per checkpoint; measured, not assumed)."""
    rng = np.random.default_rng(1)
    rate = np.mean([alarms(STEPS, rng.normal(size=STEPS.size)).mean() for _ in range(500)])
    assert rate < 0.01, rate


def test_an_accelerating_measure_warns_before_the_target_crosses():
    rng = np.random.default_rng(2)
    x = np.log10(STEPS + 1)
    onset = np.log10(301)  # the progress measure starts climbing at step 300 ...
    progress = np.where(x > onset, (x - onset) * 5.0, 0.0) + rng.normal(scale=0.01, size=x.size)
    target = 1 / (1 + np.exp(-(STEPS - 600) / 30))  # ... the target crosses half-way at ~600
    alarm = alarms(STEPS, progress, direction="up")
    first = STEPS[np.argmax(alarm)]
    assert alarm.any() and 300 < first < 600
    out = score(STEPS, alarm, target)
    crossing = STEPS[np.argmax(target >= target[0] + (target[-1] - target[0]) / 2)]
    assert out["transition"] == crossing
    # the warning is the episode on just before the crossing: it started at or after `first`
    assert first <= out["warning_step"] < crossing
    assert out["warning_lead"] == crossing - out["warning_step"]
    assert not alarms(STEPS, progress, direction="down").any()  # it only rises


def test_scoring_counts_episodes_that_went_quiet_as_false_alarms():
    steps = np.arange(10, dtype=float)
    target = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 1], dtype=float)  # crosses at step 7
    alarm = np.array([0, 1, 1, 0, 1, 0, 1, 1, 0, 1], dtype=bool)
    assert score(steps, alarm, target) == {
        "transition": 7.0,
        "warning_step": 6.0,
        "warning_lead": 1.0,
        "false_alarms": 2.0,  # steps 1-2 and 4; the alarm at 9 is after the transition
    }
    missed = score(steps, np.array([0, 1, 0, 0, 0, 0, 0, 0, 1, 1], dtype=bool), target)
    assert np.isnan(missed["warning_step"]) and np.isnan(missed["warning_lead"])
    assert missed["false_alarms"] == 1.0


def test_the_metrics_read_the_series_and_agree_with_the_rule():
    rng = np.random.default_rng(3)
    x = np.log10(STEPS + 1)
    onset = np.log10(301)
    raw = np.where(x > onset, (x - onset) * 5.0, 0.0) + rng.normal(scale=0.01, size=x.size)
    progress = xr.DataArray(raw, dims=("step",), coords={"step": STEPS.astype(int)})
    target = xr.DataArray(
        1 / (1 + np.exp(-(STEPS - 600) / 30)), dims=("step",), coords={"step": STEPS.astype(int)}
    )
    expected = score(STEPS, alarms(STEPS, raw, direction="up"), target.values)
    args = {"direction": "up"}
    assert float(warning_step(progress, target, **args)) == expected["warning_step"]
    assert float(warning_lead(progress, target, **args)) == expected["warning_lead"]
    assert float(false_alarms(progress, target, **args)) == expected["false_alarms"]


def test_log_count_reads_only_the_schedule_not_refined_checkpoints():
    """Checkpoints added near the crossing (as refine: does, knowing the transition) change
    nothing when the alarm reads only the log schedule; the crossing itself uses them all."""
    rng = np.random.default_rng(4)
    base = np.asarray(log_schedule(1000, 20), dtype=float)
    dense = np.union1d(base, np.arange(560, 620, 3, dtype=float))

    def series(steps):
        x = np.log10(steps + 1)
        onset = np.log10(301)
        raw = np.where(x > onset, (x - onset) * 5.0, 0.0)
        noise = rng.normal(scale=0.01, size=steps.size)
        coords = {"step": steps.astype(int)}
        return (
            xr.DataArray(raw + noise, dims=("step",), coords=coords),
            xr.DataArray(1 / (1 + np.exp(-(steps - 600) / 30)), dims=("step",), coords=coords),
        )

    p_base, t_base = series(base)
    p_dense, t_dense = series(dense)
    p_dense.loc[{"step": base.astype(int)}] = p_base.values  # the same values at the schedule
    args = {"direction": "up", "log_count": 20}
    assert float(warning_step(p_dense, t_dense, **args)) == float(
        warning_step(p_base, t_base, **args)
    )
    assert float(false_alarms(p_dense, t_dense, **args)) == float(
        false_alarms(p_base, t_base, **args)
    )
    lead = float(warning_lead(p_dense, t_dense, **args))
    crossing = dense[
        np.argmax(
            t_dense.values >= t_dense.values[0] + (t_dense.values[-1] - t_dense.values[0]) / 2
        )
    ]
    assert lead == crossing - float(warning_step(p_base, t_base, **args))
