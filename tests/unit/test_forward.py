"""The shared forward pass: exactly the hooks asked for, stacked over layers, micro-batched,
pseudo hooks equal to their definitions, float32 on the CPU."""

from __future__ import annotations

import functools

import pytest
import torch

from mispec.errors import UserError
from mispec.metrics.forward import expand_hooks, run_forward

PATTERN = "blocks.{layer}.attn.hook_pattern"
Z = "blocks.{layer}.attn.hook_z"


@functools.cache
def bridge(n_layers: int = 2, dtype: torch.dtype = torch.float32):
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(
        d_model=32, d_head=8, n_layers=n_layers, n_ctx=24, n_heads=4, d_vocab=40,
        attn_only=True, normalization_type="LN", seed=0, dtype=dtype,
    )  # fmt: skip
    return TransformerBridge.boot_native(cfg)


def tokens(n: int = 10, seq: int = 17, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 40, (n, seq), generator=torch.Generator().manual_seed(seed))


def test_expand_hooks():
    out = expand_hooks([PATTERN, "hook_embed", "next_logprob"], 3)
    assert out[PATTERN] == [f"blocks.{i}.attn.hook_pattern" for i in range(3)]
    assert out["hook_embed"] == ["hook_embed"]
    assert out["next_logprob"] == ["next_logprob"]


def test_matches_run_with_cache_stacked_over_layers():
    b, toks = bridge(), tokens()
    out = run_forward(b, toks, [PATTERN, Z, "hook_embed"], batch_size=None)
    with torch.no_grad():
        _, cache = b.run_with_cache(toks)
    assert out[PATTERN].shape == (2, 10, 4, 17, 17)  # [layer, batch, head, q, k]
    assert out[Z].shape == (2, 10, 17, 4, 8)  # [layer, batch, pos, head, d_head]
    for layer in range(2):
        torch.testing.assert_close(out[PATTERN][layer], cache[f"blocks.{layer}.attn.hook_pattern"])
        torch.testing.assert_close(out[Z][layer], cache[f"blocks.{layer}.attn.hook_z"])
    torch.testing.assert_close(out["hook_embed"], cache["hook_embed"])
    assert all(v.dtype == torch.float32 and v.device.type == "cpu" for v in out.values())


def test_one_forward_pass_per_micro_batch_with_exactly_the_needed_hooks(monkeypatch):
    b, toks = bridge(), tokens(n=10)
    calls = []
    real = b.run_with_hooks

    def spy(*args, **kwargs):
        calls.append((args[0].shape[0], [name for name, _ in kwargs["fwd_hooks"]]))
        return real(*args, **kwargs)

    monkeypatch.setattr(b, "run_with_hooks", spy)
    whole = run_forward(b, toks, [PATTERN, "next_logprob"], batch_size=None)
    assert calls == [(10, ["blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern"])]
    calls.clear()
    parts = run_forward(b, toks, [PATTERN, "next_logprob"], batch_size=4)
    assert [c[0] for c in calls] == [4, 4, 2]
    assert set(parts) == {PATTERN, "next_logprob"}  # no logits unless asked for
    for key in whole:
        torch.testing.assert_close(parts[key], whole[key], atol=1e-6, rtol=1e-5)
    assert not b.hook_dict["blocks.0.attn.hook_pattern"]._forward_hooks  # hooks removed


@pytest.mark.parametrize(
    "names",
    [
        ["blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern"],
        [
            "hook_embed",
            "blocks.1.hook_resid_post",
            "blocks.0.attn.hook_z",
            "ln_final.hook_normalized",
        ],
    ],
)
def test_cached_activations_equal_run_with_cache(names):
    """The caching hooks keep exactly what TransformerLens's run_with_cache keeps."""
    b, toks = bridge(), tokens(n=5)
    templates = sorted({n.replace(".0.", ".{layer}.").replace(".1.", ".{layer}.") for n in names})
    out = run_forward(b, toks, templates, batch_size=None)
    with torch.no_grad():
        _, cache = b.run_with_cache(toks, names_filter=names, return_cache_object=False)
    for name in names:
        template = name.replace(".0.", ".{layer}.").replace(".1.", ".{layer}.")
        got = out[template][int(name.split(".")[1])] if "{layer}" in template else out[template]
        torch.testing.assert_close(got, cache[name], rtol=0, atol=0)


def test_pseudo_hooks_match_their_definitions():
    b, toks = bridge(), tokens()
    out = run_forward(
        b, toks, ["logits", "final_logits", "next_logprob", "next_correct"], batch_size=3
    )
    with torch.no_grad():
        logits = b(toks)
    logp = torch.log_softmax(logits, -1)
    torch.testing.assert_close(out["logits"], logits)
    torch.testing.assert_close(out["final_logits"], logits[:, -1])
    expected = logp[:, :-1].gather(-1, toks[:, 1:, None]).squeeze(-1)
    torch.testing.assert_close(out["next_logprob"], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        out["next_correct"], (logits[:, :-1].argmax(-1) == toks[:, 1:]).float()
    )
    assert out["next_logprob"].shape == (10, 16)


def test_only_pseudo_hooks_runs_a_plain_forward():
    out = run_forward(bridge(), tokens(), ["next_logprob"], batch_size=None)
    assert set(out) == {"next_logprob"}


def test_low_precision_is_upcast():
    b = bridge(dtype=torch.bfloat16)
    out = run_forward(b, tokens(n=3), [PATTERN, "next_logprob", "final_logits"], batch_size=2)
    assert {v.dtype for v in out.values()} == {torch.float32}


def test_unknown_hook_is_a_user_error_with_a_suggestion():
    with pytest.raises(UserError, match="did you mean 'blocks.0.attn.hook_pattern'"):
        run_forward(bridge(), tokens(), ["blocks.{layer}.attn.hook_patern"], batch_size=None)


def test_restores_training_mode_and_tracks_no_grad():
    b = bridge()
    b.train()
    out = run_forward(b, tokens(n=2), [Z], batch_size=None)
    assert b.training and not out[Z].requires_grad
