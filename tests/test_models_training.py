"""Training: bitwise determinism, resume == straight, corrupt checkpoints, file formats."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from safetensors import safe_open

from mispec.models import checkpoints as ckpt
from mispec.models.native import boot, key_map, load_bridge_state, plain_model
from mispec.models.runs import native_config, run_dir, saved_steps, training_identity
from mispec.models.training import ensure_trained
from mispec.spec.schema import ArchSpec, TrainSpec

SMALL_ARCH = ArchSpec(n_layers=1, n_heads=2, d_model=16, d_head=8, attn_only=True)


def small(steps: int = 600, **kw) -> TrainSpec:
    base = dict(
        task="repeated_tokens",
        task_args={"vocab": 16, "half_len": 4},
        arch=SMALL_ARCH,
        steps=steps,
        batch_size=8,
        optimizer={"name": "adamw", "lr": 3e-3, "weight_decay": 0.01},
    )
    return TrainSpec(**{**base, **kw})


def weights(train: TrainSpec, seed: int, step: int, store) -> dict[str, torch.Tensor]:
    return ckpt.read_tensors(run_dir(train, seed, store) / f"model_{step}.safetensors")[0]


def assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_identity_excludes_steps_only():
    assert training_identity(small(300), 0) == training_identity(small(600), 0)
    assert training_identity(small(), 0) != training_identity(small(), 1)
    assert training_identity(small(), 0) != training_identity(small(batch_size=9), 0)
    # defaults of the task's arguments are part of the identity, spelled or not
    a = small(task_args={"vocab": 64, "half_len": 24})
    b = small(task_args={})
    assert training_identity(a, 0) == training_identity(b, 0)


def test_determinism_and_resume_equal_straight(tmp_path):
    straight, resumed = tmp_path / "a", tmp_path / "b"
    r = ensure_trained("t", small(600), 0, [0, 300, 450, 600], straight, progress=False)
    assert (r.steps_trained, r.resumed_from, r.saved) == (600, None, [0, 300, 450, 600])

    r = ensure_trained("t", small(300), 0, [0, 300], resumed, progress=False)
    assert r.saved == [0, 300]
    # raising `steps` keeps the run: it resumes from 300, optimizer state included
    r = ensure_trained("t", small(600), 0, [0, 300, 600], resumed, progress=False)
    assert (r.steps_trained, r.resumed_from, r.saved) == (300, 300, [600])
    for step in (0, 300, 600):  # two trainings with one seed are bitwise equal
        assert_bitwise_equal(
            weights(small(), 0, step, straight), weights(small(), 0, step, resumed)
        )
    # a gap is filled from the last saved step before it, never retraining saved ones
    r = ensure_trained("t", small(600), 0, [450, 600], resumed, progress=False)
    assert (r.steps_trained, r.resumed_from, r.saved) == (150, 300, [450])
    assert_bitwise_equal(weights(small(), 0, 450, straight), weights(small(), 0, 450, resumed))
    assert ensure_trained("t", small(600), 0, [0, 450], resumed, progress=False).steps_trained == 0
    assert saved_steps(small(), 0, resumed) == {0, 300, 450, 600}

    # another seed gives other weights
    ensure_trained("t", small(600), 1, [300], straight, progress=False)
    w1 = weights(small(), 1, 300, straight)
    assert not torch.equal(w1["embed.weight"], weights(small(), 0, 300, straight)["embed.weight"])


def test_sgd_warmup_clip_resume(tmp_path):
    spec = small(
        80,
        optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9},
        warmup_steps=20,
        grad_clip=0.5,
    )
    ensure_trained("t", spec, 0, [80], tmp_path / "a", progress=False)
    ensure_trained("t", spec, 0, [10], tmp_path / "b", progress=False)  # inside the warmup
    r = ensure_trained("t", spec, 0, [80], tmp_path / "b", progress=False)
    assert r.resumed_from == 10
    assert_bitwise_equal(weights(spec, 0, 80, tmp_path / "a"), weights(spec, 0, 80, tmp_path / "b"))
    adam = small(20, optimizer={"name": "adam", "lr": 1e-3, "betas": [0.8, 0.99]})
    assert ensure_trained("t", adam, 0, [20], tmp_path / "c", progress=False).saved == [0, 20][1:]


def test_full_batch_needs_a_finite_task(tmp_path):
    from mispec.errors import UserError

    with pytest.raises(UserError, match="batch_size"):
        ensure_trained("t", small(10, batch_size=None), 0, [10], tmp_path, progress=False)
    assert saved_steps(small(10, batch_size=None), 0, tmp_path) == set()


def test_files_are_safetensors_with_checksums(tmp_path):
    ensure_trained("t", small(20), 0, [0, 20], tmp_path, progress=False)
    folder = run_dir(small(), 0, tmp_path)
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "config.json",
        "model_0.safetensors",
        "model_20.safetensors",
        "optim_0.safetensors",
        "optim_20.safetensors",
    ]
    with safe_open(str(folder / "model_20.safetensors"), framework="pt") as f:
        meta = f.metadata()
    assert meta["step"] == "20" and len(meta[ckpt.CHECKSUM_KEY]) == 32
    config = json.loads((folder / "config.json").read_text())
    assert config["tl_config"]["d_model"] == 16 and "steps" not in config["train"]


def test_corrupt_checkpoint_is_retrained(tmp_path):
    ensure_trained("t", small(40), 0, [20, 40], tmp_path, progress=False)
    path = run_dir(small(), 0, tmp_path) / "model_40.safetensors"
    good = {k: v.clone() for k, v in weights(small(), 0, 40, tmp_path).items()}  # (mmapped)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # flip bits inside the last tensor
    path.write_bytes(bytes(data))
    with pytest.raises(ckpt.CorruptCheckpoint):
        ckpt.read_tensors(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = ensure_trained("t", small(40), 0, [20, 40], tmp_path, progress=False)
    assert any("checksum" in str(w.message) for w in caught)
    assert (r.resumed_from, r.saved) == (20, [40])
    assert_bitwise_equal(good, weights(small(), 0, 40, tmp_path))


def test_saved_weights_load_into_a_native_bridge(tmp_path):
    """Training runs on the plain native module; its checkpoint must give the same
    logits through a boot_native bridge (strict load, bridge keys)."""
    spec = small(30)
    ensure_trained("t", spec, 0, [30], tmp_path, progress=False)
    sd = weights(spec, 0, 30, tmp_path)
    kwargs = native_config(spec, 0)
    bridge = boot(kwargs)
    bridge.load_state_dict(sd, strict=True)
    plain = plain_model(kwargs).eval()
    load_bridge_state(plain, sd, key_map(kwargs))
    tokens = torch.randint(0, 16, (4, 9))
    with torch.no_grad():
        torch.testing.assert_close(bridge(tokens), plain(tokens), rtol=0, atol=1e-6)
    # step 0 of a run is exactly boot_native's initialisation for that seed
    ensure_trained("t", spec, 0, [0], tmp_path, progress=False)
    init = boot(kwargs).state_dict()
    assert_bitwise_equal(weights(spec, 0, 0, tmp_path), {k: v for k, v in init.items()})


def test_full_batch_modular_addition_learns(tmp_path):
    spec = TrainSpec(
        task="modular_addition",
        task_args={"p": 7, "train_frac": 0.6},
        arch=ArchSpec(n_layers=1, n_heads=2, d_model=32, d_head=16, d_mlp=64),
        steps=60,
        batch_size=None,
        optimizer={"name": "adamw", "lr": 1e-2, "weight_decay": 1.0},
    )
    ensure_trained("m", spec, 0, [0, 60], tmp_path, progress=False)
    from mispec.models.training import masked_loss
    from mispec.tasks import task_for

    task = task_for(spec)
    b = task.batch(0, 0, None)
    tokens, mask = torch.from_numpy(b.tokens), torch.from_numpy(b.loss_mask)
    losses = []
    for step in (0, 60):
        bridge = boot(native_config(spec, 0))
        bridge.load_state_dict(weights(spec, 0, step, tmp_path))
        with torch.no_grad():
            losses.append(masked_loss(bridge(tokens), tokens, mask).item())
    assert losses[1] < 0.5 * losses[0]
