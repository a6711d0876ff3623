"""Pictures of training dynamics: metric-over-steps curves (log x-axis by default) and
layer × head heatmaps; transition steps marked. matplotlib (Agg) from the `plot` extra."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mispec.errors import MissingDependencyError, UserError

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


def transition_steps(tree: Any, model: str) -> dict[int, float]:
    """Per seed, the transition step of the first transition_step variable (median over heads
    that have one); seeds without a transition (NaN) are left out."""
    ds = tree[model].to_dataset()
    for var in ds.data_vars.values():
        if var.attrs.get("metric_fn") == "transition_step" and "seed" in var.dims:
            out = {}
            for s in var.seed.values:
                found = np.asarray(var.sel(seed=s).values, dtype=float)
                found = found[np.isfinite(found)]
                if found.size:
                    out[int(s)] = float(np.median(found))
            return out
    return {}


def plot_series(
    ax: Any,
    var: Any,
    *,
    title: str,
    log_x: bool = True,
    top_k: int = 3,
    transitions: dict[int, float] | None = None,
) -> None:
    """One line per seed (scalar per step), or per head: the top-k heads by final value
    highlighted, the rest faded."""
    steps = np.asarray(var.step.values, dtype=float)
    x = steps + 1 if log_x else steps  # step 0 on a log axis
    seeds = var.seed.values if "seed" in var.dims else [None]
    colors = _colors(len(seeds))
    for si, seed in enumerate(seeds):
        v = var.sel(seed=seed) if seed is not None else var
        extra = [d for d in v.dims if d != "step"]
        label_seed = f"seed {seed}" if seed is not None else ""
        if not extra:
            ax.plot(x, v.values, color=colors[si], lw=2, label=label_seed, marker=".", ms=3)
            continue
        flat = v.stack(unit=extra).transpose("step", "unit")
        final = flat.isel(step=-1).values
        order = np.argsort(-np.nan_to_num(final, nan=-np.inf))
        for rank, u in enumerate(order):
            label = unit_label(extra, np.atleast_1d(flat.unit.values[u]))
            if rank < top_k:
                ax.plot(
                    x,
                    flat.values[:, u],
                    lw=2,
                    color=colors[si],
                    alpha=1 - 0.25 * rank,
                    label=f"{label_seed} {label}".strip(),
                )
            else:
                ax.plot(x, flat.values[:, u], lw=0.8, color="0.6", alpha=0.35)
    for si, seed in enumerate(seeds):
        if transitions and seed is not None and int(seed) in transitions:
            t = transitions[int(seed)]
            ax.axvline(
                t + 1 if log_x else t,
                color=colors[si],
                ls="--",
                lw=1,
                label=f"transition seed {seed}: step {t:.0f}",
            )
    if log_x:
        ax.set_xscale("log")
        ax.set_xlabel("training step + 1 (log scale)")
    else:
        ax.set_xlabel("training step")
    units = var.attrs.get("units", "")
    ax.set_ylabel(f"{var.name} [{units}]" if units else str(var.name))
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best", ncol=2 if len(ax.get_legend_handles_labels()[0]) > 6 else 1)


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
    """Layer × head heatmaps at a few steps (mean over seeds), one shared colour scale."""
    v = var.mean("seed") if "seed" in var.dims else var
    vmin, vmax = float(np.nanmin(v.values)), float(np.nanmax(v.values))
    im = None
    for ax, step in zip(np.atleast_1d(axes), steps, strict=False):
        frame = v.sel(step=step, method="nearest").transpose("layer", "head")
        im = ax.imshow(frame.values, vmin=vmin, vmax=vmax, cmap="viridis", aspect="auto")
        ax.set_title(f"step {int(frame.step)}", fontsize=9)
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_xticks(range(frame.sizes["head"]))
        ax.set_yticks(range(frame.sizes["layer"]))
    if im is not None:
        fig.colorbar(im, ax=list(np.atleast_1d(axes)), shrink=0.8, label=var.attrs.get("units", ""))
    fig.suptitle(title)


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
) -> Any:
    """A figure for one metric, faceted over models."""
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

        model, var = found[0]
        return comparison_figure(var, title=f"{metric} — {model}", log_x=log_x)
    rows = []
    for model, var in found:
        has_heads = set(HEAD_DIMS) <= set(var.dims) and "step" in var.dims
        want_heat = has_heads if heatmap is None else heatmap and has_heads
        rows.append((model, var, want_heat))
    n_cols = 1 + max((4 if h else 0) for _, _, h in rows)
    fig = plt.figure(figsize=(4.2 * min(n_cols, 3) + 2, 3.8 * len(rows)), constrained_layout=True)
    grid = fig.add_gridspec(
        len(rows),
        2 if any(h for _, _, h in rows) else 1,
        width_ratios=[1.3, 1.7] if any(h for _, _, h in rows) else None,
    )
    for r, (model, var, want_heat) in enumerate(rows):
        title = f"{metric} — {model}"
        if "step" in var.dims:
            plot_series(
                fig.add_subplot(grid[r, 0]),
                var,
                title=title,
                log_x=log_x,
                top_k=top_k,
                transitions=transition_steps(tree, model),
            )
        else:
            ax = fig.add_subplot(grid[r, 0])
            v = var.mean("seed") if "seed" in var.dims else var
            if set(HEAD_DIMS) <= set(v.dims):
                ax.imshow(v.transpose("layer", "head").values, cmap="viridis", aspect="auto")
                ax.set_xlabel("head")
                ax.set_ylabel("layer")
            else:
                vals = np.ravel(v.values)
                ax.bar(range(vals.size), vals)
            ax.set_title(title)
        if want_heat:
            steps = heatmap_steps or heatmap_steps_for(
                var.step.values.tolist(), transition_steps(tree, model)
            )
            sub = grid[r, 1].subgridspec(1, len(steps))
            axes = [fig.add_subplot(sub[0, i]) for i in range(len(steps))]
            for ax in axes:
                ax.tick_params(labelsize=7)
            plot_heatmaps(fig, axes, var, steps, title="")
    return fig


def heatmap_steps_for(steps: list[int], transitions: dict[int, float], k: int = 4) -> list[int]:
    """Steps worth a heatmap: the first, the checkpoints just before and after the (median)
    transition when there is one, and the last; else ``k`` steps log-spaced in value."""
    if len(steps) <= k:
        return steps
    if transitions:
        t = float(np.median(list(transitions.values())))
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
