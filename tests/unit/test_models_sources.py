"""Model sources, planning side: schedules, selectors against them, identities, infos,
training left to do, and how a spec's model entry finds its source."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mispec.errors import CheckpointError, UserError
from mispec.hashing import content_key
from mispec.models.local import PROBE_BYTES
from mispec.models.runs import training_identity
from mispec.models.schedules import CRFM_STEPS, PYTHIA_STEPS, revision_for
from mispec.sources import (
    SOURCES,
    LocalFolderSource,
    PretrainedSource,
    TrainedSource,
    source_for,
)
from mispec.sources.local_folder import LocalFolderModelSpec
from mispec.sources.plugin_entry import PluginModelSpec
from mispec.sources.pretrained import PretrainedModelSpec
from mispec.sources.trained import TrainedModelSpec
from mispec.spec.selectors import (
    DEFAULT_TRAIN_SELECTOR,
    ScheduleSelector,
    StepsSelector,
    resolve_selector,
)

TRAIN = {
    "task": "repeated_tokens",
    "arch": {"n_layers": 2, "n_heads": 4, "d_model": 64, "d_head": 16, "attn_only": True},
    "steps": 1500,
}


def pretrained(name: str, **entry) -> PretrainedSource:
    return PretrainedSource("m", PretrainedModelSpec(pretrained=name, **entry), Path("."))


def local(path: str, base: Path, **entry) -> LocalFolderSource:
    return LocalFolderSource("m", LocalFolderModelSpec(path=path, **entry), base)


def trained(train: dict = TRAIN, **entry) -> TrainedSource:
    return TrainedSource("toy", TrainedModelSpec(train=train, **entry), Path("."))


PYTHIA = pretrained("EleutherAI/pythia-70m")


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
    assert PYTHIA.available_steps(0) == list(PYTHIA_STEPS)
    v0 = pretrained("EleutherAI/pythia-160m-v0")
    assert v0.available_steps(0)[0] == 1000
    crfm = pretrained("stanford-crfm/battlestar-gpt2-small-x49")
    assert crfm.available_steps(0) == list(CRFM_STEPS)
    assert revision_for("EleutherAI/pythia-70m", 512) == "step512"
    assert revision_for("stanford-crfm/alias-gpt2-small-x21", 100) == "checkpoint-100"
    assert pretrained("gpt2").available_steps(0) == [0]  # one published checkpoint


def test_default_selectors():
    assert trained().default_selector() == DEFAULT_TRAIN_SELECTOR
    assert PYTHIA.default_selector() == "all"
    steps = trained().available_steps(0)
    assert steps == list(range(1501))
    picked = resolve_selector(DEFAULT_TRAIN_SELECTOR, steps)
    assert len(picked) == 32 and picked[0] == 0 and picked[-1] == 1500


def test_selectors_against_the_pythia_schedule():
    steps = PYTHIA.available_steps(0)
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
        PYTHIA.checkpoint_identity(0, 1500)


def test_seed_formatting(tmp_path):
    source = pretrained("EleutherAI/pythia-70m-seed{seed}", seeds=[1, 2])
    assert source.checkpoint_identity(1, 1000) == content_key(
        "EleutherAI/pythia-70m-seed1", "step1000"
    )
    (tmp_path / "run1" / "step5").mkdir(parents=True)
    (tmp_path / "run1" / "step5" / "config.json").write_text('{"model_type": "gpt_neox"}')
    assert local("run{seed}", tmp_path).available_steps(1) == [5]
    with pytest.raises(CheckpointError, match="run2"):
        local("run{seed}", tmp_path).available_steps(2)


def test_trained_identity_and_info():
    source = trained()
    ident = source.checkpoint_identity(0, 100)
    assert ident == content_key(training_identity(source.train, 0), 100)
    assert ident != source.checkpoint_identity(1, 100)
    assert ident != source.checkpoint_identity(0, 101)
    info = source.info()
    assert (info.d_vocab, info.n_ctx, info.d_mlp, info.attn_only) == (64, 49, None, True)
    mlp = trained({**TRAIN, "arch": {**TRAIN["arch"], "attn_only": False}})
    assert mlp.info().d_mlp == 256


def test_local_identity_is_cheap_and_tracks_changes(tmp_path):
    """Identity = path + sizes + mtimes + a hash of the first/last MiB: a change inside a
    big file's middle with size and mtime kept is (by design) not read; edits at the ends,
    size or mtime changes are."""
    folder = tmp_path / "ckpt" / "step3"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "gpt_neox"}')
    weights = folder / "model.safetensors"
    weights.write_bytes(bytes(3 * PROBE_BYTES))
    source = local("ckpt", tmp_path)
    first = source.checkpoint_identity(0, 3)
    assert first == source.checkpoint_identity(0, 3)
    st = weights.stat()

    def rewrite(offset: int) -> str:
        data = bytearray(weights.read_bytes())
        data[offset] ^= 1
        weights.write_bytes(bytes(data))
        os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
        return source.checkpoint_identity(0, 3)

    assert rewrite(PROBE_BYTES + 10) == first  # the middle is never read
    assert rewrite(5) != first  # head probe
    rewrite(5)
    assert rewrite(3 * PROBE_BYTES - 1) != first  # tail probe
    rewrite(3 * PROBE_BYTES - 1)
    assert source.checkpoint_identity(0, 3) == first
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert source.checkpoint_identity(0, 3) != first
    with pytest.raises(CheckpointError, match=r"step 4 is not available; nearest: \[3\]"):
        source.checkpoint_identity(0, 4)


def test_state_dict_folder_needs_a_config(tmp_path):
    (tmp_path / "sd").mkdir()
    (tmp_path / "sd" / "model_10.safetensors").write_bytes(b"")
    (tmp_path / "sd" / "model_20.safetensors").write_bytes(b"")
    (tmp_path / "sd" / "optim_20.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="config.json"):
        local("sd", tmp_path).available_steps(0)
    (tmp_path / "sd" / "config.json").write_text("{}")
    assert local("sd", tmp_path).available_steps(0) == [10, 20]
    (tmp_path / "sd" / "other_5.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="several prefixes"):
        local("sd", tmp_path).available_steps(0)


def test_source_identities_keep_their_bytes(tmp_path):
    """Prompt sets read from files hash these: the bytes of the single-class spec era."""
    assert trained().source_identity() == content_key("train", "train", None)
    assert pretrained("gpt2").source_identity() == content_key("pretrained", "gpt2", None)
    tok = local("run{seed}", tmp_path, tokenizer="tok").source_identity()
    assert tok == content_key("path", "run{seed}", "tok")
    assert [s.kind for s in (trained(), pretrained("gpt2"), local("x", tmp_path))] == [
        "train",
        "pretrained",
        "path",
    ]


def test_training_left_to_do(tmp_path):
    source = trained({**TRAIN, "steps": 40})
    assert source.training_identity(0) == training_identity(source.train, 0)
    assert source.training_steps_left(0, [0, 20, 40], None) == 40
    assert source.pending_training(0, [0, 20, 40], tmp_path)
    run = tmp_path / "checkpoints" / source.training_identity(0)
    run.mkdir(parents=True)
    for step in (0, 20):
        (run / f"model_{step}.safetensors").write_bytes(b"")
    assert source.training_steps_left(0, [0, 20, 40], tmp_path) == 20  # resumes from 20
    assert not source.pending_training(0, [0, 20], tmp_path)
    other = pretrained("gpt2")
    assert other.training_identity(0) is None and not other.pending_training(0, [0], tmp_path)
    assert other.prepare(0, [0], tmp_path) == 0


def test_source_for_picks_the_class_of_the_entry(tmp_path):
    assert isinstance(source_for("a", TrainedModelSpec(train=TRAIN), tmp_path), TrainedSource)
    assert isinstance(source_for("b", LocalFolderModelSpec(path="x"), tmp_path), LocalFolderSource)
    assert {"path", "pretrained", "train"} <= set(SOURCES.names())
    with pytest.raises(UserError, match="write `path: ...`"):
        source_for("c", PluginModelSpec(source="path"), tmp_path)
    with pytest.raises(UserError, match="unknown model source 'pretrianed'"):
        source_for("d", PluginModelSpec(source="pretrianed"), tmp_path)


def test_entries_dump_as_the_single_model_class_did():
    """``spec_hash`` (run provenance) hashes the dump: absent built-in sources are null."""
    dump = TrainedModelSpec(train=TRAIN).model_dump(mode="json")
    assert dump["pretrained"] is None and dump["path"] is None and dump["seeds"] == [0]
    again = TrainedModelSpec.model_validate({k: v for k, v in dump.items() if v is not None})
    assert again == TrainedModelSpec(train=TRAIN)
