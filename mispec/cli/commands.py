"""The CLI verbs: each parses its arguments, calls the library, renders the data it returns."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


# --------------------------------------------------------------------------- validate
def cmd_validate(args: argparse.Namespace) -> int:
    from mispec.spec.load import load_spec

    for path in args.specs:
        loaded = load_spec(path)
        spec = loaded.spec
        _out(f"{path}: ok — {len(spec.models)} model(s), {len(spec.prompts)} prompt set(s), "
             f"{len(spec.metrics)} metric(s)")
    return 0


def _register_validate(sub: Any) -> None:
    p = sub.add_parser("validate", help="check specs; errors point at file:line:col")
    p.add_argument("specs", nargs="+", metavar="SPEC")
    p.set_defaults(func=cmd_validate)


# --------------------------------------------------------------------------- schema
def cmd_schema(args: argparse.Namespace) -> int:
    from mispec.spec.schema import json_schema

    _out(json.dumps(json_schema(), indent=2))
    return 0


def _register_schema(sub: Any) -> None:
    p = sub.add_parser("schema", help="print the JSON Schema of spec files (for editors)")
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

    result = run(args.spec, executor=args.executor, out=args.out, store=args.store,
                 progress=not args.quiet)
    from mispec.cli.render import render_run

    _out(render_run(result, quiet=args.quiet))
    return 0


def _register_run(sub: Any) -> None:
    p = sub.add_parser("run", help="run a spec (only what is not cached)")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--executor", "-e", help="execution profile: a name in executors/ or a path")
    p.add_argument("--out", help="run folder (default: runs/<name>/ in the project)")
    p.add_argument("--store", help="store folder (default: .mispec beside the spec)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_run)


# --------------------------------------------------------------------------- ls
def cmd_ls(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mispec.store.store import STORE_ENV, Store

    import os

    root = Path(args.store or os.environ.get(STORE_ENV) or ".mispec")
    runs = Store(root).runs()
    if not runs:
        _out(f"no runs recorded in {root.resolve()}")
        return 0
    for r in runs[-args.n:]:
        _out(f"{r['time']}  {r['run_id']}  {r['study']:<24} {r['run_dir']}")
    return 0


def _register_ls(sub: Any) -> None:
    p = sub.add_parser("ls", help="list recorded runs in a store")
    p.add_argument("--store", help="store folder (default: ./.mispec)")
    p.add_argument("-n", type=int, default=20, help="how many of the latest runs")
    p.set_defaults(func=cmd_ls)


REGISTER = [_register_validate, _register_schema, _register_plan, _register_run, _register_ls]
