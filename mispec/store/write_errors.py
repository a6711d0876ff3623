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
def translate_write_errors(store_dir: Path, run_dir: Path) -> Iterator[None]:
    """Turn a failed write anywhere in a run (errno in ``WRITE_ERRNOS``) into a ``CacheError``
    naming the file, the reason, and where the finished work is kept; any other ``OSError``
    propagates as it is."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            raise
        where = exc.filename or store_dir
        verb = "write" if exc.errno in _WRITE_ONLY_ERRNOS else "read or write"
        raise CacheError(
            f"cannot {verb} {where}: {exc.strerror or exc}. The run stopped; what it finished "
            f"is kept in the store ({store_dir}) and nothing partial was left under a valid "
            f"name. Free space or fix permissions (or point MISPEC_STORE / --store, --out "
            f"elsewhere; run folder: {run_dir}), then run again to continue."
        ) from exc
