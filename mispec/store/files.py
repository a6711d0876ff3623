"""Atomic file and directory writes: write beside, then ``os.replace`` into place, so a reader
never sees a half-written entry even if the writer is killed."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path

from mispec.errors import CacheError


def tmp_sibling(path: Path) -> Path:
    return path.with_name(f".tmp-{uuid.uuid4().hex[:12]}-{path.name}")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    tmp = tmp_sibling(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(data)  # no fsync: a killed writer leaves only a tmp name, and
            # checksums on read catch what a power loss could tear (measured: fsync was up
            # to a quarter of a cold run's time under other processes' I/O)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)  # never leave a half-written file behind
        raise CacheError(
            f"cannot write {path}: {exc.strerror or exc}. The run stopped; what it finished "
            "stays valid in the store. Free space or fix permissions (or point MISPEC_STORE "
            "elsewhere), then run again to continue."
        ) from exc


def publish_dir(tmp_dir: Path, final: Path) -> bool:
    """Move a fully written directory into place. If another writer got there first (same
    content-addressed key, so the same content), keep theirs. Returns True if ours landed."""
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(tmp_dir, final)
        return True
    except OSError:
        if final.exists():
            shutil.rmtree(tmp_dir, ignore_errors=True)
            return False
        raise


def remove_tree(path: Path) -> None:
    """Remove an entry by renaming it away first, so a concurrent reader sees it either whole
    or absent."""
    if not path.exists():
        return
    trash = tmp_sibling(path)
    try:
        os.rename(path, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)
