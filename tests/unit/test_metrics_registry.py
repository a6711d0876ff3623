"""Every builtin metric is registered with its kind, dims, units and description; importing
the registry does not import torch; and every metric, called the way the executor calls it
(context injected by parameter name), returns what it declares."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import xarray as xr

from mispec.metrics.core import DIMS, METRICS, PSEUDO_HOOKS, load_builtin_metrics
from mispec.metrics.forward import expand_hooks, run_forward
from mispec.models.info import ModelInfo
from mispec.prompts.core import PromptSet

# name: (kind, dims, version) — version 2: padding never counts (text prompt sets), a near-zero
# patching denominator is masked, a transition must stand out of the noise (issue 14); version 3
# of the losses (2 of icl_score, 3 of head_ablation): the prompt set's loss_mask by default,
# float64-exact log-probabilities (issue 26); transition_step 3 / transition_size 2: one noise
# rule for every event, edges give NaN (issue 26); units of head_ablation
# follow ``measure`` (issue 26)
EXPECTED = {
    "loss": ("activation", (), 3),
    "accuracy": ("activation", (), 3),
    "per_token_loss": ("activation", ("pos",), 3),
    "icl_score": ("derived", None, 2),
    "induction_score": ("activation", ("layer", "head"), 2),
    "previous_token_score": ("activation", ("layer", "head"), 2),
    "duplicate_token_score": ("activation", ("layer", "head"), 2),
    "logit_diff": ("activation", (), 2),
    "activation_patching": ("intervention", None, 2),
    "patching_gap_z": ("intervention", (), 1),
    "head_ablation": ("intervention", ("layer", "head"), 3),
    "composition_score": ("weights", ("src_layer", "src_head", "dst_layer", "dst_head"), 1),
    "weight_norm": ("weights", ("component",), 1),
    "embed_fourier": ("weights", ("freq",), 1),
    "transition_step": ("reduction", None, 3),
    "transition_size": ("reduction", None, 2),
    "pca_over_steps": ("reduction", ("step", "pc"), 1),
}


def test_all_builtins_registered_with_kind_dims_units_description():
    load_builtin_metrics()
    for name, (kind, dims, version) in EXPECTED.items():
        mdef = METRICS.get(name)
        assert (mdef.kind, mdef.dims, mdef.version) == (kind, dims, version), name
        assert mdef.units and mdef.description and mdef.fn.__doc__, name
        for arg in mdef.args:  # annotations the spec checker can evaluate (no aliases)
            assert not any(alias in arg.annotation for alias in ("Split", "Normalize")), arg


def test_importing_the_registry_does_not_import_torch_or_xarray():
    code = (
        "import sys; from mispec.metrics.core import load_builtin_metrics, METRICS;"
        "load_builtin_metrics(); assert len(METRICS.names()) >= 15;"
        "print('torch' in sys.modules, 'xarray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def tiny():
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(
        d_model=16, d_head=4, n_layers=2, n_ctx=16, n_heads=2, d_vocab=12,
        attn_only=True, normalization_type="LN", seed=0,
    )  # fmt: skip
    bridge = TransformerBridge.boot_native(cfg)
    gen = torch.Generator().manual_seed(0)
    toks = torch.randint(0, 12, (4, 9), generator=gen)
    corrupt = toks.clone()
    corrupt[:, 2] = (corrupt[:, 2] + 1) % 12
    ps = PromptSet(
        tokens=toks.numpy(),
        extras={
            "corrupt_tokens": corrupt.numpy(),
            "answer": np.array([1, 2, 3, 4]),
            "wrong_answer": np.array([5, 6, 7, 8]),
            "loss_mask": np.ones((4, 8), dtype=bool),
            "train_mask": np.array([True, False, True, False]),
        },
    )
    return bridge, ps


def test_every_metric_returns_its_declared_dims():
    load_builtin_metrics()
    bridge, ps = tiny()
    info = ModelInfo.from_bridge("tiny", bridge)
    results: dict[str, xr.DataArray] = {}
    order = [n for n in EXPECTED if EXPECTED[n][0] not in ("derived", "reduction")]
    for name in order:
        mdef = METRICS.get(name)
        hooks = mdef.hooks_for({})
        for t, names in expand_hooks([h for h in hooks if h not in PSEUDO_HOOKS], 2).items():
            assert all(n in bridge.hook_dict for n in names), t
        acts = run_forward(bridge, torch.from_numpy(ps.tokens), hooks, batch_size=3)
        context = {"acts": acts, "prompts": ps, "model": info, "bridge": bridge}
        out = mdef.fn(**{k: context[k] for k in mdef.context})
        results[name] = check_dims(name, mdef.dims, out)
    icl = METRICS.get("icl_score").fn(results["per_token_loss"], early=1, late=8)
    assert icl.dims == ()
    series = xr.concat([results["induction_score"]] * 3, dim="step").assign_coords(step=[0, 5, 50])
    assert METRICS.get("transition_step").fn(series).dims == ("layer", "head")
    assert METRICS.get("transition_size").fn(series).dims == ("layer", "head")
    assert METRICS.get("pca_over_steps").fn(series).dims == ("step", "pc")


def check_dims(name: str, dims, out) -> xr.DataArray:
    if isinstance(out, xr.DataArray):
        assert all(d in DIMS for d in out.dims), name
        if dims is not None:
            assert set(out.dims) == set(dims), name
        return out
    assert dims is not None, f"{name} declares no dims, so it must return a DataArray"
    values = np.asarray(out)
    assert values.ndim == len(dims), name
    return xr.DataArray(values, dims=dims)


@pytest.mark.parametrize("per,dims", [("head", ("layer", "head")), ("position", ("layer", "pos"))])
def test_activation_patching_dims_follow_per(per, dims):
    bridge, ps = tiny()
    assert METRICS.get("activation_patching").fn(bridge, ps, per=per).dims == dims
