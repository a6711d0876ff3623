"""The project-local store: ``.mispec/`` beside the spec (like ``.dvc/cache``), holding
``checkpoints/`` (trained models, safetensors), ``activations.zarr``, ``cells/`` and the run
index ``runs.jsonl``. ``MISPEC_STORE`` or an execution profile's ``store:`` overrides it."""

from __future__ import annotations

import json
import os
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


def check_store_dir(root: Path) -> None:
    """A store is a folder: refuse a path that exists as anything else (a file, a device),
    naming where the path came from, before anything reads or writes under it."""
    if root.exists() and not root.is_dir():
        env = os.environ.get(STORE_ENV)
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

    @property
    def checkpoints_dir(self) -> Path:
        return self.root  # model sources add "checkpoints/" themselves

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
        line = json.dumps(entry, sort_keys=True) + "\n"
        try:
            with open(self.index_path, "a", encoding="utf-8") as fh:
                fh.write(line)  # one small O_APPEND write: atomic for concurrent writers
        except OSError as exc:
            raise CacheError(f"cannot update the run index {self.index_path}: {exc}") from exc

    def runs(self) -> list[dict[str, Any]]:
        if not self.index_path.is_file():
            return []
        out = []
        for line in self.index_path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn last line from a killed writer
        return out
