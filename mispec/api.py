"""The Python API — the CLI's twin: ``load_spec``, ``plan``, ``run``, ``open_results``."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mispec.errors import ResultsError
from mispec.spec.load import LoadedSpec, load_spec

__all__ = ["load_spec", "plan", "run", "open_results", "RunResult", "PlannedSpec"]


@dataclass
class PlannedSpec:
    loaded: LoadedSpec
    plan: Any  # mispec.planning.graph.Plan
    status: Any  # mispec.execute.status.PlanStatus
    store_dir: Path

    def to_json(self) -> dict[str, Any]:
        from mispec.planning.graph import plan_json

        out = plan_json(self.plan)
        out["status"] = self.status.to_json()
        out["store"] = str(self.store_dir)
        return out


def plan(spec: str | Path | LoadedSpec, *, store: str | Path | None = None) -> PlannedSpec:
    """Validate, resolve and plan a spec; report what is cached in the store (read-only)."""
    from mispec.execute.status import plan_status
    from mispec.planning.graph import build_plan
    from mispec.planning.resolve import resolve
    from mispec.store.store import Store, default_store_dir

    loaded = spec if isinstance(spec, LoadedSpec) else load_spec(spec)
    store_dir = Path(store).resolve() if store else default_store_dir(loaded.path)
    the_plan = build_plan(loaded.spec, resolve(loaded), loaded.base_dir)
    status = plan_status(the_plan, Store(store_dir) if store_dir.exists() else None)
    return PlannedSpec(loaded, the_plan, status, store_dir)


@dataclass
class RunResult:
    run_dir: Path
    results_path: Path
    counters: dict[str, int]
    seconds: float
    did_work: bool
    summary: list[str] = field(default_factory=list)

    def open(self) -> Any:
        return open_results(self.results_path)


def run(
    spec: str | Path | LoadedSpec,
    *,
    executor: str | None = None,
    out: str | Path | None = None,
    store: str | Path | None = None,
    progress: bool = True,
) -> RunResult:
    """Run a spec: train what is missing, compute what is not cached, assemble the results
    into ``runs/<name>/results.zarr`` beside the exact spec, plan and provenance.

    A re-run that computes nothing, into a run folder that already holds this very run,
    leaves the folder as it is (no new ``history/`` entry) and is recorded in the run index
    as ``unchanged``."""
    from mispec.execute.context import RunContext
    from mispec.execute.profile import load_profile
    from mispec.store.store import Store, project_root

    t0 = time.perf_counter()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    profile = load_profile(executor)
    planned = plan(spec, store=store or profile.store)
    loaded, the_plan = planned.loaded, planned.plan
    st = Store(planned.store_dir)
    st.ensure_writable()
    ctx = RunContext(
        the_plan, loaded.base_dir, st, device=profile.device, batch_size=profile.batch_size
    )

    def execute() -> None:
        from mispec.execute.executor import executor_class, walk

        walk(ctx, executor_class(profile.kind)(profile), progress=progress)

    run_dir = Path(out).resolve() if out else project_root(loaded.path) / "runs" / loaded.spec.name
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    entry = {
        "run_id": run_id,
        "study": loaded.spec.name,
        "spec": str(loaded.path),
        "spec_hash": loaded.spec_hash,
        "plan_key": the_plan.key,
        "run_dir": str(run_dir),
        "time": started,
    }
    with _write_errors(st.root, run_dir):
        execute()
        # nothing computed and the run folder already holds this run: leave it untouched
        current = None if _did_work(ctx) else _unchanged_run(run_dir, loaded, the_plan)
        if current is not None:
            summary = list(current["summary"])
            _remove_stale_staging(run_dir.parent, run_dir.name)
            st.record_run({**entry, "unchanged": True, "same_as": current.get("run_id")})
        else:
            from mispec.execute.summary import summarize

            tree = _assemble(the_plan, st, execute, ctx.fresh)
            summary = summarize(tree)
            provenance = _provenance(
                ctx, profile, started, time.perf_counter() - t0, run_id, loaded
            )
            provenance["summary"] = summary  # read back by a re-run that changes nothing
            _write_run(run_dir, tree, loaded, the_plan, provenance)
            st.record_run(entry)
    return RunResult(
        run_dir,
        run_dir / "results.zarr",
        asdict(ctx.counters),
        time.perf_counter() - t0,
        _did_work(ctx),
        summary,
    )


_WORK_COUNTERS = ("forward_passes", "cells_computed", "reductions_computed", "training_steps")


def _did_work(ctx: Any) -> bool:
    counters = asdict(ctx.counters)
    return any(counters[k] for k in _WORK_COUNTERS)


def _unchanged_run(run_dir: Path, loaded: LoadedSpec, the_plan: Any) -> dict[str, Any] | None:
    """The provenance of the complete run of this very spec and plan that ``run_dir`` holds
    (written by this mispec version, with its summary), or None: the run folder must be
    written again.

    Read without the run-folder lock: a swap moves ``provenance.json`` out last and in last,
    so while it is here with ``results.zarr`` the folder holds a whole run."""
    import importlib.metadata as md

    try:
        prov = json.loads((run_dir / "provenance.json").read_text("utf-8"))
        spec_text = (run_dir / "spec.yaml").read_text("utf-8")
    except (OSError, ValueError):
        return None
    if not isinstance(prov, dict):
        return None
    summary = prov.get("summary")
    try:
        version = md.version("mispec")
    except md.PackageNotFoundError:
        version = None
    same = (
        prov.get("plan_key") == the_plan.key
        and prov.get("spec_hash") == loaded.spec_hash
        and spec_text == loaded.text  # spec_hash ignores comments and formatting
        and isinstance(prov.get("versions"), dict)
        and prov["versions"].get("mispec") == version
        # no summary: written by an older mispec
        and isinstance(summary, list)
        and all(isinstance(line, str) for line in summary)
        and (run_dir / "results.zarr" / "zarr.json").is_file()
        and (run_dir / "plan.json").is_file()
    )
    return prov if same else None


# Write failures that the user can fix (a read-only or full disk, permissions): CacheError.
_WRITE_ERRNOS = {
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EACCES,
    errno.EPERM,
    errno.ENOTDIR,
    errno.EIO,
    errno.EFBIG,
}


@contextlib.contextmanager
def _write_errors(store_dir: Path, run_dir: Path) -> Any:
    """Turn a failed write anywhere in a run into a ``CacheError`` that says what happened.

    Every entry of the store is written beside and renamed into place, so what is already
    in the store stays valid and a later run continues from it."""
    from mispec.errors import CacheError

    try:
        yield
    except OSError as exc:
        if exc.errno not in _WRITE_ERRNOS:
            raise
        where = exc.filename or store_dir
        verb = (
            "write"
            if exc.errno in (errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
            else "read or write"
        )
        raise CacheError(
            f"cannot {verb} {where}: {exc.strerror or exc}. The run stopped; what it finished "
            f"is kept in the store ({store_dir}) and nothing partial was left under a valid "
            f"name. Free space or fix permissions (or point MISPEC_STORE / --store, --out "
            f"elsewhere; run folder: {run_dir}), then run again to continue."
        ) from exc


def _assemble(the_plan: Any, st: Any, execute: Any, fresh: dict[str, Any]) -> Any:
    """Assemble the results (``fresh``: the cells this run computed, kept in memory); a cell
    found corrupt on reading (removed with a warning by the store) or missing is computed
    again, once, instead of failing the run."""
    import warnings

    from mispec.execute.assemble import assemble
    from mispec.planning.nodes import CellNode, ReductionNode

    try:
        return assemble(the_plan, st, fresh)
    except ResultsError:
        lost = [
            n
            for n in the_plan.nodes(CellNode) + the_plan.nodes(ReductionNode)
            if st.cells.read(n.key) is None
        ]
        if not lost:
            raise
        warnings.warn(
            f"mispec: {len(lost)} result(s) were missing or corrupt in the store; "
            "computing them again",
            stacklevel=2,
        )
        execute()
        return assemble(the_plan, st, fresh)


@contextlib.contextmanager
def _run_dir_lock(run_dir: Path) -> Any:
    """An exclusive lock on a run folder while runs are swapped in (concurrent runs of one
    spec each complete; the later one becomes the current run, the earlier moves to
    history)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(run_dir / ".lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _remove_stale_staging(parent: Path, name: str) -> None:
    """Staging folders that a killed run of this host left behind (its process is gone)."""
    host = platform.node() or "host"
    for d in parent.glob(f".staging-{host}-*-{name}"):
        try:
            pid = int(d.name[len(f".staging-{host}-") :].split("-", 1)[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except (ValueError, PermissionError, OSError):
            continue


def _write_run(
    run_dir: Path, tree: Any, loaded: LoadedSpec, the_plan: Any, provenance: dict
) -> None:
    """Write the new run beside, then swap it in; the previous run moves to ``history/``."""
    from mispec.planning.graph import plan_json
    from mispec.store.files import write_bytes_atomic

    run_dir.parent.mkdir(parents=True, exist_ok=True)
    host = platform.node() or "host"
    staging = (
        run_dir.parent / f".staging-{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}-{run_dir.name}"
    )
    staging.mkdir()
    try:
        import warnings

        with warnings.catch_warnings():  # zarr 3 calls consolidated metadata "not in the spec"
            warnings.simplefilter("ignore")
            tree.to_zarr(staging / "results.zarr", mode="w", consolidated=True)
        (staging / "spec.yaml").write_text(loaded.text, encoding="utf-8")
        (staging / "plan.json").write_text(json.dumps(plan_json(the_plan), indent=1), "utf-8")
        (staging / "provenance.json").write_text(json.dumps(provenance, indent=2), "utf-8")
        with _run_dir_lock(run_dir):
            _remove_stale_staging(run_dir.parent, run_dir.name)
            history = run_dir / "history"
            if (run_dir / "provenance.json").is_file():
                try:
                    old_prov = json.loads((run_dir / "provenance.json").read_text("utf-8"))
                    old = str(old_prov.get("run_id", "old"))
                except (ValueError, AttributeError):
                    old = "old-" + uuid.uuid4().hex[:6]
                dest = history / old
                dest.mkdir(parents=True, exist_ok=True)
                # provenance.json last: while it is here, the move to history is unfinished
                for name in ("results.zarr", "spec.yaml", "plan.json", "provenance.json"):
                    if (run_dir / name).exists() and not (dest / name).exists():
                        os.replace(run_dir / name, dest / name)
            for name in ("results.zarr", "spec.yaml", "plan.json", "provenance.json"):
                if (run_dir / name).exists():  # a leftover of a run killed mid-swap
                    if (run_dir / name).is_dir():
                        shutil.rmtree(run_dir / name)
                    else:
                        (run_dir / name).unlink()
                os.replace(staging / name, run_dir / name)
            write_bytes_atomic(
                run_dir / "README.txt",
                b"mispec run: open with mispec.open_results("
                b"'results.zarr') or xarray.open_datatree(..., engine='zarr')\n",
            )
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _provenance(
    ctx: Any, profile: Any, started: str, seconds: float, run_id: str, loaded: LoadedSpec
) -> dict[str, Any]:
    import importlib.metadata as md
    import subprocess

    def version(pkg: str) -> str | None:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return None

    commit = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                cwd=loaded.base_dir,
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
            or None
        )
    import sys

    torch = sys.modules.get("torch")  # a run that did no work never imported it
    cuda = bool(torch and torch.cuda.is_available())
    return {
        "run_id": run_id,
        "study": loaded.spec.name,
        "spec_path": str(loaded.path),
        "spec_hash": loaded.spec_hash,
        "plan_key": ctx.plan.key,
        "started": started,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 3),
        "versions": {
            p: version(p)
            for p in (
                "mispec",
                "torch",
                "transformer-lens",
                "transformers",
                "xarray",
                "zarr",
                "numpy",
            )
        },
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": {
            "profile": profile.device,
            "cuda": cuda,
            "gpu": torch.cuda.get_device_name(0) if cuda else None,
        },
        "executor": profile.model_dump(mode="json"),
        "git_commit": commit,
        "seeds": {m: list(s.seeds) for m, s in ctx.spec.models.items()},
        "counters": asdict(ctx.counters),
        "store": str(ctx.store.root),
    }


def open_results(path: str | Path) -> Any:
    """The results ``DataTree`` of a run folder or its ``results.zarr``."""
    import xarray as xr

    p = Path(path)
    if (p / "results.zarr").exists():
        p = p / "results.zarr"
    if not p.exists():
        raise ResultsError(f"no results at {p.resolve()}: run `mispec run SPEC` first")
    if not (p / "zarr.json").is_file():
        raise ResultsError(
            f"{p.resolve()} is not a mispec run folder or results.zarr "
            "(expected runs/<name>/ holding results.zarr)"
        )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return xr.open_datatree(p, engine="zarr")
        except (OSError, ValueError, KeyError) as exc:  # zarr errors are ValueErrors
            raise ResultsError(
                f"cannot read the results at {p.resolve()} ({type(exc).__name__}: {exc}); "
                "re-run `mispec run SPEC` to write them again"
            ) from exc
