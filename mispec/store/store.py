"""The project-local store: ``.mispec/`` beside the spec (like ``.dvc/cache``), holding
``checkpoints/`` (trained models: :mod:`mispec.models.checkpoint_layout`),
``activations.zarr``, ``cells/`` and the run index ``runs.jsonl``. ``MISPEC_STORE`` or an
execution profile's ``store:`` overrides it."""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mispec.errors import CacheError, UserError
from mispec.store.activations import ActivationCache
from mispec.store.cells import CellStore

STORE_ENV = "MISPEC_STORE"


def project_root(spec_path: Path) -> Path:
    """The nearest ancestor of the spec holding ``.mispec`` or ``.git``; else the spec's folder."""
    start = spec_path.resolve().parent
    for folder in (start, *start.parents):
        if (folder / ".mispec").is_dir() or (folder / ".git").exists():
            return folder
    return start


def default_store_dir(spec_path: Path) -> Path:
    env = os.environ.get(STORE_ENV)
    return Path(env).resolve() if env else project_root(spec_path) / ".mispec"


_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:$")


def url_of(path: str | Path) -> str | None:
    """The URL a path spells (``s3://bucket/x`` becomes the parts ``s3:``, ``bucket``, ``x``
    once it is a ``Path``), or None for a plain path."""
    parts = Path(path).parts
    scheme = next((i for i, part in enumerate(parts) if _URL_SCHEME.match(part)), None)
    return None if scheme is None else parts[scheme] + "//" + "/".join(parts[scheme + 1 :])


def check_run_dir(path: str | Path) -> None:
    """A run folder (``--out``) is a local folder too: refuse a URL before anything is
    computed, rather than writing a folder named ``s3:``."""
    url = url_of(path)
    if url is not None:
        raise UserError(
            f"the run folder --out {url} is a URL; a run folder is a local folder. Mount the "
            "bucket (e.g. s3fs, gcsfuse) and point --out at the mount, or at a local folder"
        )
    if Path(path).exists() and not Path(path).is_dir():
        raise UserError(f"the run folder --out {path} is a file, not a folder; name a folder")


def check_store_dir(root: Path) -> None:
    """A store is a local folder: refuse a URL (``s3://bucket/x``, which ``Path`` would make
    a folder named ``s3:``) and a path that exists as anything else (a file, a device),
    naming where the path came from, before anything reads or writes under it."""
    env = os.environ.get(STORE_ENV)
    url = url_of(root)
    if url is not None:
        scheme = url.split("//", 1)[0]
        came_from = f" (from {STORE_ENV}={env})" if env and env.startswith(scheme) else ""
        raise UserError(
            f"the store {url}{came_from} is a URL; mispec's store is a local folder (its "
            "atomic renames and locks need one; fsspec stores are not supported). Mount the "
            f"bucket (e.g. s3fs, gcsfuse) and point --store / {STORE_ENV} at the mount, or at "
            "a local folder"
        )
    if root.exists() and not root.is_dir():
        came_from = (
            f" (from {STORE_ENV}={env})" if env and Path(env).resolve() == root.resolve() else ""
        )
        raise UserError(
            f"the store {root}{came_from} is a file, not a folder; point "
            f"{STORE_ENV} / --store at a folder (it is created if missing)"
        )


@dataclass
class Store:
    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        check_store_dir(self.root)
        self.activations = ActivationCache(self.root / "activations.zarr")
        self.cells = CellStore(self.root / "cells")

    def ensure_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise CacheError(
                f"the store {self.root} is not writable ({exc.strerror or exc}); "
                f"fix its permissions or point {STORE_ENV} at a writable folder"
            ) from exc

    # ----------------------------------------------------------------- run index
    @property
    def index_path(self) -> Path:
        return self.root / "runs.jsonl"

    def record_run(self, entry: dict[str, Any]) -> None:
        """Append ``entry`` to the run index as one whole line: a single ``os.write`` with
        ``O_APPEND``, atomic against other appenders. A torn last line (a writer killed
        mid-line) is closed with a newline first, so it never swallows this record: it stays
        one bad line, which :meth:`runs` reports and skips."""
        from mispec.store.leases import gc_lock

        line = (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8")
        try:
            with gc_lock(self.root, exclusive=False):  # `forget` rewrites the index under it
                self._append_index(line)
        except OSError as exc:
            raise CacheError(f"cannot update the run index {self.index_path}: {exc}") from exc

    def _append_index(self, line: bytes) -> None:
        fd = os.open(self.index_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            while line:  # a regular file takes it in one write; a short one goes on
                line = line[os.write(fd, line) :]
        finally:
            os.close(fd)

    def runs(self) -> list[dict[str, Any]]:
        """The run index's records, oldest first. A line that is not a record (not UTF-8,
        not JSON, not an object with the fields ``record_run`` writes: a killed writer, a
        hand edit, a damaged disk) is skipped, with one warning naming the line numbers."""
        if not self.index_path.is_file():
            return []
        try:
            out, bad = read_index(self.index_path)
        except OSError as exc:
            raise CacheError(f"cannot read the run index {self.index_path}: {exc}") from exc
        if bad:
            shown = ", ".join(map(str, bad[:10])) + (", …" if len(bad) > 10 else "")
            warnings.warn(
                f"{self.index_path}: skipped {len(bad)} unreadable line(s) (line {shown}): "
                "not a run record (a run killed while writing it, or a damaged file)",
                stacklevel=2,
            )
        return out


_FIELDS = ("run_id", "study", "run_dir", "time")  # what every record of the index holds


def read_index(path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """The run index's records, oldest first, and the numbers of its lines that are not
    records (not UTF-8, not JSON, not an object with ``_FIELDS``). Raises ``OSError``."""
    out, bad = [], []
    for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            entry = None
        if isinstance(entry, dict) and all(isinstance(entry.get(k), str) for k in _FIELDS):
            out.append(entry)
        else:
            bad.append(number)
    return out, bad
