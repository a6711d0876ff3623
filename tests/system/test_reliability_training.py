"""Diverged training (issue 14, item 4): a run whose loss or weights become NaN/inf stops
with exit 2 naming the model, seed and step and what to change; nothing non-finite is ever
saved in the store, and a non-finite checkpoint an older mispec saved is refused."""

from __future__ import annotations

from pathlib import Path

import torch

import mispec
from mispec.models import checkpoints as ckpt
from mispec.validation.load import load_spec
from tests.reliability_helpers import cli, new_project
from tests.system.test_models_training import first_nonfinite_update

SPEC = """\
mispec: 1
name: wild
models:
  fine:
    train:
      task: repeated_tokens
      task_args: {vocab: 16, half_len: 6}
      arch: {n_layers: 1, n_heads: 2, d_model: 16, d_head: 8, attn_only: true}
      steps: 20
      batch_size: 16
    seeds: [0]
    checkpoints: {steps: [0, 10, 20]}
  wild:
    train:
      task: repeated_tokens
      task_args: {vocab: 16, half_len: 6}
      arch: {n_layers: 1, n_heads: 2, d_model: 16, d_head: 8, attn_only: true}
      steps: 20
      batch_size: 16
      optimizer: {lr: 10, weight_decay: 100}
    seeds: [0]
    checkpoints: {steps: [0, 10, 20]}
prompts:
  rep:
    generator: repeated_tokens
    args: {n: 8, vocab: 16, half_len: 6}
    seed: 1
metrics:
  loss: {fn: loss, prompts: rep}
"""


def non_finite_tensors(store: Path) -> list[str]:
    """``file: tensor`` for every NaN/inf tensor of every safetensors file of the store's
    checkpoints (each file read back, its checksum verified)."""
    files = sorted((store / "checkpoints").rglob("*.safetensors"))
    assert files, "no checkpoint at all"
    return [
        f"{path.relative_to(store)}: {name}"
        for path in files
        for name, t in ckpt.read_tensors(path)[0].items()
        if not torch.isfinite(t).all()
    ]


def test_diverged_training_exits_2_and_stores_nothing_non_finite(tmp_path):
    spec = new_project(tmp_path / "project", SPEC)
    store = spec.parent / ".mispec"
    res = cli("run", str(spec), "-q", cwd=spec.parent)
    assert res.returncode == 2, res.stderr
    err = res.stderr
    assert "Traceback" not in err and "internal error" not in err, err
    step = first_nonfinite_update(load_spec(spec).spec.models["wild"].train, 0, 20)
    assert step is not None and f"model 'wild' seed 0: training diverged at step {step}: " in err
    assert "the loss is nan" in err, err
    assert "lower models.wild.train.optimizer.lr (now 10)" in err.lower(), err
    assert "set models.wild.train.grad_clip" in err, err
    assert non_finite_tensors(store) == []
    assert not (spec.parent / "runs").exists()  # no run folder of a failed run

    # the run's other work is kept: with a sane learning rate, only `wild` is computed
    spec.write_text(SPEC.replace("{lr: 10, weight_decay: 100}", "{lr: 0.002}"))
    again = mispec.run(spec, progress=False)
    assert again.counters["training_steps"] == 20  # `fine` (0 → 20) was trained already
    assert again.counters["cells_cached"] == 3 and again.counters["forward_passes"] == 3
    assert non_finite_tensors(store) == []


def test_a_non_finite_checkpoint_of_an_older_store_is_refused(tmp_path):
    """An older mispec cached a diverged run's checkpoints: a run that needs them exits 2
    naming the model, seed and step, and the store is left with nothing non-finite."""
    head, tail = SPEC.split("  wild:\n")
    fine_only = head + "prompts:\n" + tail.split("\nprompts:\n")[1]
    spec = new_project(tmp_path / "project", fine_only)
    store = spec.parent / ".mispec"
    mispec.run(spec, progress=False)
    (folder,) = (store / "checkpoints").iterdir()
    for name in ("model_20", "optim_20"):  # as the old code saved them: checksummed NaNs
        path = folder / f"{name}.safetensors"
        tensors, meta = ckpt.read_tensors(path)
        meta.pop(ckpt.CHECKSUM_KEY)
        ckpt.write_tensors(
            path, {k: torch.full_like(v, torch.nan) for k, v in tensors.items()}, meta
        )
    spec.write_text(
        fine_only.replace(
            "metrics:\n", "metrics:\n  induction: {fn: induction_score, prompts: rep}\n"
        )
    )
    res = cli("run", str(spec), "-q", cwd=spec.parent)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr, res.stderr
    assert "model 'fine' seed 0: the saved checkpoint of step 20" in res.stderr, res.stderr
    assert "non-finite" in res.stderr and "grad_clip" in res.stderr, res.stderr
    assert non_finite_tensors(store) == []
    assert sorted(p.name for p in folder.glob("*.safetensors")) == [
        "model_0.safetensors",
        "model_10.safetensors",
        "optim_0.safetensors",
        "optim_10.safetensors",
    ]
