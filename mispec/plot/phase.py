"""Phase diagrams: a value per sweep point (``crossing_step``, ``transition_step``, any metric
without ``step`` on a swept model) drawn over the sweep's dims.

Over two sweep dims, a heatmap per seed (never the seed mean: each seed's grokking step is its
own), rows the first dim and columns the second, each axis labelled with its dim's long name
and units and ticked with the swept values, each cell saying its number. A NaN cell (the event
never happened within the budget) is hatched and says ``never``, and the legend names the
hatch: a blank cell is no statement. Over one sweep dim, a line per seed over the swept
values, a NaN point marked with a cross on the axis floor, named in the legend.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mispec.plot.shown import Shown, colour_scale

# metrics whose NaN means "the event did not happen within the checkpoints"
EVENT_FNS = frozenset({"crossing_step", "transition_step", "grokking_phases"})
NAN_HATCH = "xx"


def sweep_dims(var: Any) -> list[str]:
    """The dims of ``var`` that are a sweep's (their coordinate names a ``key_path``)."""
    return [str(d) for d in var.dims if d in var.coords and "key_path" in var[d].attrs]


def is_phase_value(var: Any) -> bool:
    """A value per sweep point (and seed): one or two sweep dims and no other dim but seed."""
    swept = sweep_dims(var)
    return 1 <= len(swept) <= 2 and set(var.dims) <= {*swept, "seed"}


def nan_label(var: Any) -> str:
    """What a NaN of ``var`` means, for the legend."""
    if var.attrs.get("metric_fn") in EVENT_FNS:
        return "NaN: never happened"
    return "NaN: no value"


def dim_label(var: Any, dim: str) -> str:
    """``long name [units]`` of a sweep dim, from its coordinate's attrs."""
    attrs = var[dim].attrs
    name, units = attrs.get("long_name", dim), attrs.get("units", "")
    return f"{name} [{units}]" if units else str(name)


def tick_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float, np.number)) else str(value)


def phase_figure(found: list[tuple[str, Any]], *, metric: str) -> Any:
    """A figure with a row per model: its phase diagram (one or two sweep dims)."""
    from mispec.plot.panels import _plt

    plt = _plt()
    n_cols = max(v.sizes.get("seed", 1) if len(sweep_dims(v)) == 2 else 1 for _, v in found)
    fig = plt.figure(figsize=(1 + 4.2 * n_cols, 4.2 * len(found)), constrained_layout=True)
    grid = fig.add_gridspec(len(found), 1)
    for r, (model, var) in enumerate(found):
        title = Shown.of(var).title(f"{metric} — {model}")
        if len(sweep_dims(var)) == 2:
            seeds = list(var.seed.values) if "seed" in var.dims else [None]
            sub = grid[r, 0].subgridspec(1, len(seeds))
            axes = [fig.add_subplot(sub[0, i]) for i in range(len(seeds))]
            plot_phase_maps(fig, axes, var, title=title)
        else:
            plot_phase_lines(fig.add_subplot(grid[r, 0]), var, title=title)
    return fig


def plot_phase_maps(fig: Any, axes: list[Any], var: Any, *, title: str) -> None:
    """A heatmap of ``var`` over its two sweep dims per seed (``axes[i]``: seed i), one shared
    colour scale; NaN cells hatched, said ``never`` and named in the legend."""
    from matplotlib.patches import Patch, Rectangle

    rows_dim, cols_dim = sweep_dims(var)
    seeds = list(var.seed.values) if "seed" in var.dims else [None]
    cmap, norm = colour_scale(var)
    image = None
    for ax, seed in zip(axes, seeds, strict=True):
        one = var.sel(seed=seed) if seed is not None else var
        values = np.asarray(one.transpose(rows_dim, cols_dim).values, dtype=float)
        image = ax.imshow(
            np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="auto", origin="lower"
        )
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                r, g, b, _ = image.cmap(image.norm(v))
                light = 0.299 * r + 0.587 * g + 0.114 * b > 0.5
                ax.text(
                    j,
                    i,
                    f"{v:.4g}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="k" if light else "w",
                )
                continue
            ax.add_patch(
                Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch=NAN_HATCH, ec="0.55", lw=0)
            )
            ax.text(
                j,
                i,
                "never",
                ha="center",
                va="center",
                fontsize=8,
                color="0.25",
                bbox={"fc": "white", "ec": "none", "pad": 1},
            )
        ax.set_xticks(range(var.sizes[cols_dim]), [tick_text(x) for x in var[cols_dim].values])
        ax.set_yticks(range(var.sizes[rows_dim]), [tick_text(x) for x in var[rows_dim].values])
        ax.set_xlabel(dim_label(var, cols_dim))
        ax.set_ylabel(dim_label(var, rows_dim))
        ax.set_title(f"seed {seed}" if seed is not None else "", fontsize=9)
        if not np.isfinite(values).all():
            ax.legend(
                handles=[Patch(fill=False, hatch=NAN_HATCH, ec="0.55", label=nan_label(var))],
                fontsize=7,
                loc="upper left",
                bbox_to_anchor=(0, -0.18),
                frameon=False,
            )
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label=Shown.of(var).value_label())
    axes[0].figure.suptitle(title)


def plot_phase_lines(ax: Any, var: Any, *, title: str) -> None:
    """A line per seed of ``var`` over its one sweep dim; a NaN point is a cross on the
    axis floor in the seed's colour, named in the legend."""
    from mispec.plot.panels import _colors

    (dim,) = sweep_dims(var)
    seeds = list(var.seed.values) if "seed" in var.dims else [None]
    colors = _colors(len(seeds))
    labels = list(var[dim].values)
    numeric = all(isinstance(x, (int, float, np.number)) for x in labels)
    x = np.asarray(labels, dtype=float) if numeric else np.arange(len(labels), dtype=float)
    finite = np.asarray(var.values, dtype=float)
    finite = finite[np.isfinite(finite)]
    floor = float(finite.min()) if finite.size else 0.0
    for i, seed in enumerate(seeds):
        one = var.sel(seed=seed) if seed is not None else var
        y = np.asarray(one.values, dtype=float)
        name = f"seed {seed}" if seed is not None else metric_name(var)
        ax.plot(x, y, marker="o", color=colors[i], label=name)
        missing = ~np.isfinite(y)
        if missing.any():
            ax.plot(
                x[missing],
                np.full(int(missing.sum()), floor),
                ls="none",
                marker="x",
                ms=10,
                mew=2,
                color=colors[i],
                label=f"{name}: {nan_label(var)}",
            )
    ax.set_xticks(x, [tick_text(v) for v in labels])
    ax.set_xlabel(dim_label(var, dim))
    ax.set_ylabel(Shown.of(var).value_label())
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")


def phase_headline(var: Any) -> str:
    """Per seed: how many sweep points have a value, and their range."""
    seeds = list(var.seed.values) if "seed" in var.dims else [None]
    parts = []
    for seed in seeds:
        one = np.asarray((var.sel(seed=seed) if seed is not None else var).values, dtype=float)
        finite = one[np.isfinite(one)]
        prefix = f"seed {seed}: " if seed is not None else ""
        span = f", {finite.min():.4g}–{finite.max():.4g}" if finite.size else ""
        parts.append(f"{prefix}{finite.size} of {one.size} points{span}")
    return "; ".join(parts)


def metric_name(var: Any) -> str:
    return str(var.name)
