"""``mispec runs``: recorded runs side by side (:mod:`mispec.results.run_table`), one study at a
time by default — the latest run's, ``--study NAME``, or ``--all`` — in lines no wider than
``--width`` (100): spec keys shortened to their shortest distinct tail, long cells cut, values
over more than two seeds shown as mean±sd, and what still does not fit named, not wrapped."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any

CELL = 16  # the widest cell once the table has to shrink


def cmd_runs(args: argparse.Namespace) -> int:
    from mispec.cli.store_verbs import store_root
    from mispec.results.run_table import (
        changed_keys,
        changed_values,
        claims_cell,
        latest_study,
        run_rows,
    )

    root = store_root(args.store)
    study = None if args.all else (args.study or latest_study(root))
    rows = run_rows(root, last=args.n, study=study)
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
        out = {"study": study, "changed_keys": keys, "runs": data}
        sys.stdout.write(json.dumps(out, indent=1) + "\n")
        return 0
    if not rows and args.study:
        from mispec.errors import UserError
        from mispec.registry import did_you_mean

        studies = sorted(rows_all_studies(root))
        if args.study not in studies:
            raise UserError(
                f"no runs of study '{args.study}' recorded in {root}"
                f"{did_you_mean(args.study, studies)}"
            )
    if not rows:
        sys.stdout.write("no runs recorded" + (f" for study '{study}'" if study else "") + "\n")
        return 0
    with_claims = any(r.claims for r in rows)
    header = ["run", "study", *(["claims"] if with_claims else []), *keys, *values]
    table = []
    for r in rows:
        run = r.run_id + (f" (+{r.reruns} unchanged)" if r.reruns else "")
        if r.folder is None:
            table.append([run, r.study, "(run folder gone)"] + [""] * (len(header) - 3))
            continue
        table.append(
            [
                run,
                r.study,
                *([claims_cell(r.claims)] if with_claims else []),
                *(_cell(r.spec.get(k, "—")) for k in keys),
                *(compact_values(r.values.get(k)) for k in values),
            ]
        )
    fixed = 2 + with_claims  # run, study and the claims' verdicts are never left out
    lines, hidden = fit_table(header, table, args.width, spec_columns=len(keys), fixed=fixed)
    shrunk = bool(hidden) or lines[0] != _lay_out(header, table)[0]
    if shrunk and len({r.study for r in rows}) == 1:  # the study column goes first
        header, table = header[:1] + header[2:], [row[:1] + row[2:] for row in table]
        lines, hidden = fit_table(
            header, table, args.width, spec_columns=len(keys), fixed=fixed - 1
        )
    note = "values at the last step per seed (0/1; over 2 seeds: mean±sd)"
    if keys:
        note += f"; the {len(keys)} spec key(s) that differ"
    others = len(rows_all_studies(root)) - 1 if study is not None else 0
    if others > 0 or header[1] != "study":  # say which study, when the table does not
        note += f"\nstudy '{rows[0].study}'" + ("" if args.study else " (the latest run's)")
        if others > 0:
            note += f"; {others} other stud{'y' if others == 1 else 'ies'}: --study NAME, --all"
    if hidden:
        note += (
            f"\n{len(hidden)} more column(s) not shown: {', '.join(hidden)} "
            "(--width 0 for all, or --format json)"
        )
    sys.stdout.write("\n".join(lines) + f"\n{note}\n")
    return 0


def rows_all_studies(root: Any) -> set[str]:
    """The studies the store's index records."""
    from mispec.store.store import Store

    return {str(r["study"]) for r in Store(root).runs()}


def compact_values(per_seed: list[float | None] | None) -> str:
    """``0.5/0.25`` for up to two seeds, ``mean±sd`` over more; ``—`` when absent."""
    if not per_seed:
        return "—"
    if len(per_seed) <= 2:
        return "/".join(_num(v) for v in per_seed)
    finite = [v for v in per_seed if v is not None]
    if len(finite) < len(per_seed) or len(finite) < 2:
        return f"{_num(statistics.fmean(finite)) if finite else 'nan'}±nan"
    return f"{_num(statistics.fmean(finite))}±{statistics.stdev(finite):.2g}"


def fit_table(
    header: list[str],
    table: list[list[str]],
    width: int,
    *,
    spec_columns: int = 0,
    fixed: int = 2,
) -> tuple[list[str], list[str]]:
    """The table's lines (header, rule, rows), no wider than ``width`` (0: no limit), and
    the headers of the columns left out. To fit, spec keys (the ``spec_columns`` after the
    ``fixed`` columns: ``run`` and ``study``) become their shortest distinct dotted tail,
    cells past ``CELL`` characters are cut with ``…`` (never the run id), then columns are
    left out from the right (never the fixed ones)."""
    lines = _lay_out(header, table)
    if not width or _widest(lines) <= width:
        return lines, []
    end = fixed + spec_columns
    header = header[:fixed] + short_keys(header[fixed:end]) + header[end:]
    header = [_cut(h) for h in header]
    table = [[row[0], *(_cut(c) for c in row[1:])] for row in table]
    hidden: list[str] = []
    while len(header) > fixed:
        lines = _lay_out(header, table)
        if _widest(lines) <= width:
            break
        hidden.insert(0, header.pop())
        table = [row[:-1] for row in table]
    return _lay_out(header, table), hidden


def short_keys(keys: list[str]) -> list[str]:
    """Each dotted key as its shortest tail that no other key ends with."""
    out = []
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            tail = ".".join(parts[-n:])
            if not any(o != key and (o == tail or o.endswith("." + tail)) for o in keys):
                break
        out.append(tail)
    return out


def _lay_out(header: list[str], table: list[list[str]]) -> list[str]:
    rows = [header, *table]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _widest(lines: list[str]) -> int:
    return max(len(line) for line in lines)


def _cut(text: str) -> str:
    return text if len(text) <= CELL else text[: CELL - 1] + "…"


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _num(v: float | None) -> str:
    return "nan" if v is None else f"{v:.4g}"


def register_runs(sub: Any) -> None:
    p = sub.add_parser(
        "runs",
        help="compare recorded runs of a study (the latest run's by default): the spec keys "
        "that differ and headline values per seed",
    )
    p.add_argument("--store", help="store folder (default: $MISPEC_STORE or ./.mispec)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--study", help="this study's runs (default: the latest run's study)")
    which.add_argument("--all", action="store_true", help="the runs of every study")
    p.add_argument("-n", type=int, default=20, help="how many of the latest runs")
    p.add_argument(
        "--only-changed", action="store_true", help="only the values that differ between runs"
    )
    p.add_argument(
        "--width",
        type=int,
        default=100,
        metavar="COLUMNS",
        help="widest line of the table (default 100; 0: no limit)",
    )
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_runs)
