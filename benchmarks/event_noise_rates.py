"""False-positive and detection rates of the event detectors' noise criterion
(``mispec.metrics.builtin.event_noise``), on seeded synthetic series.

Null series (no event): flat, white noise ``N(0, 1)``, Gaussian random walks (``cumsum`` of
``N(0, 1)``). Real events: a sigmoid in log-step ``A / (1 + exp(-(x - x0) / 0.1))`` plus
``N(0, 1)`` noise, with ``A`` the signal-to-noise ratio and ``x0`` drawn uniformly between
30% and 70% of the log-step range. Schedules: 35 and 40 log-spaced checkpoints over 1000
steps, 100 over 10000 (``mispec.spec.selectors.log_schedule``).

Per detector (``transition_step``, ``crossing_step`` at the half-way level, the test-accuracy
events of ``grokking_phases`` with the series mapped to [0, 1], and the early-warning scores,
which exist only where the target has a crossing), the share of series on which it reports an
event; for sigmoids also the share whose reported step lies within 0.15 decades of ``x0``.

Run: ``python -m benchmarks.event_noise_rates [n_series]`` (default 2000 per cell); the
numbers in ``docs/transitions.md`` are its output at 2000.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np

from mispec.metrics.builtin.crossing import crossing
from mispec.metrics.builtin.phases import phase_ends
from mispec.metrics.builtin.reductions import transition
from mispec.spec.selectors import log_schedule

SCHEDULES = {"log35/1000": (1000, 35), "log40/1000": (1000, 40), "log100/10000": (10000, 100)}
SNRS = (4, 8, 16, 32)
WIDTH = 0.1  # decades


def schedule(name: str) -> np.ndarray:
    last, count = SCHEDULES[name]
    return np.asarray(log_schedule(last, count, 0), dtype=float)


def null_series(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "flat":
        return np.full(n, 0.05)
    if kind == "white":
        return rng.normal(size=n)
    if kind == "walk":
        return np.cumsum(rng.normal(size=n))
    raise ValueError(kind)


def sigmoid_series(
    steps: np.ndarray, snr: float, rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    x = np.log10(steps + 1.0)
    x0 = x[0] + rng.uniform(0.3, 0.7) * (x[-1] - x[0])
    return snr / (1.0 + np.exp(-(x - x0) / WIDTH)) + rng.normal(size=x.size), float(x0)


def _to_accuracy(y: np.ndarray) -> np.ndarray:
    """A series mapped to [0, 1] (as an accuracy), for grokking_phases."""
    span = float(np.ptp(y))
    return (y - y.min()) / span if span > 0 else np.zeros_like(y)


def detectors() -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    """Each detector's reported step (NaN: no event) on ``(steps, y)``."""

    def grok(steps: np.ndarray, y: np.ndarray) -> float:
        # test accuracy's end of circuit formation (>= 0.5), after a train accuracy memorised
        # at the third checkpoint (each side of an event needs two checkpoints)
        if not np.ptp(y) > 0:
            return float("nan")  # a flat accuracy ends no phase
        acc = _to_accuracy(y)
        train = np.r_[0.0, 0.0, np.ones(acc.size - 2)]
        return phase_ends(steps, train, acc)[1]

    return {
        "transition_step": lambda steps, y: (
            transition(steps, y)[0] if abs(transition(steps, y)[1]) >= 8 else float("nan")
        ),
        "crossing_step": lambda steps, y: crossing(steps, y)["step"],
        "grokking_phases": grok,
    }


def rates(n_series: int = 2000, seed: int = 0) -> dict[str, dict[str, float]]:
    """``{detector: {cell: rate}}``; cells ``<kind> <schedule>`` for the null series and
    ``sigmoid snr=<A> <schedule>`` / ``... on time`` for the sigmoids."""
    rng = np.random.default_rng(seed)
    found: dict[str, dict[str, float]] = {name: {} for name in detectors()}
    for sched in SCHEDULES:
        steps = schedule(sched)
        for kind in ("flat", "white", "walk"):
            ys = [null_series(kind, steps.size, rng) for _ in range(n_series)]
            for name, fn in detectors().items():
                hits = [np.isfinite(fn(steps, y)) for y in ys]
                found[name][f"{kind} {sched}"] = float(np.mean(hits))
        for snr in SNRS:
            draws = [sigmoid_series(steps, snr, rng) for _ in range(n_series)]
            for name, fn in detectors().items():
                at = np.array([fn(steps, y) for y, _ in draws])
                x0 = np.array([x0 for _, x0 in draws])
                ok = np.isfinite(at)
                near = ok & (np.abs(np.log10(np.where(ok, at, 0.0) + 1.0) - x0) <= 0.15)
                found[name][f"sigmoid snr={snr} {sched}"] = float(ok.mean())
                found[name][f"sigmoid snr={snr} {sched} on time"] = float(near.mean())
    return found


def main(argv: list[str]) -> None:
    n = int(argv[0]) if argv else 2000
    table = rates(n)
    cells = list(next(iter(table.values())))
    print("| series | " + " | ".join(table) + " |")
    print("| --- |" + " --- |" * len(table))
    for cell in cells:
        print(f"| {cell} | " + " | ".join(f"{table[d][cell]:.3f}" for d in table) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
