"""Comparison metrics against independent computations on the same tensors: torch's
``kl_div``, a CKA written with the centring matrix, a hook patch written here, brute-force
assignment; and the known results (a side with itself: KL 0, CKA 1, identical models patch
exactly)."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import xarray as xr

from mispec.errors import MetricError
from mispec.metrics.builtin.checkpoint_values import (
    activations,
    attention_patterns,
    next_token_logprobs,
    token_logprobs,
)
from mispec.metrics.builtin.comparisons import (
    head_matching,
    kl_divergence,
    logprob_diff,
    representation_similarity,
    top1_agreement,
)
from mispec.metrics.builtin.cross_patching import cross_model_patching
from mispec.metrics.builtin.head_identity import align_heads, align_seeds, assign, match_heads
from mispec.metrics.builtin.loss import loss
from mispec.metrics.forward import run_forward
from mispec.prompts.core import PromptSet

N_LAYERS, N_HEADS, VOCAB, SEQ, BATCH = 2, 4, 20, 8, 6


@functools.cache
def bridge(seed: int):
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(
        d_model=32, d_head=8, n_layers=N_LAYERS, n_ctx=16, n_heads=N_HEADS, d_vocab=VOCAB,
        attn_only=True, normalization_type="LN", seed=seed,
    )  # fmt: skip
    b = TransformerBridge.boot_native(cfg)
    b.eval()
    return b


@functools.cache
def prompts() -> PromptSet:
    gen = torch.Generator().manual_seed(3)
    return PromptSet(tokens=torch.randint(0, VOCAB, (BATCH, SEQ), generator=gen).numpy())


def cell(metric, seed: int, **args):
    """A per-checkpoint cell as the pipeline makes it: the shared forward pass, then the
    metric."""
    mdef = metric.__mispec__
    acts = run_forward(bridge(seed), prompts().tokens, mdef.hooks_for(args))
    return metric(acts, prompts(), **args)


def logits_of(seed: int) -> torch.Tensor:
    with torch.no_grad():
        return bridge(seed)(torch.as_tensor(prompts().tokens)).double()


# ------------------------------------------------------------------ distributions
def test_kl_divergence_equals_torch_kl_div_and_is_zero_for_a_side_with_itself():
    p, q = cell(next_token_logprobs, 0), cell(next_token_logprobs, 1)
    lp, lq = (torch.log_softmax(logits_of(s), -1) for s in (0, 1))
    ref = F.kl_div(lq, lp, log_target=True, reduction="none").sum(-1)  # KL(P_a || P_b)
    per_token = kl_divergence(p, q, per="token")
    assert per_token.dims == ("batch", "pos")
    np.testing.assert_allclose(per_token.values, ref.numpy(), atol=1e-5)
    np.testing.assert_allclose(kl_divergence(p, q, per="position").values, ref.mean(0), atol=1e-5)
    assert kl_divergence(p, q) == pytest.approx(float(ref.mean()), abs=1e-5)
    assert float(ref.mean()) > 0.01  # two different models: a real divergence to compare
    assert kl_divergence(p, p) == 0.0
    assert np.all(kl_divergence(p, p, per="token").values == 0.0)


def test_logprob_diff_and_top1_agreement_equal_direct_computations():
    a, b = cell(token_logprobs, 0), cell(token_logprobs, 1)
    tokens = torch.as_tensor(prompts().tokens)
    ref = []
    for s in (0, 1):
        lp = torch.log_softmax(logits_of(s), -1)[:, :-1]
        ref.append(lp.gather(-1, tokens[:, 1:, None]).squeeze(-1))
    diff = logprob_diff(a, b)
    assert diff.dims == ("batch", "pos") and list(diff.pos.values) == list(range(1, SEQ))
    np.testing.assert_allclose(diff.values, (ref[0] - ref[1]).numpy(), atol=1e-5)
    assert logprob_diff(a, b, per="mean") == pytest.approx(
        float((ref[0] - ref[1]).mean()), abs=1e-5
    )

    p, q = cell(next_token_logprobs, 0), cell(next_token_logprobs, 1)
    same = (logits_of(0).argmax(-1) == logits_of(1).argmax(-1)).double()
    np.testing.assert_array_equal(top1_agreement(p, q, per="token").values, same.numpy())
    assert top1_agreement(p, q) == pytest.approx(float(same.mean()), abs=1e-12)
    assert 0.0 < float(same.mean()) < 1.0  # a test that can tell agreement from its absence
    assert top1_agreement(p, p) == 1.0


def test_padding_is_nan_in_the_cells_and_skipped_by_the_comparisons():
    mask = np.ones((BATCH, SEQ), dtype=bool)
    mask[0, 5:] = False
    padded = PromptSet(tokens=prompts().tokens, extras={"attention_mask": mask})
    acts = run_forward(bridge(0), padded.tokens, ("logits",))
    p = next_token_logprobs(acts, padded)
    assert np.isnan(p.values[0, 5:]).all() and not np.isnan(p.values[1]).any()
    acts1 = run_forward(bridge(1), padded.tokens, ("logits",))
    q = next_token_logprobs(acts1, padded)
    per_token = kl_divergence(p, q, per="token").values
    assert np.isnan(per_token[0, 5:]).all()
    assert kl_divergence(p, q) == pytest.approx(float(np.nanmean(per_token)), abs=1e-12)


def test_sides_that_cannot_be_compared_say_why():
    p = cell(next_token_logprobs, 0)
    with pytest.raises(MetricError, match="cannot be compared"):
        kl_divergence(p, p.isel(vocab=slice(0, 10)))


# ------------------------------------------------------------------ representations
def hsic_cka(x: np.ndarray, y: np.ndarray) -> float:
    """CKA with Gram matrices and the centring matrix H (Kornblith et al.'s definition)."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = x @ x.T, y @ y.T

    def hsic(a, b):
        return np.trace(a @ h @ b @ h)

    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


def test_representation_similarity_equals_a_hand_written_cka():
    x, y = cell(activations, 0, hook="resid_post"), cell(activations, 1, hook="resid_post")
    got = representation_similarity(x, y)
    assert got.dims == ("layer",)
    for layer in range(N_LAYERS):
        xs = x.values[layer].reshape(BATCH * SEQ, -1).astype(np.float64)
        ys = y.values[layer].reshape(BATCH * SEQ, -1).astype(np.float64)
        assert got.values[layer] == pytest.approx(hsic_cka(xs, ys), abs=1e-5)
        assert 0.0 < got.values[layer] < 0.99
    # invariant to a rotation and a scaling of one side: 1 against itself so transformed
    rot, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(32, 32)))
    turned = xr.DataArray(3.0 * x.values @ rot, dims=x.dims)
    np.testing.assert_allclose(representation_similarity(x, turned).values, 1.0, atol=1e-5)


# ------------------------------------------------------------------ heads
def test_head_matching_overlap_and_the_assignment_of_permuted_heads():
    x, y = cell(attention_patterns, 0), cell(attention_patterns, 1)
    sim = head_matching(x, y)
    assert sim.dims == ("layer", "head", "head_b")
    a, b = x.values.astype(np.float64), y.values.astype(np.float64)
    for layer, h, g in itertools.product(range(N_LAYERS), range(N_HEADS), range(N_HEADS)):
        ref = np.minimum(a[layer, h], b[layer, g]).sum(-1).mean()
        assert sim.values[layer, h, g] == pytest.approx(ref, abs=1e-9)
    # side b = side a with its heads permuted per layer: the matching finds the permutation
    perm = [np.array([2, 0, 3, 1]), np.array([1, 3, 0, 2])]
    shuffled = x.copy(data=np.stack([x.values[layer][perm[layer]] for layer in range(N_LAYERS)]))
    found = match_heads(head_matching(x, shuffled))
    inverse = [np.argsort(p) for p in perm]  # head h of side a sits at inverse[h] in side b
    np.testing.assert_array_equal(found.head_b.values, np.stack(inverse))
    np.testing.assert_allclose(found.similarity.values, 1.0, atol=1e-6)
    # and a head-indexed value of side b, aligned, lands back on side a's heads
    values_a = xr.DataArray(np.arange(8.0).reshape(2, 4), dims=("layer", "head"))
    values_b = values_a.copy(
        data=np.stack([values_a.values[layer][perm[layer]] for layer in range(2)])
    )
    np.testing.assert_array_equal(align_heads(values_b, found.head_b).values, values_a.values)


@pytest.mark.parametrize("n", [1, 3, 5, 6])
def test_assignment_is_the_best_permutation(n):
    rng = np.random.default_rng(n)
    for _ in range(5):
        sim = rng.normal(size=(n, n))
        best = max(itertools.permutations(range(n)), key=lambda p: sim[range(n), p].sum())
        got = assign(sim)
        assert sim[range(n), got].sum() == pytest.approx(sim[range(n), best].sum(), abs=1e-12)
        assert sorted(got) == list(range(n))


# ------------------------------------------------------------------ cross-model patching
def hand_patched_loss(target: int, source: int, name: str, index) -> float:
    """Side ``target`` run with ``name``'s activation replaced, at ``index``, by side
    ``source``'s on the same tokens, written without mispec's hook or loss helpers."""
    tokens = torch.as_tensor(prompts().tokens)
    clean = source_activation(source, name)
    with torch.no_grad():

        def patch(x, hook):
            x[index] = clean[index]
            return x

        logits = bridge(target).run_with_hooks(tokens, fwd_hooks=[(name, patch)])
    return float(
        F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB).double(), tokens[:, 1:].reshape(-1))
    )


@functools.cache
def source_activation(source: int, name: str) -> torch.Tensor:
    with torch.no_grad():
        _, cache = bridge(source).run_with_cache(
            torch.as_tensor(prompts().tokens), names_filter=[name]
        )
    return cache[name].clone()


def loss_cell(seed: int):
    return xr.DataArray(cell(loss, seed))


@pytest.mark.parametrize("per", ["head", "layer", "position"])
def test_cross_model_patching_equals_a_hand_written_hook_patch(per):
    hook = "z" if per == "head" else "resid_pre"
    src, src_loss = cell(activations, 1, hook=hook), loss_cell(1)
    raw = cross_model_patching(bridge(0), prompts(), src, src_loss, per=per, normalize=False)
    normed = cross_model_patching(bridge(0), prompts(), src, src_loss, per=per)
    base, target = float(loss_cell(0)), float(src_loss)
    assert abs(target - base) > 1e-3
    for layer in range(N_LAYERS):
        name = f"blocks.{layer}.attn.hook_z" if per == "head" else f"blocks.{layer}.hook_resid_pre"
        if per == "layer":
            ref = hand_patched_loss(0, 1, name, (slice(None),))
            assert raw.values[layer] == pytest.approx(ref, abs=1e-5)
            assert normed.values[layer] == pytest.approx((ref - base) / (target - base), abs=1e-4)
            continue
        for i in range(raw.shape[1]) if per == "head" else (0, 3, SEQ - 1):
            index = (slice(None), slice(None), i) if per == "head" else (slice(None), i)
            ref = hand_patched_loss(0, 1, name, index)
            assert raw.values[layer, i] == pytest.approx(ref, abs=1e-5)
            assert normed.values[layer, i] == pytest.approx(
                (ref - base) / (target - base), abs=1e-4
            )
    if per == "layer":  # all of side b's residual stream entering layer 0: its embeddings
        assert raw.attrs["loss_a"] == pytest.approx(base, abs=1e-6)


def test_cross_model_patching_of_identical_models_is_exact():
    src, src_loss = cell(activations, 0, hook="z"), loss_cell(0)
    raw = cross_model_patching(bridge(0), prompts(), src, src_loss, normalize=False)
    assert np.all(raw.values == raw.attrs["loss_a"])  # bit for bit: nothing changed
    normed = cross_model_patching(bridge(0), prompts(), src, src_loss)
    assert np.isnan(normed.values).all()  # no gap between the sides: nothing to recover


def test_cross_model_patching_refuses_a_source_of_the_wrong_hook():
    with pytest.raises(MetricError, match="hook: z"):
        cross_model_patching(bridge(0), prompts(), cell(activations, 1), loss_cell(1), per="head")


# ------------------------------------------------------------------ weights
def test_weight_distance_equals_the_norm_of_the_state_dict_difference():
    from mispec.metrics.builtin.weight_comparisons import parameters, weight_distance

    a, b = parameters(bridge(0)), parameters(bridge(1))
    sd_a, sd_b = bridge(0).state_dict(), bridge(1).state_dict()
    floats = [k for k, v in sd_a.items() if v.is_floating_point()]
    per_param = weight_distance(a, b, group="parameter")
    for name in per_param.component.values[:6]:
        ref = float((sd_a[name].double() - sd_b[name].double()).norm())
        assert float(per_param.sel(component=name)) == pytest.approx(ref, rel=1e-6)
    total = float(sum((sd_a[k].double() - sd_b[k].double()).pow(2).sum() for k in floats) ** 0.5)
    assert float(weight_distance(a, b, group="total").item()) == pytest.approx(total, rel=1e-6)
    layer0 = weight_distance(a, b, relative=True).sel(component="blocks.0")
    keys = [k for k in floats if k.startswith("blocks.0.")]
    num = sum((sd_a[k].double() - sd_b[k].double()).pow(2).sum() for k in keys)
    den = sum(sd_b[k].double().pow(2).sum() for k in keys)
    assert float(layer0) == pytest.approx(float((num / den) ** 0.5), rel=1e-6)
    assert np.all(weight_distance(a, a, group="parameter").values == 0.0)


def test_align_seeds_puts_every_seed_on_the_reference_seeds_heads():
    """Seed 1's heads are seed 0's permuted; after alignment a mean over seeds is per head."""
    x = cell(attention_patterns, 0)
    perm = [np.array([3, 2, 1, 0]), np.array([1, 0, 3, 2])]
    y = x.copy(data=np.stack([x.values[layer][perm[layer]] for layer in range(N_LAYERS)]))
    sim = head_matching(x, y).expand_dims(seed=[0], seed_b=[1], step=[5])
    score0 = np.arange(8.0).reshape(2, 4)
    score1 = np.stack([score0[layer][perm[layer]] for layer in range(2)])
    values = xr.DataArray(
        np.stack([score0, score1])[:, None], dims=("seed", "step", "layer", "head"),
        coords={"seed": [0, 1], "step": [5]},
    )  # fmt: skip
    aligned = align_seeds(values, sim)
    assert aligned.dims == values.dims and aligned.attrs["heads_of_seed"] == 0
    np.testing.assert_array_equal(aligned.sel(seed=1).values, values.sel(seed=0).values)
    np.testing.assert_array_equal(aligned.mean("seed").isel(step=0).values, score0)


def test_positions_are_the_predicted_tokens_in_every_per_position_result():
    """kl/top1 (full distributions) and logprob_diff (actual tokens) label ``pos`` alike: the
    position of the predicted token, so results of one run align position by position."""
    p, q = cell(next_token_logprobs, 0), cell(next_token_logprobs, 1)
    a, b = cell(token_logprobs, 0), cell(token_logprobs, 1)
    kl = kl_divergence(p, q, per="position")
    assert list(kl.pos.values) == list(range(1, SEQ + 1))
    assert list(top1_agreement(p, q, per="position").pos.values) == list(range(1, SEQ + 1))
    assert list(logprob_diff(a, b, per="position").pos.values) == list(range(1, SEQ))
    # the log-prob of the actual token at pos is the full distribution's entry at pos
    tokens = prompts().tokens
    picked = np.take_along_axis(p.values[:, :-1], tokens[:, 1:, None], -1)[..., 0]
    np.testing.assert_allclose(a.values, picked, atol=1e-5)


def test_plotted_head_matching_follows_the_heads_matched_at_the_last_step():
    """The plot's line per seed pair is the overlap of the pairs matched at the LAST step,
    at every step (not the best pair of each step, not a mean over head indices)."""
    from mispec.plot.comparisons import matched_overlap

    rng = np.random.default_rng(0)
    sim = rng.uniform(size=(1, 1, 2, 2, 3, 3))  # seed, seed_b, step, layer, head, head_b
    sim[0, 0, 1] = np.stack([np.eye(3)[[1, 2, 0]]] * 2) * 0.5 + 0.4  # last step: h -> (h+1)%3
    var = xr.DataArray(
        sim, dims=("seed", "seed_b", "step", "layer", "head", "head_b"),
        coords={"seed": [0], "seed_b": [1], "step": [0, 9]},
    )  # fmt: skip
    got = matched_overlap(var)
    assert got.dims == ("seed", "seed_b", "step", "layer")
    for layer in range(2):
        ref0 = np.mean([sim[0, 0, 0, layer, h, (h + 1) % 3] for h in range(3)])
        assert got.sel(step=0, layer=layer).item() == pytest.approx(ref0, abs=1e-12)
        assert got.sel(step=9, layer=layer).item() == pytest.approx(0.9, abs=1e-12)
