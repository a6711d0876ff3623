"""Pictures of training dynamics: metric-over-steps curves (log x-axis by default) and
layer × head heatmaps; transition steps marked. matplotlib (Agg) from the `plot` extra."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mispec.errors import UserError
from mispec.plot.panels import _plot_other, _plt, plot_heatmaps, plot_per_seed, plot_series
from mispec.plot.shown import Shown
from mispec.plot.transitions import transitions_of

HEAD_DIMS = ("layer", "head")


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
    or a point per seed for a value per seed; a value per sweep point is a phase diagram
    (``mispec.plot.phase``). ``heatmap_steps`` that are not checkpoints
    snap to the nearest one, and ``notes`` (when given) gets a line saying so. A dim the
    maps cannot show (``pos`` of a per-position patching) is averaged over, and the title
    says so."""
    plt = _plt()
    found = find_variable(tree, metric)
    from mispec.results.summary_pairs import COMPARISON_INPUTS, is_comparison

    if any(v.attrs.get("metric_fn") in COMPARISON_INPUTS for _, v in found):
        raise UserError(
            f"'{metric}' holds per-checkpoint values that comparisons read (dims "
            f"{found[0][1].dims}); plot a comparison metric that reads it"
        )
    if any(is_comparison(v) for _, v in found):  # pairs: one line per pair of sides
        from mispec.plot.comparisons import comparison_figure

        return comparison_figure(found, metric=metric, log_x=log_x)
    from mispec.plot.phase import is_phase_value, phase_figure

    if all(is_phase_value(v) for _, v in found):  # a value per sweep point: a phase diagram
        return phase_figure(found, metric=metric)
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
                at = [v for t in transitions for v in t.steps]
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
