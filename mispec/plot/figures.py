"""Pictures of training dynamics: metric-over-steps curves (log x-axis by default) and
layer × head heatmaps; transition steps marked. matplotlib (Agg) from the `plot` extra."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mispec.errors import MissingDependencyError, UserError
from mispec.plot.shown import (
    Shown,
    colour_scale,
    has_values,
    legend_if_any,
    say_no_values,
    steps_with_values,
)
from mispec.plot.transitions import Transition, transitions_of

HEAD_DIMS = ("layer", "head")


def _plt() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError("plotting", "plot", "pip install matplotlib") from None
    return plt


def find_variable(tree: Any, metric: str) -> list[tuple[str, Any]]:
    """(model, DataArray) for every model child that has the metric."""
    found = [
        (name, child.to_dataset()[metric])
        for name, child in tree.children.items()
        if metric in child.to_dataset().data_vars
    ]
    if not found:
        from mispec.registry import did_you_mean

        names = sorted({v for c in tree.children.values() for v in c.to_dataset().data_vars})
        raise UserError(f"no metric '{metric}' in these results{did_you_mean(metric, names)}")
    return found


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
    for ti, transition in enumerate(transitions):
        for si, seed in enumerate(seeds):
            if seed is None or int(seed) not in transition.steps:
                continue
            t = transition.steps[int(seed)]
            ax.axvline(
                t + 1 if log_x else t,
                color=colors[si],
                ls=_TRANSITION_STYLES[ti % len(_TRANSITION_STYLES)],
                lw=1,
                label=transition.label(int(seed)),
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


def snap_steps(requested: list[int], available: list[int]) -> tuple[list[int], list[str]]:
    """The checkpoints nearest to ``requested`` steps, and a note for each one that is not
    itself a checkpoint (``plot --steps`` says so instead of snapping silently)."""
    out, notes = [], []
    for r in requested:
        near = _nearest(available, float(r))
        if near != r:
            notes.append(f"step {r} is not a checkpoint; showing the nearest, step {near}")
        if near not in out:
            out.append(near)
    return out, notes


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


def metric_figure(
    tree: Any,
    metric: str,
    *,
    log_x: bool = True,
    heatmap: bool | None = None,
    heatmap_steps: list[int] | None = None,
    top_k: int = 3,
    notes: list[str] | None = None,
) -> Any:
    """A figure for one metric, a row per model: its series over steps (one line per seed,
    or per head with the top-k highlighted), layer × head heatmaps per seed at a few steps,
    or a point per seed for a value per seed. ``heatmap_steps`` that are not checkpoints
    snap to the nearest one, and ``notes`` (when given) gets a line saying so. A dim the
    maps cannot show (``pos`` of a per-position patching) is averaged over, and the title
    says so."""
    plt = _plt()
    found = find_variable(tree, metric)
    from mispec.execute.summary_pairs import COMPARISON_INPUTS, is_comparison

    if any(v.attrs.get("metric_fn") in COMPARISON_INPUTS for _, v in found):
        raise UserError(
            f"'{metric}' holds per-checkpoint values that comparisons read (dims "
            f"{found[0][1].dims}); plot a comparison metric that reads it"
        )
    if any(is_comparison(v) for _, v in found):  # pairs: one line per pair of sides
        from mispec.plot.comparisons import comparison_figure

        return comparison_figure(found, metric=metric, log_x=log_x)
    rows = []
    for model, var in found:
        has_heads = set(HEAD_DIMS) <= set(var.dims)
        want_heat = has_heads if heatmap is None else heatmap and has_heads
        n_seeds = var.sizes.get("seed", 1)
        rows.append((model, var, want_heat, n_seeds))
    any_heat = any(h for _, _, h, _ in rows)
    heights = [2.2 + 1.6 * n if h else 3.8 for _, _, h, n in rows]
    wide = any(h and "step" in var.dims for _, var, h, _ in rows)  # series + heatmaps
    fig = plt.figure(figsize=(15 if wide else 7, sum(heights)), constrained_layout=True)
    grid = fig.add_gridspec(
        len(rows),
        2 if any_heat else 1,
        width_ratios=[1.3, 1.9] if any_heat else None,
        height_ratios=heights,
    )
    for r, (model, var, want_heat, n_seeds) in enumerate(rows):
        shown = Shown.of(var)
        maps = shown.keep_only(("seed", "step", *HEAD_DIMS)) if want_heat else shown
        map_notes = maps.reductions[len(shown.reductions) :]
        title = shown.title(f"{metric} — {model}")
        has_step = "step" in var.dims
        transitions = transitions_of(tree, model, metric) if has_step else []
        if has_step:
            plot_series(
                fig.add_subplot(grid[r, 0]),
                shown,
                title=title + (f"; maps: {'; '.join(map_notes)}" if map_notes else ""),
                log_x=log_x,
                top_k=top_k,
                transitions=transitions,
            )
        elif not want_heat:
            ax = fig.add_subplot(grid[r, 0])
            if var.dims == ("seed",):
                plot_per_seed(ax, var, title=title)
            else:
                _plot_other(ax, var, title=title)
        if want_heat:
            available = var.step.values.tolist() if has_step else []
            if not has_step:
                steps: list[int] = [0]
            elif heatmap_steps:
                steps, snapped = snap_steps(heatmap_steps, available)
                if notes is not None:
                    notes.extend(f"{metric} ({model}): {n}" for n in snapped)
            else:
                at = [v for t in transitions for v in t.steps.values()]
                steps = heatmap_steps_for(available, at)
            cell = grid[r, 1] if has_step else grid[r, :]
            sub = cell.subgridspec(n_seeds, len(steps))
            axes = [[fig.add_subplot(sub[i, j]) for j in range(len(steps))] for i in range(n_seeds)]
            for ax in (a for row in axes for a in row):
                ax.tick_params(labelsize=7)
            if not has_step:
                maps = Shown(maps.data.expand_dims(step=[0]), maps.reductions)
            plot_heatmaps(fig, axes if n_seeds > 1 else axes[0], maps, steps, title="")
            if not has_step:
                for row in axes:
                    for ax in row:
                        ax.set_title(
                            ax.get_title().replace(", step 0", "").replace("step 0", ""), fontsize=8
                        )
                fig.suptitle(maps.title(f"{metric} — {model}"))
    return fig


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


def heatmap_steps_for(steps: list[int], transitions: Sequence[float], k: int = 4) -> list[int]:
    """Steps worth a heatmap: the first, the checkpoints just before and after the (median)
    transition of this series when there is one, and the last; else ``k`` steps log-spaced
    in value."""
    if len(steps) <= k:
        return steps
    if transitions:
        t = float(np.median(list(transitions)))
        before = max((s for s in steps if s < t), default=steps[0])
        after = min((s for s in steps if s > t), default=steps[-1])
        return sorted({steps[0], before, after, steps[-1]})
    targets = np.geomspace(1, steps[-1] + 1, k) - 1
    return sorted({_nearest(steps, float(x)) for x in targets})


def _nearest(steps: list[int], x: float) -> int:
    return min(steps, key=lambda s: abs(s - x))


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    _plt().close(fig)
    return path
