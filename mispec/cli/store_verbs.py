"""Verbs over the store itself: ``cache`` (what it holds), ``forget`` (drop runs from its
record) and ``gc`` (remove what nothing references); see :mod:`mispec.store.lifecycle` and
:mod:`mispec.store.forget`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any


def store_root(value: str | None) -> Path:
    """``--store``, else ``MISPEC_STORE``, else ``./.mispec``; an fsspec URL is refused."""
    from mispec.store.store import STORE_ENV, check_store_dir

    root = Path(value or os.environ.get(STORE_ENV) or ".mispec")
    check_store_dir(root)
    return root


def cmd_cache(args: argparse.Namespace) -> int:
    from mispec.cli.render import human_bytes
    from mispec.store.lifecycle import cache_usage

    u = cache_usage(store_root(args.store))
    if args.format == "json":
        sys.stdout.write(json.dumps(u.to_json(), indent=1) + "\n")
        return 0
    lines = [f"store {u.root.resolve()}: {human_bytes(u.total)}"]
    for title, table in (
        ("by kind", u.by_kind),
        ("by model", u.by_model),
        ("by hook (activations)", u.by_hook),
        ("by run (an entry runs share counts in each)", u.by_run),
    ):
        if table:
            lines.append(f"{title}:")
            lines += [f"  {human_bytes(n):>10}  {name}" for name, n in table.items()]
    lines.append(
        f"unreferenced by any recorded run: {human_bytes(u.unreferenced)} "
        "(`mispec gc` lists it, `mispec gc --apply` removes it)"
    )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from mispec.api import gc
    from mispec.cli.render import human_bytes

    report = gc(
        store_root(args.store), keep=args.keep or (), dry_run=not args.apply, grace=args.grace
    )
    if args.format == "json":
        sys.stdout.write(json.dumps(report.to_json(), indent=1) + "\n")
        return 0
    verb = "would free" if report.dry_run else "freed"
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(report.counts().items())) or "nothing"
    lines = [
        f"{verb} {human_bytes(report.freed)}: {counts}",
        f"kept {report.kept_referenced} entries that {report.runs} recorded run(s)"
        + (" and the --keep spec(s)" if args.keep else "")
        + " reference",
    ]
    if report.kept_recent:
        lines.append(
            f"kept {report.kept_recent} unreferenced entries younger than {args.grace:g} s "
            "(a run in progress may be writing them; --grace 0 includes them)"
        )
    if report.leases:
        lines.append(f"kept what {report.leases} run(s) in progress read (their leases)")
    if report.doubts:
        lines.append(
            f"kept {report.kept_in_doubt} unreferenced-looking entries: gc cannot prove them "
            "unreferenced, because"
        )
        lines += [f"  - {why}" for why in report.doubts]
        lines.append("  fix that, then run `mispec gc` again")
    if args.verbose:
        lines += [f"  {e.kind:<12} {human_bytes(e.bytes):>10}  {e.path}" for e in report.removed]
    if report.dry_run and report.removed:
        lines.append("dry run: nothing removed; run `mispec gc --apply` to remove them")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    from mispec.store.forget import forget

    report = forget(
        store_root(args.store),
        args.runs,
        study=args.study,
        keep_last=args.keep_last,
        dry_run=args.dry_run,
    )
    if args.format == "json":
        sys.stdout.write(json.dumps(report.to_json(), indent=1) + "\n")
        return 0
    verb = "would forget" if report.dry_run else "forgot"
    lines = [f"{verb} {len(report.runs)} run(s)"]
    for r in report.runs:
        where = f"removed {r.folder}" if r.folder else "its run folder was already gone"
        if report.dry_run:
            where = f"would remove {r.folder}" if r.folder else "no run folder"
        lines.append(f"  {r.run_id}  {r.study}: {where}")
    if report.runs:
        lines.append(
            "what only these runs used stays in the store until `mispec gc --apply` "
            "(`mispec gc` lists it)"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _register_forget(sub: Any) -> None:
    p = sub.add_parser(
        "forget",
        help="drop runs from the store's record and their run files (results, plan), so "
        "`mispec gc --apply` reclaims what only they used",
    )
    p.add_argument(
        "runs",
        nargs="*",
        metavar="RUN",
        help="a run id (`mispec runs --all`) or a run folder (runs/NAME: its current run; "
        "runs/NAME/history/ID)",
    )
    p.add_argument("--store", help="store folder (default: $MISPEC_STORE or ./.mispec)")
    p.add_argument("--study", help="with --keep-last: the study whose older runs to forget")
    p.add_argument(
        "--keep-last", type=int, metavar="N", help="forget all runs of --study but the N latest"
    )
    p.add_argument("--dry-run", action="store_true", help="only list what would be forgotten")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_forget)


def _register_cache(sub: Any) -> None:
    p = sub.add_parser("cache", help="what the store holds: size by kind, model, hook and run")
    p.add_argument("--store", help="store folder (default: $MISPEC_STORE or ./.mispec)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_cache)


def _register_gc(sub: Any) -> None:
    p = sub.add_parser(
        "gc",
        help="remove store entries no recorded run references, and killed writers' temp "
        "files (a dry run unless --apply)",
    )
    p.add_argument("--store", help="store folder (default: $MISPEC_STORE or ./.mispec)")
    p.add_argument("--apply", action="store_true", help="remove (default: only list)")
    p.add_argument(
        "--keep", action="append", metavar="SPEC", help="also keep what this spec needs (repeat)"
    )
    p.add_argument(
        "--grace",
        type=float,
        default=3600.0,
        help="never remove entries younger than this many seconds (default 3600)",
    )
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_gc)


def _register_runs(sub: Any) -> None:
    from mispec.cli.runs_verb import register_runs

    register_runs(sub)


REGISTER = [_register_cache, _register_gc, _register_forget, _register_runs]
