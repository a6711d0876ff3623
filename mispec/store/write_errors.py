"""Write failures the user can fix — a read-only or full disk, a quota, permissions — told
apart from the rest, and turned into a ``CacheError`` that says what to do next.

Every entry of the store is written beside and renamed into place (``mispec.store.files``),
so when a write fails what is already in the store stays valid and a later run continues
from it: the message can say so."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path

from mispec.errors import CacheError

# The errnos of a write that failed for a reason the user can fix (and a retry cannot).
WRITE_ERRNOS = frozenset(
    {
        errno.EROFS,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EACCES,
        errno.EPERM,
        errno.ENOTDIR,
        errno.EIO,
        errno.EFBIG,
    }
)
# ... of which these fail writing only (the others may fail reading as well)
_WRITE_ONLY_ERRNOS = (errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@contextlib.contextmanager
def translate_write_errors(store_dir: Path, run_dir: Path | None) -> Iterator[None]:
    """Turn a failed write anywhere in a run (errno in ``WRITE_ERRNOS``) into a ``CacheError``
    naming the file, whether it lies in the store or the run folder (``--out``), the reason,
    and where the finished work is kept; any other ``OSError`` propagates as it is."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            raise
        raise write_error(exc, store_dir, run_dir) from exc


def write_error(exc: OSError, store_dir: Path, run_dir: Path | None) -> CacheError:
    """The ``CacheError`` of a failed write ``exc`` (see :func:`translate_write_errors`)."""
    where = Path(exc.filename) if exc.filename else Path(store_dir)
    verb = "write" if exc.errno in _WRITE_ONLY_ERRNOS else "read or write"
    run_note = f"; run folder: {run_dir}" if run_dir is not None else ""
    return CacheError(
        f"cannot {verb} {where} ({_place(where, store_dir, run_dir)}): "
        f"{exc.strerror or exc}. The run stopped; what it finished is kept in the store "
        f"({store_dir}) and nothing partial was left under a valid name. Free space or fix "
        f"permissions (or point MISPEC_STORE / --store, --out elsewhere{run_note}), then run "
        "again to continue."
    )


def _place(path: Path, store_dir: Path, run_dir: Path | None) -> str:
    """Which of mispec's folders ``path`` lies in, in words."""
    path = path.absolute()
    if path.is_relative_to(Path(store_dir).absolute()):
        return "in the store"
    if run_dir is not None:
        run = Path(run_dir).absolute()
        staging = any(
            p.parent == run.parent and p.name.startswith(".staging-") for p in path.parents
        )
        if path.is_relative_to(run) or staging:  # a new run is written beside, then moved
            return "in the run folder, --out"
    return "outside the store and the run folder"
