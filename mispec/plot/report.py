"""``mispec report RUN``: one self-contained HTML page (images embedded as base64) with the
spec that ran, provenance, a table of headline values per metric and a plot per metric."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np


def headline(var: Any) -> str:
    """A metric's value(s) at each seed's last step with values, per seed, never averaged
    over seeds: a per-seed value, or for an indexed one (per head ...) each seed's maximum and
    where it is (seeds grow different heads); with several seeds, the spread (max - min) of
    the values. When the seeds' last steps differ (``refine:`` added checkpoints to one),
    each value says its step. A value per sweep point: per seed, how many points have one
    and their range."""
    from mispec.plot.phase import is_phase_value, phase_headline
    from mispec.plot.shown import steps_with_values

    if is_phase_value(var):
        return phase_headline(var)
    seeds = list(var.seed.values) if "seed" in var.dims else [None]
    lasts = []
    for seed in seeds:
        one = var.sel(seed=seed) if seed is not None else var
        if "step" in one.dims:
            has = steps_with_values(one)
            one = has.isel(step=-1) if has.sizes["step"] else one.isel(step=-1)
        lasts.append(one)
    steps = {int(one.step) for one in lasts if "step" in one.coords}
    parts, values = [], []
    for seed, one in zip(seeds, lasts, strict=True):
        vals = np.asarray(one.values, dtype=float)
        at = f" (step {int(one.step)})" if len(steps) > 1 else ""
        prefix = f"seed {seed}{at}: " if seed is not None else ""
        if vals.size == 0 or np.all(np.isnan(vals)):
            parts.append(prefix + "no value")
            continue
        if vals.size == 1:
            value = float(vals.ravel()[0])
            parts.append(f"{prefix}{value:.4g}")
        else:
            idx = np.unravel_index(int(np.nanargmax(vals)), vals.shape)
            value = float(vals[idx])
            where = ", ".join(f"{d} {one[d].values[i]}" for d, i in zip(one.dims, idx, strict=True))
            parts.append(f"{prefix}max {value:.4g} at {where}")
        values.append(value)
    text = "; ".join(parts)
    if len(values) > 1:
        text += f" (spread {max(values) - min(values):.3g})"
    return text


def caption(name: str, var: Any) -> str:
    """``name``: the metric's description (its docstring's first paragraph) and units."""
    description = str(var.attrs.get("description", "")).replace("``", "").strip()
    units = var.attrs.get("units", "")
    return f"{name}: {description}" + (f" [{units}]" if units else "") if description else name


def view_link(run_dir: Path, out_path: Path) -> str:
    """A link to the run's interactive view (``mispec view``) when it has been written, else
    the command that writes it."""
    import os

    from mispec.plot.view import VIEW_NAME

    view = run_dir / VIEW_NAME
    if view.is_file():
        href = Path(os.path.relpath(view.resolve(), out_path.resolve().parent)).as_posix()
        return f'<p class=view>Interactive view: <a href="{html.escape(href)}">{VIEW_NAME}</a></p>'
    command = html.escape(f"mispec view {run_dir}")
    return f"<p class=view>Interactive view (step slider, hover values): <code>{command}</code></p>"


def build_report(
    run_dir: str | Path, out: str | Path | None = None, *, steps: list[int] | None = None
) -> Path:
    """Write the report; ``steps``: heatmap steps (each snapped to the nearest checkpoint,
    with a note on the page when it is not one)."""
    from mispec.plot.claim_marks import claims_table, draw_claimed_ranges
    from mispec.plot.figures import metric_figure
    from mispec.results.open import open_results
    from mispec.store.run_folder import read_run_json

    run_dir = Path(run_dir)
    prov = read_run_json(run_dir, "provenance.json") or {}
    read_run_json(run_dir, "plan.json")  # a damaged run folder is refused, not reported
    tree = open_results(run_dir).load()
    spec_text = (
        (run_dir / "spec.yaml").read_text("utf-8") if (run_dir / "spec.yaml").is_file() else ""
    )
    claims = [c for c in prov.get("claims", []) if isinstance(c, dict)]
    metrics = sorted({str(v) for c in tree.children.values() for v in c.to_dataset().data_vars})
    rows, images = [], []
    for model, child in tree.children.items():
        ds = child.to_dataset()
        for name in sorted(map(str, ds.data_vars)):
            var = ds[name]
            rows.append(
                f"<tr><td>{html.escape(model)}</td><td>{html.escape(name)}</td>"
                f"<td>{html.escape(var.attrs.get('metric_fn', ''))}</td>"
                f"<td>{html.escape(' × '.join(map(str, var.dims)))}</td>"
                f"<td>{html.escape(headline(var))}</td>"
                f"<td>{html.escape(str(var.attrs.get('units', '')))}</td></tr>"
            )
    from mispec.results.summary_pairs import COMPARISON_INPUTS

    inputs_only = {
        str(n)
        for c in tree.children.values()
        for n, v in c.to_dataset().data_vars.items()
        if v.attrs.get("metric_fn") in COMPARISON_INPUTS
    }
    notes: list[str] = []
    captions: dict[str, str] = {}
    for child in tree.children.values():
        for key, value in child.to_dataset().data_vars.items():
            captions.setdefault(str(key), caption(str(key), value))
    drawn: list[str] = []
    for name in metrics:
        if name in inputs_only:  # what comparisons read: drawn through them
            continue
        fig = metric_figure(tree, name, heatmap_steps=steps, notes=notes)
        draw_claimed_ranges(fig, name, claims)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        import matplotlib.pyplot as plt

        plt.close(fig)
        data = base64.b64encode(buf.getvalue()).decode()
        images.append(
            f'<figure id="plot-{html.escape(name)}"><img alt="{html.escape(name)}" '
            f'src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(captions[name])}</figcaption></figure>"
        )
        drawn.append(name)
    toc = "".join(  # the plots produced, and only those: every link has its figure
        f'<li><a href="#plot-{html.escape(n)}">{html.escape(n)}</a></li>' for n in drawn
    )
    note_html = (
        "<ul class=notes>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>"
        if notes
        else ""
    )
    study = tree.attrs.get("study", run_dir.name)
    out_path = Path(out) if out else run_dir / "report.html"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mispec report — {html.escape(study)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }} td, th {{ border: 1px solid #ccc; padding: 4px 8px; }}
th {{ background: #f3f3f3; }} pre {{ background: #f7f7f7; padding: 1em; overflow-x: auto; }}
figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; }}
</style></head><body>
<h1>{html.escape(study)}</h1>
<p>run <code>{html.escape(str(prov.get("run_id", "")))}</code> · {html.escape(str(prov.get("finished", "")))}
 · {html.escape(str(prov.get("seconds", "")))} s</p>
<nav><h2>Contents</h2><ul>
{'<li><a href="#claims">Claims</a></li>' if claims else ""}
<li><a href="#headline">Headline values</a></li>
<li><a href="#plots">Plots</a><ul>{toc}</ul></li>
<li><a href="#spec">Spec</a></li>
<li><a href="#provenance">Provenance</a></li>
</ul>{view_link(run_dir, out_path)}</nav>
{claims_table(claims, drawn)}
<h2 id="headline">Headline values (per seed, at its last step with values)</h2>
<table><tr><th>model</th><th>variable</th><th>metric</th><th>dims</th><th>value</th><th>units</th></tr>
{"".join(rows)}</table>
<h2 id="plots">Plots</h2>
{note_html}
{"".join(images)}
<h2 id="spec">Spec</h2>
<pre>{html.escape(spec_text)}</pre>
<h2 id="provenance">Provenance</h2>
<pre>{html.escape(json.dumps(prov, indent=2))}</pre>
</body></html>
"""
    out_path.write_text(page, encoding="utf-8")
    return out_path
