"""Runs side by side (``mispec runs``, like ``dvc exp show``): each recorded run with the
spec keys that differ between the runs shown and its headline values (every variable with one
value per seed at the last step: ``loss``, ``transition`` ...), per seed.

A re-run that changed nothing (``unchanged`` in the index) is no row of its own: it is
counted on the run whose results it found (``reruns``). A run whose folder no longer holds
it (deleted, or moved into ``history/`` and pruned) keeps its row, marked ``missing``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mispec.store.run_folder import folder_of
from mispec.store.store import Store


@dataclass
class RunRow:
    run_id: str
    time: str
    study: str
    run_dir: str
    folder: str | None  # the folder holding this run (run_dir or its history/<id>), None: gone
    reruns: int = 0  # unchanged re-runs recorded after it
    spec: dict[str, Any] = field(default_factory=dict)  # flattened: "models.toy.seeds" -> [0, 1]
    values: dict[str, list[float | None]] = field(default_factory=dict)  # per seed
    claims: dict[str, str] = field(default_factory=dict)  # claim -> verdict (the run index's)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_rows(store_root: Path, *, last: int = 20, study: str | None = None) -> list[RunRow]:
    """The latest ``last`` runs (unchanged re-runs folded into the run they repeat)."""
    rows: dict[str, RunRow] = {}
    for record in Store(store_root).runs():
        if study is not None and record["study"] != study:
            continue
        if record.get("unchanged"):  # never a row: counted on the run it repeats, if shown
            same = rows.get(str(record.get("same_as")))
            if same is not None:
                same.reruns += 1
            continue
        run_dir = Path(record["run_dir"])
        folder = folder_of(run_dir, record["run_id"])
        rows[record["run_id"]] = RunRow(
            record["run_id"],
            record["time"],
            record["study"],
            record["run_dir"],
            str(folder) if folder else None,
            claims=dict(record.get("claims") or {}),
        )
    out = list(rows.values())[-last:]
    for row in out:
        if row.folder:
            row.spec = _flat_spec(Path(row.folder) / "spec.yaml")
            row.values = _headline_values(Path(row.folder))
    return out


def latest_study(store_root: Path) -> str | None:
    """The study of the run recorded last (None: no run recorded)."""
    records = Store(store_root).runs()
    return str(records[-1]["study"]) if records else None


def claims_cell(claims: dict[str, str]) -> str:
    """``5/6 ✓, 1 fail`` (how many claims pass or fail as expected, and the others)."""
    if not claims:
        return "—"
    good = sum(v in ("pass", "expected failure") for v in claims.values())
    others: dict[str, int] = {}
    for v in claims.values():
        if v not in ("pass", "expected failure"):
            others[v] = others.get(v, 0) + 1
    return f"{good}/{len(claims)} ✓" + "".join(f", {n} {v}" for v, n in others.items())


def changed_keys(rows: list[RunRow]) -> list[str]:
    """Spec keys whose value is not the same in every row (absent counts as a value)."""
    keys = sorted({k for r in rows if r.folder for k in r.spec})
    present = [r for r in rows if r.folder]
    return [
        k for k in keys if len({json.dumps(r.spec.get(k), sort_keys=True) for r in present}) > 1
    ]


def changed_values(rows: list[RunRow]) -> list[str]:
    keys = sorted({k for r in rows for k in r.values})
    return [k for k in keys if len({json.dumps(r.values.get(k)) for r in rows if r.folder}) > 1]


def _flat_spec(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        else:
            out[prefix] = node

    data = data if isinstance(data, dict) else {}
    walk({k: v for k, v in data.items() if k != "claims"}, "")  # claims: their own column
    out.pop("description", None)
    return out


def _headline_values(folder: Path) -> dict[str, list[float | None]]:
    """Per model and variable with a value per seed (dims ``(seed,)`` or ``(seed, step)``):
    the value at the last step, per seed."""
    import numpy as np

    from mispec.errors import ResultsError
    from mispec.results.open import open_results

    try:
        tree = open_results(folder)
    except ResultsError:
        return {}
    out: dict[str, list[float | None]] = {}
    models = list(tree.children)
    for model in models:
        ds = tree[model].to_dataset()
        for name, var in ds.data_vars.items():
            if set(var.dims) - {"seed", "step"} or "seed" not in var.dims:
                continue
            last = var.isel(step=-1) if "step" in var.dims else var
            label = str(name) if len(models) == 1 else f"{model}.{name}"
            out[label] = [
                None if not np.isfinite(v) else float(v)
                for v in np.asarray(last.transpose("seed").values, dtype=float)
            ]
    return out
