"""Native-swap route: one bridge per (model, seed), weights swapped per step, proven
equal to a fresh boot (logits and attention patterns) for trained runs, local
state-dict folders (bridge and legacy HookedTransformer layouts) and legacy TL hub repos."""

from __future__ import annotations

import pytest
import torch

from mispec.errors import CheckpointError
from mispec.models.native import boot
from mispec.models.runs import native_config, run_dir
from mispec.models.swap import InPlaceSwap, swappable
from mispec.models.training import ensure_trained
from mispec.sources import source_for
from mispec.sources.local_folder import LocalFolderModelSpec
from mispec.sources.pretrained import PretrainedModelSpec
from mispec.sources.trained import TrainedModelSpec
from mispec.spec.train import ArchSpec, TrainSpec

try:  # tests/ as a package (tests/__init__.py or `python -m pytest`)
    from tests.helpers.tl_legacy import (
        TOY,
        build_tl_legacy_cache,
        build_tl_legacy_folder,
        checkpoint_state,
    )
except ImportError:  # tests/ itself on sys.path (pytest rootdir-relative)
    from helpers.tl_legacy import (
        TOY,
        build_tl_legacy_cache,
        build_tl_legacy_folder,
        checkpoint_state,
    )

TRAIN = TrainSpec(
    task="repeated_tokens",
    task_args={"vocab": 16, "half_len": 5},
    arch=ArchSpec(n_layers=2, n_heads=2, d_model=16, d_head=8, attn_only=True),
    steps=40,
    batch_size=8,
    optimizer={"lr": 3e-3},
)


def run(bridge, tokens):
    """Logits and every layer's attention pattern."""
    with torch.no_grad():
        logits, cache = bridge.run_with_cache(
            tokens, names_filter=lambda n: n.endswith("hook_pattern")
        )
    return logits, {k: v.clone() for k, v in cache.items()}


def assert_same(a, b, atol=0.0):
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=atol)
    assert a[1].keys() == b[1].keys() and len(a[1]) > 0
    for k in a[1]:
        torch.testing.assert_close(a[1][k], b[1][k], rtol=0, atol=atol)


def fresh(kwargs, sd):
    bridge = boot(kwargs)
    bridge.load_state_dict(sd, strict=True)
    return bridge


def test_trained_model_swaps_weights_into_one_bridge(tmp_path):
    spec = TrainedModelSpec(train=TRAIN, seeds=[3])
    ensure_trained("toy", TRAIN, 3, [0, 20, 40], tmp_path, progress=False)
    handle = source_for("toy", spec, tmp_path).open(3, tmp_path)
    assert handle.tokenizer is None and handle.info.n_layers == 2
    tokens = torch.randint(0, 16, (3, 11))
    kwargs = native_config(TRAIN, 3)
    folder = run_dir(TRAIN, 3, tmp_path)
    from mispec.models.checkpoints import read_tensors

    bridges = []
    for step in (40, 0, 20, 40):
        bridge = handle.load(step)
        bridges.append(bridge)
        assert not bridge.training and not any(p.requires_grad for p in bridge.parameters())
        sd = read_tensors(folder / f"model_{step}.safetensors")[0]
        assert_same(run(bridge, tokens), run(fresh(kwargs, sd), tokens))
    assert all(b is bridges[0] for b in bridges)  # one bridge, weights swapped
    assert isinstance(handle._swap, InPlaceSwap)  # ... by in-place copies, not load_state_dict
    assert not torch.equal(run(handle.load(0), tokens)[0], run(handle.load(40), tokens)[0])

    # a step that was never saved is trained on demand
    handle.load(30)
    assert (folder / "model_30.safetensors").is_file()
    with pytest.raises(CheckpointError, match=r"step 41 is not available; nearest: \[38, 39, 40\]"):
        handle.load(41)
    handle.close()


def test_in_place_swap_refuses_what_load_state_dict_would_refuse_and_custom_loading():
    kwargs = native_config(TRAIN, 0)
    bridge = boot(kwargs)
    swap = InPlaceSwap.for_bridge(bridge)
    assert swap is not None
    donor = boot({**kwargs, "seed": 1}).state_dict()
    assert swap.matches(donor)
    assert any(not torch.equal(v, donor[k]) for k, v in bridge.state_dict().items())
    swap.load(donor)
    for key, value in bridge.state_dict().items():
        assert torch.equal(value, donor[key]), key
    assert not swap.matches({k: v for k, v in donor.items() if "blocks.1" not in k})
    assert not swap.matches({**donor, "extra.weight": torch.zeros(1)})
    wrong = dict(donor)
    key = next(iter(wrong))
    wrong[key] = torch.zeros(*wrong[key].shape, 2)
    assert not swap.matches(wrong)
    # a module that customises loading: only load_state_dict knows what it wants
    bridge.register_load_state_dict_pre_hook(lambda *a, **k: None)
    assert not swappable(bridge) and InPlaceSwap.for_bridge(bridge) is None


def test_dtype_and_device_of_loaded_bridges(tmp_path):
    ensure_trained("toy", TRAIN, 0, [40], tmp_path, progress=False)
    spec = TrainedModelSpec(train=TRAIN)
    tokens = torch.randint(0, 16, (2, 11))
    full = source_for("toy", spec, tmp_path).open(0, tmp_path, device="auto")
    half = source_for("toy", spec, tmp_path).open(0, tmp_path, dtype="bfloat16")
    assert full.device == ("cuda" if torch.cuda.is_available() else "cpu")
    b16 = half.load(40)
    assert {p.dtype for p in b16.parameters()} == {torch.bfloat16}
    with torch.no_grad():
        ref, low = full.load(40)(tokens.to(full.device)).cpu(), b16(tokens).float()
    assert (ref - low).abs().max() < 0.1 * ref.abs().max()


def test_path_to_a_mispec_run_folder(tmp_path):
    ensure_trained("toy", TRAIN, 0, [0, 40], tmp_path, progress=False)
    folder = run_dir(TRAIN, 0, tmp_path)
    spec = LocalFolderModelSpec(path=str(folder))
    assert source_for("m", spec, tmp_path).available_steps(0) == [0, 40]  # optimizer files ignored
    info = source_for("p", spec, tmp_path).info()
    assert (info.d_model, info.d_vocab, info.n_ctx, info.attn_only) == (16, 16, 11, True)
    trained = source_for("toy", TrainedModelSpec(train=TRAIN), tmp_path).open(0, tmp_path)
    local = source_for("p", spec, tmp_path).open(0, tmp_path / "store")
    tokens = torch.randint(0, 16, (2, 11))
    assert_same(run(local.load(40), tokens), run(trained.load(40), tokens))


def test_path_legacy_hooked_transformer_state_dicts(tmp_path):
    root = build_tl_legacy_folder(tmp_path / "legacy", steps=(0, 5, 50))
    spec = LocalFolderModelSpec(path="legacy")
    assert source_for("m", spec, tmp_path).available_steps(0) == [0, 5, 50]
    handle = source_for("legacy", spec, tmp_path).open(0, tmp_path / "store")
    tokens = torch.randint(0, TOY["d_vocab"], (2, 12))
    for step in (50, 0, 5):
        expected = run(fresh(TOY, checkpoint_state(TOY, step)), tokens)
        assert_same(run(handle.load(step), tokens), expected, atol=1e-6)
    with pytest.raises(CheckpointError, match=r"nearest: \[0, 5, 50\]"):
        handle.load(7)
    assert root.is_dir()


def test_pretrained_legacy_tl_repo_from_the_hub_cache(tmp_path, monkeypatch):
    cache = build_tl_legacy_cache(tmp_path / "hub", "NeelNanda/attn-only-toy", steps=(0, 5, 50))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = PretrainedModelSpec(pretrained="NeelNanda/attn-only-toy")
    assert source_for("m", spec, tmp_path).available_steps(0) == [0, 5, 50]
    assert source_for("n", spec, tmp_path).info().d_vocab == TOY["d_vocab"]
    handle = source_for("n", spec, tmp_path).open(0, tmp_path / "store")
    tokens = torch.randint(0, TOY["d_vocab"], (2, 12))
    first = handle.load(5)
    for step in (5, 50):
        expected = run(fresh(TOY, checkpoint_state(TOY, step)), tokens)
        assert_same(run(handle.load(step), tokens), expected, atol=1e-6)
    assert handle.load(50) is first


def test_missing_local_folder_errors(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint folder not found"):
        source_for("m", LocalFolderModelSpec(path="nope"), tmp_path).available_steps(0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoints in"):
        source_for("m", LocalFolderModelSpec(path="empty"), tmp_path).available_steps(0)
