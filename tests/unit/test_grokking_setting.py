"""The paper's choices a spec can state (issue 28): ``split_method: python_shuffle`` is
Nanda et al.'s train/test split, ``warmup_offset: 0`` their LambdaLR warmup; both leave the
identity of every spec that does not set them as it was."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from mispec.errors import UserError
from mispec.models.training import learning_rate
from mispec.spec.train import TrainSpec
from mispec.tasks.arithmetic import modular_addition, modular_division
from mispec.validation.load import load_spec

SPEC = Path(__file__).resolve().parents[2] / "specs" / "grokking_full.yaml"


def papers_rows(p: int, frac: float, seed: int) -> list[int]:
    """The paper's ``gen_train_test`` written out: shuffle the (i, j) pairs, cut at int()."""
    pairs = [(i, j) for i in range(p) for j in range(p)]
    random.seed(seed)
    random.shuffle(pairs)
    return sorted(i * p + j for i, j in pairs[: int(frac * len(pairs))])


@pytest.mark.parametrize("p,frac,seed", [(113, 0.3, 0), (113, 0.3, 1), (23, 0.5, 7)])
def test_python_shuffle_is_the_papers_split(p, frac, seed):
    task = modular_addition(p, frac, seed, split_method="python_shuffle")
    assert task.train_indices.tolist() == papers_rows(p, frac, seed)
    assert task.train_mask.sum() == int(frac * p * p)


def test_mispecs_own_split_is_unchanged_and_differs_from_the_papers():
    own = modular_addition(113, 0.3, 0)
    assert len(own.train_indices) == 3831  # round(0.3 * 12769), the paper's int() gives 3830
    shared = np.intersect1d(own.train_indices, papers_rows(113, 0.3, 0))
    assert 1000 < len(shared) < 1300  # about 0.3 * 3830 by chance: two unrelated draws
    assert own.describe() == {"task": "modular_addition",
                              "args": {"p": 113, "train_frac": 0.3, "split_seed": 0}}  # fmt: skip
    paper = modular_addition(113, 0.3, 0, split_method="python_shuffle")
    assert paper.describe()["args"]["split_method"] == "python_shuffle"


def test_division_shuffles_its_own_rows():
    task = modular_division(7, 0.5, 3, split_method="python_shuffle")
    rows = list(range(7 * 6))
    random.Random(3).shuffle(rows)
    assert task.train_indices.tolist() == sorted(rows[:21])


def test_an_unknown_split_method_is_a_user_error():
    with pytest.raises(UserError, match="split_method.*permutation, python_shuffle"):
        modular_addition(13, 0.5, 0, split_method="shuffle")


def train(**extra) -> TrainSpec:
    return TrainSpec.model_validate({
        "task": "modular_addition", "steps": 20, "warmup_steps": 10,
        "arch": {"n_layers": 1, "n_heads": 1, "d_model": 8, "d_head": 8},
        "optimizer": {"lr": 1e-3}, **extra,
    })  # fmt: skip


def test_warmup_offset_0_is_lambda_lr_min_u_over_10():
    paper = [learning_rate(train(warmup_offset=0), u) for u in range(12)]
    assert paper == pytest.approx([min(u / 10, 1) * 1e-3 for u in range(12)], rel=1e-12)
    ours = [learning_rate(train(), u) for u in range(12)]
    assert ours == pytest.approx([min((u + 1) / 10, 1) * 1e-3 for u in range(12)], rel=1e-12)


def test_warmup_offset_is_dumped_only_when_it_is_not_the_default():
    assert "warmup_offset" not in train().model_dump()
    assert "warmup_offset" not in train(warmup_offset=1).model_dump()
    assert train(warmup_offset=0).model_dump()["warmup_offset"] == 0
    assert train().model_dump() == train(warmup_offset=1).model_dump()


def test_grokking_full_states_the_papers_split_and_warmup():
    spec = load_spec(SPEC).spec
    model = spec.models["mod113"].train
    assert model.warmup_offset == 0 and model.warmup_steps == 10
    task = modular_addition(**model.task_args)
    assert task.train_indices.tolist() == papers_rows(113, 0.3, 0)
    prompts = spec.prompts["table"].args
    assert prompts == model.task_args  # the metrics' train/test masks are the training split
