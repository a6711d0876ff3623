"""Pictures of comparisons (``pairs:``): one line per pair of sides over training.

A comparison variable has explicit second-side dims (``seed_b``, ``step_b``, ``head_b``): it
is drawn as one line per computed pair — seeds ``a → b`` — of its value over steps, averaged
over its remaining dims except ``layer`` (one panel per layer where it has one). For
``head_matching`` the line is the overlap of the heads matched at the LAST step (the
assignment of ``mispec.metrics.builtin.head_identity.match_heads``), so each line follows the
same heads through training; never a mean over head indices that name different heads.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def matched_overlap(var: Any) -> Any:
    """``head_matching`` ``(seed, seed_b, step, layer, head, head_b)`` → the overlap of the
    pairs matched at the last step, averaged over each layer's heads: ``(seed, seed_b, step,
    layer)``."""
    import xarray as xr

    from mispec.metrics.builtin.head_identity import match_heads

    matched = match_heads(var.isel(step=-1)).head_b  # (seed, seed_b, layer, head)
    picked = var.isel(head_b=xr.DataArray(matched.clip(min=0).values, dims=matched.dims))
    picked = picked.where(matched >= 0)
    return picked.mean("head", skipna=True)


def comparison_figure(var: Any, *, title: str, log_x: bool = True) -> Any:
    """Lines over steps, one per computed pair of sides, a panel per layer if any."""
    from mispec.plot.figures import _colors, _plt

    plt = _plt()
    v = matched_overlap(var) if "head_b" in var.dims else var
    if "step_b" in v.dims:
        v = v.isel(step_b=0)
    keep = {"seed", "seed_b", "step", "layer"}
    extra = [d for d in v.dims if d not in keep]
    if extra:
        v = v.mean(extra, skipna=True)
    layers = list(v.layer.values) if "layer" in v.dims else [None]
    fig, axes = plt.subplots(
        1, len(layers), figsize=(4.5 * len(layers) + 1, 3.6), squeeze=False, constrained_layout=True
    )
    steps = np.asarray(v.step.values, dtype=float)
    x = steps + 1 if log_x else steps
    pairs = [
        (a, b)
        for a in (v.seed.values if "seed" in v.dims else [None])
        for b in (v.seed_b.values if "seed_b" in v.dims else [None])
    ]
    colors = _colors(len(pairs))
    for ax, layer in zip(axes[0], layers, strict=True):
        for color, (a, b) in zip(colors, pairs, strict=True):
            line = v
            if a is not None:
                line = line.sel(seed=a)
            if b is not None:
                line = line.sel(seed_b=b)
            if layer is not None:
                line = line.sel(layer=layer)
            values = np.asarray(line.values, dtype=float)
            if np.isnan(values).all():
                continue
            label = f"seed {a} → {b}" if b is not None else f"seed {a}"
            ax.plot(x, values, color=color, lw=2, marker=".", ms=3, label=label)
        if log_x:
            ax.set_xscale("log")
        ax.set_xlabel("training step + 1" if log_x else "training step")
        ax.set_ylabel(str(var.attrs.get("units", "")))
        ax.set_title(title + (f" — layer {int(layer)}" if layer is not None else ""), fontsize=10)
        ax.legend(fontsize=7)
    return fig
