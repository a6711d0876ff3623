"""Sweep points of one architecture trained stacked (``batch_seeds``: one vmapped forward and
backward pass, each point with its own optimizer settings, clipping, ``freeze``, loss dtype and
data) save what training each point alone saves: on CPU the largest difference of any weight or
optimizer-state entry is 0. Points whose models compute another forward train apart."""

from __future__ import annotations

import pytest
import torch
import xarray as xr

import mispec
from mispec.models.runs import native_config
from mispec.models.training import ensure_trained
from mispec.models.training_batched import SeedJob, ensure_runs_trained_together, stack_signature
from mispec.models.weight_targets import select
from mispec.spec.train import ArchSpec, TrainSpec
from tests.system.test_training_batched import (
    DEVICES,
    TOL,
    _profile,
    count_stacked_runs,
    largest_difference,
    store_difference,
)

ATTN_LN = ArchSpec(n_layers=2, n_heads=2, d_model=16, d_head=8, attn_only=True, normalization="LN")


def point(**kw) -> TrainSpec:
    base = dict(
        task="repeated_tokens",
        task_args={"vocab": 16, "half_len": 4},
        arch=ATTN_LN,
        steps=24,
        batch_size=8,
        optimizer={"name": "adamw", "lr": 3e-3, "weight_decay": 0.1},
    )
    return TrainSpec(**{**base, **kw})


# one architecture, five training settings: what a sweep over the train: block varies
POINTS = {
    "lr3e-3_wd0.1_clip_warmup": point(grad_clip=0.5, warmup_steps=5),
    "lr1e-3_wd0": point(optimizer={"name": "adamw", "lr": 1e-3, "weight_decay": 0.0}),
    "adam_freeze_float64": point(
        optimizer={"name": "adam", "lr": 3e-3, "weight_decay": 0.01},
        freeze={"heads": [[0, 1]]},
        loss_dtype="float64",
    ),
    "sgd_momentum": point(optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9}),
    "betas_warmup_offset0": point(
        optimizer={"name": "adamw", "lr": 2e-3, "weight_decay": 1.0, "betas": [0.9, 0.98]},
        warmup_steps=10,
        warmup_offset=0,
    ),
}
# another forward (4 heads): never in the same stack as the others
OTHER_ARCH = point(arch=ArchSpec(n_layers=2, n_heads=4, d_model=16, d_head=4, attn_only=True))


def hold_of(train: TrainSpec):
    if train.freeze is None:
        return None
    cfg = native_config(train, 0)
    return select(list(train.freeze.heads), list(train.freeze.params), cfg)[0]


@pytest.mark.parametrize("device", DEVICES)  # on a GPU too, where one is present
def test_points_with_their_own_settings_stack_and_equal_training_alone(
    device, tmp_path, monkeypatch
):
    calls = count_stacked_runs(monkeypatch)
    steps = [0, 1, 10, 24]
    on = {name: t.model_copy(update={"device": device}) for name, t in POINTS.items()}
    other = OTHER_ARCH.model_copy(update={"device": device})
    runs = [(name, train, 0) for name, train in on.items()]
    runs += [("lr3e-3_wd0.1_clip_warmup", on["lr3e-3_wd0.1_clip_warmup"], 1)]  # a 2nd seed
    runs += [("four_heads", other, 0), ("four_heads", other, 1)]
    alone = {
        (name, seed): ensure_trained(
            name, train, seed, steps, tmp_path / "a", progress=False, hold=hold_of(train)
        )
        for name, train, seed in runs
    }
    jobs = [
        SeedJob(seed, steps, hold=hold_of(train), name=name, train=train)
        for name, train, seed in runs
    ]
    together = ensure_runs_trained_together(jobs, tmp_path / "b", progress=False)
    assert together == alone
    # the six runs of one architecture in one stack, the two 4-head seeds in another
    assert sorted(n for _, n in calls) == [2, 6]
    assert len({stack_signature(t) for t in POINTS.values()}) == 1
    assert stack_signature(OTHER_ARCH) != stack_signature(POINTS["sgd_momentum"])
    worst = max(
        largest_difference(train, [seed], steps, tmp_path / "a", tmp_path / "b")
        for _, train, seed in runs
    )
    assert worst == 0.0 if device == "cpu" else worst <= TOL, worst  # bitwise on CPU
    # each point really trained with its own settings: their step-24 weights all differ
    from mispec.models import checkpoints as ckpt
    from mispec.models.runs import run_dir

    finals = [
        ckpt.read_tensors(run_dir(train, 0, tmp_path / "b") / "model_24.safetensors")[0]
        for train in on.values()
    ]
    key = "blocks.1.attn.q.weight"
    assert len({tuple(f[key].flatten().tolist()) for f in finals}) == len(POINTS)
    frozen = finals[2][key]  # the frozen head (layer 0) kept its step-0 values
    w0 = ckpt.read_tensors(
        run_dir(on["adam_freeze_float64"], 0, tmp_path / "b") / "model_0.safetensors"
    )[0]
    q0 = "blocks.0.attn.q.weight"
    assert torch.equal(w0[q0][8:], finals[2][q0][8:]) and not torch.equal(w0[q0], finals[2][q0])
    assert frozen.shape == (16, 16)


SWEEP = """\
mispec: 1
name: stacked-sweep
models:
  toy:
    train:
      task: repeated_tokens
      task_args: {vocab: 16, half_len: 6}
      arch: {n_layers: 2, n_heads: 2, d_model: 16, d_head: 8, attn_only: true}
      steps: 40
      batch_size: 16
    sweep:
      optimizer.lr: [0.001, 0.003]
      optimizer.weight_decay: [0.0, 0.1]
    seeds: [0]
    checkpoints: {steps: [0, 20, 40]}
prompts:
  rep: {generator: repeated_tokens, args: {n: 8, vocab: 16, half_len: 6}, seed: 1}
metrics:
  loss: {fn: loss, prompts: rep}
  induction: {fn: induction_score, prompts: rep}
"""


def test_a_sweep_run_with_points_stacked_equals_its_points_one_at_a_time(tmp_path, monkeypatch):
    """Through ``mispec.run``: a 2 x 2 sweep with ``batch_seeds: 4`` trains its four points in
    one stack; its checkpoints and results equal the default run's (one at a time on CPU)."""
    calls = count_stacked_runs(monkeypatch)
    for name in ("a", "b"):
        (tmp_path / name / ".mispec").mkdir(parents=True)
        (tmp_path / name / "spec.yaml").write_text(SWEEP)
    one = mispec.run(
        tmp_path / "a" / "spec.yaml", executor=str(_profile(tmp_path, "one", "")), progress=False
    )
    assert calls == []
    stacked = _profile(tmp_path, "stacked", "batch_seeds: 4\n")
    four = mispec.run(tmp_path / "b" / "spec.yaml", executor=str(stacked), progress=False)
    assert len(calls) == 1 and calls[0][1] == 4  # the four points in one stacked run
    assert one.counters["training_steps"] == four.counters["training_steps"] == 4 * 40
    assert store_difference(tmp_path / "a" / ".mispec", tmp_path / "b" / ".mispec") == 0.0
    a, b = one.open()["toy"].to_dataset(), four.open()["toy"].to_dataset()
    xr.testing.assert_identical(a, b)
    assert a["loss"].sizes["lr"] == 2 and a["loss"].sizes["weight_decay"] == 2
    # the points trained apart from each other: four different end losses
    assert len(set(a["loss"].sel(step=40).values.flatten().tolist())) == 4
