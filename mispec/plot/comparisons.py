"""Pictures of comparisons (``pairs:``): one line per pair of sides over training.

A comparison variable has explicit second-side dims (``seed_b``, ``step_b``, ``head_b``): it
is drawn as one line per computed pair — seeds ``a → b`` — of its value over steps, averaged
over its remaining dims except ``layer`` (one panel per layer where it has one), the title
naming each dim averaged (``mean over pos``) or picked (``against step 1000``). For
``head_matching`` the line is the overlap of the heads matched at the LAST step (the
assignment of ``mispec.metrics.builtin.head_identity.match_heads``), so each line follows the
same heads through training; never a mean over head indices that name different heads.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mispec.plot.shown import Shown, against_step_b, legend_if_any, say_no_values, steps_with_values


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


def comparison_shown(var: Any) -> Shown:
    """A comparison as drawn: matched heads for ``head_b``, one value per cell for
    ``step_b``, the mean over every other dim but ``layer`` — each step recorded."""
    shown = Shown.of(var)
    if "head_b" in var.dims:
        shown = shown.pick(matched_overlap(var), "heads matched at the last step, mean over head")
    shown = against_step_b(shown)
    return shown.keep_only(("seed", "seed_b", "step", "layer"), "mean")


def comparison_figure(found: list[tuple[str, Any]], *, metric: str, log_x: bool = True) -> Any:
    """Lines over steps, one per computed pair of sides; a row per model that has the
    metric, a panel per layer if any. The title names every dim averaged or picked."""
    from mispec.plot.panels import _colors, _plt

    plt = _plt()
    rows = [(model, comparison_shown(var)) for model, var in found]
    n_cols = max(len(_layers(shown.data)) for _, shown in rows)
    fig, axes = plt.subplots(
        len(rows),
        n_cols,
        figsize=(4.5 * n_cols + 1, 3.6 * len(rows)),
        squeeze=False,
        constrained_layout=True,
    )
    for row, (model, shown) in zip(axes, rows, strict=True):
        for ax in row[len(_layers(shown.data)) :]:
            ax.set_visible(False)
        title = shown.title(f"{metric} — {model}")
        _draw_pairs(row, shown, title=title, log_x=log_x, colors=_colors)
    return fig


def _layers(v: Any) -> list[Any]:
    return list(v.layer.values) if "layer" in v.dims else [None]


def _draw_pairs(row: Any, shown: Shown, *, title: str, log_x: bool, colors: Any) -> None:
    v = shown.data
    pairs = [
        (a, b)
        for a in (v.seed.values if "seed" in v.dims else [None])
        for b in (v.seed_b.values if "seed_b" in v.dims else [None])
    ]
    palette = colors(len(pairs))
    for ax, layer in zip(row, _layers(v), strict=False):
        drawn = False
        for color, (a, b) in zip(palette, pairs, strict=True):
            line = v
            if a is not None:
                line = line.sel(seed=a)
            if b is not None:
                line = line.sel(seed_b=b)
            if layer is not None:
                line = line.sel(layer=layer)
            line = steps_with_values(line)  # this pair's own steps; nothing if never computed
            if not line.sizes["step"]:
                continue
            steps = np.asarray(line.step.values, dtype=float)
            label = f"seed {a} → {b}" if b is not None else f"seed {a}"
            x = steps + 1 if log_x else steps
            ax.plot(x, line.values, color=color, lw=2, marker=".", ms=3, label=label)
            drawn = True
        if not drawn:
            say_no_values(ax)
        if log_x:
            ax.set_xscale("log")
        ax.set_xlabel("training step + 1" if log_x else "training step")
        ax.set_ylabel(str(v.attrs.get("units", "")))
        ax.set_title(title + (f" — layer {int(layer)}" if layer is not None else ""), fontsize=10)
        legend_if_any(ax, fontsize=7)
