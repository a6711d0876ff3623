"""Pairs (``pairs:``): planning, running, assembly with explicit second-side dims, no extra
forward passes, and bad pairs refused at validate."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mispec
from mispec.errors import SpecError
from mispec.metrics.builtin.head_identity import match_heads
from mispec.planning.nodes import CellNode, GroupNode
from tests.conftest import REPO

SIDES = """\
mispec: 1
name: pairs
models:
  toy:
    train:
      task: repeated_tokens
      task_args: {vocab: 16, half_len: 6}
      arch: {n_layers: 2, n_heads: 2, d_model: 16, d_head: 8, attn_only: true}
      steps: 20
      batch_size: 8
    seeds: [0, 1, 2]
    checkpoints: {steps: [0, 10, 20]}
  toy_b:
    train:
      task: repeated_tokens
      task_args: {vocab: 16, half_len: 6}
      arch: {n_layers: 2, n_heads: 2, d_model: 16, d_head: 8, attn_only: true}
      steps: 20
      batch_size: 8
      optimizer: {name: adamw, lr: 3.0e-3}
    seeds: [0]
    checkpoints: {steps: [0, 10, 20]}
prompts:
  rep:
    generator: repeated_tokens
    args: {n: 4, vocab: 16, half_len: 6}
    seed: 1
metrics:
  logprobs: {fn: next_token_logprobs, prompts: rep, args: {mask: none}}
  patterns: {fn: attention_patterns, prompts: rep}
"""
COMPARISONS = """\
  kl: {fn: kl_divergence, inputs: {p: logprobs, q: logprobs}, pairs: seeds, models: [toy], args: {per: token}}
  heads: {fn: head_matching, inputs: {x: patterns, y: patterns}, pairs: {seeds: [0, 2]}, models: [toy]}
  kl_final: {fn: kl_divergence, inputs: {p: logprobs, q: logprobs}, pairs: {steps: last}}
  kl_models: {fn: kl_divergence, inputs: {p: logprobs, q: logprobs}, pairs: {models: [toy, toy_b]}}
"""


def torch_kl(p, q) -> np.ndarray:
    """KL(P || Q) per token by torch, from two log-prob arrays [batch, pos, vocab]."""
    lp, lq = torch.as_tensor(np.asarray(p)), torch.as_tensor(np.asarray(q))
    return F.kl_div(lq, lp, log_target=True, reduction="none").sum(-1).numpy()


def test_pairs_expand_into_cells_reading_both_sides(write_spec):
    plan = mispec.plan(write_spec(SIDES + COMPARISONS)).plan
    cells = plan.nodes(CellNode)
    kl = [c for c in cells if c.metric == "kl"]
    # 3 unordered seed pairs x 3 steps; the first side is the smaller seed
    assert sorted((c.seed, c.pair[1], c.step) for c in kl) == [
        (a, b, s) for a, b in [(0, 1), (0, 2), (1, 2)] for s in (0, 10, 20)
    ]
    assert len({c.key for c in kl}) == 9 and len({c.id for c in kl}) == 9
    one = next(c for c in kl if (c.seed, c.pair, c.step) == (0, ("toy", 2, 10), 10))
    ins = dict(one.inputs)
    assert plan.node(ins["p"]).seed == 0 and plan.node(ins["q"]).seed == 2
    # the first side's group waits for the second side's group (work-graph edge)
    assert plan.work().has_edge("group:toy/s2/step10", "group:toy/s0/step10")
    assert plan.group_of(one) == plan.node("group:toy/s0/step10")
    heads = [c for c in cells if c.metric == "heads"]
    assert sorted((c.seed, c.pair[1]) for c in heads) == [(0, 2)] * 3
    final = [c for c in cells if c.metric == "kl_final"]
    assert {c.pair[2] for c in final} == {20} and len(final) == 12  # 4 runs x 3 steps
    models = [c for c in cells if c.metric == "kl_models"]
    assert sorted((c.model, c.seed, c.pair) for c in models) == [
        ("toy", 0, ("toy_b", 0, s)) for s in (0, 10, 20)
    ]
    assert plan.counts()["forward"] == 12  # the sides' forward passes, nothing more
    assert all(isinstance(g, GroupNode) for g in plan.nodes(GroupNode))


def test_comparisons_added_to_cached_sides_run_no_forward_pass(write_spec, tmp_path):
    sides = mispec.run(write_spec(SIDES, "sides.yaml"), progress=False, out=tmp_path / "a")
    assert sides.counters["forward_passes"] == 12
    both = write_spec(SIDES + COMPARISONS, "both.yaml")
    status = mispec.plan(both).status
    assert status.forward_passes == 0
    assert status.pair_cells == status.pair_cells_todo == 27 and status.pair_interventions_todo == 0
    res = mispec.run(both, progress=False, out=tmp_path / "b")
    assert res.counters["forward_passes"] == 0
    assert res.counters["checkpoints_loaded"] == 0 and res.counters["training_steps"] == 0
    assert res.counters["cells_computed"] == 9 + 3 + 12 + 3
    tree = res.open()
    ds = tree["toy"].to_dataset()
    # explicit dims for the second side; only a < b computed, the rest NaN
    assert ds.kl.dims == ("seed", "seed_b", "step", "batch", "pos")
    assert list(ds.seed_b.values) == [0, 1, 2]
    lp = ds.logprobs
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        for step in (0, 10, 20):
            ref = torch_kl(lp.sel(seed=a, step=step), lp.sel(seed=b, step=step))
            got = ds.kl.sel(seed=a, seed_b=b, step=step).values
            np.testing.assert_allclose(got, ref, atol=1e-5)
    assert np.isnan(ds.kl.sel(seed=1, seed_b=0).values).all()
    assert np.isnan(ds.kl.sel(seed=1, seed_b=1).values).all()
    # each step against the last: step_b = 20, and KL 0 at the last step itself
    assert ds.kl_final.dims == ("seed", "step", "step_b") and list(ds.step_b.values) == [20]
    assert (ds.kl_final.sel(step=20).values == 0.0).all()
    assert (ds.kl_final.sel(step=0).values > 0).all()
    # head matching of seeds 0 and 2 only; the assignment of the last step is a permutation
    assert ds.heads.dims == ("seed", "seed_b", "step", "layer", "head", "head_b")
    m = match_heads(ds.heads.sel(seed=0, seed_b=2, step=20))
    assert sorted(m.head_b.sel(layer=1).values) == [0, 1]
    # model A against model B: a comparison node of its own
    comp = tree["toy_vs_toy_b"].to_dataset()
    assert comp.attrs["model"] == "toy" and comp.attrs["model_b"] == "toy_b"
    assert comp.kl_models.dims == ("seed", "step")
    lp_b = tree["toy_b"].to_dataset().logprobs
    # pos 0 is NaN in the dataset (it labels activations there; no token is predicted at 0)
    ref = np.nanmean(torch_kl(lp.sel(seed=0, step=20), lp_b.sel(seed=0, step=20)))
    assert np.isnan(lp.sel(pos=0)).all() and not np.isnan(lp.sel(pos=slice(1, None))).any()
    assert float(comp.kl_models.sel(seed=0, step=20)) == pytest.approx(float(ref), abs=1e-5)
    assert any("kl at step 20" in line for line in res.summary)
    assert any("heads seed 0 → seed 2" in line for line in res.summary)


BAD = (
    SIDES
    + """\
  kl: {fn: kl_divergence, inputs: {p: logprobs, q: logprobs}, pairs: {seeds: [0, 7]}, models: [toy]}
  km: {fn: kl_divergence, inputs: {p: logprobs, q: logprobs}, pairs: {models: [toy, toyb]}}
  ks: {fn: kl_divergence, inputs: {p: logprobs, q: logprobs}, pairs: {steps: 15}}
  kw: {fn: kl_divergence, inputs: {p: logprobs, q: logprobs}, pairs: {models: [toy, wide]}}
  kn: {fn: kl_divergence, inputs: {p: logprobs, q: logprobs}, models: [toy]}
  lp: {fn: loss, prompts: rep, pairs: seeds, models: [toy]}
  kf: {fn: kl_divergence, inputs: {p: logprobs, q: logprobs}, pairs: {models: [toy, toy_b], steps: 15}}
  only_toy: {fn: next_token_logprobs, prompts: rep, models: [toy]}
  ko: {fn: kl_divergence, inputs: {p: only_toy, q: only_toy}, pairs: {models: [toy, toy_b]}, models: [toy]}
"""
)
WIDE = """\
  wide:
    train:
      task: repeated_tokens
      task_args: {vocab: 24, half_len: 6}
      arch: {n_layers: 2, n_heads: 2, d_model: 16, d_head: 8, attn_only: true}
      steps: 20
      batch_size: 8
    seeds: [0]
    checkpoints: {steps: [0, 10, 20]}
"""


def test_bad_pairs_are_refused_at_validate_with_their_location(write_spec):
    text = BAD.replace("prompts:\n  rep:", WIDE + "prompts:\n  rep:")
    path = write_spec(text)
    with pytest.raises(SpecError) as err:
        mispec.load_spec(path)
    lines = text.splitlines()

    def at(metric: str, needle: str) -> str:
        row = next(i for i, line in enumerate(lines) if line.startswith(f"  {metric}:"))
        return f"{path.name}:{row + 1}:{lines[row].index(needle) + 1}:"

    shown = [str(p).replace(str(path), path.name) for p in err.value.problems]
    expected = {
        "kl": (at("kl", "7"), "seed 7 is not a seed of model 'toy' (its seeds: [0, 1, 2])"),
        "km": (at("km", "toyb"), "unknown model 'toyb' (did you mean 'toy_b'?)"),
        "ks": (at("ks", "15"), "step 15 is not a checkpoint of model 'toy' (nearest: [10, 20]"),
        "kw": (at("kw", "[toy, wide]"), "d_vocab 16 vs 24 (it needs the same d_vocab)"),
        "kn": (at("kn", "kn:"), "compares two sides"),
        "lp": (at("lp", "pairs:"), "'loss' compares nothing"),
        "kf": (at("kf", "15"), "step 15 is not a checkpoint of model 'toy_b'"),
        "ko": (at("ko", "[toy, toy_b]"), "'only_toy' does not run on 'toy_b'"),
    }
    for metric, (where, message) in expected.items():
        assert any(s.startswith(where) and message in s for s in shown), (metric, shown)
    # the CLI: exit 2, no traceback, nothing written
    res = subprocess.run(
        [sys.executable, "-m", "mispec.cli.main", "validate", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "seed 7 is not a seed" in res.stderr + res.stdout


PATCHING = (
    SIDES.replace("  logprobs: {fn: next_token_logprobs, prompts: rep, args: {mask: none}}\n", "")
    .replace(
        "  patterns: {fn: attention_patterns, prompts: rep}\n",
        """\
  z: {fn: activations, prompts: rep, args: {hook: z}}
  loss: {fn: loss, prompts: rep}
  patch: {fn: cross_model_patching, prompts: rep, inputs: {source: z, source_loss: loss}, pairs: {models: [toy, toy_b], steps: last}, args: {normalize: false}}
""",
    )
    .replace("seeds: [0, 1, 2]", "seeds: [0]")
)


def load_checkpoint(spec_path, model: str, seed: int, step: int, store=None):
    """The bridge of one stored checkpoint of a run (store: ``.mispec`` beside the spec)."""
    from mispec.sources import sources_for

    spec = mispec.load_spec(spec_path).spec
    store = spec_path.parent / ".mispec" if store is None else store
    return sources_for(spec.models, spec_path.parent)[model].open(seed, store).load(step)


def hand_head_patch_loss(a, b, tokens, layer: int, head: int, weights=None) -> float:
    """Model ``a``'s mean next-token loss on ``tokens`` with head ``head``'s output in layer
    ``layer`` (``hook_z``) replaced by model ``b``'s on the same tokens, written without
    mispec's hook or loss helpers. ``weights`` ``[batch, pos-1]`` counts only some predictions
    (default: all). ``a`` patched from itself is ``a``'s own loss."""
    name = f"blocks.{layer}.attn.hook_z"
    with torch.no_grad():
        _, cache = b.run_with_cache(tokens, names_filter=[name])

        def patch(x, hook):
            x[:, :, head] = cache[name][:, :, head]
            return x

        logits = a.run_with_hooks(tokens, fwd_hooks=[(name, patch)])
    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2).double(), tokens[:, 1:], reduction="none")
    w = torch.ones_like(nll) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
    return float((nll * w).sum() / w.sum())


def test_cross_model_patching_in_a_spec_patches_model_b_into_model_a(write_spec, tmp_path):
    """The pair wiring end to end: side a is the live model, side b's cached z is patched in;
    checked against a hook patch written here on the two trained checkpoints."""
    path = write_spec(PATCHING)
    res = mispec.run(path, progress=False)
    comp = res.open()["toy_vs_toy_b"].to_dataset()
    # every step of model A against model B's last step (a child against its parent's end)
    assert comp.patch.dims == ("seed", "step", "step_b", "layer", "head")
    assert list(comp.step.values) == [0, 10, 20] and list(comp.step_b.values) == [20]
    spec = mispec.load_spec(path).spec
    a, b = load_checkpoint(path, "toy", 0, 10), load_checkpoint(path, "toy_b", 0, 20)
    from mispec.tasks.generators import PROMPT_GENERATORS

    rep = PROMPT_GENERATORS.get("repeated_tokens")(seed=1, **spec.prompts["rep"].args)
    tokens = torch.as_tensor(rep.tokens)
    # the loss counts the prompt set's loss_mask by default (the repeated half)
    ref = hand_head_patch_loss(a, b, tokens, layer=1, head=1, weights=rep.extras["loss_mask"])
    got = float(comp.patch.sel(seed=0, step=10, step_b=20, layer=1, head=1))
    assert got == pytest.approx(ref, abs=1e-5)
    loss_b = float(res.open()["toy_b"].to_dataset().loss.sel(seed=0, step=20))
    loss_b_seen = comp.patch__loss_b.sel(seed=0, step_b=20)
    np.testing.assert_allclose(loss_b_seen.values, loss_b, atol=1e-12)  # at every step of A
    loss_a = float(res.open()["toy"].to_dataset().loss.sel(seed=0, step=10))
    assert float(comp.patch__loss_a.sel(seed=0, step=10, step_b=20)) == pytest.approx(
        loss_a, abs=1e-5
    )


def test_path_dependence_study_runs_small_and_says_which_heads_match(write_spec):
    """specs/path_dependence.yaml, shrunk (20 steps, 3 checkpoints, 4 prompts): every
    comparison lands with its second-side dims and the summary names the matched heads."""
    text = (
        (REPO / "specs/path_dependence.yaml")
        .read_text()
        .replace("steps: 1000", "steps: 20")
        .replace("batch_size: 64", "batch_size: 16")
        .replace("{schedule: log, count: 20}", "{steps: [0, 10, 20]}")
        .replace("{n: 32, vocab: 64, half_len: 24}", "{n: 4, vocab: 64, half_len: 24}")
    )
    res = mispec.run(write_spec(text, "path_dependence.yaml"), progress=False)
    ds = res.open()["toy2l"].to_dataset()
    from mispec.tasks.generators import PROMPT_GENERATORS

    args = mispec.load_spec(REPO / "specs/path_dependence.yaml").spec.prompts["repeats"].args
    rep = PROMPT_GENERATORS.get("repeated_tokens")(seed=0, **{**args, "n": 4})
    repeated_half = rep.extras["loss_mask"].any(0)  # [pos-1]: prediction i predicts i + 1
    for name in ("kl", "logprob_diff", "top1", "cka", "head_match"):
        assert ds[name].dims[:3] == ("seed", "seed_b", "step"), name
        values = ds[name].sel(seed=0, seed_b=2)
        if "pos" in values.dims:  # pos = the predicted token: those of the loss_mask (the
            # repeated half, the cells' default mask), none at 0, none after the prompt
            counted = [p + 1 for p in range(48) if repeated_half[p]]
            assert np.isnan(
                values.sel(pos=[p for p in values.pos.values if p not in counted])
            ).all()
            values = values.sel(pos=counted)
        assert np.isfinite(values.values).all(), name
        assert np.isnan(ds[name].sel(seed=2, seed_b=0).values).all(), name
    assert ds.kl_to_final.dims == ("seed", "step", "step_b")
    # the summary: for each seed pair, the assignment at the last step with its overlaps
    lines = [s for s in res.summary if "head_match seed" in s]
    assert len(lines) == 6  # 3 pairs x (assignment, overlap over steps)
    m = match_heads(ds.head_match.sel(seed=0, seed_b=1).isel(step=-1))
    first = next(s for s in lines if s.startswith("toy2l: head_match seed 0 → seed 1 at step 20"))
    shown = ", ".join(
        f"{h}→{int(m.head_b.sel(layer=0, head=h))} {float(m.similarity.sel(layer=0, head=h)):.2f}"
        for h in range(4)
    )
    assert f"L0: {shown}" in first


def test_summary_names_each_seeds_strongest_head_never_a_mean_over_seeds():
    """Seed 0's strongest head is L1H1, seed 1's L1H2: a mean over seeds by head index would
    name L1H1 or L1H2 for both; the summary names each seed's own."""
    import xarray as xr

    from mispec.results.summary import summarize

    values = np.zeros((2, 1, 2, 3))
    values[0, 0, 1, 1], values[1, 0, 1, 2] = 0.9, 0.8
    values[1, 0, 1, 1] = 0.7  # the mean over seeds would pick L1H1 (0.8) for both
    var = xr.DataArray(
        values, dims=("seed", "step", "layer", "head"), coords={"seed": [0, 1], "step": [5]}
    )
    tree = xr.DataTree.from_dict({"m": xr.Dataset({"induction": var})})
    (line,) = summarize(tree)
    assert line == (
        "m: strongest induction at the last step: seed 0 layer 1 head 1 = 0.900, "
        "seed 1 layer 1 head 2 = 0.800"
    )
