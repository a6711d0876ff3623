"""``mispec export RUN --to wandb|mlflow``: a run's results as experiment-tracker runs
(:func:`mispec.results.trackers.export_run`), rendered as text or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

TRACKERS = ("wandb", "mlflow")  # mispec.results.trackers.TRACKERS, without importing it


def cmd_export(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from mispec.results.trackers import export_run

    report = export_run(
        args.run, args.to, args.dir, project=args.project, max_values=args.max_values
    )
    if args.format == "json":
        data = asdict(report)
        data["dir"] = str(report.dir)
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return 0
    where = "W&B (offline)" if report.tracker == "wandb" else "MLflow (file store)"
    lines = [f"exported {len(report.runs)} run(s) to {where} project {report.project!r}:"]
    lines += [f"  {r.name}  {r.id}  {r.keys} keys over {r.steps} steps" for r in report.runs]
    lines += [f"  not logged: {s}" for s in report.skipped]
    if report.tracker == "wandb":
        lines.append(f"upload later with: wandb sync {report.dir / 'wandb'}/offline-run-*")
    else:
        lines.append(
            f"view with: MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri "
            f"{report.dir.as_uri()}"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def register_export(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="export a run's results to an experiment tracker: W&B (offline) or MLflow "
        "(local file store)",
    )
    p.add_argument("run", metavar="RUN", help="run folder (runs/<name>) or results.zarr")
    p.add_argument("--to", required=True, choices=TRACKERS, help="the tracker to write")
    p.add_argument(
        "--dir",
        help="where the tracker writes (default: W&B ./wandb/offline-run-*, MLflow ./mlruns)",
    )
    p.add_argument("--project", help="W&B project / MLflow experiment (default: the study)")
    p.add_argument(
        "--max-values",
        type=int,
        default=256,
        help="skip a metric with more values per step than this (default 256)",
    )
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_export)
