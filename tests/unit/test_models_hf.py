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
from mispec.sources.local_folder import LocalFolderModelSpec
from mispec.sources.pretrained import PretrainedModelSpec

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


def test_later_steps_swap_into_one_bridge_bit_for_bit(neox_root, tmp_path):
    """The HF route reuses one bridge (its HF tensors copied, q/k/v re-split): every hooked
    activation and the logits equal a fresh boot of that step's folder exactly."""
    from mispec.metrics.forward import run_forward
    from mispec.models.handle import ModelHandle

    spec = LocalFolderModelSpec(path=str(neox_root))
    handle = source_for("neox", spec, tmp_path).open(0, tmp_path / "store")
    fresh_handle = source_for("neox", spec, tmp_path).open(0, tmp_path / "store")
    tokens = torch.randint(0, 64, (3, 17), generator=torch.Generator().manual_seed(0))
    hooks = ["blocks.{layer}.attn.hook_pattern", "blocks.{layer}.hook_resid_post", "logits"]
    handle.load(0)
    # the bridge TransformerLens builds with a tokenizer adds a zero unembedding bias: not
    # the HF model's, so the second step boots fresh to confirm it does not depend on them
    assert handle._hf_swap is not None and not handle._hf_swap.proven
    assert set(handle._hf_swap.unknown) == {"unembed._original_component.bias"}
    first = handle.load(100)
    assert handle._hf_swap.proven
    for step in (10, 0):
        swapped = handle.load(step)
        assert swapped is first  # the same bridge, its weights replaced
        fresh_handle.close()  # a fresh boot of this very step
        fresh = ModelHandle.load(fresh_handle, step)
        assert fresh is not swapped
        a = run_forward(swapped, tokens, hooks)
        b = run_forward(fresh, tokens, hooks)
        for hook in hooks:
            assert torch.equal(a[hook], b[hook]), hook


def test_a_bridge_holding_a_weight_copy_boots_every_step(neox_root, tmp_path):
    from transformers import AutoModelForCausalLM

    from mispec.models import hf
    from mispec.models.hf_swap import HFSwap

    def build(step: int, stale: bool) -> HFSwap:
        model = AutoModelForCausalLM.from_pretrained(str(neox_root / f"step{step}"))
        captured = HFSwap.capture(model)
        bridge = hf.bridge_from_hf(model, "neox", tokenizer=None, device="cpu", dtype="float32")
        if stale:  # a component keeping its own copy of a weight: a swap would leave it stale
            bridge.blocks[0].register_buffer("copy", bridge.blocks[0].ln1.weight.detach().clone())
        swap = captured.attach(bridge)
        assert swap is not None
        return swap

    plain_first, plain_second = build(0, stale=False), build(100, stale=False)
    assert set(plain_first.unknown) == {"unembed._original_component.bias"}
    assert plain_second.confirm(plain_first)  # a zero bias in both: the swap is proven
    first, second = build(0, stale=True), build(100, stale=True)
    assert set(first.unknown) == {"unembed._original_component.bias", "blocks.0.copy"}
    assert not second.confirm(first)  # the copy differs with the weights: never swapped
    assert not second.load(AutoModelForCausalLM.from_pretrained(str(neox_root / "step10")))
