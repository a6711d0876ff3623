"""The circuit studies in specs/ run for real, at a small size: the toy IOI study trained by
mispec, and the pretrained-checkpoint study on a tiny GPT-NeoX folder built here, offline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import mispec

try:
    from tests.helpers.tiny_neox import build_model
except ImportError:
    from helpers.tiny_neox import build_model

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "specs"


def ioi_tokenizer(words: list[str]):
    """A WordLevel tokenizer whose vocabulary is the words of the IOI file (whitespace split)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = ["<bos>", "<eos>", "<unk>", *words]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<eos>",
    )


def test_circuits_pretrained_runs_offline_on_a_local_neox_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / ".mispec").mkdir()
    spec = tmp_path / "circuits_pretrained.yaml"
    shutil.copy(SPECS / "circuits_pretrained.yaml", spec)
    shutil.copytree(SPECS / "prompts", tmp_path / "prompts")
    lines = [json.loads(x) for x in (SPECS / "prompts" / "ioi.jsonl").read_text().splitlines()]
    words = {w for r in lines for t in (r["text"], r["corrupt_text"]) for w in t.split()}
    words |= set((SPECS / "prompts" / "brackets.txt").read_text().split())
    words = sorted(words)
    tokenizer = ioi_tokenizer(words)
    for step in (0, 50):
        out = tmp_path / "checkpoints" / "neox-run" / f"step{step}"
        build_model(step, vocab_size=len(words) + 3, n_layers=2, d_model=32).save_pretrained(out)
        tokenizer.save_pretrained(out)
    result = mispec.run(spec, progress=False)
    ds = result.open()["neox"].to_dataset().sel(seed=0)
    assert ds.dla.dims == ("step", "layer", "head") and ds.sizes["step"] == 2
    # the heads plus the remainder are the model's own logit difference at every checkpoint
    total = ds.dla.sum(["layer", "head"]) + ds.dla__remainder
    np.testing.assert_allclose(total.values, ds.logit_diff.values, atol=1e-4)
    np.testing.assert_allclose(ds.logit_lens.isel(layer=-1).values, ds.logit_diff.values, atol=1e-4)
    for name in ("end_to_io", "end_to_s1", "end_to_s2", "s2_to_s1"):
        assert ((ds[name] >= 0) & (ds[name] <= 1)).all()
    assert ds.backup.dims == ("step", "src_layer", "src_head", "dst_layer", "dst_head")
    # a word-level tokenizer: every token starts a word, so start-of-word has no target (NaN)
    assert np.isnan(ds.word_start).all()
    for name in ("bracket", "bos", "prev_token", "dup_token"):
        assert np.isfinite(ds[name]).all() and ((ds[name] >= 0) & (ds[name] <= 1)).all()


@pytest.mark.slow
def test_ioi_over_training_small_logit_difference_rises(tmp_path):
    """The toy IOI study at a quarter of its length: the logit difference goes from ~0 to
    clearly positive, and layer 1's heads carry most of it (direct logit attribution)."""
    (tmp_path / ".mispec").mkdir()
    text = (SPECS / "ioi_over_training.yaml").read_text()
    text = text.replace("steps: 2000", "steps: 600").replace(
        "checkpoints: {schedule: log, count: 20}", "checkpoints: {steps: [0, 600]}"
    )
    text = text.replace("args: {n: 64, n_names: 16}", "args: {n: 16, n_names: 16}")
    assert "seeds: [0, 1, 2]" in text  # the seeds the claims are stated over: one is enough here
    text = text.replace("seeds: [0, 1, 2]", "seeds: [0]")
    (tmp_path / "ioi.yaml").write_text(text)
    ds = mispec.run(tmp_path / "ioi.yaml", progress=False).open()["ioi2l"].to_dataset().sel(seed=0)
    ld = ds.logit_diff.values
    assert abs(ld[0]) < 0.5 and ld[1] > 2.0, ld
    last = ds.sel(step=600)
    assert float(last.dla.sel(layer=1).sum()) > 0.5 * float(last.logit_diff)
    total = last.dla.sum() + last.dla__remainder
    assert abs(float(total - last.logit_diff)) < 1e-4
