"""Algorithmic tasks: layouts, masks, determinism, the registry."""

from __future__ import annotations

import numpy as np
import pytest

from mispec.errors import UserError
from mispec.registry import UnknownNameError
from mispec.spec.train import ArchSpec, TrainSpec
from mispec.tasks import TASKS, make_task, task_for


def test_registry_has_builtins_and_did_you_mean():
    assert {"repeated_tokens", "modular_addition", "sorting", "toy_ioi"} <= set(TASKS.names())
    with pytest.raises(UnknownNameError, match="did you mean 'sorting'"):
        TASKS.get("sortng")


def test_task_for_uses_task_args_and_rejects_bad_ones():
    arch = ArchSpec(n_layers=1, n_heads=1, d_model=8, d_head=8)
    task = task_for(
        TrainSpec(task="repeated_tokens", task_args={"half_len": 5}, arch=arch, steps=1)
    )
    assert (task.d_vocab, task.n_ctx) == (64, 11)
    with pytest.raises(UserError, match="bad task_args"):
        task_for(TrainSpec(task="repeated_tokens", task_args={"halflen": 5}, arch=arch, steps=1))
    with pytest.raises(UserError, match="must be an integer"):
        make_task("repeated_tokens", {"vocab": 1})


def test_repeated_tokens_layout():
    task = make_task("repeated_tokens", {"vocab": 16, "half_len": 6})
    b = task.batch(seed=3, step=7, batch_size=5)
    assert b.tokens.shape == (5, 13) and b.tokens.dtype == np.int64
    assert (b.tokens[:, 0] == 0).all()  # BOS = 0
    assert ((b.tokens[:, 1:] >= 1) & (b.tokens[:, 1:] < 16)).all()
    assert (b.tokens[:, 1:7] == b.tokens[:, 7:]).all()
    # predictions 6..11 (each predicting a repeated token) are scored
    assert b.loss_mask.shape == (5, 12)
    assert (b.loss_mask[:, 6:]).all() and not b.loss_mask[:, :6].any()


def test_batches_depend_only_on_seed_and_step():
    task = make_task("repeated_tokens")
    a = task.batch(0, 10, 8).tokens
    assert (a == make_task("repeated_tokens").batch(0, 10, 8).tokens).all()
    assert not (a == task.batch(0, 11, 8).tokens).all()
    assert not (a == task.batch(1, 10, 8).tokens).all()
    _ = task.batch(0, 3, 8)  # order of calls does not matter
    assert (a == task.batch(0, 10, 8).tokens).all()
    # prompts come from another stream than training
    assert not (task.prompt_set(8, 0).tokens == task.batch(0, 0, 8).tokens).all()


def test_modular_addition_table_and_split():
    task = make_task("modular_addition", {"p": 7, "train_frac": 0.5, "split_seed": 1})
    assert (task.d_vocab, task.n_ctx, task.has_bos) == (8, 4, False)
    table = task.eval_batch()
    a, b, eq, c = table.tokens.T
    assert (eq == 7).all() and ((a + b) % 7 == c).all()
    assert (table.tokens[3 * 7 + 5, :2] == [3, 5]).all()  # row-major
    assert table.loss_mask.shape == (49, 3) and table.loss_mask[:, 2].all()
    assert table.loss_mask[:, :2].sum() == 0
    assert task.train_mask.sum() == round(0.5 * 49)
    full = task.batch(0, 0, None)  # full batch = the training split, every step
    assert (full.tokens == table.tokens[task.train_mask]).all()
    assert (task.batch(5, 99, None).tokens == full.tokens).all()
    sampled = task.batch(0, 0, 16)
    assert task.train_mask[sampled.tokens[:, 0] * 7 + sampled.tokens[:, 1]].all()
    other = make_task("modular_addition", {"p": 7, "train_frac": 0.5, "split_seed": 2})
    assert not (other.train_mask == task.train_mask).all()


def test_full_batch_needs_a_finite_task():
    with pytest.raises(UserError, match="batch_size"):
        make_task("repeated_tokens").batch(0, 0, None)


def test_sorting_layout():
    task = make_task("sorting", {"length": 4, "max_value": 10})
    b = task.batch(0, 0, 32)
    assert b.tokens.shape == (32, 10)
    assert (b.tokens[:, 0] == 10).all() and (b.tokens[:, 5] == 11).all()
    assert (np.sort(b.tokens[:, 1:5], axis=1) == b.tokens[:, 6:]).all()
    assert all(len(set(row)) == 4 for row in b.tokens[:, 1:5])  # distinct
    assert b.loss_mask[:, 5:].all() and not b.loss_mask[:, :5].any()
    with pytest.raises(UserError):
        make_task("sorting", {"length": 12, "max_value": 10})


def test_toy_ioi_rule():
    task = make_task("toy_ioi", {"n_names": 8})
    b = task.batch(0, 0, 400)
    bos, names, mid, y = b.tokens[:, 0], b.tokens[:, 1:4], b.tokens[:, 4], b.tokens[:, 5]
    assert (bos == 8).all() and (mid == 9).all() and b.loss_mask[:, 4].all()
    n_abc = 0
    for row, ans in zip(names, y, strict=True):
        if len(set(row)) == 3:
            n_abc += 1
            assert ans == row[2]
        else:
            assert row[2] in row[:2] and ans == ({*row[:2]} - {row[2]}).pop()
    assert 120 < n_abc < 280  # about half the data has three distinct names

    ps = task.prompt_set(50, seed=1)
    clean, corrupt = ps.tokens, ps.extras["corrupt_tokens"]
    assert (clean[:, 3] == ps.extras["wrong_answer"]).all()  # S2 = subject
    assert (clean[:, 5] == ps.extras["answer"]).all()
    assert (clean[:, :3] == corrupt[:, :3]).all() and (clean[:, 3] != corrupt[:, 3]).all()
    assert all(len(set(r)) == 3 for r in corrupt[:, 1:4])
    assert (ps.extras["answer_pos"] == 4).all()
