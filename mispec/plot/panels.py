"""The panels of a metric's figure: a series over steps, layer × head maps, a point per
seed, values over another dim. Each takes what it draws as a ``Shown`` (or a result, shown
as it is) and labels its axes from it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mispec.errors import MissingDependencyError
from mispec.plot.shown import (
    Shown,
    colour_scale,
    has_values,
    legend_if_any,
    say_no_values,
    steps_with_values,
)
from mispec.plot.transitions import Transition


def _plt() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError("plotting", "plot", "pip install matplotlib") from None
    return plt


def plot_series(
    ax: Any,
    var: Any,
    *,
    title: str,
    log_x: bool = True,
    top_k: int = 3,
    transitions: Sequence[Transition] = (),
) -> None:
    """One line per seed (scalar per step), or per head: the top-k heads by the seed's last
    value highlighted, the rest faded. Each seed is drawn over the steps where it has values
    (another seed's extra checkpoints do not break its line); each transition computed from
    this series is a dashed line per seed at its step; a series without any value says so."""
    shown = var if isinstance(var, Shown) else Shown.of(var)
    var = shown.data
    seeds = var.seed.values if "seed" in var.dims else [None]
    colors = _colors(len(seeds))
    if not has_values(var):
        say_no_values(ax)
    for si, seed in enumerate(seeds):
        v = steps_with_values(var.sel(seed=seed) if seed is not None else var)
        if not v.sizes["step"]:
            continue
        x = _step_x(v, log_x)
        extra = [d for d in v.dims if d != "step"]
        label_seed = f"seed {seed}" if seed is not None else ""
        if not extra:
            ax.plot(x, v.values, color=colors[si], lw=2, label=label_seed, marker=".", ms=3)
            continue
        flat = v.stack(unit=extra).transpose("step", "unit")
        final = flat.isel(step=-1).values  # this seed's last checkpoint with values
        order = np.argsort(-np.nan_to_num(final, nan=-np.inf))
        shown_rank = 0
        for u in order:
            line = np.asarray(flat.values[:, u], dtype=float)
            if not np.isfinite(line).any():
                continue  # a unit without values draws nothing and names nothing
            label = unit_label(extra, np.atleast_1d(flat.unit.values[u]))
            if shown_rank < top_k:
                ax.plot(
                    x,
                    line,
                    lw=2,
                    color=colors[si],
                    alpha=1 - 0.25 * shown_rank,
                    label=f"{label_seed} {label}".strip(),
                )
            else:
                ax.plot(x, line, lw=0.8, color="0.6", alpha=0.35)
            shown_rank += 1
    color_of = {int(seed): colors[si] for si, seed in enumerate(seeds) if seed is not None}
    for ti, transition in enumerate(transitions):
        for (on_seed, unit), t in transition.at.items():
            if on_seed not in color_of:
                continue
            which = unit_label(list(transition.unit_dims), unit)
            how = f", {transition.how}" if transition.how else ""
            ax.axvline(
                t + 1 if log_x else t,
                color=color_of[on_seed],
                ls=_TRANSITION_STYLES[ti % len(_TRANSITION_STYLES)],
                lw=1,
                label=f"{transition.name} seed {on_seed}{' ' + which if which else ''}: "
                f"step {t:.0f}{how}",
            )
    if log_x:
        ax.set_xscale("log")
        ax.set_xlabel("training step + 1 [optimizer updates] (log scale)")
    else:
        ax.set_xlabel("training step [optimizer updates]")
    ax.set_ylabel(shown.value_label())
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    n_labels = len(ax.get_legend_handles_labels()[0])
    legend_if_any(ax, fontsize=7, loc="best", ncol=2 if n_labels > 6 else 1)


_TRANSITION_STYLES = ("--", ":", "-.")


def _step_x(v: Any, log_x: bool) -> np.ndarray:
    steps = np.asarray(v.step.values, dtype=float)
    return steps + 1 if log_x else steps  # step 0 on a log axis


_SHORT = {
    "layer": "L",
    "head": "H",
    "src_layer": "L",
    "src_head": "H",
    "dst_layer": "L",
    "dst_head": "H",
    "pos": "pos ",
    "neuron": "N",
    "freq": "f",
    "component": "",
    "pc": "PC",
    "digit": "digit ",
}


def unit_label(dims: list[str], coords: Any) -> str:
    """A compact legend label: ``L1H3``, ``L0H1→L1H3`` (composition), ``pos 12``."""
    pairs = list(zip(dims, coords, strict=False))
    src = "".join(f"{_SHORT[d]}{c}" for d, c in pairs if d.startswith("src_"))
    dst = "".join(f"{_SHORT[d]}{c}" for d, c in pairs if d.startswith("dst_"))
    rest = "".join(
        f"{_SHORT.get(d, d + '=')}{c}" for d, c in pairs if not d.startswith(("src_", "dst_"))
    )
    return f"{src}→{dst}{rest}" if src or dst else rest


def plot_heatmaps(fig: Any, axes: Any, var: Any, steps: list[int], *, title: str) -> None:
    """Layer × head heatmaps at a few steps, one row per seed (``axes[seed_row][step_col]``),
    one shared colour scale: a diverging map centred on 0 for a signed quantity (DLA,
    patching), a sequential one otherwise. Never averaged over seeds: seeds grow different
    heads (in the default study seed 0's strongest induction head is L1H1, seed 1's L1H2),
    and a mean would show a head that is nobody's."""
    shown = var if isinstance(var, Shown) else Shown.of(var)
    var = shown.data
    seeds = list(var.seed.values) if "seed" in var.dims else [None]
    rows = [np.atleast_1d(r) for r in (axes if len(seeds) > 1 else [axes])]
    cmap, norm = colour_scale(var)
    im = None
    for seed, row in zip(seeds, rows, strict=False):
        v = var.sel(seed=seed) if seed is not None else var
        for col, (ax, step) in enumerate(zip(row, steps, strict=False)):
            frame = v.sel(step=step).transpose("layer", "head")
            im = ax.imshow(frame.values, cmap=cmap, norm=norm, aspect="auto")
            _write_values(ax, np.asarray(frame.values, dtype=float), im)
            ax.set_title(
                f"step {int(frame.step)}"
                if seed is None
                else f"seed {seed}, step {int(frame.step)}",
                fontsize=8,
            )
            ax.set_xticks(range(frame.sizes["head"]))
            ax.set_yticks(range(frame.sizes["layer"]))
            ax.set_xlabel("head", fontsize=8)
            if col == 0:
                ax.set_ylabel("layer", fontsize=8)
    if im is not None:
        flat = [ax for row in rows for ax in row]
        fig.colorbar(im, ax=flat, shrink=0.8, label=shown.value_label())
    if title:
        fig.suptitle(title)


def _write_values(ax: Any, values: np.ndarray, im: Any = None, max_cells: int = 64) -> None:
    """A small map says its numbers (dark text on light cells, light on dark), and NaN
    cells say NaN (a blank cell is no statement); a map with no finite value says so
    across it."""
    if not np.isfinite(values).any():
        ax.text(
            0.5,
            0.5,
            "no value (all NaN)",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=9,
            color="0.3",
        )
        return
    if values.size > max_cells:
        return
    for (i, j), v in np.ndenumerate(values):
        if not np.isfinite(v):
            ax.text(j, i, "NaN", ha="center", va="center", fontsize=6, color="0.5")
            continue
        r, g, b, _ = im.cmap(im.norm(v)) if im is not None else (0, 0, 0, 1)
        light = 0.299 * r + 0.587 * g + 0.114 * b > 0.5
        ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=6, color="k" if light else "w")


def plot_per_seed(ax: Any, var: Any, *, title: str) -> None:
    """A value per seed (``transition``: dims ``(seed,)``) as one labelled point per seed,
    its number written beside it; a seed without a value (NaN) is named as such, never
    drawn as a bar at 0 or at the seed mean."""
    from mispec.coords import axis_label

    seeds = [int(s) for s in var.seed.values]
    colors = _colors(len(seeds))
    finite = [float(v) for v in np.ravel(var.values) if np.isfinite(v)]
    for i, seed in enumerate(seeds):
        v = float(np.asarray(var.sel(seed=seed).values, dtype=float).ravel()[0])
        if np.isfinite(v):
            ax.plot([i], [v], "o", ms=9, color=colors[i])
            ax.annotate(f"{v:.4g}", (i, v), textcoords="offset points", xytext=(8, 4), fontsize=9)
        else:
            y = min(finite) if finite else 0.0
            ax.annotate("no value (NaN)", (i, y), ha="center", fontsize=9, color="0.4")
    ax.set_xticks(range(len(seeds)), [f"seed {s}" for s in seeds])
    ax.set_xlim(-0.6, len(seeds) - 0.4)
    if finite:
        lo, hi = min(finite), max(finite)
        pad = 0.15 * (hi - lo) if hi > lo else 0.1 * abs(hi) or 1.0
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel(axis_label("seed"))
    ax.set_ylabel(Shown.of(var).value_label())
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)


def _colors(n: int) -> list[Any]:
    plt = _plt()
    cmap = plt.get_cmap("tab10")
    return [cmap(i % 10) for i in range(max(n, 1))]


def _plot_other(ax: Any, var: Any, *, title: str) -> None:
    """Values without a step and without heads (``pc``, ``freq`` ...): a line per seed over
    the first other dim (a line per entry of any further dim), labelled; no values at all
    say so."""
    from mispec.coords import axis_label

    seeds = list(var.seed.values) if "seed" in var.dims else [None]
    colors = _colors(len(seeds))
    if not has_values(var):
        say_no_values(ax)
    for i, seed in enumerate(seeds):
        v = var.sel(seed=seed) if seed is not None else var
        if not has_values(v):
            continue
        if v.ndim == 0:
            ax.plot([i], [float(v)], "o", color=colors[i], label=f"seed {seed}")
            continue
        dim = v.dims[0]
        flat = v.stack(unit=v.dims[1:]) if v.ndim > 1 else v
        ax.plot(
            np.arange(v.sizes[dim]),
            np.asarray(flat.values).reshape(v.sizes[dim], -1),
            color=colors[i],
            marker=".",
            label=f"seed {seed}" if seed is not None else None,
        )
        ax.set_xlabel(axis_label(str(dim)))
    ax.set_ylabel(Shown.of(var).value_label())
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if len(seeds) > 1:
        legend_if_any(ax, fontsize=7)
