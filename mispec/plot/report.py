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
    """A short description of a metric's final value(s)."""
    v = var
    if "step" in v.dims:
        v = v.isel(step=-1)
    if "seed" in v.dims:
        v = v.mean("seed")
    vals = np.asarray(v.values, dtype=float)
    if vals.size == 1:
        return f"{float(vals.ravel()[0]):.4g}"
    if np.all(np.isnan(vals)):
        return "—"
    idx = np.unravel_index(int(np.nanargmax(vals)), vals.shape)
    where = ", ".join(f"{d} {i}" for d, i in zip(v.dims, idx, strict=True))
    return f"max {float(vals[idx]):.4g} at {where}"


def build_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    from mispec.api import open_results
    from mispec.plot.figures import metric_figure
    from mispec.store.run_folder import read_run_json

    run_dir = Path(run_dir)
    prov = read_run_json(run_dir, "provenance.json") or {}
    read_run_json(run_dir, "plan.json")  # a damaged run folder is refused, not reported
    tree = open_results(run_dir).load()
    spec_text = (
        (run_dir / "spec.yaml").read_text("utf-8") if (run_dir / "spec.yaml").is_file() else ""
    )
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
    from mispec.execute.summary_pairs import COMPARISON_INPUTS

    inputs_only = {
        str(n)
        for c in tree.children.values()
        for n, v in c.to_dataset().data_vars.items()
        if v.attrs.get("metric_fn") in COMPARISON_INPUTS
    }
    for name in metrics:
        if name in inputs_only:  # what comparisons read: drawn through them
            continue
        fig = metric_figure(tree, name)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        import matplotlib.pyplot as plt

        plt.close(fig)
        data = base64.b64encode(buf.getvalue()).decode()
        images.append(
            f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(name)}</figcaption></figure>"
        )
    study = tree.attrs.get("study", run_dir.name)
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
<h2>Headline values (last step, mean over seeds)</h2>
<table><tr><th>model</th><th>variable</th><th>metric</th><th>dims</th><th>value</th><th>units</th></tr>
{"".join(rows)}</table>
<h2>Plots</h2>
{"".join(images)}
<h2>Spec</h2>
<pre>{html.escape(spec_text)}</pre>
<h2>Provenance</h2>
<pre>{html.escape(json.dumps(prov, indent=2))}</pre>
</body></html>
"""
    out_path = Path(out) if out else run_dir / "report.html"
    out_path.write_text(page, encoding="utf-8")
    return out_path
