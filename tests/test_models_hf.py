"""Hugging Face route: tiny GPT-NeoX (Pythia-style) checkpoints through ``path:`` and
through the pretrained (hub cache) code path; logits match ``transformers`` within 1e-4,
and a handle that moved between steps equals a fresh ``boot_transformers``."""

from __future__ import annotations

import shutil

import pytest
import torch

from mispec.errors import CheckpointError
from mispec.models.schedules import PYTHIA_STEPS
from mispec.prompts.text import load_text_prompts
from mispec.sources import source_for
from mispec.spec.schema import LocalFolderModelSpec, PretrainedModelSpec

try:  # tests/ as a package (tests/__init__.py or `python -m pytest`)
    from tests.helpers.tiny_neox import build_checkpoint_folder, build_hf_cache
except ImportError:  # tests/ itself on sys.path (pytest rootdir-relative)
    from helpers.tiny_neox import build_checkpoint_folder, build_hf_cache

STEPS = (0, 10, 100)
REPO = "EleutherAI/pythia-tiny-test"


@pytest.fixture(scope="module")
def neox_root(tmp_path_factory):
    return build_checkpoint_folder(tmp_path_factory.mktemp("neox") / "run", STEPS)


def hf_reference(folder, tokens, **kw):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder), attn_implementation="eager", **kw)
    with torch.no_grad():
        out = model.eval()(tokens, output_attentions=True)
    return out.logits, out.attentions


def bridge_outputs(bridge, tokens):
    with torch.no_grad():
        logits, cache = bridge.run_with_cache(
            tokens, names_filter=lambda n: n.endswith("hook_pattern")
        )
    n = bridge.cfg.n_layers
    return logits, [cache[f"blocks.{i}.attn.hook_pattern"] for i in range(n)]


def test_path_hf_folders_match_transformers_and_fresh_boot(neox_root, tmp_path):
    from transformer_lens.model_bridge import TransformerBridge

    spec = LocalFolderModelSpec(path=str(neox_root))
    assert source_for("m", spec, tmp_path).available_steps(0) == list(STEPS)
    info = source_for("neox", spec, tmp_path).info()
    assert (info.architecture, info.n_layers, info.d_model, info.d_vocab) == ("GPTNeoX", 2, 32, 64)
    handle = source_for("neox", spec, tmp_path).open(0, tmp_path / "store")
    tokens = torch.randint(0, 64, (3, 17))
    for step in (100, 10, 0):
        bridge = handle.load(step)
        assert not bridge.training and not any(p.requires_grad for p in bridge.parameters())
        logits, patterns = bridge_outputs(bridge, tokens)
        ref_logits, ref_attn = hf_reference(neox_root / f"step{step}", tokens)
        torch.testing.assert_close(logits, ref_logits, rtol=0, atol=1e-4)
        for p, r in zip(patterns, ref_attn, strict=True):
            torch.testing.assert_close(p, r, rtol=0, atol=1e-4)
        # a brand-new bridge booted the standard way gives the same numbers
        fresh = TransformerBridge.boot_transformers(str(neox_root / f"step{step}"), device="cpu")
        f_logits, f_patterns = bridge_outputs(fresh, tokens)
        torch.testing.assert_close(logits, f_logits, rtol=0, atol=1e-6)
        for p, r in zip(patterns, f_patterns, strict=True):
            torch.testing.assert_close(p, r, rtol=0, atol=1e-6)
    with pytest.raises(CheckpointError, match=r"step 50 is not available; nearest: \[0, 10, 100\]"):
        handle.load(50)


def test_text_prompt_loss_equals_transformers_labels_loss(neox_root, tmp_path):
    from transformers import AutoModelForCausalLM

    handle = source_for("neox", LocalFolderModelSpec(path=str(neox_root)), tmp_path).open(
        0, tmp_path
    )
    (tmp_path / "p.txt").write_text("w1 w2 w3 w4 w5\nw7 w8\nw9 w1 w2\n")
    ps = load_text_prompts(tmp_path / "p.txt", handle.tokenizer)
    tokens = torch.from_numpy(ps.tokens)
    with torch.no_grad():
        logits = handle.load(10)(tokens)
    logp = torch.log_softmax(logits[:, :-1].double(), -1)
    nll = -logp.gather(-1, tokens[:, 1:, None])[..., 0]
    hf = AutoModelForCausalLM.from_pretrained(str(neox_root / "step10")).eval()
    mask = torch.from_numpy(ps.extras["loss_mask"])
    for i, n in enumerate(ps.meta["lengths"]):
        ids = tokens[i : i + 1, :n]
        with torch.no_grad():
            expected = hf(ids, labels=ids).loss
        assert abs(nll[i][mask[i]].mean().item() - expected.item()) < 1e-4


def test_checkpoint_folder_names_and_no_tokenizer(tmp_path):
    root = build_checkpoint_folder(
        tmp_path / "ck", (5, 20), folder="checkpoint-{step}", with_tokenizer=False
    )
    spec = LocalFolderModelSpec(path=str(root))
    assert source_for("m", spec, tmp_path).available_steps(0) == [5, 20]
    handle = source_for("ck", spec, tmp_path).open(0, tmp_path)
    assert handle.tokenizer is None  # bridge built without boot_transformers' tokenizer load
    tokens = torch.randint(0, 64, (2, 9))
    logits, patterns = bridge_outputs(handle.load(20), tokens)
    ref_logits, ref_attn = hf_reference(root / "checkpoint-20", tokens)
    torch.testing.assert_close(logits, ref_logits, rtol=0, atol=1e-4)
    torch.testing.assert_close(patterns[1], ref_attn[1], rtol=0, atol=1e-4)
    # a tokenizer folder given in the spec is used
    tok_dir = build_checkpoint_folder(tmp_path / "tok", (0,)) / "step0"
    spec = LocalFolderModelSpec(path=str(root), tokenizer=str(tok_dir))
    assert source_for("ck", spec, tmp_path).open(0, tmp_path).tokenizer.bos_token_id == 0


def test_pretrained_code_path_from_the_hub_cache(tmp_path, monkeypatch):
    cache = build_hf_cache(tmp_path / "hub", REPO, (0, 1, 2))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = PretrainedModelSpec(pretrained=REPO)
    assert source_for("m", spec, tmp_path).available_steps(0) == list(PYTHIA_STEPS)
    assert source_for("p", spec, tmp_path).info().d_model == 32  # cached config wins over tables
    handle = source_for("p", spec, tmp_path).open(0, tmp_path / "store")
    assert handle.tokenizer is not None
    tokens = torch.randint(0, 64, (2, 13))
    snapshots = cache / f"models--{REPO.replace('/', '--')}" / "snapshots"
    for step in (2, 1):
        logits, patterns = bridge_outputs(handle.load(step), tokens)
        commit = (cache / f"models--{REPO.replace('/', '--')}" / "refs" / f"step{step}").read_text()
        ref_logits, ref_attn = hf_reference(snapshots / commit, tokens)
        torch.testing.assert_close(logits, ref_logits, rtol=0, atol=1e-4)
        torch.testing.assert_close(patterns[0], ref_attn[0], rtol=0, atol=1e-4)
    with pytest.raises(CheckpointError) as err:
        handle.load(1000)
    msg = str(err.value)
    assert f"huggingface-cli download {REPO} --revision step1000" in msg
    assert "HF_HUB_OFFLINE=1" in msg
    with pytest.raises(CheckpointError, match="nearest"):
        handle.load(3)


def test_pretrained_model_info_without_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    info = source_for(
        "p", PretrainedModelSpec(pretrained="EleutherAI/pythia-70m-deduped"), tmp_path
    ).info()
    assert (info.n_layers, info.d_model, info.n_heads, info.d_vocab) == (6, 512, 8, 50304)
    info = source_for(
        "g", PretrainedModelSpec(pretrained="stanford-crfm/alias-gpt2-small-x21"), tmp_path
    ).info()
    assert (info.n_layers, info.d_model, info.architecture) == (12, 768, "GPT2")
    with pytest.raises(CheckpointError, match="huggingface-cli download some/model"):
        source_for("x", PretrainedModelSpec(pretrained="some/model"), tmp_path).info()
    shutil.rmtree(tmp_path / "empty", ignore_errors=True)
