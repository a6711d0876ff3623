"""Whole-model snapshots for the PCA of training phases, and the phases of a grokking run.

**Snapshots.** ``logits`` is the model's logits at each prompt's answer position on a fixed
prompt set (``[batch, vocab]``; a finite task's whole table, say) and ``flat_weights`` all (or
some) parameters flattened into one vector (``[param]``). Fed to ``pca_over_steps`` they give
the trajectory of the model through function space or weight space (problem 5.3 of the open
problems: do phases show as turns of that trajectory?); ``pca_over_steps`` with ``fit: past``
fits each step's components on that step and the earlier ones only, so no point of the
trajectory uses information from the future (problem 5.4).

**Phases of grokking** (Nanda et al. 2023): *memorisation* (train loss falls, test loss does
not), *circuit formation* (the generalising circuit forms while train and test accuracy stay
put: restricted loss falls, excluded loss rises) and *cleanup* (weight decay removes the
memorising solution and the test accuracy jumps). ``grokking_phases`` places their ends by a
fixed, documented rule on the train and test accuracy series of one seed:

* memorisation ends at the first checkpoint whose train accuracy is ``>= memorised``
  (default 0.95);
* circuit formation ends (cleanup starts) at the first later checkpoint whose test accuracy
  is ``>= cleanup_start`` (default 0.5: halfway from chance to perfect, where the test
  accuracy's jump is under way);
* cleanup ends at the first later checkpoint whose test accuracy is ``>= grokked`` (default
  0.9).

A phase that never ends within the series is NaN (and so is every later one). The rule reads
accuracies only: on a log schedule the ends are checkpoint steps, as exact as the schedule.

**Only real ends count.** A noisy accuracy touches a threshold without the phase ending (a
test accuracy of 0.46 +- 0.05 "reaches" 0.5 now and then), so each end must also be a crossing
of its threshold beyond the series' noise, by the rule every event detector shares
(``mispec.metrics.builtin.event_noise``, as ``crossing_step``): the accuracy's level before
the end and its level from the end on (medians over log-step) must each lie beyond the
threshold, on its own side, by at least ``min_size / 2`` times the series'
checkpoint-to-checkpoint noise. Otherwise the
end is NaN, and so is every later one. ``grokking_phase_size`` reports, per phase, ``2 *
min(distance before, distance after) / noise`` (NaN where the threshold is never reached or
the end is at the first checkpoint, which has nothing before it to compare).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mispec.errors import UserError
from mispec.lazy import torch, xr
from mispec.metrics.builtin._common import act, answer_positions, weight_tensors
from mispec.metrics.builtin.event_noise import MIN_SIZE, lasting_change
from mispec.metrics.core import metric


@metric(dims=("batch", "vocab"), hooks=("logits",), units="logits")
def logits(acts: Any, prompts: Any) -> Any:
    """The logits at each prompt's answer position (its ``answer_pos`` extra, else its last
    real token), ``[batch, vocab]`` — the model's function on a fixed prompt set. Every
    one-value-per-prompt extra (``answer``, ``train_mask`` …) rides along as a coordinate on
    ``batch``, so whoever reads the result knows each row's answer and split."""
    return answer_logits(acts, prompts)


def answer_logits(acts: Any, prompts: Any) -> Any:
    """The ``logits`` metric's result (see there)."""
    full = act(acts, "logits")  # [batch, pos, vocab]
    pos = answer_positions(prompts)
    values = full[torch.arange(full.shape[0]), pos].double().numpy()
    n = values.shape[0]
    coords = {
        name: ("batch", np.asarray(v))
        for name, v in (getattr(prompts, "extras", {}) or {}).items()
        if np.asarray(v).shape == (n,) and np.asarray(v).dtype.kind in "biuf"
    }
    return xr.DataArray(values, dims=("batch", "vocab"), coords=coords)


@metric(dims=("param",), units="weight")
def flat_weights(bridge: Any, include: list[str] | None = None) -> Any:
    """Every floating-point parameter of the checkpoint (``state_dict`` order; tensors that
    share storage once), flattened and concatenated into one ``param`` vector; ``include``:
    only the parameters whose name starts with one of these prefixes (e.g. ``[embed,
    blocks.0.mlp]``). ``attrs``: the parameter names taken (``parameters``).

    Args:
        include: only the parameters whose name starts with one of these prefixes (e.g. ``[embed,
            blocks.0.mlp]``); ``null``: every floating-point parameter.
    """
    parts, names = [], []
    keep = None if include is None else (lambda name: any(name.startswith(p) for p in include))
    for name, value in weight_tensors(bridge, keep):
        names.append(name)
        parts.append(value.detach().to("cpu", torch.float64).reshape(-1).numpy())
    if not parts:
        raise UserError(f"flat_weights: no parameter name starts with any of {include}")
    return xr.DataArray(np.concatenate(parts), dims=("param",), attrs={"parameters": names})


PHASES = ("memorisation", "circuit_formation", "cleanup")


def _first_at_or_after(steps: np.ndarray, ok: np.ndarray, after: float) -> int | None:
    hits = np.flatnonzero(ok & (steps >= after))
    return int(hits[0]) if hits.size else None


def _end_size(steps: np.ndarray, y: np.ndarray, i: int | None, threshold: float) -> float:
    """``2 * min(distance before, distance after) / noise`` of the end at checkpoint ``i``
    (module docstring); NaN for no end, or one at the first checkpoint."""
    if i is None or i == 0:
        return float("nan")
    change = lasting_change(steps, y, i - 1, i, about="checkpoints")
    below, above = threshold - change["level_before"], change["level_after"] - threshold
    return 2.0 * min(below, above) / change["noise"]


def phase_events(
    steps: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    memorised: float = 0.95,
    cleanup_start: float = 0.5,
    grokked: float = 0.9,
    min_size: float = MIN_SIZE,
) -> tuple[list[float], list[float]]:
    """The end step and the size of each phase (``PHASES``), by the rule of the module
    docstring, on accuracies aligned with ``steps`` (sorted; NaN accuracies never reach a
    threshold)."""
    nan = float("nan")
    ends, sizes = [], []
    after = -np.inf
    for series, threshold in ((train, memorised), (test, cleanup_start), (test, grokked)):
        i = None if np.isnan(after) else _first_at_or_after(steps, series >= threshold, after)
        ok = np.isfinite(series)  # the end's place among the finite accuracies
        size = nan if i is None else _end_size(steps[ok], series[ok], int(ok[:i].sum()), threshold)
        real = i is not None and (min_size == 0 or size >= min_size)
        ends.append(float(steps[i]) if real and i is not None else nan)
        sizes.append(size)
        after = ends[-1]
    return ends, sizes


def phase_ends(
    steps: np.ndarray, train: np.ndarray, test: np.ndarray, **args: float
) -> list[float]:
    """The end step of each phase (``phase_events`` without the sizes)."""
    return phase_events(steps, train, test, **args)[0]


def _aligned(train_accuracy: Any, test_accuracy: Any) -> tuple[np.ndarray, ...]:
    for series in (train_accuracy, test_accuracy):
        if set(series.dims) != {"step"}:
            raise UserError(
                f"grokking_phases reads one accuracy per step (dims (step,)), got {series.dims}"
            )
    train = train_accuracy.sortby("step")
    test = test_accuracy.sortby("step").reindex(step=train["step"])
    steps = np.asarray(train["step"].values, dtype=float)
    return steps, np.asarray(train.values, dtype=float), np.asarray(test.values, dtype=float)


def _check_thresholds(name: str, memorised: float, cleanup_start: float, grokked: float) -> None:
    for arg, v in (
        ("memorised", memorised),
        ("cleanup_start", cleanup_start),
        ("grokked", grokked),
    ):
        if not 0 < v <= 1:
            raise UserError(f"{name}: {arg} must be in (0, 1], got {v}")
    if cleanup_start > grokked:
        raise UserError(f"{name}: cleanup_start must be <= grokked")


def _per_phase(values: list[float], units: str) -> Any:
    return xr.DataArray(
        np.array(values, dtype=float),
        dims=("phase",),
        coords={"phase": np.array(PHASES, dtype=object)},
        attrs={"units": units},
    )


@metric(
    dims=("phase",),
    inputs=("train_accuracy", "test_accuracy"),
    reduces="step",
    units="step",
    version=2,
)
def grokking_phases(
    train_accuracy: Any,
    test_accuracy: Any,
    memorised: float = 0.95,
    cleanup_start: float = 0.5,
    grokked: float = 0.9,
    min_size: float = MIN_SIZE,
) -> Any:
    """The step at which each phase of grokking ends (``phase``: ``memorisation``,
    ``circuit_formation``, ``cleanup``), by the threshold rule of the module docstring on the
    train and test accuracy series; NaN for a phase that does not end, or whose end is no
    more than noise (``grokking_phase_size`` below ``min_size``; ``min_size: 0`` takes every
    first touch of a threshold, as before version 2).

    Args:
        memorised: train accuracy, in (0, 1], that ends memorisation (default 0.95).
        cleanup_start: test accuracy, in (0, 1] and at most ``grokked``, that ends circuit formation
            (cleanup starts; default 0.5).
        grokked: test accuracy, in (0, 1], that ends cleanup (default 0.9).
        min_size: the least size of an end over its series' noise (``grokking_phase_size``) for it
            to count (default 8; 0: every first touch of a threshold).
    """
    _check_thresholds("grokking_phases", memorised, cleanup_start, grokked)
    if isinstance(min_size, bool) or not min_size >= 0:
        raise UserError(f"grokking_phases: min_size must be a number >= 0, got {min_size!r}")
    steps, train, test = _aligned(train_accuracy, test_accuracy)
    ends, _ = phase_events(steps, train, test, memorised, cleanup_start, grokked, min_size)
    return _per_phase(ends, "step")


@metric(
    dims=("phase",),
    inputs=("train_accuracy", "test_accuracy"),
    reduces="step",
    units="noise",
)
def grokking_phase_size(
    train_accuracy: Any,
    test_accuracy: Any,
    memorised: float = 0.95,
    cleanup_start: float = 0.5,
    grokked: float = 0.9,
) -> Any:
    """Per phase, how far beyond its noise the accuracy crosses the threshold that ends it:
    twice the smaller distance of the levels before and after the end from the threshold, over
    the series' noise (module docstring), for the first touch of each threshold after the
    previous phase's first touch; NaN where there is none. ``grokking_phases`` keeps an end
    whose size is at least its ``min_size`` and is NaN from the first that is not; give both
    the same thresholds.

    Args:
        memorised: train accuracy, in (0, 1], that ends memorisation (default 0.95).
        cleanup_start: test accuracy, in (0, 1] and at most ``grokked``, that ends circuit formation
            (cleanup starts; default 0.5).
        grokked: test accuracy, in (0, 1], that ends cleanup (default 0.9).
    """
    _check_thresholds("grokking_phase_size", memorised, cleanup_start, grokked)
    steps, train, test = _aligned(train_accuracy, test_accuracy)
    _, sizes = phase_events(steps, train, test, memorised, cleanup_start, grokked, 0.0)
    return _per_phase(sizes, "noise")
