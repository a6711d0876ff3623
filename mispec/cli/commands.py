"""The CLI verbs over specs, runs and the store's record of runs (``plot`` and ``report`` are
in :mod:`mispec.cli.figure_verbs`): each parses its arguments, calls the library, renders the
data it returns."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mispec.cli.export_verb import register_export
from mispec.cli.figure_verbs import register_plot, register_report, register_view


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


# --------------------------------------------------------------------------- validate
def cmd_validate(args: argparse.Namespace) -> int:
    from mispec.errors import SpecError
    from mispec.validation.load import load_spec

    if args.format == "json":  # every spec's verdict, problems located, on stdout
        verdicts, worst = [], 0
        for path in args.specs:
            try:
                spec = load_spec(path).spec
            except SpecError as exc:
                worst = max(worst, exc.exit_code)
                verdicts.append(
                    {
                        "spec": path,
                        "ok": False,
                        "problems": [
                            {
                                "file": p.file,
                                "line": p.line,
                                "col": p.col,
                                "key": p.key_path,
                                "message": p.message,
                            }
                            for p in exc.problems
                        ],
                        **({"not_yet_checked": exc.note} if exc.note else {}),
                    }
                )
                continue
            verdicts.append(
                {
                    "spec": path,
                    "ok": True,
                    "name": spec.name,
                    "models": len(spec.models),
                    "prompts": len(spec.prompts),
                    "metrics": len(spec.metrics),
                }
            )
        _out(json.dumps(verdicts, indent=1))
        return worst
    for path in args.specs:
        loaded = load_spec(path)
        spec = loaded.spec
        _out(
            f"{path}: ok — {len(spec.models)} model(s), {len(spec.prompts)} prompt set(s), "
            f"{len(spec.metrics)} metric(s)"
        )
    return 0


def _register_validate(sub: Any) -> None:
    p = sub.add_parser("validate", help="check specs; errors point at file:line:col")
    p.add_argument("specs", nargs="+", metavar="SPEC")
    p.add_argument(
        "--format", choices=["text", "json"], default="text", help="json: problems as data"
    )
    p.set_defaults(func=cmd_validate)


# --------------------------------------------------------------------------- schema
def cmd_schema(args: argparse.Namespace) -> int:
    from mispec.catalogue.editor_schema import editor_schema

    _out(json.dumps(editor_schema(builtin_only=args.builtin), indent=2))
    return 0


def _register_schema(sub: Any) -> None:
    p = sub.add_parser(
        "schema",
        help="print the JSON Schema of spec files for editors (enums of the metrics, tasks "
        "and generators installed here, and their args)",
    )
    p.add_argument("--builtin", action="store_true", help="leave installed plugins out")
    p.set_defaults(func=cmd_schema)


# --------------------------------------------------------------------------- plan
def cmd_plan(args: argparse.Namespace) -> int:
    from mispec.api import plan

    planned = plan(args.spec, store=args.store)
    if args.format == "json":
        data = planned.to_json()
        if not args.nodes:
            data.pop("nodes")
        _out(json.dumps(data, indent=1))
        return 0
    from mispec.cli.render import render_plan

    _out(render_plan(planned))
    return 0


def _register_plan(sub: Any) -> None:
    p = sub.add_parser("plan", help="show the work a run would do and what is cached")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--nodes", action="store_true", help="list every node (json)")
    p.add_argument("--store", help="store folder (default: .mispec beside the spec)")
    p.set_defaults(func=cmd_plan)


# --------------------------------------------------------------------------- run
def cmd_run(args: argparse.Namespace) -> int:
    from mispec.api import run

    result = run(
        args.spec,
        executor=args.executor,
        out=args.out,
        store=args.store,
        progress=not args.quiet,
        progress_every=args.progress_every,
    )
    from mispec.cli.render import render_run

    _out(render_run(result))
    return CLAIMS_FAILED if (args.check and result.claims_failed) else 0


# ``run --check`` and ``check``: a claim failed, could not be evaluated, or passed against
# its ``expect: fail`` (docs/reliability.md, README)
CLAIMS_FAILED = 3


def _register_run(sub: Any) -> None:
    p = sub.add_parser("run", help="run a spec (only what is not cached)")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument(
        "--executor",
        "-e",
        help="execution profile: a built-in name (local, dask-local, ...), a name in ./executors/, or a path",
    )
    p.add_argument("--out", help="run folder (default: runs/<name>/ in the project)")
    p.add_argument("--store", help="store folder (default: .mispec beside the spec)")
    p.add_argument(
        "--quiet", "-q", action="store_true", help="no progress on stderr (results still print)"
    )
    p.add_argument(
        "--check",
        action="store_true",
        help=f"exit {CLAIMS_FAILED} when a claim of the spec fails or cannot be evaluated",
    )
    p.add_argument(
        "--progress-every",
        type=float,
        metavar="SECONDS",
        help="outside a terminal (nohup, SLURM, CI, a pipe): a plain progress line every "
        "SECONDS (default: $MISPEC_PROGRESS_EVERY, else 30; 0: every change)",
    )
    p.set_defaults(func=cmd_run)


# --------------------------------------------------------------------------- check
def cmd_check(args: argparse.Namespace) -> int:
    from mispec.api import check

    verdicts = check(args.run, spec=args.spec)
    if args.format == "json":
        _out(json.dumps([v.to_json() for v in verdicts], indent=1))
    else:
        _out("\n".join(v.line() for v in verdicts))
    return CLAIMS_FAILED if any(v.failed for v in verdicts) else 0


def _register_check(sub: Any) -> None:
    p = sub.add_parser(
        "check",
        help=f"check a finished run's claims again on its results (exit {CLAIMS_FAILED} when "
        "one fails)",
    )
    p.add_argument("run", metavar="RUN", help="a run folder (runs/<name>)")
    p.add_argument("--spec", help="check this spec's claims instead of those the run ran with")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_check)


# --------------------------------------------------------------------------- ls
def cmd_ls(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from mispec.store.store import STORE_ENV, Store

    root = Path(args.store or os.environ.get(STORE_ENV) or ".mispec")
    runs = Store(root).runs()  # lines that are not records are skipped with a warning
    if args.format == "json":
        _out(json.dumps(runs[-args.n :], indent=1))
        return 0
    if not runs:
        _out(f"no runs recorded in {root.resolve()}")
        return 0
    for r in runs[-args.n :]:
        # a re-run that changed nothing left the run folder holding the run ``same_as``
        same = f"  (unchanged: results of {r.get('same_as')})" if r.get("unchanged") else ""
        time, run_id, study, run_dir = (str(r.get(k, "?")) for k in _LS_FIELDS)
        _out(f"{time}  {run_id}  {study:<24} {run_dir}{same}")
    return 0


# the fields of a run record that ``ls`` shows (a record missing one shows "?")
_LS_FIELDS = ("time", "run_id", "study", "run_dir")


def _register_ls(sub: Any) -> None:
    p = sub.add_parser("ls", help="list recorded runs in a store")
    p.add_argument("--store", help="store folder (default: ./.mispec)")
    p.add_argument("-n", type=int, default=20, help="how many of the latest runs")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_ls)


# --------------------------------------------------------------------------- diff
def cmd_diff(args: argparse.Namespace) -> int:
    from mispec.diffing import diff
    from mispec.diffing.render import RENDERERS

    result = diff(
        args.a,
        args.b,
        atol=args.atol,
        rtol=args.rtol,
        store=args.store,
        results=not args.no_results,
    )
    _out(RENDERERS[args.format](result))
    if args.plot:
        from mispec.plot.diff_plot import plot_diff

        plot_diff(result, args.a, args.b, args.plot, store=args.store)
    return 1 if (args.exit_code and result.has_differences) else 0


def _register_diff(sub: Any) -> None:
    p = sub.add_parser("diff", help="what changed between two specs / runs / spec.yaml@REV")
    p.add_argument("a", metavar="A", help="spec file, run folder, or spec.yaml@<git-rev>")
    p.add_argument("b", metavar="B")
    p.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    p.add_argument("--atol", type=float, default=1e-6, help="absolute tolerance (default 1e-6)")
    p.add_argument("--rtol", type=float, default=1e-5, help="relative tolerance (default 1e-5)")
    p.add_argument("--exit-code", action="store_true", help="exit 1 when there are differences")
    p.add_argument("--no-results", action="store_true", help="compare only the specs and plans")
    p.add_argument("--plot", metavar="PNG", help="overlay the changed series of both versions")
    p.add_argument("--store", help="store folder (default: .mispec beside the spec)")
    p.set_defaults(func=cmd_diff)


REGISTER = [
    _register_validate,
    _register_schema,
    _register_plan,
    _register_run,
    _register_check,
    _register_diff,
    register_plot,
    register_report,
    register_view,
    _register_ls,
    register_export,
]
