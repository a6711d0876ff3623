"""Planning-side model facts: schedules, selectors against them, identities, infos."""

from __future__ import annotations

import os

import pytest

from mispec.errors import CheckpointError
from mispec.hashing import content_key
from mispec.models import available_steps, checkpoint_identity, default_selector, model_info
from mispec.models.local import PROBE_BYTES
from mispec.models.runs import training_identity
from mispec.models.schedules import CRFM_STEPS, PYTHIA_STEPS, revision_for
from mispec.spec.schema import ModelSpec, ScheduleSelector, StepsSelector
from mispec.spec.selectors import DEFAULT_TRAIN_SELECTOR, resolve_selector

TRAIN = {
    "task": "repeated_tokens",
    "arch": {"n_layers": 2, "n_heads": 4, "d_model": 64, "d_head": 16, "attn_only": True},
    "steps": 1500,
}
PYTHIA = ModelSpec(pretrained="EleutherAI/pythia-70m")


def test_published_schedules():
    assert len(PYTHIA_STEPS) == 154 and PYTHIA_STEPS[:12] == (
        0,
        1,
        2,
        4,
        8,
        16,
        32,
        64,
        128,
        256,
        512,
        1000,
    )
    assert PYTHIA_STEPS[-1] == 143000
    assert len(CRFM_STEPS) == 609 and CRFM_STEPS[-1] == 400000 and 1950 in CRFM_STEPS
    assert available_steps(PYTHIA, 0, ".") == list(PYTHIA_STEPS)
    v0 = ModelSpec(pretrained="EleutherAI/pythia-160m-v0")
    assert available_steps(v0, 0, ".")[0] == 1000
    crfm = ModelSpec(pretrained="stanford-crfm/battlestar-gpt2-small-x49")
    assert available_steps(crfm, 0, ".") == list(CRFM_STEPS)
    assert revision_for("EleutherAI/pythia-70m", 512) == "step512"
    assert revision_for("stanford-crfm/alias-gpt2-small-x21", 100) == "checkpoint-100"
    assert available_steps(ModelSpec(pretrained="gpt2"), 0, ".") == [0]  # one published checkpoint


def test_default_selectors():
    assert default_selector(ModelSpec(train=TRAIN)) == DEFAULT_TRAIN_SELECTOR
    assert default_selector(PYTHIA) == "all"
    steps = available_steps(ModelSpec(train=TRAIN), 0, ".")
    assert steps == list(range(1501))
    picked = resolve_selector(DEFAULT_TRAIN_SELECTOR, steps)
    assert len(picked) == 32 and picked[0] == 0 and picked[-1] == 1500


def test_selectors_against_the_pythia_schedule():
    steps = available_steps(PYTHIA, 0, ".")
    assert resolve_selector("last", steps) == [143000]
    log = resolve_selector(ScheduleSelector(schedule="log", count=20), steps)
    assert len(log) == 20 and set(log) <= set(steps) and log[0] == 0 and log[-1] == 143000
    assert sum(s <= 512 for s in log) >= 5  # dense early, where the published steps are
    assert resolve_selector(StepsSelector(steps=[0, 512, 1000, 143000]), steps) == [
        0,
        512,
        1000,
        143000,
    ]
    with pytest.raises(
        CheckpointError, match=r"step 1500 is not available; nearest: \[512, 1000, 2000\]"
    ):
        resolve_selector(StepsSelector(steps=[1500]), steps)
    with pytest.raises(CheckpointError, match="nearest"):
        checkpoint_identity(PYTHIA, 0, 1500, ".")


def test_seed_formatting(tmp_path):
    spec = ModelSpec(pretrained="EleutherAI/pythia-70m-seed{seed}", seeds=[1, 2])
    assert checkpoint_identity(spec, 1, 1000, tmp_path) == content_key(
        "EleutherAI/pythia-70m-seed1", "step1000"
    )
    (tmp_path / "run1" / "step5").mkdir(parents=True)
    (tmp_path / "run1" / "step5" / "config.json").write_text('{"model_type": "gpt_neox"}')
    assert available_steps(ModelSpec(path="run{seed}"), 1, tmp_path) == [5]
    with pytest.raises(CheckpointError, match="run2"):
        available_steps(ModelSpec(path="run{seed}"), 2, tmp_path)


def test_trained_identity_and_info():
    spec = ModelSpec(train=TRAIN)
    ident = checkpoint_identity(spec, 0, 100, ".")
    assert ident == content_key(training_identity(spec.train, 0), 100)
    assert ident != checkpoint_identity(spec, 1, 100, ".")
    assert ident != checkpoint_identity(spec, 0, 101, ".")
    info = model_info("toy", spec, ".")
    assert (info.d_vocab, info.n_ctx, info.d_mlp, info.attn_only) == (64, 49, None, True)
    mlp = ModelSpec(train={**TRAIN, "arch": {**TRAIN["arch"], "attn_only": False}})
    assert model_info("m", mlp, ".").d_mlp == 256


def test_local_identity_is_cheap_and_tracks_changes(tmp_path):
    """Identity = path + sizes + mtimes + a hash of the first/last MiB: a change inside a
    big file's middle with size and mtime kept is (by design) not read; edits at the ends,
    size or mtime changes are."""
    folder = tmp_path / "ckpt" / "step3"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "gpt_neox"}')
    weights = folder / "model.safetensors"
    weights.write_bytes(bytes(3 * PROBE_BYTES))
    spec = ModelSpec(path="ckpt")
    first = checkpoint_identity(spec, 0, 3, tmp_path)
    assert first == checkpoint_identity(spec, 0, 3, tmp_path)
    st = weights.stat()

    def rewrite(offset: int) -> str:
        data = bytearray(weights.read_bytes())
        data[offset] ^= 1
        weights.write_bytes(bytes(data))
        os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
        return checkpoint_identity(spec, 0, 3, tmp_path)

    assert rewrite(PROBE_BYTES + 10) == first  # the middle is never read
    assert rewrite(5) != first  # head probe
    rewrite(5)
    assert rewrite(3 * PROBE_BYTES - 1) != first  # tail probe
    rewrite(3 * PROBE_BYTES - 1)
    assert checkpoint_identity(spec, 0, 3, tmp_path) == first
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert checkpoint_identity(spec, 0, 3, tmp_path) != first
    with pytest.raises(CheckpointError, match=r"step 4 is not available; nearest: \[3\]"):
        checkpoint_identity(spec, 0, 4, tmp_path)


def test_state_dict_folder_needs_a_config(tmp_path):
    (tmp_path / "sd").mkdir()
    (tmp_path / "sd" / "model_10.safetensors").write_bytes(b"")
    (tmp_path / "sd" / "model_20.safetensors").write_bytes(b"")
    (tmp_path / "sd" / "optim_20.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="config.json"):
        available_steps(ModelSpec(path="sd"), 0, tmp_path)
    (tmp_path / "sd" / "config.json").write_text("{}")
    assert available_steps(ModelSpec(path="sd"), 0, tmp_path) == [10, 20]
    (tmp_path / "sd" / "other_5.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="several prefixes"):
        available_steps(ModelSpec(path="sd"), 0, tmp_path)
