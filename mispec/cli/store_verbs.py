"""Verbs over the store itself: ``cache`` (what it holds) and ``gc`` (remove what nothing
references); see :mod:`mispec.store.lifecycle`."""

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
    from mispec.store.lifecycle import usage

    u = usage(store_root(args.store))
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
    from mispec.cli.render import human_bytes
    from mispec.store.lifecycle import gc

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
    if args.verbose:
        lines += [f"  {e.kind:<12} {human_bytes(e.bytes):>10}  {e.path}" for e in report.removed]
    if report.dry_run and report.removed:
        lines.append("dry run: nothing removed; run `mispec gc --apply` to remove them")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


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


REGISTER = [_register_cache, _register_gc]
