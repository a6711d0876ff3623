"""Checkpoint selectors: which training steps a model entry reads (``checkpoints:``), and
their resolution into concrete steps. Pure functions; no I/O."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, Tag, model_validator

from mispec.errors import CheckpointError
from mispec.spec.fields import MAX_STEP, Strict


class StepsSelector(Strict):
    """Explicit training steps: ``{steps: [0, 100, 1000]}``."""

    steps: Annotated[list[Annotated[int, Field(ge=0, le=MAX_STEP)]], Field(min_length=1)] = Field(
        description="the training steps to read, e.g. [0, 100, 1000]"
    )


class RangeSelector(Strict):
    """Every N steps: ``{every: 100}`` or ``{start: 0, stop: 1000, every: 50}`` (stop inclusive)."""

    every: Annotated[int, Field(gt=0, le=MAX_STEP)] = Field(description="read every N-th step")
    start: Annotated[int, Field(ge=0, le=MAX_STEP)] = Field(
        default=0, description="first step (default 0)"
    )
    stop: Annotated[int, Field(ge=0, le=MAX_STEP)] | None = Field(
        default=None, description="last step, inclusive (default: the last one there is)"
    )

    @model_validator(mode="after")
    def _order(self) -> RangeSelector:
        if self.stop is not None and self.stop < self.start:
            raise ValueError(f"stop ({self.stop}) is before start ({self.start})")
        return self


class ScheduleSelector(Strict):
    """``count`` checkpoints spaced on a schedule: ``{schedule: log, count: 40}``.

    ``log`` takes step 0 and log-spaced steps up to the last one (more early, where
    training dynamics happen); ``linear`` spaces them evenly.
    """

    schedule: Literal["log", "linear"] = Field(
        description="log: more checkpoints early (step 0, then log-spaced); linear: evenly spaced"
    )
    count: Annotated[int, Field(gt=0, le=100_000)] = Field(description="how many checkpoints")
    start: Annotated[int, Field(ge=0, le=MAX_STEP)] = Field(
        default=0, description="first step (default 0)"
    )
    stop: Annotated[int, Field(ge=0, le=MAX_STEP)] | None = Field(
        default=None, description="last step (default: the last one there is)"
    )


def _selector_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return type(value).__name__
    if isinstance(value, str):
        return "name"
    if isinstance(value, dict):
        if "steps" in value:
            return "StepsSelector"
        if "schedule" in value or "count" in value:
            return "ScheduleSelector"
        if "every" in value:
            return "RangeSelector"
    return None


Selector = Annotated[
    Annotated[Literal["all", "last"], Tag("name")]
    | Annotated[StepsSelector, Tag("StepsSelector")]
    | Annotated[RangeSelector, Tag("RangeSelector")]
    | Annotated[ScheduleSelector, Tag("ScheduleSelector")],
    Discriminator(
        _selector_kind,
        custom_error_type="selector",
        custom_error_message="expected 'all', 'last', {steps: [...]}, {every: N}, "
        "{start: A, stop: B, every: N} or {schedule: log|linear, count: N}",
    ),
]


DEFAULT_TRAIN_SELECTOR = ScheduleSelector(schedule="log", count=32)


def log_schedule(last: int, count: int, start: int = 0) -> list[int]:
    """``count`` distinct steps from ``start`` to ``last`` (both included), log-spaced:
    dense early, sparse late. Deterministic, no floating-point surprises at the ends."""
    if count <= 0:
        raise ValueError("count must be positive")
    span = last - start
    if count >= span + 1:
        return list(range(start, last + 1))
    if count == 1:
        return [last]
    # Grow the number of geometric points until rounding leaves `count` distinct steps.
    n = count
    while True:
        pts = {start}
        for i in range(n - 1):
            offset = math.exp(math.log(span) * i / (n - 2)) if n > 2 else span
            pts.add(start + min(span, int(round(offset))))
        pts.add(last)
        if len(pts) >= count or n > 100 * count:
            break
        n += 1
    steps = sorted(pts)
    while len(steps) > count:  # trim the densest early duplicates of rounding
        gaps = [(steps[i + 1] - steps[i - 1], i) for i in range(1, len(steps) - 1)]
        steps.pop(min(gaps)[1])
    return steps


def linear_schedule(last: int, count: int, start: int = 0) -> list[int]:
    if count >= last - start + 1:
        return list(range(start, last + 1))
    if count == 1:
        return [last]
    return sorted({start + round(i * (last - start) / (count - 1)) for i in range(count)})


def nearest(step: int, available: Sequence[int], k: int = 3) -> list[int]:
    return sorted(sorted(available, key=lambda s: (abs(s - step), s))[:k])


def check_step(step: int, available: Sequence[int], what: str) -> None:
    """``CheckpointError`` naming the nearest available steps when ``step`` is not one."""
    if step not in set(available):
        raise CheckpointError(
            f"{what}: step {step} is not available; nearest: {nearest(step, available)}"
        )


def resolve_selector(
    selector: Selector, available: Sequence[int], *, where: str = "checkpoints"
) -> list[int]:
    """The sorted steps a selector picks out of the ``available`` ones.

    Raises ``CheckpointError`` naming the nearest available steps when a step is not there,
    or when a schedule asks for more checkpoints than exist.
    """
    avail = sorted(set(available))
    if not avail:
        raise CheckpointError(f"{where}: no checkpoints are available")
    last = avail[-1]
    if selector == "all":
        return avail
    if selector == "last":
        return [last]
    if isinstance(selector, StepsSelector):
        missing = [s for s in selector.steps if s not in set(avail)]
        if missing:
            s = missing[0]
            raise CheckpointError(
                f"{where}: step {s} is not available; nearest: {nearest(s, avail)}"
                + (f" ({len(missing)} missing in all)" if len(missing) > 1 else "")
            )
        return sorted(set(selector.steps))
    if isinstance(selector, RangeSelector):
        stop = last if selector.stop is None else selector.stop
        if selector.start > last:
            raise CheckpointError(f"{where}: start {selector.start} is after the last step {last}")
        wanted = range(selector.start, stop + 1, selector.every)
        picked = [s for s in wanted if _has(avail, s)]
        if not picked:
            raise CheckpointError(
                f"{where}: no available step in range(start={selector.start}, "
                f"stop={stop}, every={selector.every}); available: {_summary(avail)}"
            )
        return picked
    if isinstance(selector, ScheduleSelector):
        lo = selector.start
        hi = last if selector.stop is None else selector.stop
        pool = [s for s in avail if lo <= s <= hi]
        if selector.count > len(pool):
            raise CheckpointError(
                f"{where}: asks for {selector.count} checkpoints but only {len(pool)} exist "
                f"between steps {lo} and {hi}"
            )
        if len(pool) == hi - lo + 1:  # every step exists (a model mispec trains)
            fn = log_schedule if selector.schedule == "log" else linear_schedule
            return fn(hi, selector.count, lo)
        return _pick_from_pool(pool, selector)
    raise TypeError(f"unknown selector {selector!r}")


def _has(sorted_steps: list[int], step: int) -> bool:
    i = bisect.bisect_left(sorted_steps, step)
    return i < len(sorted_steps) and sorted_steps[i] == step


def _pick_from_pool(pool: list[int], selector: ScheduleSelector) -> list[int]:
    """Schedule over a sparse published list: the nearest available step to each target."""
    lo, hi = pool[0], pool[-1]
    fn = log_schedule if selector.schedule == "log" else linear_schedule
    n = selector.count
    while True:
        targets = fn(hi, min(n, hi - lo + 1), lo)
        picked = sorted({nearest(t, pool, 1)[0] for t in targets})
        if len(picked) >= selector.count or n >= len(pool) * 4 or n >= hi - lo + 1:
            break
        n += 1
    if len(picked) < selector.count:  # fill from the pool, evenly
        rest = [s for s in pool if s not in set(picked)]
        picked = sorted(picked + rest[: selector.count - len(picked)])
    return picked[: selector.count] if len(picked) > selector.count else picked


def _summary(avail: list[int]) -> str:
    if len(avail) <= 8:
        return str(avail)
    return f"{len(avail)} steps from {avail[0]} to {avail[-1]}"
