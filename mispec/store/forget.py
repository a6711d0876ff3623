"""Forget runs (``mispec forget``): drop them from the store's record so that ``mispec gc``
reclaims what only they referenced.

gc keeps every entry a run *folder* vouches for (:mod:`mispec.store.run_refs`): a recorded
run folder, every run folder beside one, and each ``history/<run_id>/`` in them. Dropping a
line of the run index alone would therefore free nothing, so forgetting a run removes both:

* its line in ``runs.jsonl`` (and the ``unchanged`` re-runs recorded as the same run), by
  an atomic rewrite of the index under the store's ``gc.lock`` (``record_run`` appends under
  it too, so no record written meanwhile is lost);
* its files: ``runs/<name>/history/<run_id>/`` when it is an earlier run of that folder, or,
  when it is the folder's current run, ``results.zarr``, ``spec.yaml``, ``plan.json``,
  ``provenance.json`` and ``README.txt`` (``provenance.json`` first, so the folder never
  claims a run it no longer holds). ``runs/<name>/`` itself stays with its ``history/``:
  the earlier runs are not promoted, and the next ``mispec run`` of the spec writes a
  current run again. Removal is under the run folder's lock, so it never races a run's swap.

A run that a run in progress is running again (a live lease, :mod:`mispec.store.leases`,
holding the same plan) is refused, as is a run the index does not know (with a did-you-mean)
and a folder that holds no run of this store: nothing is removed then. The store's entries
are not touched here: ``mispec gc --apply`` removes what nothing references any more.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mispec.errors import UserError
from mispec.store.files import remove_tree, write_bytes_atomic
from mispec.store.leases import gc_lock, read_leases
from mispec.store.run_folder import RUN_FILES, RunFolder, folder_of, read_run_json
from mispec.store.run_refs import index_records
from mispec.store.store import Store

_CURRENT_FILES = ("provenance.json", *[n for n in RUN_FILES if n != "provenance.json"])


@dataclass
class ForgottenRun:
    """One run forgotten: its id and study, the folder whose files were removed (None: it
    held none any more) and how many lines of the index named it."""

    run_id: str
    study: str
    folder: str | None
    index_lines: int

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ForgetReport:
    store: Path
    dry_run: bool
    runs: list[ForgottenRun] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "store": str(self.store),
            "dry_run": self.dry_run,
            "forgotten": [r.to_json() for r in self.runs],
        }


def forget(
    root: str | Path,
    runs: Iterable[str] = (),
    *,
    study: str | None = None,
    keep_last: int | None = None,
    dry_run: bool = False,
) -> ForgetReport:
    """Forget ``runs`` (run ids from the index, or run folders: ``runs/<name>`` for its
    current run, ``runs/<name>/history/<id>``) and, with ``study`` and ``keep_last``, every
    run of that study but its ``keep_last`` latest. A ``UserError`` (nothing changed) for an
    unknown run or study, a folder holding no run, or a run a run in progress is running."""
    store = Store(Path(root))
    records, _ = index_records(store)
    wanted = _resolve(store, records, list(runs), study, keep_last)
    report = ForgetReport(store.root, dry_run)
    if not wanted:
        return report
    _refuse_running(store, wanted)
    for run_id, (study_name, folder) in wanted.items():
        lines = sum(1 for r in records if _names(r, run_id))
        report.runs.append(ForgottenRun(run_id, study_name, str(folder) if folder else None, lines))
    if dry_run:
        return report
    _rewrite_index(store, set(wanted))
    for run_id, (_, folder) in wanted.items():
        if folder is not None:
            in_history = folder.parent.name == "history"
            _remove_run_files(folder.parent.parent if in_history else folder, run_id)
    return report


def _names(record: dict[str, Any], run_id: str) -> bool:
    return record["run_id"] == run_id or (
        bool(record.get("unchanged")) and str(record.get("same_as")) == run_id
    )


def _resolve(
    store: Store,
    records: list[dict[str, Any]],
    runs: list[str],
    study: str | None,
    keep_last: int | None,
) -> dict[str, tuple[str, Path | None]]:
    """run id -> (study, the folder holding it or None), in the order asked."""
    known = {r["run_id"]: r for r in records if not r.get("unchanged")}
    if not runs and study is None:
        raise UserError(
            "name the runs to forget (run ids or run folders), or --study NAME --keep-last N"
        )
    out: dict[str, tuple[str, Path | None]] = {}
    for name in runs:
        path = Path(name)
        if name in known:
            record = known[name]
            out[name] = (record["study"], folder_of(Path(record["run_dir"]), name))
        elif path.is_dir():
            run_id, folder = _run_in_folder(store, path)
            out[run_id] = (known[run_id]["study"] if run_id in known else "?", folder)
        else:
            from mispec.registry import did_you_mean

            raise UserError(
                f"no run '{name}' in the store {store.root}{did_you_mean(name, list(known))}; "
                "`mispec runs --all` lists the recorded runs (or give a run folder's path)"
            )
    if keep_last is not None or study is not None:
        if study is None or keep_last is None:
            raise UserError("--keep-last and --study go together: forget all but the N latest")
        if keep_last < 0:
            raise UserError(f"--keep-last {keep_last}: give a count of 0 or more")
        studies = {r["study"] for r in known.values()}
        if study not in studies:
            from mispec.registry import did_you_mean

            raise UserError(
                f"no runs of study '{study}' recorded in {store.root}"
                f"{did_you_mean(study, sorted(studies))}"
            )
        of_study = [r for r in known.values() if r["study"] == study]
        for r in of_study[: max(len(of_study) - keep_last, 0)]:
            out.setdefault(r["run_id"], (study, folder_of(Path(r["run_dir"]), r["run_id"])))
    return out


def _run_in_folder(store: Store, path: Path) -> tuple[str, Path]:
    prov = read_run_json(path, "provenance.json")  # a damaged one is a ResultsError (exit 2)
    if prov is None or not isinstance(prov.get("run_id"), str):
        raise UserError(
            f"{path} holds no run (no provenance.json naming a run id); give a run folder "
            "(runs/<name> or runs/<name>/history/<id>) or a run id from `mispec runs`"
        )
    its_store = prov.get("store")
    if isinstance(its_store, str) and Path(its_store).resolve() != store.root.resolve():
        raise UserError(
            f"{path} is a run of the store {its_store}, not of {store.root}; pass "
            f"--store {its_store}"
        )
    return prov["run_id"], path


def _refuse_running(store: Store, wanted: dict[str, tuple[str, Path | None]]) -> None:
    """A live lease holding a wanted run's plan (the same plan key): that run is being run
    again now, and may yet be recorded as an ``unchanged`` re-run of it."""
    live, _ = read_leases(store.root)
    if not live:
        return
    if any("unreadable" in plan for plan in live):
        raise UserError(
            "a run in progress holds a lease that cannot be read, so mispec cannot tell "
            "whether it is running one of these runs; wait for it to end, then forget again"
        )
    running = {plan.get("key") for plan in live}
    for run_id, (study, folder) in wanted.items():
        plan = read_run_json(folder, "plan.json") if folder is not None else None
        if plan is not None and plan.get("key") in running:
            raise UserError(
                f"run {run_id} ({study}) is being run again right now (a live lease in "
                f"{store.root / 'leases'} holds its plan); wait for that run to end, then "
                "forget it. Nothing was forgotten"
            )


def _rewrite_index(store: Store, run_ids: set[str]) -> None:
    """The index without the lines naming ``run_ids``, written beside and renamed into
    place; every other line (unreadable ones included) stays byte for byte."""
    path = store.index_path
    if not path.is_file():
        return
    with gc_lock(store.root, exclusive=True):  # no record is appended meanwhile
        write_bytes_atomic(path, _without(path.read_bytes(), run_ids))


def _without(index: bytes, run_ids: set[str]) -> bytes:
    kept = []
    for raw in index.split(b"\n"):
        try:
            record = json.loads(raw.decode("utf-8")) if raw.strip() else None
        except (UnicodeDecodeError, ValueError, RecursionError):
            record = None
        if (
            isinstance(record, dict)
            and isinstance(record.get("run_id"), str)
            and any(_names(record, rid) for rid in run_ids)
        ):
            continue
        if raw.strip():
            kept.append(raw)
    return b"".join(line + b"\n" for line in kept)


def _remove_run_files(run_dir: Path, run_id: str) -> None:
    """Remove run ``run_id`` from the run folder ``run_dir`` under its lock, wherever it is
    now (a run swapped in meanwhile moves it to ``history/``): a history entry whole, a
    current run file by file, ``provenance.json`` first."""
    run_folder = RunFolder(run_dir)
    with run_folder.lock():
        folder = folder_of(run_dir, run_id)
        if folder is None:
            return
        if folder != run_dir:
            remove_tree(folder)
            return
        for name in (*_CURRENT_FILES, "README.txt"):
            target = folder / name
            if target.is_dir():
                remove_tree(target)
            else:
                target.unlink(missing_ok=True)
