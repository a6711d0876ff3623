"""Checkpoint selectors: every form round-trips through YAML and resolves to exact steps."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mispec.errors import CheckpointError
from mispec.sources.trained import TrainedModelSpec
from mispec.spec.selectors import linear_schedule, log_schedule, resolve_selector

TRAIN = {
    "task": "repeated_tokens",
    "arch": {"n_layers": 1, "n_heads": 1, "d_model": 8, "d_head": 8},
    "steps": 1000,
}


@pytest.mark.parametrize(
    "selector,expected",
    [
        ("all", list(range(1001))),
        ("last", [1000]),
        ({"steps": [5, 0, 500]}, [0, 5, 500]),
        ({"every": 250}, [0, 250, 500, 750, 1000]),
        ({"start": 100, "stop": 400, "every": 150}, [100, 250, 400]),
        ({"schedule": "linear", "count": 5}, [0, 250, 500, 750, 1000]),
    ],
)
def test_selector_round_trip(selector, expected):
    model = TrainedModelSpec.model_validate({"train": TRAIN, "checkpoints": selector})
    dumped = model.model_dump(mode="json")["checkpoints"]
    again = TrainedModelSpec.model_validate({"train": TRAIN, "checkpoints": dumped})
    assert again == model
    assert resolve_selector(model.checkpoints, range(1001)) == expected


def test_log_schedule_is_dense_early_and_exact():
    steps = log_schedule(1500, 40)
    assert len(steps) == 40 and steps[0] == 0 and steps[-1] == 1500
    assert steps == sorted(set(steps))
    gaps = [b - a for a, b in zip(steps, steps[1:], strict=False)]
    assert gaps[0] == 1 and gaps[-1] > 100  # more checkpoints early
    assert sum(gaps[-10:]) > 20 * sum(gaps[:10])  # log-spaced: late gaps dwarf early ones
    assert all(b / a < 1.6 for a, b in zip(steps[10:], steps[11:], strict=False))  # no holes


@given(last=st.integers(1, 10**6), count=st.integers(1, 200))
def test_log_and_linear_schedules_have_exactly_count_steps(last, count):
    for fn in (log_schedule, linear_schedule):
        steps = fn(last, count)
        assert steps == sorted(set(steps))
        assert len(steps) == min(count, last + 1)
        assert steps[-1] == last and all(0 <= s <= last for s in steps)


PYTHIA = [0] + [2**i for i in range(10)] + list(range(1000, 143001, 1000))


def test_schedule_over_a_published_list_picks_existing_steps():
    from mispec.spec.selectors import ScheduleSelector

    picked = resolve_selector(ScheduleSelector(schedule="log", count=20), PYTHIA)
    assert len(picked) == 20 and set(picked) <= set(PYTHIA)
    assert picked[0] == 0 and picked[-1] == 143000
    assert len(PYTHIA) == 154


def test_unknown_step_lists_the_nearest():
    from mispec.spec.selectors import StepsSelector

    with pytest.raises(
        CheckpointError, match=r"step 1500 is not available; nearest: \[512, 1000, 2000\]"
    ):
        resolve_selector(StepsSelector(steps=[1500]), PYTHIA)
