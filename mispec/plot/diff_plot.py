"""``mispec diff --plot``: the changed series of both versions, overlaid."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_diff(result: Any, a: str, b: str, out: str | Path, *, store: str | None = None) -> Path:
    from mispec.diffing.sides import open_side
    from mispec.plot.figures import save_figure
    from mispec.plot.panels import _plt
    from mispec.plot.shown import Shown, legend_if_any, steps_with_values

    plt = _plt()
    changed = [v for v in (result.results or []) if v.change == "changed"]
    sa, sb = open_side(a, store=store), open_side(b, store=store)
    n = max(len(changed), 1)
    fig, axes = plt.subplots(n, 1, figsize=(7, 3.2 * n), squeeze=False, constrained_layout=True)
    colors = plt.get_cmap("tab10")
    for ax, v in zip(axes[:, 0], changed, strict=False):
        notes: tuple[str, ...] = ()
        units = ""
        for side, style, label in ((sa, "-", "A"), (sb, "--", "B")):
            assert side.results is not None  # open_side(need_results=True) made sure
            var = side.results[v.model].to_dataset()[v.variable]
            units = var.attrs.get("units", "") or units
            if "step" not in var.dims:
                ax.plot(var.values.ravel(), style, marker="o", label=label)
                continue
            shown = Shown.of(var).keep_only(("step", "seed"), "max")
            notes = tuple(n for n in (*notes, *shown.reductions) if n not in notes)
            series = shown.data
            seeds = series.seed.values if "seed" in series.dims else [None]
            for i, seed in enumerate(seeds):  # one colour per seed; A solid, B dashed
                s = steps_with_values(series.sel(seed=seed) if seed is not None else series)
                ax.plot(
                    s.step.values + 1,
                    s.values,
                    style,
                    color=colors(i % 10),
                    label=f"{label} seed {seed}",
                )
            ax.set_xscale("log")
            ax.set_xlabel("training step + 1 (log scale)")
        ax.set_ylabel(f"{v.variable} [{units}]" if units else v.variable)
        ax.set_title(
            f"{v.model}/{v.variable}"
            + (f" ({'; '.join(notes)})" if notes else "")
            + ": A solid, B dashed"
        )
        legend_if_any(ax, fontsize=7, ncol=2)
    if not changed:
        axes[0, 0].text(0.5, 0.5, "no differences", ha="center", va="center")
    return save_figure(fig, out)
