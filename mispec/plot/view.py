"""``mispec view RUN``: an interactive page of a run to drag through training — a step slider
for layer × head maps and attention patterns (per seed), curves with hover values, per-seed
toggles, PC1-vs-PC2 trajectories of ``pca_over_steps`` results coloured by step.

One self-contained HTML file: the data inlined as JSON (``view_data``), drawn by a small
hand-written script (``view.js``) with SVG; no library, nothing fetched, so it opens from a
file on a machine with no network. It reads results, it never runs anything."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

VIEW_NAME = "view.html"
ASSETS = Path(__file__).with_name("view.js")

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
header { position: sticky; top: 0; background: #fff; padding: .4em 0; border-bottom: 1px solid #ddd; z-index: 2; }
.stepbar { position: sticky; top: 2.6em; background: #fff; padding: .3em 0; z-index: 1; }
.step-slider { width: 420px; vertical-align: middle; }
.grid { display: flex; flex-wrap: wrap; gap: 1.2em; }
figure { margin: 0; } figcaption { font-weight: 600; font-size: 14px; }
.desc, .note, .legend { font-size: 12px; color: #555; max-width: 420px; margin: .2em 0; }
.seedrow { display: flex; gap: 1em; } .label { font-size: 12px; }
table.map { border-collapse: collapse; font-size: 11px; }
table.map td { width: 38px; height: 26px; text-align: center; cursor: pointer; color: #000;
  text-shadow: 0 0 3px #fff, 0 0 3px #fff; border: 1px solid #fff; } table.map th { font-weight: normal; color: #666; }
svg text { font-size: 10px; fill: #444; } .frame { fill: none; stroke: #bbb; }
polyline { fill: none; stroke-width: 1.5; } .cursor { stroke: #999; stroke-dasharray: 3 3; }
.point:hover { stroke: #000; stroke-width: 1.5; }
#tooltip { position: absolute; display: none; background: #222; color: #fff; font-size: 12px;
  padding: 3px 6px; border-radius: 3px; pointer-events: none; z-index: 3; }
.ramp { display: inline-block; width: 80px; height: 8px; vertical-align: middle;
  background: linear-gradient(90deg, #440154, #3b518b, #21908d, #5cc863, #fde725); }
.seed-toggle { margin-right: .8em; }
"""


def view_page(data: dict[str, Any], *, title: str) -> str:
    """The HTML of a view of ``data`` (``view_data``'s), with its script inlined."""
    blob = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    script = ASSETS.read_text("utf-8")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mispec view — {html.escape(title)}</title>
<style>{STYLE}</style></head><body>
<header><strong>{html.escape(title)}</strong> · seeds: <span id="seeds"></span></header>
<div id="models"></div><div id="tooltip"></div>
<script id="view-data" type="application/json">{blob}</script>
<script>{script}</script>
</body></html>
"""


def build_view(run_dir: str | Path, out: str | Path | None = None, *, n_prompts: int = 2) -> Path:
    """Write the view of a run folder (``<run>/view.html`` unless ``out``); ``n_prompts``: how
    many of an ``attention_patterns`` metric's prompts to include (patterns are the bulk)."""
    from mispec.errors import UserError
    from mispec.plot.view_data import view_data
    from mispec.results.open import open_results
    from mispec.store.run_folder import read_run_json

    if n_prompts < 1:
        raise UserError(f"--prompts must be >= 1, got {n_prompts}")
    run_dir = Path(run_dir)
    read_run_json(run_dir, "plan.json")  # a damaged run folder is refused, not viewed
    tree = open_results(run_dir).load()
    data = view_data(tree, n_prompts=n_prompts)
    page = view_page(data, title=data["study"] or run_dir.name)
    out_path = Path(out) if out else run_dir / VIEW_NAME
    tmp = out_path.with_name(out_path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out_path)
    return out_path


def serve(path: Path, port: int = 0) -> Any:
    """An HTTP server on 127.0.0.1 for ``path``'s folder (port 0: a free one); the caller
    calls ``serve_forever`` and reads the URL from ``url_of``."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    handler = functools.partial(Quiet, directory=str(path.parent))
    return ThreadingHTTPServer(("127.0.0.1", port), handler)


def url_of(server: Any, path: Path) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/{path.name}"
