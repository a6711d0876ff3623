"""What the store holds, entry by entry: the things ``mispec cache`` counts and ``mispec gc``
may remove.

An entry is one trained series' training folder (its layout:
:mod:`mispec.models.checkpoint_layout`), one activation entry (forward pass × hook,
:class:`~mispec.store.activations.ActivationCache`), one cell
(:class:`~mispec.store.cells.CellStore`), or a temporary file or folder a writer left under a
``.tmp-*`` name (or a ``.write-probe-<pid>``) anywhere in the store.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mispec.models.checkpoint_layout import training_folders
from mispec.store.store import Store

KINDS = ("checkpoints", "activations", "cells", "temporary")
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


def scan(store: Store) -> list[StoreEntry]:
    """Every entry of ``store`` (temporary files wherever they are)."""
    out: list[StoreEntry] = list(_temporaries(store.root))
    for d in training_folders(store.root):
        out.append(StoreEntry("checkpoints", d.name, d, size(d), mtime(d)))
    for fdir in store.activations.forward_folders():
        for hdir in fdir.iterdir():
            if hdir.is_dir() and not hdir.name.startswith("."):
                out.append(
                    StoreEntry("activations", fdir.name, hdir, size(hdir), mtime(hdir), hdir.name)
                )
    for f in store.cells.files():
        st = f.stat()
        out.append(StoreEntry("cells", f.stem, f, st.st_size, st.st_mtime))
    return out


def temporary_entry(root: Path, path: Path) -> StoreEntry:
    """A temporary file or folder at ``path`` in the store at ``root``, its writer unnamed."""
    return StoreEntry("temporary", str(path.relative_to(root)), path, size(path), mtime(path))


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
                size(path),
                mtime(path),
                pid=int(pid) if pid else None,
            )
        dirnames[:] = [d for d in dirnames if not _TMP.search(d)]


def size(path: Path) -> int:
    """Bytes of a file, or of every file in a folder."""
    try:
        if path.is_file():
            return path.stat().st_size
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    except OSError:
        return 0


def mtime(path: Path) -> float:
    """The newest modification time in ``path`` (a folder: of anything in it)."""
    try:
        times = [path.stat().st_mtime]
        if path.is_dir():
            times += [p.stat().st_mtime for p in path.rglob("*")]
        return max(times)
    except OSError:
        return time.time()
