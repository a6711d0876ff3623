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
from mispec.spec.train import ArchSpec, TrainSpec

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


# --------------------------------------------------------------------------- divergence
DIVERGING = {"name": "adamw", "lr": 10, "weight_decay": 100}


def first_nonfinite_update(train: TrainSpec, seed: int, updates: int) -> int | None:
    """The reference: a hand-written training loop (torch's AdamW, cross-entropy, the task's
    batches), independent of mispec's loop; the first update whose loss (or gradient norm,
    with ``grad_clip``) is not finite."""
    import torch.nn.functional as F

    from mispec.tasks import task_for

    task = task_for(train)
    model = plain_model(native_config(train, seed, task)).train()
    o = train.optimizer
    opt = torch.optim.AdamW(model.parameters(), lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
    for t in range(updates):
        b = task.batch(seed, t, train.batch_size)
        tokens = torch.from_numpy(b.tokens)
        mask = torch.from_numpy(task.training_loss_mask(b))
        loss = F.cross_entropy(model(tokens)[:, :-1][mask].float(), tokens[:, 1:][mask])
        opt.zero_grad()
        loss.backward()
        norm = torch.tensor(0.0)
        if train.grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
        if not (torch.isfinite(loss) and torch.isfinite(norm)):
            return t
        opt.step()
    return None


def every_tensor_finite(folder) -> list[str]:
    """Every safetensors file under ``folder`` (read back, checksum verified) is finite;
    the files' names."""
    files = sorted(folder.rglob("*.safetensors"))
    for path in files:
        for name, t in ckpt.read_tensors(path)[0].items():
            assert torch.isfinite(t).all(), f"{path.name}: {name} is not finite"
    return [p.name for p in files]


@pytest.mark.parametrize("clip", [None, 1.0])
def test_diverged_training_stops_before_saving_anything_non_finite(tmp_path, clip):
    from mispec.errors import TrainingDivergedError, UserError

    spec = small(40, optimizer=DIVERGING, grad_clip=clip)
    expected = first_nonfinite_update(spec, 0, 40)
    assert expected == 3  # the reference diverges early: the loss overflows to NaN
    with pytest.raises(TrainingDivergedError) as info:
        ensure_trained("toy", spec, 0, [0, 2, 20, 40], tmp_path, progress=False)
    e = info.value
    assert isinstance(e, UserError) and e.exit_code == 2
    assert (e.model, e.seed, e.step) == ("toy", 0, expected)
    msg = str(e)
    assert f"model 'toy' seed 0: training diverged at step {expected}: the loss is nan" in msg
    assert "models.toy.train.optimizer.lr (now 10)" in msg and "weight_decay" in msg
    assert ("set models.toy.train.grad_clip" if clip is None else "grad_clip (now 1)") in msg
    # the steps before the divergence are kept (and finite); nothing after it is saved
    assert saved_steps(spec, 0, tmp_path) == {0, 2}
    assert every_tensor_finite(tmp_path) == [
        "model_0.safetensors",
        "model_2.safetensors",
        "optim_0.safetensors",
        "optim_2.safetensors",
    ]
    # a re-run fails the same way, resuming from the last finite step
    with pytest.raises(TrainingDivergedError, match=f"at step {expected}:"):
        ensure_trained("toy", spec, 0, [40], tmp_path, progress=False)


def test_non_finite_weights_or_optimizer_state_are_never_written():
    from mispec.errors import TrainingDivergedError
    from mispec.models.divergence import check_state, nonfinite_names

    tensors = {
        "a": torch.ones(3),
        "b": torch.tensor([1.0, float("inf")]),
        "c": torch.tensor([float("nan")], dtype=torch.bfloat16),
        "d": torch.tensor([1, 2]),  # integers are always finite
    }
    assert nonfinite_names(tensors) == ["b", "c"]
    assert nonfinite_names({"a": torch.ones(2)}) == [] and nonfinite_names({}) == []
    with pytest.raises(TrainingDivergedError, match=r"at step 7: non-finite values in b, c\."):
        check_state("toy", small(), 3, 7, tensors)


def test_a_non_finite_checkpoint_of_an_older_store_is_refused_and_removed(tmp_path):
    """An older mispec saved diverged runs: loading one (to resume training, or to analyse
    it) refuses it with the model, seed and step, and removes the run's non-finite files."""
    from mispec.errors import TrainingDivergedError
    from mispec.sources import source_for
    from mispec.sources.trained import TrainedModelSpec

    spec = small(40)
    ensure_trained("toy", spec, 0, [0, 20, 40], tmp_path, progress=False)
    folder = run_dir(spec, 0, tmp_path)
    for name in ("model_20", "optim_20", "model_40"):  # what the old code saved, checksummed
        path = folder / f"{name}.safetensors"
        tensors, meta = ckpt.read_tensors(path)
        poisoned = {k: torch.full_like(v, float("nan")) for k, v in tensors.items()}
        ckpt.write_tensors(
            path, poisoned, {k: v for k, v in meta.items() if k != "mispec_checksum"}
        )
    kept = ckpt.read_tensors(folder / "model_0.safetensors")[0]

    entry = TrainedModelSpec(train=spec, seeds=[0])
    handle = source_for("toy", entry, tmp_path).open(0, tmp_path, device="cpu")
    with pytest.raises(TrainingDivergedError) as info:
        handle.load(40)
    assert (info.value.model, info.value.seed, info.value.step) == ("toy", 0, 40)
    msg = str(info.value)
    assert "model 'toy' seed 0: the saved checkpoint of step 40" in msg
    assert "non-finite" in msg and "Removed 3 non-finite file(s)" in msg
    assert "optimizer.lr" in msg and "grad_clip" in msg
    assert every_tensor_finite(tmp_path) == [
        "model_0.safetensors",
        "optim_0.safetensors",
        "optim_40.safetensors",
    ]
    assert_bitwise_equal(kept, weights(spec, 0, 0, tmp_path))

    # training that resumes from a poisoned step refuses it too
    ensure_trained("toy", spec, 0, [20], tmp_path, progress=False)
    path = folder / "optim_20.safetensors"
    tensors, meta = ckpt.read_tensors(path)
    tensors = {k: torch.full_like(v, float("inf")) for k, v in tensors.items()}
    ckpt.write_tensors(path, tensors, {k: v for k, v in meta.items() if k != "mispec_checksum"})
    with pytest.raises(TrainingDivergedError, match="checkpoint of step 20"):
        ensure_trained("toy", spec, 0, [40], tmp_path, progress=False)
    assert every_tensor_finite(tmp_path) == [
        "model_0.safetensors",
        "model_20.safetensors",
        "optim_0.safetensors",
        "optim_40.safetensors",
    ]
