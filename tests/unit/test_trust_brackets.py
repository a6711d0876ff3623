"""bracket_matching cannot be solved by a cheap shortcut (issue 26, item 15): every string,
balanced or not, has as many '(' as ')', starts with '(' and ends with ')', so reading the
first and last bracket, or counting, is right on about half of the strings; the labels agree
with an independent checker; the classes are balanced; the data version is in the identity."""

from __future__ import annotations

import numpy as np
import pytest

from mispec.errors import UserError
from mispec.planning.resolve import prompt_identity
from mispec.spec.metrics import PromptSpec
from mispec.tasks import make_task
from mispec.tasks.base import rng_for

N = 2000
BAND = 0.04  # ~3.5 standard errors of an accuracy of 0.5 on 2000 strings (0.011)


def checker(brackets: list[int]) -> bool:
    """Balanced by the textbook stack rule, written apart from the task's code."""
    stack = []
    for b in brackets:
        if b == 0:
            stack.append(b)
        elif not stack:
            return False
        else:
            stack.pop()
    return not stack


def draw(length: int, seed: int = 0):
    task = make_task("bracket_matching", {"length": length})
    b = task.sample(rng_for(0, seed, 0), N)
    strings = b.tokens[:, 1 : length + 1]
    truth = np.array([checker(s) for s in strings.tolist()])
    return b, strings, truth


@pytest.mark.parametrize("length", [6, 10, 12, 20])
def test_shortcuts_are_at_chance_and_labels_are_right(length):
    b, strings, truth = draw(length)
    np.testing.assert_array_equal(b.extras["answer"], np.where(truth, 4, 3))
    np.testing.assert_array_equal(b.tokens[:, length + 2], b.extras["answer"])
    assert abs(truth.mean() - 0.5) < BAND  # balanced classes
    first_last = (strings[:, 0] == 0) & (strings[:, -1] == 1)
    counts_equal = (strings == 0).sum(1) == (strings == 1).sum(1)
    for name, says_balanced in (("first/last", first_last), ("counting", counts_equal)):
        accuracy = float((says_balanced == truth).mean())
        assert abs(accuracy - 0.5) < BAND, (name, length, accuracy)  # was 0.933 at length 10
    # the only thing that tells them apart: the running depth dips below 0 inside the string
    depth = np.cumsum(np.where(strings == 0, 1, -1), axis=1)
    np.testing.assert_array_equal(depth.min(1) >= 0, truth)


def test_deterministic_and_both_classes_vary():
    a, strings, truth = draw(12, seed=3)
    b, _, _ = draw(12, seed=3)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert len({tuple(s) for s in strings[~truth].tolist()}) > 50
    assert len({tuple(s) for s in strings[truth].tolist()}) > 50


def test_too_short_lengths_are_refused():
    for length in (2, 4):
        with pytest.raises(UserError, match="at least 6"):
            make_task("bracket_matching", {"length": length})


def test_the_data_version_changes_the_identities(tmp_path):
    task = make_task("bracket_matching", {"length": 12})
    assert task.describe() == {
        "task": "bracket_matching",
        "args": {"length": 12},
        "data_version": 2,
    }
    # an unchanged task keeps its identity (no data_version key)
    assert make_task("previous_token", {}).describe() == {
        "task": "previous_token",
        "args": make_task("previous_token", {}).args,
    }
    from mispec.hashing import content_key

    spec = PromptSpec(generator="bracket_matching", args={"n": 8, "length": 12}, seed=1)
    old = content_key("generator", "bracket_matching", spec.args, 1, spec.prepend_bos)
    assert prompt_identity(spec, tmp_path) != old
    same = PromptSpec(generator="previous_token", args={"n": 8}, seed=1)
    assert prompt_identity(same, tmp_path) == content_key(
        "generator", "previous_token", same.args, 1, same.prepend_bos
    )
