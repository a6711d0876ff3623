"""Several checkpoints per forward call (``vmap`` over stacked weights) give every metric what
one checkpoint at a time gives it: the batched forward function against ``run_forward``, a run
of a spec covering EVERY built-in activation metric with ``batch_checkpoints: 3`` against one
with ``1``, chunking to a memory budget, bad profile values, and half precision."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import mispec
from mispec.cli.main import main
from mispec.cli.render import render_run
from mispec.execute.work.prompts import build_prompts
from mispec.metrics.core import METRICS, load_builtin_metrics
from mispec.metrics.forward import run_forward
from mispec.metrics.forward_batched import bytes_per_checkpoint, run_forward_batched

try:
    from tests.helpers.batched_coverage import (
        COVERAGE_SPEC,
        MODEL,
        N_PROMPT_SETS,
        PROSE,
        save_tokenizer,
    )
except ImportError:
    from helpers.batched_coverage import COVERAGE_SPEC, MODEL, N_PROMPT_SETS, PROSE, save_tokenizer

STEPS = (0, 15, 30)
TEMPLATES = [
    "hook_embed",
    "blocks.{layer}.attn.hook_pattern",
    "blocks.{layer}.attn.hook_z",
    "blocks.{layer}.mlp.hook_post",
    "blocks.{layer}.hook_resid_post",
    "ln_final.hook_normalized",
    "next_logprob",
    "next_correct",
    "final_logits",
    "logits",
]


def profile(folder: Path, name: str, device: str = "cpu", **keys: object) -> str:
    """An execution profile file (local executor) with these keys; returns its path."""
    lines = ["kind: local", f"device: {device}"] + [f"{k}: {v}" for k, v in keys.items()]
    path = folder / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def drop_results(store: Path) -> None:
    """Forget every cell and activation, keep the trained checkpoints."""
    shutil.rmtree(store / "cells", ignore_errors=True)
    shutil.rmtree(store / "activations.zarr", ignore_errors=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The coverage project, trained and run one checkpoint at a time (the reference)."""
    root = tmp_path_factory.mktemp("batched")
    (root / ".mispec").mkdir()
    (root / "spec.yaml").write_text(COVERAGE_SPEC)
    (root / "prose.txt").write_text(PROSE)
    save_tokenizer(root / "tok")
    one = mispec.run(
        root / "spec.yaml",
        executor=profile(root, "one", batch_checkpoints=1),
        out=root / "runs" / "one",
        progress=False,
    )
    assert one.counters["batched_forward_calls"] == 0
    return root, one


def assert_same_results(a, b, atol: float = 1e-6) -> int:
    """Every variable of every node of two result trees within ``atol``; returns how many."""
    n = 0
    for node in a.subtree:
        other = b[node.path].ds
        assert set(node.ds.data_vars) == set(other.data_vars), node.path
        for name in node.ds.data_vars:
            x, y = node.ds[name], other[name]
            assert x.dims == y.dims and x.shape == y.shape, (node.path, name)
            np.testing.assert_allclose(
                y.values, x.values, atol=atol, rtol=0, equal_nan=True, err_msg=f"{name}"
            )
            n += 1
    return n


def builtin_activation_metrics() -> set[str]:
    load_builtin_metrics()
    return {
        name
        for name in METRICS.names()
        if METRICS.get(name).fn.__module__.startswith("mispec.metrics.builtin")
        and (METRICS.get(name).kind == "activation" or METRICS.get(name).hooks)
    }


def open_toy(root: Path, dtype: str = "float32"):
    """The trained toy's (model source handle, rep prompt tokens)."""
    planned = mispec.plan(root / "spec.yaml")
    source = planned.plan.resolution.sources["toy"]
    handle = source.open(0, planned.store_dir, device="cpu", dtype=dtype)
    pspec = planned.plan.spec.prompts["rep"]
    tokens = build_prompts("rep", pspec, root, d_vocab=24).tokens
    return handle, torch.from_numpy(tokens)


def test_batched_forward_equals_run_forward_per_checkpoint(project):
    root, _ = project
    handle, tokens = open_toy(root)
    states = [handle.route.state_for(step) for step in STEPS]
    bridge = handle.load(STEPS[0])
    before = {k: v.clone() for k, v in bridge.state_dict().items()}
    outs = run_forward_batched(bridge, states, tokens, TEMPLATES, batch_size=3)  # 3+3+2
    after = bridge.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before)  # its own weights untouched
    assert len(outs) == len(STEPS)
    for step, out in zip(STEPS, outs, strict=True):
        ref = run_forward(handle.load(step), tokens, TEMPLATES, batch_size=3)
        assert set(out) == set(ref) == set(TEMPLATES)
        for t in TEMPLATES:
            assert out[t].dtype == torch.float32 and out[t].device.type == "cpu"
            assert out[t].shape == ref[t].shape, t
            torch.testing.assert_close(out[t], ref[t], atol=1e-6, rtol=0)
    assert outs[0]["blocks.{layer}.attn.hook_pattern"].shape == (
        2,
        8,
        2,
        13,
        13,
    )  # [layer, batch, head, q, k]
    # the checkpoints differ, so equality above is not one checkpoint's values thrice
    assert not torch.allclose(outs[0]["logits"], outs[2]["logits"], atol=1e-3)


def test_every_builtin_activation_metric_batched_equals_one_at_a_time(project):
    root, one = project
    covered = {m["fn"] for m in yaml.safe_load(COVERAGE_SPEC)["metrics"].values()}
    missing = builtin_activation_metrics() - covered
    assert not missing, f"built-in activation metrics without batched coverage: {missing}"
    store = root / ".mispec"
    drop_results(store)
    three = mispec.run(
        root / "spec.yaml",
        executor=profile(root, "three", batch_checkpoints=3),
        out=root / "runs" / "three",
        progress=False,
    )
    c, ref = three.counters, one.counters
    assert c["training_steps"] == 0
    assert c["batched_forward_calls"] == N_PROMPT_SETS  # the 3 checkpoints of each prompt set
    for key in ("forward_passes", "cells_computed", "activations_written"):
        assert c[key] == ref[key], key
    told = render_run(three)
    assert f"{c['forward_passes']} forward passes in {N_PROMPT_SETS} batched call(s)" in told
    n = assert_same_results(one.open(), three.open())
    assert n >= len(covered)


def test_a_small_memory_budget_chunks_the_checkpoints(project):
    root, one = project
    handle, tokens = open_toy(root)
    bridge = handle.load(STEPS[0])
    hooks = ["blocks.{layer}.attn.hook_pattern", "next_logprob"]  # loss + induction on rep
    per = bytes_per_checkpoint(bridge, tokens, hooks, batch_size=64)
    small = (
        f"mispec: 1\nname: batched-chunks\nmodels:\n{MODEL}prompts:\n"
        "  rep: {generator: repeated_tokens, args: {n: 8, vocab: 16, half_len: 6}, seed: 1}\n"
        "metrics:\n  loss: {fn: loss, prompts: rep}\n"
        "  induction: {fn: induction_score, prompts: rep}\n"
    )
    spec = root / "chunks.yaml"
    spec.write_text(small)
    calls = {}
    for budget, name in ((2.5 * per / 2**20, "two"), (0.5 * per / 2**20, "one")):
        drop_results(root / ".mispec")
        res = mispec.run(
            spec,
            executor=profile(root, name, batch_checkpoints=3, batch_memory=budget),
            out=root / "runs" / f"chunks-{name}",
            progress=False,
        )
        assert res.counters["training_steps"] == 0 and res.counters["forward_passes"] == 3
        calls[name] = res.counters["batched_forward_calls"]
        tree, ref = res.open(), one.open()
        for var in ("loss", "induction"):
            np.testing.assert_allclose(
                tree["toy"][var].values, ref["toy"][var].values, atol=1e-6, rtol=0
            )
    assert calls == {"two": 1, "one": 0}  # steps 0+15 in one call, 30 alone; all alone


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("batch_checkpoints: 0", "2:20: batch_checkpoints"),
        ("batch_checkpoints: many", "2:20: batch_checkpoints"),
        ("batch_memory: -5", "2:15: batch_memory"),
    ],
)
def test_a_bad_profile_value_is_a_located_error(project, capsys, line, message):
    root, _ = project
    bad = root / f"bad-{abs(hash(line))}.yaml"
    bad.write_text(f"kind: local\n{line}\n")
    code = main(["run", str(root / "spec.yaml"), "-q", "--executor", str(bad)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{bad}:{message}" in err and "Traceback" not in err


def test_half_precision_batched_is_within_rounding_of_one_at_a_time(project):
    """bfloat16/float16: vmap splits the fused affine of layer_norm and the bias of linear
    into separate ops, each rounded to the half dtype, so batched and one-at-a-time differ by
    a few units in the last place of the tensor's largest value (measured: at most 3 after two
    layers; docs/speed.md). A wrong checkpoint would differ by far more (see the first test)."""
    root, _ = project
    for dtype, eps in (("bfloat16", 2.0**-8), ("float16", 2.0**-11)):
        handle, tokens = open_toy(root, dtype)
        states = [handle.route.state_for(step) for step in STEPS]
        outs = run_forward_batched(handle.load(0), states, tokens, TEMPLATES, batch_size=4)
        for step, out in zip(STEPS, outs, strict=True):
            ref = run_forward(handle.load(step), tokens, TEMPLATES, batch_size=4)
            for t in ("blocks.{layer}.hook_resid_post", "logits", "next_logprob"):
                scale = float(ref[t].abs().max())
                torch.testing.assert_close(out[t], ref[t], atol=8 * eps * scale, rtol=0)


# --------------------------------------------------------------------------- CUDA (make test-cuda)
@pytest.mark.cuda
def test_cuda_batched_forward_matches_the_cpu_one_at_a_time(project):
    root, _ = project
    cpu, tokens = open_toy(root)
    refs = [run_forward(cpu.load(step), tokens, TEMPLATES, batch_size=3) for step in STEPS]
    for dtype, atol in (("float32", 1e-5), ("bfloat16", None)):
        planned = mispec.plan(root / "spec.yaml")
        gpu = planned.plan.resolution.sources["toy"].open(
            0, planned.store_dir, device="cuda", dtype=dtype
        )
        states = [gpu.route.state_for(step) for step in STEPS]
        outs = run_forward_batched(gpu.load(0), states, tokens, TEMPLATES, batch_size=3)
        for step, out, ref in zip(STEPS, outs, refs, strict=True):
            assert all(v.device.type == "cpu" and v.dtype == torch.float32 for v in out.values())
            if atol is not None:  # float32 on the GPU against the CPU
                for t in TEMPLATES:
                    torch.testing.assert_close(out[t], ref[t], atol=atol, rtol=0)
            else:  # bfloat16 on the GPU: batched against one at a time there
                one = run_forward(gpu.load(step), tokens, TEMPLATES, batch_size=3)
                for t in ("blocks.{layer}.hook_resid_post", "logits", "next_logprob"):
                    scale = float(one[t].abs().max())
                    torch.testing.assert_close(out[t], one[t], atol=8 * 2.0**-8 * scale, rtol=0)


@pytest.mark.cuda
def test_cuda_run_batched_equals_one_at_a_time_for_every_builtin_metric(project):
    root, cpu_one = project
    results = {}
    for name, keys in (("gpu-one", {"batch_checkpoints": 1}), ("gpu-auto", {})):  # auto: batched
        drop_results(root / ".mispec")
        res = mispec.run(
            root / "spec.yaml",
            executor=profile(root, name, device="cuda", **keys),
            out=root / "runs" / name,
            progress=False,
        )
        results[name] = res
    assert results["gpu-one"].counters["batched_forward_calls"] == 0
    assert results["gpu-auto"].counters["batched_forward_calls"] == N_PROMPT_SETS
    assert_same_results(results["gpu-one"].open(), results["gpu-auto"].open(), atol=1e-5)
    gpu, cpu = results["gpu-auto"].open()["toy"], cpu_one.open()["toy"]
    for var in ("loss", "per_token_loss", "induction", "neurons", "logit_diff", "digit_loss"):
        np.testing.assert_allclose(gpu[var].values, cpu[var].values, atol=1e-4, rtol=0)


def test_prefetch_batches_groups_of_two_seeds_with_their_own_weights(project):
    """Seeds share the architecture: a run of groups spanning seeds 0 and 1 is one call, each
    checkpoint with its own seed's weights (read through that seed's own handle)."""
    from mispec.execute.context import RunContext
    from mispec.execute.profile import Profile
    from mispec.execute.work.batched import prefetch
    from mispec.planning.nodes import GroupNode, group_id
    from mispec.store.store import Store

    root, _ = project
    spec = root / "seeds.yaml"
    spec.write_text(
        f"mispec: 1\nname: batched-seeds\nmodels:\n{MODEL.replace('seeds: [0]', 'seeds: [0, 1]')}"
        "prompts:\n"
        "  rep: {generator: repeated_tokens, args: {n: 8, vocab: 16, half_len: 6}, seed: 1}\n"
        "metrics:\n  loss: {fn: loss, prompts: rep}\n"
        "  induction: {fn: induction_score, prompts: rep}\n"
    )
    mispec.run(spec, executor=profile(root, "one"), out=root / "runs" / "seeds", progress=False)
    drop_results(root / ".mispec")  # seed 1 is trained now; nothing else is kept
    planned = mispec.plan(spec)
    ctx = RunContext(planned.plan, root, Store(planned.store_dir), device="cpu")
    order = [(0, 30), (1, 0), (1, 15), (1, 30)]
    upcoming = [planned.plan.node(group_id("toy", seed, step)) for seed, step in order]
    assert all(isinstance(g, GroupNode) for g in upcoming)
    prefetch(ctx, upcoming, Profile(batch_checkpoints=3))
    assert ctx.counters.batched_forward_calls == 1
    stash = ctx.prefetched.acts
    assert len(stash) == 3  # (1, 30) is beyond batch_checkpoints
    _, tokens = open_toy(root)
    hooks = ["blocks.{layer}.attn.hook_pattern", "next_logprob"]
    source = planned.plan.resolution.sources["toy"]
    for seed, step in order[:3]:
        acts = stash[f"forward:toy/s{seed}/step{step}/rep"]
        bridge = source.open(seed, planned.store_dir).load(step)
        ref = run_forward(bridge, tokens, hooks, batch_size=64)
        assert sorted(acts) == sorted(hooks)
        for h in hooks:
            torch.testing.assert_close(acts[h], ref[h], atol=1e-6, rtol=0)
    # seed 0 and seed 1 at step 0 differ: the weights really were each seed's own
    s0 = run_forward(source.open(0, planned.store_dir).load(0), tokens, hooks)
    assert not torch.allclose(stash["forward:toy/s1/step0/rep"]["next_logprob"], s0["next_logprob"])
