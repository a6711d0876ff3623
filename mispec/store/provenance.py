"""What a run records about itself: its id, its line in the store's run index
(``runs.jsonl``), and the provenance written beside its results (``provenance.json``: spec and
plan identity, timing, package versions, platform, device, executor profile, git commit,
seeds, counters, and the headline summary that a re-run changing nothing reads back)."""

from __future__ import annotations

import contextlib
import platform
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mispec.planning.graph import Plan
    from mispec.spec.load import LoadedSpec

# the packages whose versions a provenance record names
VERSIONED_PACKAGES = (
    "mispec",
    "torch",
    "transformer-lens",
    "transformers",
    "xarray",
    "zarr",
    "numpy",
)


def package_version(pkg: str) -> str | None:
    """The installed version of ``pkg``, or None when it is not installed."""
    import importlib.metadata as md

    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return None


def utc_now() -> str:
    """The current UTC time, to the second, in ISO 8601 (``2024-05-01T12:00:00+00:00``)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id() -> str:
    """A run's id: its UTC start to the second, then 6 random hex digits (sorts by time)."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def index_entry(
    run_id: str, loaded: LoadedSpec, plan: Plan, run_dir: Path, started: str
) -> dict[str, Any]:
    """A run's line in the store's run index (``Store.record_run``)."""
    return {
        "run_id": run_id,
        "study": loaded.spec.name,
        "spec": str(loaded.path),
        "spec_hash": loaded.spec_hash,
        "plan_key": plan.key,
        "run_dir": str(run_dir),
        "time": started,
    }


def build_provenance(
    loaded: LoadedSpec,
    *,
    plan_key: str,
    executor: dict[str, Any],
    counters: dict[str, int],
    store_root: Path,
    run_id: str,
    started: str,
    seconds: float,
    summary: list[str],
) -> dict[str, Any]:
    """The provenance of a finished run (``provenance.json``) from plain values: the plan's
    key, the execution profile's settings (``executor``, its ``device`` among them) and the
    run's work counters; ``finished`` is now."""
    commit = _git_commit(loaded.base_dir)
    torch = sys.modules.get("torch")  # a run that did no work never imported it
    cuda = bool(torch and torch.cuda.is_available())
    return {
        "run_id": run_id,
        "study": loaded.spec.name,
        "spec_path": str(loaded.path),
        "spec_hash": loaded.spec_hash,
        "plan_key": plan_key,
        "started": started,
        "finished": utc_now(),
        "seconds": round(seconds, 3),
        "versions": {p: package_version(p) for p in VERSIONED_PACKAGES},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": {
            "profile": executor.get("device"),
            "cuda": cuda,
            "gpu": torch.cuda.get_device_name(0) if torch is not None and cuda else None,
        },
        "executor": executor,
        "git_commit": commit,
        "seeds": {m: list(s.seeds) for m, s in loaded.spec.models.items()},
        "counters": counters,
        "store": str(store_root),
        "summary": summary,  # read back by a re-run that changes nothing
    }


def _git_commit(folder: Path) -> str | None:
    """The commit checked out at ``folder``, or None (not a git work tree, or no git)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or None
    return None
