"""The store's lifecycle: what it holds (``mispec cache``) and what nothing references any
more (``mispec gc``).

The store is content-keyed, so it only grows: every edit of a spec adds cells, activation
entries and perhaps trained checkpoints beside the old ones. What is still *referenced* is
read from the runs the store has recorded (``runs.jsonl``): each run folder that still exists
keeps a ``plan.json`` (and ``history/<run-id>/plan.json`` for its earlier runs) naming every
cell, reduction and forward pass (with its stored hooks) of that run, and the training
identity of every trained series. A spec given with ``--keep`` is planned and kept too.
Everything else is garbage: the entries of a run whose folder was deleted, of specs edited
since, and the temporary files of killed writers (``.tmp-*`` names).

Safety: an entry written within the last ``grace`` seconds is never removed (a run in
progress writes entries before it records itself), a temp file is removed only when the
process that wrote it is gone (its pid is in the name) or it is older than ``grace``, and
checkpoint folders are removed only when every recorded plan names its training identities
(runs recorded before mispec wrote them keep every checkpoint).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mispec.store.activations import hook_entry_name, stored_hook
from mispec.store.store import Store

KINDS = ("checkpoints", "activations", "cells", "temporary")
_HEX = re.compile(r"^[0-9a-f]{16,64}$")
_TMP = re.compile(r"(^\.tmp-)|(\.tmp-(?P<pid>\d+)$)|(^\.write-probe-(?P<probe>\d+)$)")


@dataclass(frozen=True)
class StoreEntry:
    """One removable thing in the store: a trained series' checkpoint folder, one activation
    entry (forward pass × hook), one cell, or a temporary file or folder."""

    kind: str
    key: str  # training identity / forward key / cell key / the temp file's path
    path: Path
    bytes: int
    mtime: float
    hook: str = ""  # activations: the stored hook entry's name (``blocks.L.attn.hook_pattern``)
    pid: int | None = None  # temporary: the writer's pid when the name carries it


@dataclass
class RunRefs:
    """What one recorded run references, each with the model it belongs to."""

    label: str
    cells: dict[str, str] = field(default_factory=dict)  # key -> model
    activations: dict[tuple[str, str], str] = field(default_factory=dict)  # (fkey, hook) -> model
    trainings: dict[str, str] | None = field(default_factory=dict)  # None: not recorded

    def holds(self, e: StoreEntry) -> bool:
        if e.kind == "cells":
            return e.key in self.cells
        if e.kind == "activations":
            return (e.key, e.hook) in self.activations
        if e.kind == "checkpoints":
            return self.trainings is None or e.key in self.trainings
        return False

    def model_of(self, e: StoreEntry) -> str | None:
        if e.kind == "cells":
            return self.cells.get(e.key)
        if e.kind == "activations":
            return self.activations.get((e.key, e.hook))
        if e.kind == "checkpoints" and self.trainings:
            return self.trainings.get(e.key)
        return None


# --------------------------------------------------------------------------- scanning
def scan(root: Path) -> list[StoreEntry]:
    """Every entry of the store at ``root`` (temporary files wherever they are)."""
    out: list[StoreEntry] = []
    root = Path(root)
    for tmp in _temporaries(root):
        out.append(tmp)
    ckpt = root / "checkpoints"
    if ckpt.is_dir():
        for d in ckpt.iterdir():
            if d.is_dir() and _HEX.match(d.name):
                out.append(StoreEntry("checkpoints", d.name, d, _size(d), _mtime(d)))
    acts = root / "activations.zarr"
    if acts.is_dir():
        for fdir in _forward_folders(acts):
            for hdir in fdir.iterdir():
                if hdir.is_dir() and not hdir.name.startswith("."):
                    out.append(
                        StoreEntry(
                            "activations", fdir.name, hdir, _size(hdir), _mtime(hdir), hdir.name
                        )
                    )
    cells = root / "cells"
    if cells.is_dir():
        for f in cells.glob("*/*.npz"):
            if not f.name.startswith("."):
                st = f.stat()
                out.append(StoreEntry("cells", f.stem, f, st.st_size, st.st_mtime))
    return out


def _forward_folders(acts: Path) -> Iterator[Path]:
    """``activations.zarr/<fk[:2]>/<fk>/``: one folder per forward pass."""
    for prefix in acts.iterdir():
        if prefix.is_dir() and len(prefix.name) == 2:
            yield from (f for f in prefix.iterdir() if f.is_dir() and _HEX.match(f.name))


def _temporaries(root: Path) -> Iterator[StoreEntry]:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            m = _TMP.search(name)
            if not m:
                continue
            path = Path(dirpath) / name
            pid = m.group("pid") or m.group("probe")
            yield StoreEntry(
                "temporary",
                str(path.relative_to(root)),
                path,
                _size(path),
                _mtime(path),
                pid=int(pid) if pid else None,
            )
        dirnames[:] = [d for d in dirnames if not _TMP.search(d)]


def _size(path: Path) -> int:
    try:
        if path.is_file():
            return path.stat().st_size
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    except OSError:
        return 0


def _mtime(path: Path) -> float:
    """The newest modification time in ``path`` (a folder: of anything in it)."""
    try:
        times = [path.stat().st_mtime]
        if path.is_dir():
            times += [p.stat().st_mtime for p in path.rglob("*")]
        return max(times)
    except OSError:
        return time.time()


# --------------------------------------------------------------------------- references
def plan_refs(plan: dict[str, Any], label: str) -> RunRefs:
    """The references of one ``plan.json`` (``mispec.planning.graph.plan_json``)."""
    refs = RunRefs(label)
    for node in plan.get("nodes", []):
        kind, key, model = node.get("kind"), node.get("key"), node.get("model", "?")
        if kind in ("cell", "reduction"):
            refs.cells[key] = model
        elif kind == "forward":
            for hook, policy in (node.get("hooks") or {}).items():
                if policy != "skip":
                    refs.activations[(key, hook_entry_name(stored_hook(hook, policy)))] = model
    series = plan.get("series", {})
    if any("training_identity" not in s for s in series.values()):
        refs.trainings = None  # recorded before plan.json named them: keep every checkpoint
    else:
        assert refs.trainings is not None
        for label_, s in series.items():
            if s["training_identity"]:
                refs.trainings[s["training_identity"]] = label_.split("/")[0]
    return refs


def recorded_refs(store: Store) -> list[RunRefs]:
    """The references of every run the store recorded whose folder still holds a plan."""
    seen: set[Path] = set()
    out = []
    for record in store.runs():
        run_dir = Path(record["run_dir"])
        plans = [run_dir / "plan.json", *sorted((run_dir / "history").glob("*/plan.json"))]
        for p in plans:
            if p in seen or not p.is_file():
                continue
            seen.add(p)
            try:
                plan = json.loads(p.read_text())
            except (OSError, ValueError):
                continue  # a damaged plan references nothing it can prove
            out.append(plan_refs(plan, f"{record.get('study', '?')} ({_run_id(p.parent)})"))
    return out


def _run_id(folder: Path) -> str:
    """The id of the run a folder holds (its provenance), else the folder's name."""
    try:
        prov = json.loads((folder / "provenance.json").read_text("utf-8"))
        return str(prov["run_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return folder.name


def spec_refs(spec: str | Path) -> RunRefs:
    """The references of a spec as it would run now (planned, nothing run)."""
    from mispec.api import plan
    from mispec.planning.graph import plan_json

    return plan_refs(plan_json(plan(spec).plan), f"spec {spec}")


# --------------------------------------------------------------------------- reports
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
    entries = scan(store.root)
    refs = recorded_refs(store)
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
    runs: int = 0

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
            "runs": self.runs,
        }


def gc(
    root: str | Path,
    *,
    keep: Iterable[str | Path] = (),
    dry_run: bool = True,
    grace: float = 3600,
) -> GcReport:
    """Remove what no recorded run (and no spec in ``keep``) references; see the module
    docstring for what is always kept. ``dry_run``: report only."""
    from mispec.store.files import remove_tree

    store = Store(Path(root))
    refs = recorded_refs(store) + [spec_refs(s) for s in keep]
    report = GcReport(store.root, dry_run, runs=len(refs))
    now = time.time()
    for e in scan(store.root):
        if e.kind == "temporary":
            alive = e.pid is not None and _pid_alive(e.pid)
            if alive or (e.pid is None and now - e.mtime < grace):
                report.kept_recent += 1
                continue
        elif any(r.holds(e) for r in refs):
            report.kept_referenced += 1
            continue
        elif now - e.mtime < grace:
            report.kept_recent += 1
            continue
        report.removed.append(e)
        if not dry_run:
            if e.path.is_dir():
                remove_tree(e.path)
            else:
                e.path.unlink(missing_ok=True)
    if not dry_run:
        _drop_empty_forward_folders(store.root / "activations.zarr")
    return report


def _drop_empty_forward_folders(acts: Path) -> None:
    """A forward pass's folder whose hook entries are all gone (only its ``zarr.json``)."""
    if not acts.is_dir():
        return
    for fdir in _forward_folders(acts):
        if all(p.name == "zarr.json" for p in fdir.iterdir()):
            for p in fdir.iterdir():
                p.unlink(missing_ok=True)
            fdir.rmdir()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
