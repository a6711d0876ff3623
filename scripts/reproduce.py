"""``make reproduce``: run every CPU-sized shipped study with its claims checked and print one
table — study, claim, verdict, measured — then exit 3 when a claim failed, could not be
evaluated or passed against its ``expect: fail`` (as ``mispec run --check`` does).

    python scripts/reproduce.py [--studies induction_heads grokking ...] [--format markdown]
                                [--store DIR] [--out DIR]

Each study runs in the project's store (``.mispec`` beside ``specs/``, or ``--store``), so a
second ``make reproduce`` is served from the cache and only checks the claims again; its run
folder is ``runs/<name>/`` (or ``<--out>/<study>/``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# the shipped studies a CPU runs in minutes (grokking_full: a GPU-sized run, its own issue;
# circuits_pretrained: a pretrained download)
CPU_STUDIES = (
    "induction_heads",
    "path_dependence",
    "lottery_ticket",
    "finetuning",
    "grokking",
    "addition",
    "ioi_over_training",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", nargs="+", default=list(CPU_STUDIES), metavar="NAME")
    parser.add_argument("--format", choices=["text", "markdown"], default="text")
    parser.add_argument("--store", type=Path, default=None, help="store folder for every study")
    parser.add_argument("--out", type=Path, default=None, help="parent of the run folders")
    args = parser.parse_args(argv)
    import mispec

    rows: list[tuple[str, str, str, str]] = []
    failed = False
    for study in args.studies:
        spec = REPO / "specs" / f"{study}.yaml"
        print(f"running {spec.name} ...", file=sys.stderr, flush=True)
        out = args.out / study if args.out is not None else None
        result = mispec.run(spec, progress=False, store=args.store, out=out)
        if not result.claims:
            rows.append((study, "—", "no claims", ""))
        for v in result.claims:
            rows.append((study, f"{v.name}: {v.text}", v.status, v.measured))
        failed |= bool(result.claims_failed)
    print(render(rows, args.format))
    return 3 if failed else 0


def render(rows: list[tuple[str, str, str, str]], fmt: str) -> str:
    header = ("study", "claim", "verdict", "measured")
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "| --- | --- | --- | --- |"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(3)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3]
        for r in (header, *rows)
    )


if __name__ == "__main__":
    sys.exit(main())
