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


def cmd_runs(args: argparse.Namespace) -> int:
    from mispec.results.run_table import changed_keys, changed_values, run_rows

    rows = run_rows(store_root(args.store), last=args.n, study=args.study)
    keys = changed_keys(rows)
    values = (
        changed_values(rows) if args.only_changed else sorted({k for r in rows for k in r.values})
    )
    if args.format == "json":
        data = [
            {
                **{k: v for k, v in r.to_json().items() if k not in ("spec", "values")},
                "spec": {k: r.spec.get(k) for k in keys},
                "values": {k: r.values.get(k) for k in values},
            }
            for r in rows
        ]
        sys.stdout.write(json.dumps({"changed_keys": keys, "runs": data}, indent=1) + "\n")
        return 0
    if not rows:
        sys.stdout.write("no runs recorded\n")
        return 0
    header = ["run", "study", *keys, *values]
    table = [header]
    for r in rows:
        run = r.run_id + (f" (+{r.reruns} unchanged)" if r.reruns else "")
        if r.folder is None:
            table.append([run, r.study, *(["(run folder gone)"] + [""] * (len(header) - 3))])
            continue
        table.append(
            [
                run,
                r.study,
                *(_cell(r.spec.get(k, "—")) for k in keys),
                *("/".join(_num(v) for v in r.values.get(k) or []) or "—" for k in values),
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    note = "values at the last step, per seed (seed 0/seed 1/...)"
    if keys:
        note += f"; spec keys shown: the {len(keys)} that differ"
    sys.stdout.write("\n".join(lines) + f"\n{note}\n")
    return 0


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _num(v: float | None) -> str:
    return "nan" if v is None else f"{v:.4g}"


def _register_runs(sub: Any) -> None:
    p = sub.add_parser(
        "runs",
        help="compare recorded runs: the spec keys that differ and headline values per seed",
    )
    p.add_argument("--store", help="store folder (default: $MISPEC_STORE or ./.mispec)")
    p.add_argument("--study", help="only this study's runs")
    p.add_argument("-n", type=int, default=20, help="how many of the latest runs")
    p.add_argument(
        "--only-changed", action="store_true", help="only the values that differ between runs"
    )
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_runs)


REGISTER = [_register_cache, _register_gc, _register_forget, _register_runs]
