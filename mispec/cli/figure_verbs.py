"""The verbs that draw a run's results: ``plot`` (figures of metrics over training) and
``report`` (a self-contained HTML page); their ``-o`` and ``--steps`` are checked before any
results are read."""

from __future__ import annotations

import argparse
import sys
from typing import Any

FIGURE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")
REPORT_SUFFIXES = (".html", ".htm")


def _steps_arg(text: str) -> list[int]:
    """``--steps 0,100,1000``: comma-separated training steps (argparse exits 2 otherwise)."""
    try:
        steps = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated step numbers such as 0,100,1000, got {text!r}"
        ) from None
    if not steps or any(s < 0 for s in steps):
        raise argparse.ArgumentTypeError(f"expected steps >= 0 such as 0,100,1000, got {text!r}")
    return steps


def check_output_path(path: str, suffixes: tuple[str, ...], what: str) -> str:
    """An ``-o`` file to write: not a folder, and a name ending in one of ``suffixes``
    (the format follows the name), checked before any results are read."""
    from pathlib import Path

    from mispec.errors import UserError

    p = Path(path)
    if p.is_dir():
        raise UserError(
            f"-o {path} is a folder; name the {what} file, e.g. {p / ('out' + suffixes[0])}"
        )
    if p.suffix.lower() not in suffixes:
        raise UserError(
            f"-o {path}: a {what} is written as {', '.join(suffixes)}; "
            f"name the file with one of these, e.g. {p.with_suffix(suffixes[0]).name}"
        )
    return path


def cmd_plot(args: argparse.Namespace) -> int:
    from mispec.api import open_results
    from mispec.plot.figures import metric_figure, save_figure

    out = check_output_path(
        args.output or f"{'_'.join(args.metrics)}.png", FIGURE_SUFFIXES, "figure"
    )
    tree = open_results(args.run).load()
    notes: list[str] = []
    figs = [
        metric_figure(
            tree, m, log_x=not args.linear, heatmap_steps=args.steps, top_k=args.top_k, notes=notes
        )
        for m in args.metrics
    ]
    for note in notes:  # a requested step that is not a checkpoint snapped to the nearest
        print(f"note: {note}", file=sys.stderr)
    if len(figs) == 1:
        save_figure(figs[0], out)
        sys.stdout.write(f"wrote {out}\n")
        return 0
    from pathlib import Path

    stem = Path(out)
    for m, fig in zip(args.metrics, figs, strict=True):
        path = stem.with_name(f"{stem.stem}-{m}{stem.suffix}")
        save_figure(fig, path)
        sys.stdout.write(f"wrote {path}\n")
    return 0


def register_plot(sub: Any) -> None:
    p = sub.add_parser("plot", help="plot metrics over training (log x-axis) and head heatmaps")
    p.add_argument("run", metavar="RUN", help="run folder (runs/<name>) or results.zarr")
    p.add_argument("metrics", nargs="+", metavar="METRIC")
    p.add_argument("-o", "--output", metavar="FILE.png")
    p.add_argument("--linear", action="store_true", help="linear step axis")
    p.add_argument("--steps", type=_steps_arg, help="comma-separated steps for the heatmaps")
    p.add_argument("--top-k", type=int, default=3, help="heads highlighted by final value")
    p.set_defaults(func=cmd_plot)


def cmd_report(args: argparse.Namespace) -> int:
    from mispec.plot.report import build_report

    if args.output is not None:
        check_output_path(args.output, REPORT_SUFFIXES, "report")
    path = build_report(args.run, args.output, steps=args.steps)
    sys.stdout.write(f"wrote {path}\n")
    return 0


def register_report(sub: Any) -> None:
    p = sub.add_parser("report", help="write a self-contained HTML report of a run")
    p.add_argument("run", metavar="RUN")
    p.add_argument("-o", "--output", metavar="FILE.html")
    p.add_argument("--steps", type=_steps_arg, help="comma-separated steps for the heatmaps")
    p.set_defaults(func=cmd_report)


def cmd_view(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mispec.plot.view import build_view, serve, url_of

    if args.output is not None:
        check_output_path(args.output, REPORT_SUFFIXES, "view")
    path = build_view(args.run, args.output, n_prompts=args.prompts)
    size = Path(path).stat().st_size
    sys.stdout.write(f"wrote {path} ({size / 1024:.0f} KiB)\n")
    if args.no_serve:
        return 0
    server = serve(Path(path), args.port)
    sys.stdout.write(f"serving {url_of(server, Path(path))} (Ctrl-C to stop)\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def register_view(sub: Any) -> None:
    p = sub.add_parser(
        "view", help="an interactive page of a run (step slider, hover values, seed toggles)"
    )
    p.add_argument("run", metavar="RUN", help="run folder (runs/<name>)")
    p.add_argument("-o", "--output", metavar="FILE.html", help="default: RUN/view.html")
    p.add_argument("--no-serve", action="store_true", help="only write the page")
    p.add_argument("--port", type=int, default=0, help="localhost port (default: a free one)")
    p.add_argument(
        "--prompts", type=int, default=2, help="prompts of attention patterns to include"
    )
    p.set_defaults(func=cmd_view)
