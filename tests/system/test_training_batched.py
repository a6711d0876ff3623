"""Seeds of one ``train:`` model trained together (stacked parameters under vmap) save what
one-at-a-time training saves: every checkpoint file's metadata, and its weights and optimizer
state within 1e-6 (on CPU they are bitwise equal: the largest difference measured is 0)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import xarray as xr

import mispec
from mispec.errors import TrainingDivergedError
from mispec.models import checkpoints as ckpt
from mispec.models.runs import native_config, run_dir
from mispec.models.training import ensure_trained
from mispec.models.training_batched import SeedJob, ensure_trained_together
from mispec.models.weight_targets import select
from mispec.spec.train import ArchSpec, TrainSpec
from tests.conftest import TOY_SPEC
from tests.reliability_helpers import cli

TOL = 1e-6
ATTN_LN = ArchSpec(n_layers=2, n_heads=2, d_model=16, d_head=8, attn_only=True, normalization="LN")


def spec(**kw) -> TrainSpec:
    base = dict(
        task="repeated_tokens",
        task_args={"vocab": 16, "half_len": 4},
        arch=ATTN_LN,
        steps=24,
        batch_size=8,
        optimizer={"name": "adamw", "lr": 3e-3, "weight_decay": 0.1},
        grad_clip=0.5,
        warmup_steps=5,
    )
    return TrainSpec(**{**base, **kw})


def largest_difference(train: TrainSpec, seeds, steps, a: Path, b: Path) -> float:
    """The largest |difference| between the two stores' checkpoint tensors (weights and
    optimizer state) of every seed and step; their metadata must be equal but the checksum."""
    worst = 0.0
    for seed in seeds:
        for step in steps:
            for kind in ("model", "optim"):
                name = f"{kind}_{step}.safetensors"
                ta, ma = ckpt.read_tensors(run_dir(train, seed, a) / name)
                tb, mb = ckpt.read_tensors(run_dir(train, seed, b) / name)
                ma.pop(ckpt.CHECKSUM_KEY), mb.pop(ckpt.CHECKSUM_KEY)
                ma.pop(ckpt.METADATA_CHECKSUM_KEY), mb.pop(ckpt.METADATA_CHECKSUM_KEY)
                assert ma == mb, (seed, step, kind)
                assert ta.keys() == tb.keys(), (seed, step, kind)
                for k in ta:
                    assert ta[k].dtype == tb[k].dtype and ta[k].shape == tb[k].shape, k
                    d = (ta[k].double() - tb[k].double()).abs().max().item()
                    worst = max(worst, d)
    return worst


def hold_for(train: TrainSpec, heads=(), params=()):
    return select(list(heads), list(params), native_config(train, 0))[0]


CASES = {
    # the default study's kind of model, with clipping, weight decay and warmup on
    "attn-LN-adamw-clip-wd": spec(),
    # MLP, RMS norm, rotary positions, SGD with momentum and weight decay, float64 loss
    "mlp-RMS-rotary-sgd": spec(
        arch=ArchSpec(
            n_layers=1,
            n_heads=2,
            d_model=16,
            d_head=8,
            d_mlp=32,
            act_fn="gelu",
            normalization="RMS",
            positional_embedding="rotary",
        ),
        optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.01},
        loss_dtype="float64",
    ),  # fmt: skip
    # Adam (coupled weight decay), LNPre, one head frozen (its own values in every seed)
    "LNPre-adam-freeze": spec(
        arch=ArchSpec(n_layers=1, n_heads=2, d_model=16, d_head=8, normalization="LNPre"),
        optimizer={"name": "adam", "lr": 3e-3, "weight_decay": 0.01},
        freeze={"heads": [[0, 1]]},
    ),
}


# where a GPU is present the comparison runs there too (batched kernels may round otherwise)
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", list(CASES))
def test_seeds_together_equal_one_at_a_time(case, device, tmp_path):
    train = CASES[case].model_copy(update={"device": device})
    hold = hold_for(train, heads=[[0, 1]]) if train.freeze else None
    seeds, steps = [0, 1, 2], [0, 1, 10, 24]
    alone = [
        ensure_trained("t", train, s, steps, tmp_path / "a", progress=False, hold=hold)
        for s in seeds
    ]
    jobs = [SeedJob(s, steps, hold=hold) for s in seeds]
    together = ensure_trained_together("t", train, jobs, tmp_path / "b", progress=False)
    assert [together[s] for s in seeds] == alone
    assert largest_difference(train, seeds, steps, tmp_path / "a", tmp_path / "b") <= TOL
    if hold is not None:  # the frozen head kept each seed's own step-0 values
        w0 = ckpt.read_tensors(run_dir(train, 1, tmp_path / "b") / "model_0.safetensors")[0]
        w24 = ckpt.read_tensors(run_dir(train, 1, tmp_path / "b") / "model_24.safetensors")[0]
        key = "blocks.0.attn.q.weight"
        assert torch.equal(w0[key][8:], w24[key][8:]) and not torch.equal(w0[key], w24[key])


def test_resumed_seeds_train_together_from_a_shared_step(tmp_path):
    """Raising the steps resumes every seed from its last saved step, optimizer state (Adam's
    step count and moments) stacked; a seed saved elsewhere trains alone. Both equal a
    straight one-at-a-time run."""
    train, seeds = spec(), [0, 1, 2]
    for s in seeds:
        ensure_trained("t", train, s, [0, 12, 24], tmp_path / "a", progress=False)
    b = tmp_path / "b"
    first = ensure_trained_together("t", train, [SeedJob(s, [0, 12]) for s in seeds[:2]], b)
    assert [r.saved for r in first.values()] == [[0, 12], [0, 12]]
    ensure_trained("t", train, 2, [0, 6], b, progress=False)  # seed 2 stopped elsewhere
    jobs = [SeedJob(s, [0, 12, 24]) for s in seeds]
    again = ensure_trained_together("t", train, jobs, b, progress=False)
    assert [(again[s].resumed_from, again[s].saved) for s in seeds] == [
        (12, [24]),
        (12, [24]),
        (6, [12, 24]),
    ]
    assert largest_difference(train, seeds, [0, 12, 24], tmp_path / "a", b) <= TOL


@pytest.mark.parametrize("from_step", [0, 10])
def test_seeds_whose_batches_differ_in_shape_train_apart(from_step, tmp_path, monkeypatch):
    """A plugin task gives odd seeds shorter batches from update ``from_step`` on: seeds whose
    first batches differ train in separate stacks (from 0), or the stack splits where they
    start to differ (from 10) and each seed goes on alone; all equal one at a time."""
    train = spec(
        task="tests.helpers.ragged_task:ragged",
        task_args={"length": 5, "vocab": 8, "from_step": from_step},
    )
    seeds, steps = [0, 1, 2], [0, 10, 24]
    for s in seeds:
        ensure_trained("t", train, s, steps, tmp_path / "a", progress=False)
    calls = count_stacked_runs(monkeypatch)
    jobs = [SeedJob(s, steps) for s in seeds]
    together = ensure_trained_together("t", train, jobs, tmp_path / "b", progress=False)
    assert calls == ([["t", 2]] if from_step == 0 else [["t", 3]])  # seeds 0 and 2 / all
    assert [together[s].steps_trained for s in seeds] == [24, 24, 24]
    assert largest_difference(train, seeds, steps, tmp_path / "a", tmp_path / "b") <= TOL


def test_a_diverging_run_fails_as_alone_and_saves_nothing_non_finite(tmp_path):
    wild = spec(optimizer={"name": "adamw", "lr": 10, "weight_decay": 100}, grad_clip=None)
    with pytest.raises(TrainingDivergedError) as alone:
        ensure_trained("t", wild, 0, [0, 10, 24], tmp_path / "a", progress=False)
    jobs = [SeedJob(s, [0, 10, 24]) for s in (0, 1)]
    with pytest.raises(TrainingDivergedError) as together:
        ensure_trained_together("t", wild, jobs, tmp_path / "b", progress=False)
    assert str(together.value) == str(alone.value)  # seed 0's, at the same step
    for seed in (0, 1):
        for path in run_dir(wild, seed, tmp_path / "b").glob("*.safetensors"):
            assert all(torch.isfinite(t).all() for t in ckpt.read_tensors(path)[0].values())


THREE_SEEDS = TOY_SPEC.replace("seeds: [0]", "seeds: [0, 1, 2]")
LIVE = THREE_SEEDS.replace(
    "    checkpoints: {steps: [0, 20, 40]}\n",
    "    checkpoints: {steps: [0, 20, 40]}\n    live: [loss]\n",
)


def _profile(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\nkind: local\ntorch_threads: 1\nprocesses: 1\n{body}")
    return path


def count_stacked_runs(monkeypatch) -> list[list]:
    """A list that records [model, seeds] of every stacked training run from now on."""
    import mispec.models.training_batched as tb

    calls: list[list] = []
    stacked = tb.train_stacked

    def counted(seats, **kw):
        calls.append([seats[0].run.name, len(seats)])
        return stacked(seats, **kw)

    monkeypatch.setattr(tb, "train_stacked", counted)
    return calls


def test_a_run_with_batch_seeds_equals_the_default_run(tmp_path, monkeypatch):
    """Through ``mispec.run``: the checkpoints and results of a profile with ``batch_seeds:
    3`` equal the default profile's (one at a time on CPU); each seed's live metric is
    computed from its own weights inside the stacked loop."""
    calls = count_stacked_runs(monkeypatch)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "spec.yaml").write_text(LIVE)
    one = mispec.run(tmp_path / "a" / "spec.yaml", progress=False)  # auto: one at a time on CPU
    assert calls == []
    batched = _profile(tmp_path, "batched", "batch_seeds: 3\n")
    three = mispec.run(tmp_path / "b" / "spec.yaml", executor=str(batched), progress=False)
    assert calls == [["toy", 3]]  # the three seeds trained in one stacked run
    # the work done is the same; how many activations a group found already cached depends
    # on when the other lanes' writes landed (activations_read / _written vary with load)
    work = ("forward_passes", "cells_computed", "reductions_computed", "training_steps")
    assert [one.counters[k] for k in work] == [three.counters[k] for k in work]
    assert one.counters["training_steps"] == 120
    assert three.counters["forward_passes"] == 2 * 9  # live loss 3 x 3, then the rest 3 x 3
    assert store_difference(tmp_path / "a" / ".mispec", tmp_path / "b" / ".mispec") <= TOL
    xr.testing.assert_allclose(
        one.open()["toy"].to_dataset(), three.open()["toy"].to_dataset(), rtol=0, atol=TOL
    )


def store_difference(a: Path, b: Path) -> float:
    """The largest |difference| between two stores' checkpoint tensors, file by file: the
    same files, with the same metadata but the checksum."""
    files = sorted(p.relative_to(a) for p in (a / "checkpoints").rglob("*.safetensors"))
    assert files and files == sorted(
        p.relative_to(b) for p in (b / "checkpoints").rglob("*.safetensors")
    )
    worst = 0.0
    for rel in files:
        (ta, ma), (tb, mb) = ckpt.read_tensors(a / rel), ckpt.read_tensors(b / rel)
        ma.pop(ckpt.CHECKSUM_KEY), mb.pop(ckpt.CHECKSUM_KEY)
        ma.pop(ckpt.METADATA_CHECKSUM_KEY), mb.pop(ckpt.METADATA_CHECKSUM_KEY)
        assert ma == mb and ta.keys() == tb.keys(), rel
        for k in ta:
            worst = max(worst, (ta[k].double() - tb[k].double()).abs().max().item())
    return worst


def test_fine_tuned_seeds_train_together_from_their_parents(tmp_path, monkeypatch):
    """``init_from`` with the parent's optimizer state carried, two seeds: each child starts
    from its own parent's checkpoint and Adam state, stacked; a run with ``batch_seeds: 2``
    equals the default run (parents and children)."""
    from tests.system.test_training_control import SPEC as FINETUNE

    text = FINETUNE.replace("seeds: [0]", "seeds: [0, 1]").replace(
        "init_from: {model: base, step: 7}", "init_from: {model: base, step: 7, optimizer: carry}"
    )
    assert "optimizer: carry" in text
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "spec.yaml").write_text(text)
    one = mispec.run(tmp_path / "a" / "spec.yaml", progress=False)
    stacked = count_stacked_runs(monkeypatch)
    batched = _profile(tmp_path, "batched", "batch_seeds: 2\n")
    two = mispec.run(tmp_path / "b" / "spec.yaml", executor=str(batched), progress=False)
    assert stacked == [["base", 2], ["tuned", 2]]  # each model's two seeds in one stack
    assert one.counters == two.counters and one.counters["training_steps"] == 2 * (12 + 6)
    assert store_difference(tmp_path / "a" / ".mispec", tmp_path / "b" / ".mispec") <= TOL
    for name in ("base", "tuned"):
        a, b = one.open()[name].to_dataset(), two.open()[name].to_dataset()
        xr.testing.assert_allclose(a, b, rtol=0, atol=TOL)


def test_a_bad_batch_seeds_value_is_a_located_error(tmp_path):
    (tmp_path / "spec.yaml").write_text(THREE_SEEDS)
    bad = _profile(tmp_path, "bad", "batch_seeds: 0\n")
    res = cli("run", str(tmp_path / "spec.yaml"), "--executor", str(bad), cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "bad.yaml:5:" in res.stderr and "batch_seeds" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / ".mispec" / "checkpoints").exists()


def test_a_seed_that_diverges_does_not_stop_the_others(tmp_path):
    """Seed 0 starts from weights scaled by 1e30 (its loss is not finite from the first
    update): it stops with the error it raises alone, while seed 1, in the same stack, trains
    to the end and saves what it saves alone."""
    from mispec.models.init_weights import Start

    def blown(fresh):
        return Start({k: v * 1e30 for k, v in fresh.items()})

    train, steps = spec(), [0, 10, 24]
    with pytest.raises(TrainingDivergedError) as alone:
        ensure_trained("t", train, 0, steps, tmp_path / "a", progress=False, start=blown)
    ensure_trained("t", train, 1, steps, tmp_path / "a", progress=False)
    jobs = [SeedJob(0, steps, start=blown), SeedJob(1, steps)]
    with pytest.raises(TrainingDivergedError) as together:
        ensure_trained_together("t", train, jobs, tmp_path / "b", progress=False)
    assert str(together.value) == str(alone.value) and "seed 0" in str(alone.value)
    assert largest_difference(train, [1], steps, tmp_path / "a", tmp_path / "b") <= TOL
    saved = sorted(p.name for p in run_dir(train, 0, tmp_path / "b").glob("model_*"))
    assert saved == sorted(p.name for p in run_dir(train, 0, tmp_path / "a").glob("model_*"))
