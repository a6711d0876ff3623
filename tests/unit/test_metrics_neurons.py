"""Neuron activations, top examples chosen at one checkpoint and read at another, and neuron
ablation against a hand-written hook."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mispec.metrics.builtin.neurons import (
    POST,
    neuron_ablation,
    neuron_activation,
    neuron_top_examples,
    top_examples,
)
from mispec.prompts.core import PromptSet


def acts_and_prompts(seed: int):
    gen = torch.Generator().manual_seed(seed)
    post = torch.randn(2, 3, 4, 5, generator=gen)  # [layer, batch, pos, d_mlp]
    real = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]], dtype=bool)
    ps = PromptSet(tokens=np.zeros((3, 4), dtype=np.int64), extras={"attention_mask": real})
    return {POST: post}, ps, real


def test_neuron_activation_means_over_real_tokens_only():
    acts, ps, real = acts_and_prompts(0)
    got = neuron_activation(acts, ps)
    post = acts[POST].numpy()
    expected = np.stack([post[:, b, p] for b in range(3) for p in range(4) if real[b, p]]).mean(0)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    at_answer = neuron_activation(acts, ps, position="answer")  # each prompt's last real token
    np.testing.assert_allclose(
        at_answer, np.mean([post[:, 0, 3], post[:, 1, 1], post[:, 2, 2]], axis=0), atol=1e-6
    )


def test_top_examples_chosen_at_a_reference_and_read_elsewhere():
    ref_acts, ps, real = acts_and_prompts(1)
    later_acts, _, _ = acts_and_prompts(2)
    sel = neuron_top_examples(ref_acts, ps, layer=1, neurons=[0, 3], k=3)
    assert sel.dims == ("neuron", "batch", "pos") and sel.sum() == 6
    ref, later = ref_acts[POST][1].numpy(), later_acts[POST][1].numpy()
    for n in (0, 3):
        flat = [(ref[b, p, n], b, p) for b in range(3) for p in range(4) if real[b, p]]
        top = sorted(flat, reverse=True)[:3]
        marked = {(b, p) for _, b, p in top}
        assert {tuple(i) for i in np.argwhere(sel.sel(neuron=n).values)} == marked
    got = top_examples(later_acts, ps, sel, layer=1, neurons=[0, 3])
    for n in (0, 3):
        idx = np.argwhere(sel.sel(neuron=n).values)
        assert got.sel(neuron=n) == pytest.approx(np.mean([later[b, p, n] for b, p in idx]))
    # at the reference itself its own examples are its top activations
    own = top_examples(ref_acts, ps, sel, layer=1, neurons=[0, 3])
    assert (own.values > neuron_activation(ref_acts, ps)[1, [0, 3]]).all()


def test_neuron_ablation_equals_a_hand_written_hook():
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(
        d_model=16, d_head=8, n_layers=1, n_ctx=8, n_heads=2, d_vocab=12, d_mlp=8,
        act_fn="gelu", normalization_type="LN", seed=5,
    )  # fmt: skip
    b = TransformerBridge.boot_native(cfg).eval()
    tokens = torch.randint(0, 12, (4, 6), generator=torch.Generator().manual_seed(0))
    ps = PromptSet(tokens=tokens.numpy())
    got = neuron_ablation(b, ps, layer=0, neurons=[2, 5])
    with torch.no_grad():
        base = b(tokens, return_type="loss")

        def zero(x, hook):
            x[:, :, 5] = 0.0
            return x

        ablated = b.run_with_hooks(
            tokens, return_type="loss", fwd_hooks=[(POST.format(layer=0), zero)]
        )
    assert got.sel(neuron=5) == pytest.approx(float(ablated - base), abs=1e-5)
    assert got.attrs["baseline"] == pytest.approx(float(base), abs=1e-5)
    assert abs(float(got.sel(neuron=5))) > 1e-5
