"""What ``mispec view`` shows, as plain JSON-ready data read from a run's results: curves over
steps (one line per seed), layer × head maps per seed and step, the attention patterns an
``attention_patterns`` metric recorded, and the PC1-vs-PC2 trajectory of each
``pca_over_steps`` result. Every dim taken out before drawing goes through ``Shown``, so a
title says what was reduced and how.

Values are rounded to 5 significant digits (what a person reads off a page); attention
patterns, the bulk of a view, are quantised to 1/255 (bytes, base64) — a probability in
[0, 1] read to ±0.002.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from mispec.plot.shown import Shown

HEAD_DIMS = ("layer", "head")
PATTERN_DIMS = ("layer", "head", "batch", "pos", "k_pos")
PATTERN_FN = "attention_patterns"
PCA_FN = "pca_over_steps"


def _num(x: float) -> float | None:
    """A JSON number, 5 significant digits; None for NaN / inf."""
    return float(f"{x:.5g}") if np.isfinite(x) else None


def _nums(values: Any) -> Any:
    """Nested lists of JSON numbers (None where there is no value)."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 0:
        return _num(float(arr))
    return [_nums(v) for v in arr]


def _with_seed(var: Any) -> Any:
    """A result with a ``seed`` dim (a model without seeds gets one labelled ``-``)."""
    return var if "seed" in var.dims else var.expand_dims(seed=["-"])


def _seeds(var: Any) -> list[str]:
    return [str(s) for s in var.seed.values]


def _labels(var: Any) -> dict[str, Any]:
    return {
        "units": str(var.attrs.get("units", "")),
        "description": str(var.attrs.get("description", "")).replace("``", "").strip(),
    }


def curve(name: str, var: Any) -> dict[str, Any]:
    """One line per seed over ``step``: every other dim reduced (max over a head's dims —
    where a head emerges —, mean over the rest), the reductions named in the title."""
    shown = Shown.of(_with_seed(var))
    shown = shown.reduce([d for d in HEAD_DIMS if d in var.dims], "max")
    shown = shown.keep_only(("seed", "step"))
    data = shown.data.transpose("seed", "step")
    return {
        "name": name,
        "title": shown.title(name),
        **_labels(var),
        "steps": [int(s) for s in data.step.values],
        "seeds": _seeds(data),
        "values": _nums(data.values),
    }


def head_map(name: str, var: Any) -> dict[str, Any]:
    """``values[seed][step][layer][head]`` (other dims averaged, said in the title)."""
    shown = Shown.of(_with_seed(var)).keep_only(("seed", "step", *HEAD_DIMS))
    data = shown.data.transpose("seed", "step", *HEAD_DIMS)
    return {
        "name": name,
        "title": shown.title(name),
        **_labels(var),
        "steps": [int(s) for s in data.step.values],
        "seeds": _seeds(data),
        "layers": [int(x) for x in data["layer"].values],
        "heads": [int(x) for x in data["head"].values],
        "values": _nums(data.values),
    }


def patterns(name: str, var: Any, n_prompts: int) -> dict[str, Any]:
    """The first ``n_prompts`` prompts' patterns as bytes ``round(255 * A)`` in the order
    ``[seed, step, layer, head, batch, pos, k_pos]``; ``missing``: a bit per entry, set where
    there is no value (a padded query row)."""
    var = _with_seed(var).isel(batch=slice(0, n_prompts))
    data = var.transpose("seed", "step", *PATTERN_DIMS)
    values = np.asarray(data.values, dtype=float)
    missing = ~np.isfinite(values)
    quant = np.rint(np.clip(np.nan_to_num(values, nan=0.0), 0, 1) * 255).astype(np.uint8)
    quant[missing] = 255
    return {
        "name": name,
        **_labels(var),
        "steps": [int(s) for s in data.step.values],
        "seeds": _seeds(data),
        "shape": list(quant.shape),
        "bytes": base64.b64encode(quant.tobytes()).decode(),
        "missing": base64.b64encode(np.packbits(missing.ravel()).tobytes()).decode(),
    }


def trajectory(name: str, var: Any, ratio: Any | None) -> dict[str, Any]:
    """PC1 against PC2 per seed, a point per step (``points[seed][step] = [pc1, pc2]``)."""
    data = _with_seed(var).transpose("seed", "step", "pc")
    pcs = [int(p) for p in data.pc.values]
    both = data.sel(pc=pcs[:2]) if len(pcs) >= 2 else None
    explained = None
    if ratio is not None:
        explained = _nums(_with_seed(ratio).transpose("seed", "pc").values)
    return {
        "name": name,
        **_labels(var),
        "steps": [int(s) for s in data.step.values],
        "seeds": _seeds(data),
        "points": _nums(both.values) if both is not None else [],
        "explained_ratio": explained,
    }


def view_data(tree: Any, *, n_prompts: int = 2) -> dict[str, Any]:
    """Everything the view draws, per model, from a loaded results tree; ``skipped`` names
    what it does not draw and why."""
    from mispec.results.summary_pairs import COMPARISON_INPUTS, is_comparison

    models = []
    for model, child in tree.children.items():
        ds = child.to_dataset()
        entry: dict[str, Any] = {"name": str(model), "curves": [], "maps": [], "patterns": []}
        entry["steps"] = [int(s) for s in ds.step.values] if "step" in ds.dims else []
        entry["trajectories"], entry["skipped"] = [], []
        for key in sorted(map(str, ds.data_vars)):
            var = ds[key]
            fn = var.attrs.get("metric_fn")
            if "step" not in var.dims:
                if not key.endswith("__explained_variance_ratio") and "__" not in key:
                    entry["skipped"].append(f"{key}: no step dim")
                continue
            if fn == PATTERN_FN and set(PATTERN_DIMS) <= set(var.dims):
                entry["patterns"].append(patterns(key, var, n_prompts))
            elif fn == PCA_FN and "pc" in var.dims:
                ratio = ds.get(f"{key}__explained_variance_ratio")
                entry["trajectories"].append(trajectory(key, var, ratio))
                for pc in var.pc.values:
                    entry["curves"].append(curve(f"{key} PC{int(pc)}", var.sel(pc=pc, drop=True)))
            elif fn in COMPARISON_INPUTS or is_comparison(var):
                entry["skipped"].append(f"{key}: comparison data (see `mispec report`)")
            else:
                entry["curves"].append(curve(key, var))
                if set(HEAD_DIMS) <= set(var.dims):
                    entry["maps"].append(head_map(key, var))
        models.append(entry)
    return {"study": str(tree.attrs.get("study", "")), "models": models}
