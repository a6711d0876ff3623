"""The run folder, ``runs/<name>/``: the current run of a spec — ``results.zarr`` beside the
exact ``spec.yaml``, ``plan.json`` and ``provenance.json`` — and the runs it replaced, under
``history/<run_id>/``.

A run is never written in place. It is written whole into a staging folder beside the run
folder (``.staging-<host>-<pid>-<random>-<name>``), then, under an exclusive lock on the run
folder, swapped in by renames: the current run moves to ``history/``, then the new one moves
in. ``provenance.json`` moves last both times, so while it sits beside ``results.zarr`` the
folder holds one whole run, and a run killed mid-swap leaves at most leftovers that the next
swap clears. Staging folders of killed runs (their process gone) are removed by later runs
of the same spec on the same host."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mispec.store.files import write_bytes_atomic
from mispec.store.provenance import package_version

if TYPE_CHECKING:
    import xarray as xr

    from mispec.planning.graph import Plan
    from mispec.spec.load import LoadedSpec

# the files of one run, in the order they are moved: provenance.json last
RUN_FILES = ("results.zarr", "spec.yaml", "plan.json", "provenance.json")
README = (
    b"mispec run: open with mispec.open_results("
    b"'results.zarr') or xarray.open_datatree(..., engine='zarr')\n"
)


# the fields of provenance.json that readers use as paths, which must be strings
_PROVENANCE_PATHS = ("spec_path", "store", "run_dir")


def read_run_json(folder: Path, name: str) -> dict[str, Any] | None:
    """``provenance.json`` or ``plan.json`` of a run folder as a mapping (None when the file
    is absent). A file that is not JSON, not a JSON object, or whose path fields are not
    strings is a ``ResultsError`` naming it: the run folder is damaged, and a reader must
    not guess."""
    from mispec.errors import ResultsError

    path = Path(folder) / name
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ResultsError(
            f"{path} is damaged ({type(exc).__name__}: {exc}); run the spec again to rewrite "
            "the run folder"
        ) from None
    wrong = (
        "not a JSON object"
        if not isinstance(data, dict)
        else next(
            (
                f"'{k}' is {type(data[k]).__name__}, not a string"
                for k in _PROVENANCE_PATHS
                if k in data and not isinstance(data[k], str)
            ),
            None,
        )
    )
    if wrong:
        raise ResultsError(
            f"{path} is damaged ({wrong}); run the spec again to rewrite the run folder"
        )
    return data


def folder_of(run_dir: Path, run_id: str) -> Path | None:
    """The folder holding run ``run_id`` of ``run_dir``: the folder itself (its current
    run) or ``history/<run_id>``; None when neither does."""
    for folder in (run_dir, run_dir / "history" / run_id):
        try:
            prov = json.loads((folder / "provenance.json").read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(prov, dict) and prov.get("run_id") == run_id:
            return folder
    return None


def default_run_dir(loaded: LoadedSpec) -> Path:
    """``runs/<study name>/`` in the spec's project root."""
    from mispec.store.store import project_root

    return project_root(loaded.path) / "runs" / loaded.spec.name


@dataclass(frozen=True)
class RunFolder:
    """One spec's run folder (it need not exist yet)."""

    path: Path

    @property
    def results_path(self) -> Path:
        return self.path / "results.zarr"

    def unchanged_provenance(self, loaded: LoadedSpec, plan: Plan) -> dict[str, Any] | None:
        """The provenance of the complete run of this very spec and plan that the folder
        holds (written by this mispec version, with its summary), or None: the run folder
        must be written again.

        Read without the lock: a swap moves ``provenance.json`` out last and in last, so
        while it is here with ``results.zarr`` the folder holds a whole run."""
        from mispec.store.checksums import FORMAT as CHECKSUMS_FORMAT

        try:
            prov = json.loads((self.path / "provenance.json").read_text("utf-8"))
            spec_text = (self.path / "spec.yaml").read_text("utf-8")
        except (OSError, ValueError):
            return None
        if not isinstance(prov, dict):
            return None
        summary = prov.get("summary")
        same = (
            prov.get("plan_key") == plan.key
            and prov.get("spec_hash") == loaded.spec_hash
            and spec_text == loaded.text  # spec_hash ignores comments and formatting
            and isinstance(prov.get("versions"), dict)
            and prov["versions"].get("mispec") == package_version("mispec")
            # no summary: written by an older mispec
            and isinstance(summary, list)
            and all(isinstance(line, str) for line in summary)
            and (self.results_path / "zarr.json").is_file()
            and (self.path / "plan.json").is_file()
            # none, or an older kind: written by an older mispec (rebuilt, never trusted)
            and prov.get("checksums_format") == CHECKSUMS_FORMAT
        )
        if not same:
            return None
        damaged = self.damaged()
        if damaged:
            warnings.warn(
                f"mispec: the run folder {self.path} is damaged ({', '.join(damaged)} do(es) "
                "not match the checksums in provenance.json); rebuilding it from the cell store",
                stacklevel=2,
            )
            return None
        return prov

    def damaged(self) -> list[str]:
        """What of the run folder does not match the checksums recorded in
        ``provenance.json`` (:func:`mispec.store.checksums.damage_in_folder`; empty: intact)."""
        from mispec.store.checksums import damage_in_folder

        return damage_in_folder(self.path)

    def write(
        self, tree: xr.DataTree, loaded: LoadedSpec, plan: Plan, provenance: dict[str, Any]
    ) -> None:
        """Write a new run beside, then swap it in; the current run moves to ``history/``."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging = self.path.parent / (
            f".staging-{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}-{self.path.name}"
        )
        staging.mkdir()
        try:
            _write_run_files(staging, tree, loaded, plan, provenance)
            with self.lock():
                self.remove_stale_staging()
                self._move_current_to_history()
                self._swap_in(staging)
                write_bytes_atomic(self.path / "README.txt", README)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive lock on the run folder while runs are swapped in (concurrent runs of
        one spec each complete; the later one becomes the current run, the earlier moves to
        history). Not POSIX: no lock."""
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:
            yield
            return
        with open(self.path / ".lock", "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def remove_stale_staging(self) -> None:
        """Remove the staging folders that killed runs of this host left behind (their
        process is gone)."""
        prefix = f".staging-{_host()}-"
        for d in self.path.parent.glob(f"{prefix}*-{self.path.name}"):
            try:
                pid = int(d.name[len(prefix) :].split("-", 1)[0])
                os.kill(pid, 0)
            except ProcessLookupError:
                shutil.rmtree(d, ignore_errors=True)
            except (ValueError, PermissionError, OSError):
                continue

    def _move_current_to_history(self) -> None:
        """Move the current run (if any) to ``history/<its run_id>/``; finishes a move that
        a killed run left half done (what is already in history/ stays)."""
        if not (self.path / "provenance.json").is_file():
            return
        try:
            old_prov = json.loads((self.path / "provenance.json").read_text("utf-8"))
            old = str(old_prov.get("run_id", "old"))
        except (ValueError, AttributeError):
            old = "old-" + uuid.uuid4().hex[:6]
        dest = self.path / "history" / old
        dest.mkdir(parents=True, exist_ok=True)
        # provenance.json last: while it is here, the move to history is unfinished
        for name in RUN_FILES:
            if (self.path / name).exists() and not (dest / name).exists():
                os.replace(self.path / name, dest / name)

    def _swap_in(self, staging: Path) -> None:
        """Move the staged run's files into the folder, provenance.json last."""
        for name in RUN_FILES:
            target = self.path / name
            if target.exists():  # a leftover of a run killed mid-swap
                if target.is_dir():
                    shutil.rmtree(target)
                else:
                    target.unlink()
            os.replace(staging / name, target)


def _write_run_files(
    folder: Path, tree: xr.DataTree, loaded: LoadedSpec, plan: Plan, provenance: dict[str, Any]
) -> None:
    from mispec.planning.graph import plan_json
    from mispec.store.checksums import folder_checksums, seal

    with warnings.catch_warnings():  # zarr 3 calls consolidated metadata "not in the spec"
        warnings.simplefilter("ignore")
        tree.to_zarr(folder / "results.zarr", mode="w", consolidated=True)
    (folder / "spec.yaml").write_text(loaded.text, encoding="utf-8")
    plan_text = json.dumps(plan_json(plan), indent=1)
    (folder / "plan.json").write_text(plan_text, "utf-8")
    # of the files as written and read back: what every later reader must find
    provenance = seal({**provenance, **folder_checksums(folder)})
    (folder / "provenance.json").write_text(json.dumps(provenance, indent=2), "utf-8")


def _host() -> str:
    return platform.node() or "host"
