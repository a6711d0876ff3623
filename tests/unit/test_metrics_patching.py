"""(layer, head, position) patching against TransformerLens's ``patching``, path patching and
backup heads against hand-written hook patches on the same bridge."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from transformer_lens import patching

from mispec.metrics.builtin.patching import backup_heads, head_position_patching, path_patching
from mispec.prompts.core import PromptSet

N_LAYERS, N_HEADS, VOCAB, SEQ, BATCH = 3, 2, 20, 4, 5


@functools.cache
def bridge(n_layers: int = N_LAYERS):
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(
        d_model=24, d_head=8, n_layers=n_layers, n_ctx=16, n_heads=N_HEADS, d_vocab=VOCAB,
        d_mlp=48, act_fn="gelu", normalization_type="LN", seed=4,
    )  # fmt: skip
    b = TransformerBridge.boot_native(cfg)
    b.eval()
    return b


@functools.cache
def pairs(n_layers: int = N_LAYERS) -> PromptSet:
    """Corrupted copies that differ at two positions; answers chosen so that clean and corrupt
    disagree (a clear gap)."""
    gen = torch.Generator().manual_seed(7)
    clean = torch.randint(0, VOCAB, (BATCH, SEQ), generator=gen)
    corrupt = clean.clone()
    corrupt[:, 1] = (clean[:, 1] + 5) % VOCAB
    corrupt[:, 3] = (clean[:, 3] + 9) % VOCAB
    with torch.no_grad():
        lc, lx = bridge(n_layers)(clean)[:, -1], bridge(n_layers)(corrupt)[:, -1]
    return PromptSet(
        tokens=clean.numpy(),
        extras={
            "corrupt_tokens": corrupt.numpy(),
            "answer": (lc - lx).argmax(-1).numpy(),
            "wrong_answer": (lx - lc).argmax(-1).numpy(),
            "pos_END": np.full(BATCH, SEQ - 1),
        },
    )


def ld(logits: torch.Tensor, ps: PromptSet | None = None) -> torch.Tensor:
    ps = ps or pairs()
    a, w = torch.from_numpy(ps.extras["answer"]), torch.from_numpy(ps.extras["wrong_answer"])
    last = logits[:, -1]
    return (last.gather(-1, a[:, None]) - last.gather(-1, w[:, None])).mean()


def tokens(ps: PromptSet | None = None):
    ps = ps or pairs()
    return torch.from_numpy(ps.tokens), torch.from_numpy(ps.extras["corrupt_tokens"])


def test_head_position_patching_equals_transformer_lens():
    b, ps = bridge(2), pairs(2)  # two layers: TL's sweep runs one pass per cell too
    ours = head_position_patching(b, ps)
    clean, corrupt = tokens(ps)

    def metric(logits):
        return ld(logits, ps)

    with torch.no_grad():
        lc, cache = b.run_with_cache(clean)
        ld_clean, ld_corrupt = metric(lc), metric(b(corrupt))
        tl = patching.get_act_patch_attn_head_out_by_pos(b, corrupt, cache, metric)
    expected = ((tl - ld_corrupt) / (ld_clean - ld_corrupt)).permute(0, 2, 1)  # [layer, head, pos]
    assert ours.dims == ("layer", "head", "pos")
    np.testing.assert_allclose(ours.values, expected.numpy(), atol=1e-5)
    assert np.nanmax(np.abs(ours.values)) > 0.05


def test_path_patching_equals_hand_written_hooks():
    """By hand: sender to corrupt, the heads of the layers between frozen to clean, receivers'
    queries cached; then a clean run with only those queries swapped in."""
    b, ps = bridge(), pairs()
    receivers = [[2, 0], [2, 1]]
    ours = path_patching(b, ps, receivers=receivers)
    clean, corrupt = tokens()
    with torch.no_grad():
        lc, cc = b.run_with_cache(clean)
        _, cx = b.run_with_cache(corrupt)
        ld_clean, ld_corrupt = ld(lc), ld(b(corrupt))
        for s_layer, s_head in [(0, 1), (1, 0)]:

            def sender(x, hook, h=s_head, layer=s_layer):
                x[:, :, h] = cx[f"blocks.{layer}.attn.hook_z"][:, :, h]
                return x

            hooks = [(f"blocks.{s_layer}.attn.hook_z", sender)]
            for other in range(s_layer + 1, 2):  # heads between sender and receivers: clean
                hooks.append(
                    (
                        f"blocks.{other}.attn.hook_z",
                        lambda x, hook, o=other: cc[f"blocks.{o}.attn.hook_z"],
                    )
                )
            with b.hooks(fwd_hooks=hooks):
                _, mid = b.run_with_cache(clean, names_filter=["blocks.2.attn.hook_q"])
            q = mid["blocks.2.attn.hook_q"]

            def receive(x, hook, q=q):
                x[:, :, [0, 1]] = q[:, :, [0, 1]]
                return x

            patched = ld(b.run_with_hooks(clean, fwd_hooks=[("blocks.2.attn.hook_q", receive)]))
            expected = float((patched - ld_clean) / (ld_clean - ld_corrupt))
            assert ours.sel(layer=s_layer, head=s_head) == pytest.approx(expected, abs=1e-5)
    assert np.isnan(ours.sel(layer=2)).all()  # receivers' own layer: no path
    assert np.nanmax(np.abs(ours.values)) > 1e-3
    # only at the END position: the same as patching all positions where only END is read?
    # no — earlier positions' queries feed nothing downstream in the last layer, so equal
    at_end = path_patching(b, ps, receivers=receivers, receiver_pos="END")
    np.testing.assert_allclose(at_end.values, ours.values, atol=1e-5)


def test_backup_heads_equal_hand_computed_dla_change():
    b, ps = bridge(), pairs()
    ours = backup_heads(b, ps, method="zero")
    clean, _ = tokens()
    a, w = torch.from_numpy(ps.extras["answer"]), torch.from_numpy(ps.extras["wrong_answer"])
    u = (b.W_U[:, a] - b.W_U[:, w]).T * b.ln_final.weight

    def dla(hooks):
        with torch.no_grad(), b.hooks(fwd_hooks=hooks):
            _, c = b.run_with_cache(clean)
        scale = c["ln_final.hook_scale"][:, -1, 0]
        out = torch.zeros(N_LAYERS, N_HEADS)
        for layer in range(N_LAYERS):
            res = torch.einsum(
                "bhd,hdm->bhm", c[f"blocks.{layer}.attn.hook_z"][:, -1], b.W_O[layer]
            )
            res = (res - res.mean(-1, keepdim=True)) / scale[:, None, None]
            out[layer] = (res * u[:, None]).sum(-1).mean(0)
        return out

    base = dla([])

    def zero(x, hook):
        x[:, :, 1] = 0.0
        return x

    after = dla([("blocks.0.attn.hook_z", zero)])
    np.testing.assert_allclose(
        ours.sel(src_layer=0, src_head=1, dst_layer=[1, 2]).values,
        (after - base)[1:].detach().numpy(),
        atol=1e-5,
    )
    assert np.isnan(ours.sel(src_layer=1, dst_layer=[0, 1])).all()
    assert np.isnan(ours.sel(src_layer=2)).all()


def test_attribution_patching_is_the_derivative_along_clean_minus_corrupt():
    """The estimate is d/de LD(corrupt, z_h := z_corrupt + e (z_clean - z_corrupt)) at e = 0:
    checked against a central finite difference for every head."""
    from mispec.metrics.builtin.attribution import attribution_patching

    b, ps = bridge(2), pairs(2)
    ours = attribution_patching(b, ps)
    clean, corrupt = tokens(ps)
    with torch.no_grad():
        lc, cc = b.run_with_cache(clean)
        lx, cx = b.run_with_cache(corrupt)
        gap = float(ld(lc, ps) - ld(lx, ps))
        eps = 1e-2
        for layer in range(2):
            name = f"blocks.{layer}.attn.hook_z"
            for h in range(N_HEADS):

                def move(x, hook, e, h=h, name=name):
                    x[:, :, h] = cx[name][:, :, h] + e * (cc[name][:, :, h] - cx[name][:, :, h])
                    return x

                up = ld(
                    b.run_with_hooks(
                        corrupt, fwd_hooks=[(name, lambda x, hook: move(x, hook, eps))]
                    ),
                    ps,
                )
                down = ld(
                    b.run_with_hooks(
                        corrupt, fwd_hooks=[(name, lambda x, hook: move(x, hook, -eps))]
                    ),
                    ps,
                )
                slope = float(up - down) / (2 * eps) / gap
                assert ours.sel(layer=layer, head=h) == pytest.approx(slope, abs=2e-3, rel=1e-2)
    assert np.abs(ours.values).max() > 0.01


def test_attribution_patching_equals_transformer_lens_attribution_patch():
    """TL's node sweep (per layer, position, head; averaged over pairs) summed over positions
    is the same estimate, on prompts that share one answer pair (TL's metric sees one row)."""
    from transformer_lens.tools.analysis.attribution_patching import attribution_patch

    from mispec.metrics.builtin.attribution import attribution_patching

    b, base = bridge(2), pairs(2)
    a, w = int(base.extras["answer"][0]), int(base.extras["wrong_answer"][0])
    n = base.n
    ps = PromptSet(
        tokens=base.tokens,
        extras={**base.extras, "answer": np.full(n, a), "wrong_answer": np.full(n, w)},
    )
    ours = attribution_patching(b, ps, min_gap_z=0.0)
    clean, corrupt = tokens(ps)
    res = attribution_patch(b, clean, corrupt, lambda logits: logits[0, -1, a] - logits[0, -1, w])
    tl = np.zeros((2, N_HEADS))
    for node, score in res.node_scores.items():
        if node.kind == "attn_head_out":
            tl[node.layer, node.head] += float(score)
    gap = ours.attrs["ld_clean"] - ours.attrs["ld_corrupt"]
    np.testing.assert_allclose(ours.values * gap, tl, atol=1e-5)
