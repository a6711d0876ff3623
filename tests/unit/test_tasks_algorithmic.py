"""The algorithmic-task library: each task's format against an independent Python
computation, its train / test split, and the per-digit metrics against direct loops."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
import torch

from mispec.errors import UserError
from mispec.metrics.builtin.digits import digit_accuracy, digit_loss
from mispec.tasks import make_task
from mispec.tasks.base import rng_for


def check_split(task, rows: int) -> None:
    """Train and test partition the table; full batch = the training rows; the prompt set is
    the whole table with the same ``train_mask``."""
    table = task.eval_batch()
    train = np.asarray(table.extras["train_mask"])
    assert table.tokens.shape[0] == rows
    assert train.sum() == round(task.train_frac * rows)
    full = task.batch(0, 7, None)
    np.testing.assert_array_equal(full.tokens, table.tokens[train])
    drawn = task.batch(3, 5, 64)
    assert np.asarray(drawn.extras["train_mask"]).all()  # sampled rows are training rows
    prompts = task.prompt_set(None, 9)
    np.testing.assert_array_equal(prompts.tokens, table.tokens)
    np.testing.assert_array_equal(prompts.extras["train_mask"], train)
    other = make_task(task.name, {**task.args, "split_seed": task.split_seed + 1})
    assert not np.array_equal(other.eval_batch().extras["train_mask"], train)


def test_min_max_answers_and_split():
    task = make_task("min_max", {"max_value": 9, "op": "both", "train_frac": 0.4})
    t = task.eval_batch()
    for row in t.tokens.tolist():
        op, a, b, eq, c = row
        assert eq == task.eq_token
        assert c == (min(a, b) if op == task.min_token else max(a, b))
    assert Counter(t.tokens[:, 0].tolist()) == {task.min_token: 81, task.max_token: 81}
    assert t.loss_mask.sum(axis=1).tolist() == [1] * 162 and t.loss_mask[:, 3].all()
    check_split(task, 162)
    only = make_task("min_max", {"max_value": 5, "op": "max"}).eval_batch()
    assert only.tokens.shape == (25, 5) and (only.tokens[:, 4] == only.tokens[:, 1:3].max(1)).all()


def test_recurrence_is_fibonacci_mod_p():
    task = make_task("recurrence", {"p": 7, "length": 6, "a": 2, "b": 3})
    t = task.eval_batch()
    for x0, x1 in itertools.product(range(7), repeat=2):
        seq = [x0, x1]
        while len(seq) < 6:
            seq.append((2 * seq[-1] + 3 * seq[-2]) % 7)
        assert t.tokens[x0 * 7 + x1].tolist() == seq
    assert t.loss_mask[:, 0].sum() == 0 and t.loss_mask[:, 1:].all()
    check_split(task, 49)


def test_permutation_composes_in_s_n():
    task = make_task("permutation", {"n": 3, "train_frac": 0.5})
    perms = list(itertools.permutations(range(3)))
    t = task.eval_batch()
    for g, h, eq, c in t.tokens.tolist():
        assert eq == 6
        assert perms[c] == tuple(perms[g][perms[h][i]] for i in range(3))
    assert not np.array_equal(t.tokens[:, 3].reshape(6, 6), t.tokens[:, 3].reshape(6, 6).T)
    check_split(task, 36)


def is_balanced(s: list[int]) -> bool:
    depth = 0
    for ch in s:
        depth += 1 if ch == 0 else -1
        if depth < 0:
            return False
    return depth == 0


def test_bracket_matching_labels_and_balance():
    task = make_task("bracket_matching", {"length": 6})
    b = task.sample(rng_for(0, 0, 0), 4000)
    strings = b.tokens[:, 1:7]
    balanced = np.array([is_balanced(s) for s in strings.tolist()])
    np.testing.assert_array_equal(b.tokens[:, 8], np.where(balanced, 4, 3))
    np.testing.assert_array_equal(b.extras["answer"], b.tokens[:, 8])
    assert 0.46 < balanced.mean() < 0.54
    assert ((strings == 0).sum(1) == 3).all()  # counting brackets never decides
    words = Counter(tuple(s) for s in strings[balanced].tolist())
    assert len(words) == 5  # the five Dyck words of length 6, about equally often
    share = np.array(list(words.values())) / balanced.sum()
    assert share.min() > 0.16 and share.max() < 0.24
    assert b.loss_mask.sum() == 4000 and b.loss_mask[:, 7].all()
    with pytest.raises(UserError, match="even"):
        make_task("bracket_matching", {"length": 5})


def test_previous_token_answers_are_the_previous_input():
    task = make_task("previous_token", {"vocab": 7, "length": 5})
    b = task.sample(rng_for(0, 1, 2), 50)
    x, y = b.tokens[:, 1::2], b.tokens[:, 2::2]
    np.testing.assert_array_equal(y[:, 1:], x[:, :-1])
    assert (y[:, 0] == 7).all() and (b.tokens[:, 0] == 7).all()
    scored = np.flatnonzero(b.loss_mask[0]) + 1  # positions of the predicted tokens
    assert scored.tolist() == [4, 6, 8, 10]  # y_2 … y_5


@pytest.mark.parametrize(
    ("order", "subtract"), [("normal", False), ("reversed", False), ("normal", True)]
)
def test_multi_digit_addition_format_and_extras(order, subtract):
    task = make_task("multi_digit_addition", {"n_digits": 4, "order": order, "subtract": subtract})
    b = task.sample(rng_for(0, 0, 1), 300)
    m = 4 if subtract else 5
    for row, pos, digits, carry in zip(
        b.tokens.tolist(),
        b.extras["digit_pos"],
        b.extras["answer_digits"],
        b.extras["carry"],
        strict=True,
    ):
        a = int("".join(map(str, row[:4])))
        c = int("".join(map(str, row[5:9])))
        assert row[4] == (11 if subtract else 10) and row[9] == 12
        answer = row[10:]
        text = "".join(map(str, answer if order == "normal" else answer[::-1]))
        assert int(text) == (a - c if subtract else a + c)
        assert (a >= c) if subtract else True
        assert [row[p + 1] for p in pos] == list(digits)
        assert list(digits) == [int(text[::-1][j]) for j in range(m)]
        # carry / borrow into place j, by long addition / subtraction
        expected, flag = [False], False
        for j in range(m - 1):
            da, dc = (a // 10**j) % 10, (c // 10**j) % 10
            flag = (da - dc - flag < 0) if subtract else (da + dc + flag >= 10)
            expected.append(bool(flag))
        assert list(carry) == expected
    assert b.loss_mask.sum(1).tolist() == [m] * 300


def test_per_digit_loss_and_accuracy_equal_a_loop():
    task = make_task("multi_digit_addition", {"n_digits": 2})
    prompts = task.prompt_set(20, 0)
    rng = np.random.default_rng(0)
    logprob = torch.tensor(-rng.uniform(0, 3, size=(20, prompts.seq_len - 1)))
    correct = torch.tensor(rng.integers(0, 2, size=(20, prompts.seq_len - 1)).astype(float))
    pos, carry = prompts.extras["digit_pos"], prompts.extras["carry"]
    loss = digit_loss({"next_logprob": logprob}, prompts)
    acc = digit_accuracy({"next_correct": correct}, prompts, carry="with")
    assert loss["digit"].values.tolist() == [0, 1, 2]
    for j in range(3):
        expected = np.mean([-float(logprob[i, pos[i, j]]) for i in range(20)])
        assert float(loss.sel(digit=j)) == pytest.approx(expected, abs=1e-6)
        with_carry = [float(correct[i, pos[i, j]]) for i in range(20) if carry[i, j]]
        if with_carry:
            assert float(acc.sel(digit=j)) == pytest.approx(np.mean(with_carry), abs=1e-6)
        else:
            assert np.isnan(float(acc.sel(digit=j)))  # the units never receive a carry
    assert np.isnan(float(acc.sel(digit=0)))


def test_variable_length_sorting_pads_and_masks_only_the_sorted_values():
    task = make_task("sorting", {"length": 5, "max_value": 12, "min_length": 2})
    b = task.sample(rng_for(0, 0, 3), 200)
    lengths = b.extras["length"]
    assert set(lengths.tolist()) == {2, 3, 4, 5}
    for row, ln, mask, real in zip(
        b.tokens.tolist(), lengths, b.loss_mask, b.extras["attention_mask"], strict=True
    ):
        assert row[0] == 12 and row[ln + 1] == 13
        assert row[ln + 2 : 2 * ln + 2] == sorted(row[1 : ln + 1])
        assert all(t == 14 for t in row[2 * ln + 2 :])
        assert np.flatnonzero(mask).tolist() == list(range(ln + 1, 2 * ln + 1))
        assert real.sum() == 2 * ln + 2
    assert task.d_vocab == 15
    fixed = make_task("sorting", {"length": 5, "max_value": 12})
    assert fixed.describe()["args"] == {"length": 5, "max_value": 12, "distinct": True}
    assert fixed.d_vocab == 14 and "attention_mask" not in fixed.sample(rng_for(0, 0, 0), 2).extras
