"""Nanda et al.'s grokking setting, trained for real (``specs/grokking_full.yaml``: 15 000
full-batch steps at p = 113, about an hour on one CPU thread): slow, on demand
(``pytest -m slow tests/system/test_grokking_full.py``). It checks the paper's claims: the model
memorises, then generalises much later; a handful of key frequencies (the paper: five);
restricted loss falls before test loss; excluded loss rises during circuit formation.

One quick test checks, on the spec's own ``train:`` settings at a tiny p and 10 steps, what
makes the model the paper's: its initialisation and its bias-free attention."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import mispec
from mispec.models import checkpoints as ckpt
from mispec.models.native import key_map, plain_model, to_bridge_state
from mispec.models.runs import native_config, run_dir
from mispec.sources import sources_for
from mispec.validation.load import load_spec

SPEC = Path(__file__).resolve().parents[2] / "specs" / "grokking_full.yaml"


def first_step(values: np.ndarray, steps: np.ndarray, threshold: float) -> float:
    hits = steps[values >= threshold]
    return float(hits[0]) if hits.size else float("inf")


@pytest.mark.slow
def test_the_papers_setting_groks_with_a_few_key_frequencies(tmp_path):
    run = mispec.run(SPEC, store=tmp_path / "store", out=tmp_path / "run", progress=False)
    ds = run.open()["mod113"].to_dataset().isel(seed=0)
    steps = ds.step.values
    memorised = first_step(ds.train_accuracy.values, steps, 0.95)
    generalised = first_step(ds.test_accuracy.values, steps, 0.9)
    assert generalised >= 3 * memorised  # delayed generalisation
    assert float(ds.test_accuracy.isel(step=-1)) > 0.9
    n_keys = int((ds.key_freqs.isel(step=-1) > 0).sum())
    assert 3 <= n_keys <= 8  # the paper finds five
    # restricted loss falls (below half its start) before test loss does
    r, t = ds.restricted.values, ds.test_loss.values
    assert first_step(-r, steps, -r[0] / 2) < first_step(-t, steps, -t.max() / 2)
    # excluded loss rises between memorisation and generalisation
    window = (steps >= memorised) & (steps <= generalised)
    assert ds.excluded.values[window].max() > ds.excluded.values[steps == memorised][0]


def test_the_specs_init_and_frozen_biases_are_the_papers(write_spec):
    """grokking_full.yaml's train: block at p = 13 for 10 steps: step 0 is TransformerLens's
    init with W_O and W_out scaled by sqrt(2) and W_U by sqrt(128/114) — the paper's
    N(0, 1/d_model), and N(0, 1/d_vocab) for W_U at p = 113 —, the attention biases are zero
    at step 0 and stay zero while the MLP biases train (weight decay 1 on everything)."""
    text = SPEC.read_text().replace("113", "13").replace("steps: 15000", "steps: 10")
    text = text.replace("{schedule: log, count: 60}", "{steps: [0, 10]}")
    loaded = load_spec(write_spec(text))
    source = sources_for(dict(loaded.spec.models), loaded.base_dir)["mod13"]
    store = loaded.base_dir / "store"
    source.prepare(0, [0, 10], store, progress=False)
    folder = run_dir(source.train, 0, store, source.lineage(0))
    start, end = (ckpt.read_tensors(folder / f"model_{s}.safetensors")[0] for s in (0, 10))
    kwargs = native_config(source.train, 0)
    fresh = to_bridge_state(plain_model(kwargs), key_map(kwargs))
    for w in ("blocks.0.attn.o.weight", "blocks.0.mlp.out.weight"):
        assert torch.allclose(start[w], fresh[w] * 2**0.5, rtol=1e-6, atol=0)
        assert float(start[w].std()) == pytest.approx(128**-0.5, rel=0.03)  # paper's std
    assert torch.allclose(start["unembed.weight"], fresh["unembed.weight"] * (128 / 114) ** 0.5)
    assert float(start["unembed.weight"].std()) == pytest.approx(114**-0.5, rel=0.06)
    for w in ("embed.weight", "blocks.0.attn.q.weight", "blocks.0.mlp.in.weight"):
        assert torch.equal(start[w], fresh[w])  # TransformerLens's N(0, 1/d_model) already
        assert float(start[w].std()) == pytest.approx(128**-0.5, rel=0.06)
    for part in "qkvo":
        b = f"blocks.0.attn.{part}.bias"
        assert torch.equal(start[b], torch.zeros_like(start[b]))
        assert torch.equal(end[b], torch.zeros_like(end[b]))  # frozen at zero
    for b in ("blocks.0.mlp.in.bias", "blocks.0.mlp.out.bias"):
        assert torch.equal(start[b], torch.zeros_like(start[b]))
        assert float(end[b].abs().max()) > 1e-4  # trains, as in the paper
    assert not torch.equal(end["blocks.0.attn.q.weight"], start["blocks.0.attn.q.weight"])
