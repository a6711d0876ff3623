"""What the runs of a store reference, and what gc cannot prove: the input of ``mispec gc``.

A store entry may be removed only when nothing can still need it. The runs that need
entries are found three ways, and each must *vouch* for what it references:

* the run index ``runs.jsonl`` names every run folder the store has recorded;
* every folder beside a recorded run folder (and ``runs/`` beside the store) that looks like
  a run folder is read too, recorded or not (an index restored from a backup, a run folder
  copied in);
* every live lease (:mod:`mispec.store.leases`) names the plan of a run in progress.

A run folder vouches through its ``plan.json`` (and ``history/<id>/plan.json``): readable,
the shape ``plan_json`` writes, and the digest its ``provenance.json`` recorded. Where one
cannot vouch — a damaged or missing plan, an unreadable index line, no index at all while
the store holds entries — gc cannot know what that run needs, and the answer is a *doubt*:
gc then removes no entry (only dead writers' temporary files) and names the doubt with what
to do about it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mispec.models.checkpoint_layout import checkpoints_root
from mispec.store.activations import hook_entry_name, stored_hook
from mispec.store.run_folder import RUN_FILES
from mispec.store.store import Store, read_index


@dataclass
class RunRefs:
    """What one run references, each with the model it belongs to."""

    label: str
    cells: dict[str, str] = field(default_factory=dict)  # key -> model
    activations: dict[tuple[str, str], str] = field(default_factory=dict)  # (fkey, hook) -> model
    trainings: dict[str, str] | None = field(default_factory=dict)  # None: not recorded

    def holds(self, e: Any) -> bool:
        if e.kind == "cells":
            return e.key in self.cells
        if e.kind == "activations":
            return (e.key, e.hook) in self.activations
        if e.kind == "checkpoints":
            return self.trainings is None or e.key in self.trainings
        return False

    def model_of(self, e: Any) -> str | None:
        if e.kind == "cells":
            return self.cells.get(e.key)
        if e.kind == "activations":
            return self.activations.get((e.key, e.hook))
        if e.kind == "checkpoints" and self.trainings:
            return self.trainings.get(e.key)
        return None


@dataclass
class References:
    """Every run that references entries, and every doubt (a reason gc cannot prove an
    entry unreferenced, with what to do about it)."""

    runs: list[RunRefs] = field(default_factory=list)
    doubts: list[str] = field(default_factory=list)


def plan_refs(plan: dict[str, Any], label: str) -> RunRefs:
    """The references of one ``plan.json`` (``mispec.planning.graph.plan_json``); a
    ``ValueError`` when it does not have that shape."""
    try:
        return _plan_refs(plan, label)
    except (AttributeError, TypeError, KeyError) as exc:
        raise ValueError(f"not a plan ({type(exc).__name__}: {exc})") from None


def _plan_refs(plan: dict[str, Any], label: str) -> RunRefs:
    refs = RunRefs(label)
    if not isinstance(plan.get("nodes"), list) or not isinstance(plan.get("series"), dict):
        raise TypeError("no 'nodes' list or 'series' mapping")
    for node in plan["nodes"]:
        kind, key, model = node.get("kind"), node.get("key"), node.get("model", "?")
        if kind in ("cell", "reduction"):
            refs.cells[key] = model
        elif kind == "forward":
            for hook, policy in (node.get("hooks") or {}).items():
                if policy != "skip":
                    refs.activations[(key, hook_entry_name(stored_hook(hook, policy)))] = model
    series = plan["series"]
    if any("training_identity" not in s for s in series.values()):
        refs.trainings = None  # recorded before plan.json named them: keep every checkpoint
    else:
        assert refs.trainings is not None
        for label_, s in series.items():
            if s["training_identity"]:
                refs.trainings[s["training_identity"]] = label_.split("/")[0]
    return refs


def references(store: Store) -> References:
    """The references of every run of ``store`` that can be found, and every doubt."""
    out = References()
    records, bad = index_records(store)
    if bad:
        out.doubts.append(
            f"the run index {store.index_path} has {len(bad)} unreadable line(s) (line "
            f"{', '.join(map(str, bad[:10]))}): a run recorded there cannot vouch for its "
            "entries; repair or delete those lines"
        )
    if not store.index_path.exists() and _holds_entries(store):
        out.doubts.append(
            f"the run index {store.index_path} is missing while the store holds entries: "
            "gc cannot tell which runs use them; put runs.jsonl back (or run each spec you "
            "keep once, which records it)"
        )
    folders: dict[Path, str] = {}
    roots = {store.root.parent / "runs"}
    for record in records:
        run_dir = Path(record["run_dir"])
        folders.setdefault(run_dir, str(record.get("study", "?")))
        roots.add(run_dir.parent)
    for root in sorted(roots):
        for folder in _run_folders_in(root):
            folders.setdefault(folder, folder.name)
    seen: set[Path] = set()
    for run_dir, study in folders.items():
        for folder in [run_dir, *_history(run_dir)]:
            key = folder.resolve() if folder.exists() else folder
            if key in seen:
                continue
            seen.add(key)
            _read_folder(store, folder, study, out)
    return out


def index_records(store: Store) -> tuple[list[dict[str, Any]], list[int]]:
    """The run index's records and the numbers of its lines that are not records (read
    as :meth:`Store.runs` reads them, without its warning; an unreadable index is one bad
    line, 0)."""
    try:
        return read_index(store.index_path)
    except FileNotFoundError:
        return [], []
    except OSError:
        return [], [0]


def _holds_entries(store: Store) -> bool:
    for folder in (checkpoints_root(store.root), store.cells.root, store.activations.root):
        if folder.is_dir() and any(folder.iterdir()):
            return True
    return False


def _run_folders_in(root: Path) -> list[Path]:
    """The folders directly under ``root`` that look like run folders."""
    try:
        children = sorted(root.iterdir()) if root.is_dir() else []
    except OSError:
        return []
    return [
        c
        for c in children
        if not c.name.startswith(".")
        and c.is_dir()
        and any((c / name).exists() for name in RUN_FILES)
    ]


def _history(run_dir: Path) -> list[Path]:
    history = run_dir / "history"
    try:
        return sorted(p for p in history.iterdir() if p.is_dir()) if history.is_dir() else []
    except OSError:
        return []


def _read_folder(store: Store, folder: Path, study: str, out: References) -> None:
    """Add the references of the run ``folder`` holds, or a doubt when it cannot vouch."""
    if not folder.is_dir() or not any((folder / name).exists() for name in RUN_FILES):
        return  # deleted (or an empty history entry): it references nothing
    provenance = _json(folder / "provenance.json")
    its_store = provenance.get("store") if isinstance(provenance, dict) else None
    if isinstance(its_store, str) and Path(its_store).resolve() != store.root.resolve():
        return  # a run of another store
    plan_path = folder / "plan.json"
    why = None
    try:
        text = plan_path.read_text("utf-8")
        refs = plan_refs(json.loads(text), f"{study} ({_run_id(provenance, folder)})")
    except FileNotFoundError:
        why = "its plan.json is missing"
    except (OSError, ValueError) as exc:
        why = f"its plan.json is damaged ({type(exc).__name__}: {exc})"
    else:
        digest = provenance.get("plan_json_blake2b") if isinstance(provenance, dict) else None
        if isinstance(digest, str) and digest != _text_digest(text):
            why = "its plan.json does not match the digest its provenance.json recorded"
        out.runs.append(refs)  # whatever it names is kept, vouched or not
    if why:
        out.doubts.append(
            f"run folder {folder} cannot vouch for the entries it uses: {why}; run its spec "
            "again to rewrite it, or delete the folder if the run is not wanted"
        )


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None


def _text_digest(text: str) -> str:
    from mispec.store.checksums import text_digest

    return text_digest(text)


def _run_id(provenance: Any, folder: Path) -> str:
    if isinstance(provenance, dict) and provenance.get("run_id") is not None:
        return str(provenance["run_id"])
    return folder.name
