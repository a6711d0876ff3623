"""The store's lifecycle: what it holds (``mispec cache``) and what nothing references any
more (``mispec gc``).

The store is content-keyed, so it only grows: every edit of a spec adds cells, activation
entries and perhaps trained checkpoints beside the old ones. What is still *referenced* is
read from the runs the store has recorded (``runs.jsonl``): each run folder that still exists
keeps a ``plan.json`` (and ``history/<run-id>/plan.json`` for its earlier runs) naming every
cell, reduction and forward pass (with its stored hooks) of that run, and the training
identity of every trained series. A spec given with ``--keep`` is planned and kept too.
Everything else is garbage: the entries of a run whose folder was deleted or that was
forgotten (:mod:`mispec.store.forget`), of specs edited since, and the temporary files of
killed writers (``.tmp-*`` names). What an entry is, kind
by kind: :mod:`mispec.store.entries`.

Safety: gc removes only what it can prove unreferenced (:mod:`mispec.store.run_refs`).
Run folders not in the index but beside one that is (or in ``runs/`` beside the store)
are read too; a run in progress is kept through its lease (:mod:`mispec.store.leases`),
whatever the age of what it reads. When a run folder or the index cannot vouch for what it
references (a damaged or missing ``plan.json``, unreadable index lines, no index at all), gc
removes no entry — only dead writers' temporary files — and says what to fix. An entry
written within the last ``grace`` seconds is never removed, a temp file is removed only when
the process that wrote it is gone (its pid is in the name) or it is older than ``grace``, and
checkpoint folders are removed only when every plan names its training identities (runs
recorded before mispec wrote them keep every checkpoint).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mispec.store.entries import StoreEntry, scan, temporary_entry
from mispec.store.files import remove_tree
from mispec.store.leases import gc_lock, pid_alive, read_leases
from mispec.store.run_refs import RunRefs, plan_refs, references
from mispec.store.store import Store


@dataclass
class Usage:
    """Bytes of the store by kind, by hook, by model and by run (an entry two runs share
    counts in both runs; ``unreferenced`` is what no recorded run holds)."""

    root: Path
    total: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    by_hook: dict[str, int] = field(default_factory=dict)
    by_model: dict[str, int] = field(default_factory=dict)
    by_run: dict[str, int] = field(default_factory=dict)
    unreferenced: int = 0

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


def cache_usage(root: str | Path) -> Usage:
    """What the store at ``root`` holds, in bytes (``mispec cache``)."""
    store = Store(Path(root))
    entries = scan(store)
    refs = references(store).runs  # of every run whose folder still holds a plan
    out = Usage(store.root)
    by_kind: dict[str, int] = defaultdict(int)
    by_hook: dict[str, int] = defaultdict(int)
    by_model: dict[str, int] = defaultdict(int)
    by_run: dict[str, int] = defaultdict(int)
    for e in entries:
        out.total += e.bytes
        by_kind[e.kind] += e.bytes
        if e.kind == "activations":
            by_hook[e.hook] += e.bytes
        holders = [r for r in refs if r.holds(e)]
        for r in holders:
            by_run[r.label] += e.bytes
        model = next((m for m in (r.model_of(e) for r in holders) if m), None)
        if model:
            by_model[model] += e.bytes
        if not holders:
            out.unreferenced += e.bytes
    out.by_kind = dict(sorted(by_kind.items()))
    out.by_hook = dict(sorted(by_hook.items(), key=lambda kv: -kv[1]))
    out.by_model = dict(sorted(by_model.items(), key=lambda kv: -kv[1]))
    out.by_run = dict(by_run)
    return out


@dataclass
class GcReport:
    """What ``gc`` removed (or, in a dry run, would remove) and what it kept."""

    root: Path
    dry_run: bool
    removed: list[StoreEntry] = field(default_factory=list)
    kept_recent: int = 0  # unreferenced, but newer than the grace period
    kept_referenced: int = 0
    kept_in_doubt: int = 0  # unreferenced as far as gc can tell, but see ``doubts``
    runs: int = 0
    leases: int = 0  # runs in progress whose plans were kept
    doubts: list[str] = field(default_factory=list)

    @property
    def freed(self) -> int:
        return sum(e.bytes for e in self.removed)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for e in self.removed:
            out[e.kind] += 1
        return dict(out)

    def to_json(self) -> dict[str, Any]:
        return {
            "store": str(self.root),
            "dry_run": self.dry_run,
            "freed_bytes": self.freed,
            "removed": self.counts(),
            "kept_referenced": self.kept_referenced,
            "kept_recent": self.kept_recent,
            "kept_in_doubt": self.kept_in_doubt,
            "runs": self.runs,
            "leases": self.leases,
            "doubts": self.doubts,
        }


def gc(
    root: str | Path,
    *,
    keep: Iterable[RunRefs] = (),
    dry_run: bool = True,
    grace: float = 3600,
) -> GcReport:
    """Remove what no run (recorded, found beside one, or in progress) and nothing in
    ``keep`` (the references of specs as they would run now, ``mispec.gc`` plans them)
    references; see the module docstring for what is always kept. ``dry_run``: report
    only."""
    store = Store(Path(root))
    kept = list(keep)
    if dry_run or not store.root.is_dir():
        return _collect(store, kept, dry_run=True, grace=grace)
    with gc_lock(store.root, exclusive=True):  # no run takes a lease meanwhile
        report = _collect(store, kept, dry_run=False, grace=grace)
        for e in report.removed:
            if e.path.is_dir():
                remove_tree(e.path)
            else:
                e.path.unlink(missing_ok=True)
        _drop_empty_forward_folders(store)
    return report


def _collect(store: Store, kept: list[RunRefs], *, dry_run: bool, grace: float) -> GcReport:
    """What gc removes: unreferenced entries older than ``grace`` when nothing is in doubt,
    dead writers' temporary files always."""
    found = references(store)
    refs = found.runs + kept
    live, stale = read_leases(store.root)
    doubts = list(found.doubts)
    for plan in live:
        try:
            refs.append(plan_refs(plan, "a run in progress"))
        except ValueError:
            doubts.append(
                f"the lease {plan.get('unreadable', '?')} of a run in progress cannot be "
                "read; wait for that run to end"
            )
    report = GcReport(store.root, dry_run, runs=len(refs), leases=len(live), doubts=doubts)
    now = time.time()
    for e in scan(store):
        if e.kind == "temporary":
            alive = e.pid is not None and pid_alive(e.pid)
            if alive or (e.pid is None and now - e.mtime < grace):
                report.kept_recent += 1
                continue
        elif any(r.holds(e) for r in refs):
            report.kept_referenced += 1
            continue
        elif now - e.mtime < grace:
            report.kept_recent += 1
            continue
        elif doubts:  # gc cannot prove it unreferenced: kept
            report.kept_in_doubt += 1
            continue
        report.removed.append(e)
    report.removed += [temporary_entry(store.root, p) for p in stale]
    return report


def _drop_empty_forward_folders(store: Store) -> None:
    """A forward pass's folder whose hook entries are all gone (only its ``zarr.json``)."""
    for fdir in store.activations.forward_folders():
        if all(p.name == "zarr.json" for p in fdir.iterdir()):
            for p in fdir.iterdir():
                p.unlink(missing_ok=True)
            fdir.rmdir()
