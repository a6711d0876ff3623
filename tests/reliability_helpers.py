"""Shared tools of the reliability tests (``tests/system/test_reliability_*.py``): the CLI as a
subprocess, snapshots of folders, bitwise comparison of results, a store audit, and one
uninterrupted reference run of the toy spec per test session."""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from .conftest import TOY_SPEC

REPO = Path(__file__).resolve().parents[1]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a ``mispec`` subprocess: no store override, no colour."""
    env = {k: v for k, v in os.environ.items() if k != "MISPEC_STORE"}
    env.update({"NO_COLOR": "1"}, **extra)
    return env


def cli(
    *args: str, cwd: Path, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m mispec.cli.main ARGS`` in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "mispec.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env or cli_env(),
        timeout=timeout,
    )


def popen_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A ``mispec`` subprocess in its own process group (so ``kill_group`` kills it all)."""
    return subprocess.Popen(
        [sys.executable, "-m", "mispec.cli.main", *args],
        cwd=cwd,
        env=env or cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def kill_group(proc: subprocess.Popen) -> None:
    """``kill -9`` the process group of ``proc`` (started by ``popen_cli``) and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)


def new_project(root: Path, text: str = TOY_SPEC, *, store: bool = True) -> Path:
    """A project folder holding ``spec.yaml`` (and an empty ``.mispec`` store); the spec."""
    root.mkdir(parents=True, exist_ok=True)
    if store:
        (root / ".mispec").mkdir(exist_ok=True)
    spec = root / "spec.yaml"
    spec.write_text(text)
    return spec


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every path under ``root`` with its kind, size, mtime and content digest."""
    out: dict[str, tuple[Any, ...]] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if "__pycache__" in p.parts:  # Python's own bytecode cache of an imported plugin
            continue
        st = p.lstat()
        if p.is_file():
            out[rel] = ("file", st.st_size, st.st_mtime_ns, _digest(p))
        else:
            out[rel] = ("dir",)
    return out


def _digest(path: Path) -> str:
    return hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()


def snapshot_diff(before: dict, after: dict) -> list[str]:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    return [f"+{k}" for k in added] + [f"-{k}" for k in removed] + [f"~{k}" for k in changed]


# --------------------------------------------------------------------------- results
def results_digest(results_zarr: Path) -> dict[str, Any]:
    """A bitwise description of a results store: for every node, variable and coordinate,
    its dims, dtype, shape and the digest of its raw bytes (plus the attributes)."""
    import numpy as np
    import xarray as xr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = xr.open_datatree(results_zarr, engine="zarr").load()
    out: dict[str, Any] = {}
    for node in tree.subtree:
        ds = node.to_dataset()
        out[f"{node.path}@attrs"] = repr(sorted(ds.attrs.items()))
        for name, var in {**ds.coords, **ds.data_vars}.items():
            values = np.ascontiguousarray(var.values)
            out[f"{node.path}/{name}"] = (
                tuple(var.dims),
                str(values.dtype),
                values.shape,
                hashlib.blake2b(values.tobytes(), digest_size=16).hexdigest(),
                repr(sorted((k, str(v)) for k, v in var.attrs.items())),
            )
    return out


def assert_same_results(a: Path, b: Path) -> None:
    """``a`` and ``b`` (run folders or results.zarr) hold bitwise-identical results."""
    a = a / "results.zarr" if (a / "results.zarr").exists() else a
    b = b / "results.zarr" if (b / "results.zarr").exists() else b
    da, db = results_digest(a), results_digest(b)
    assert da.keys() == db.keys(), f"different variables: {sorted(set(da) ^ set(db))}"
    different = [k for k in da if da[k] != db[k]]
    assert not different, f"results differ in {different}"


def forget_a_result(spec: Path, node_id: str = "reduce:transition/toy/s0") -> None:
    """Remove one cached result of ``spec`` from its project's store (by default the toy
    spec's transition reduction, cheap to compute again, to the same bytes): a re-run then
    has work to do and swaps its run folder in, the previous run moving to ``history/``
    (a re-run that computes nothing leaves a run folder of the same run untouched)."""
    import mispec
    from mispec.store.store import Store

    (node,) = [n for n in mispec.plan(spec).plan.nodes() if n.id == node_id]
    Store(spec.parent / ".mispec").cells.path(node.key).unlink()


# --------------------------------------------------------------------------- store audit
def audit_store(store: Path) -> dict[str, int]:
    """Read EVERY entry of a store under its real name and verify it: cells (zip CRC +
    checksum), activations (zarr itself decodes them, verifying their crc32c, and so does
    mispec's reader), trained checkpoints (checksum). Raises on the first
    entry that does not verify; returns counts, and of the ``.tmp-`` leftovers of killed
    writers (never read: their names are not entry names)."""
    import numpy as np
    import zarr

    from mispec.models import checkpoints as ckpt
    from mispec.store.activations import ActivationCache
    from mispec.store.cells import CellStore

    counts = {"cells": 0, "activations": 0, "checkpoints": 0, "leftovers": 0}
    cells = CellStore(store / "cells")
    for p in sorted((store / "cells").glob("*/*")):
        if p.name.startswith("."):
            counts["leftovers"] += 1
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a corrupt cell warns: make it fail here
            assert cells.read(p.stem) is not None, p
        counts["cells"] += 1
    acts = store / "activations.zarr"
    acts_cache = ActivationCache(acts)
    for meta in sorted(acts.glob("*/*/*/zarr.json")) if acts.exists() else []:
        entry = meta.parent
        if any(part.startswith(".") for part in entry.relative_to(acts).parts):
            counts["leftovers"] += 1
            continue
        arr = zarr.open_array(store=str(entry), mode="r")
        values = np.asarray(arr[...])  # raises on a crc32c mismatch
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a corrupt entry warns: make it fail here
            ours = acts_cache.read(entry.parent.name, arr.attrs["hook"])
        assert ours is not None and ours.tobytes() == values.tobytes(), entry
        counts["activations"] += 1
    for p in (
        sorted((store / "checkpoints").glob("*/*")) if (store / "checkpoints").exists() else []
    ):
        if p.suffix == ".safetensors":
            ckpt.read_tensors(p)  # raises CorruptCheckpoint
            counts["checkpoints"] += 1
        elif ".tmp-" in p.name:
            counts["leftovers"] += 1
    return counts


# --------------------------------------------------------------------------- reference run
_REFERENCE: dict[str, Path] = {}


def reference_run() -> Path:
    """The run folder of ONE uninterrupted CLI run of ``TOY_SPEC`` in a fresh project,
    made once per test process and shared by the reliability tests."""
    if "run" not in _REFERENCE:
        root = Path(tempfile.mkdtemp(prefix="mispec-reference-"))
        atexit.register(shutil.rmtree, root, True)
        spec = new_project(root / "project")
        res = cli("run", str(spec), "-q", cwd=spec.parent)
        assert res.returncode == 0, res.stderr
        _REFERENCE["run"] = spec.parent / "runs" / "tiny"
    return _REFERENCE["run"]


# --------------------------------------------------------------------------- kill points
KILL_ENV = "MISPEC_TEST_KILL_AT"


class _OsProxy:
    """The ``os`` module with ``replace`` wrapped (installed into one mispec module)."""

    def __init__(self, replace: Any):
        self.replace = replace

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


def _install_kill_point(point: str) -> None:
    """Patch mispec so the process SIGKILLs itself at the ``n``-th hit of ``name``
    (``point`` = ``name:n``): a kill -9 at an exact moment of a real run."""
    name, _, n_text = point.partition(":")
    n, hits = int(n_text or 1), [0]

    def hit() -> None:
        hits[0] += 1
        if hits[0] == n:
            sys.stdout.flush()
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    def before(owner: Any, attr: str) -> None:
        real = getattr(owner, attr)

        def wrapper(*a: Any, **k: Any) -> Any:
            hit()
            return real(*a, **k)

        setattr(owner, attr, wrapper)

    def after(owner: Any, attr: str) -> None:
        real = getattr(owner, attr)

        def wrapper(*a: Any, **k: Any) -> Any:
            out = real(*a, **k)
            hit()
            return out

        setattr(owner, attr, wrapper)

    import mispec.execute.work.run_node
    import mispec.metrics.forward
    import mispec.models.checkpoints
    import mispec.models.training
    import mispec.store.activations
    import mispec.store.cells
    import mispec.store.files
    import mispec.store.run_folder
    import mispec.store.store

    if name == "train":  # inside the training loop
        before(mispec.models.training, "masked_loss")
    elif name == "checkpoint-write":  # a checkpoint's temp file written, not yet renamed
        after(mispec.models.checkpoints, "save_file")
    elif name == "forward":  # at the start of a forward pass
        before(mispec.metrics.forward, "run_forward")
    elif name == "activation-publish":  # an activation entry written, not yet renamed
        before(mispec.store.activations, "publish_dir")
    elif name == "cell-replace":  # a metric cell's temp file written, not yet renamed

        def replace(src: Any, dst: Any) -> None:
            if str(dst).endswith(".npz"):
                hit()
            os.replace(src, dst)

        mispec.store.files.os = _OsProxy(replace)  # type: ignore[attr-defined]
    elif name == "cell-torn":  # half of a metric cell's bytes written, then killed
        real_write = mispec.store.cells.write_bytes_atomic

        def torn(path: Path, data: bytes) -> None:
            if hits[0] + 1 == n:
                tmp = mispec.store.files.tmp_sibling(path)
                tmp.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_bytes(data[: len(data) // 2])
            hit()
            real_write(path, data)

        mispec.store.cells.write_bytes_atomic = torn  # type: ignore[assignment]
    elif name == "reduction":  # at the start of a reduction over steps
        before(mispec.execute.work.run_node, "run_reduction")
    elif name == "results-written":  # results.zarr written to staging, not yet swapped in
        import xarray as xr

        after(xr.DataTree, "to_zarr")
    elif name in ("history-move", "swap-in"):  # between the renames of the run-folder swap

        def replace(src: Any, dst: Any) -> None:
            os.replace(src, dst)
            moving_old = "history" in Path(dst).parts
            if moving_old == (name == "history-move"):
                hit()

        mispec.store.run_folder.os = _OsProxy(replace)  # type: ignore[attr-defined]
    elif name == "run-index":  # before the run is recorded in the store's index
        before(mispec.store.store.Store, "record_run")
    else:
        raise ValueError(f"unknown kill point {name!r}")


def main_with_kill_point() -> None:
    """``python -c '...main_with_kill_point()' ARGS``: the CLI with a kill point from the
    environment."""
    _install_kill_point(os.environ[KILL_ENV])
    from mispec.cli.main import main

    sys.exit(main(sys.argv[1:]))


def _cli_via(entry: str, env_var: str, value: str, args: tuple[str, ...], cwd: Path) -> Any:
    """Run the CLI through ``tests.reliability_helpers.<entry>()`` with ``env_var=value``."""
    env = cli_env(**{env_var: value, "PYTHONPATH": str(REPO)})
    code = f"from tests.reliability_helpers import {entry}; {entry}()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def cli_killed_at(point: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI with a kill point; it must die of SIGKILL there."""
    return _cli_via("main_with_kill_point", KILL_ENV, point, args, cwd)


# --------------------------------------------------------------------------- load audit
AUDIT_ENV = "MISPEC_TEST_AUDIT_LOG"


def main_with_load_audit() -> None:
    """The CLI, recording every unpickling of a class or function (the ``pickle.find_class``
    audit event, raised by both pickle implementations) and every ``torch.load`` without
    ``weights_only=True`` into the file named by ``$MISPEC_TEST_AUDIT_LOG``."""
    log = Path(os.environ[AUDIT_ENV])
    log.write_text("")

    def record(line: str) -> None:
        with open(log, "a") as fh:
            fh.write(line + "\n")

    def hook(event: str, args: tuple) -> None:
        if event != "pickle.find_class":
            return
        import traceback

        stack = traceback.extract_stack()
        # dask normalises functions for its tokens by a pickle round trip in memory (at
        # import): bytes it made itself a moment before, never a file
        if any(f.filename.endswith(("dask/tokenize.py",)) for f in stack):
            return
        where = [f"{f.filename}:{f.lineno}" for f in stack if "/mispec/" in f.filename]
        record(f"pickle.find_class {args!r} from {where[-3:]}")

    sys.addaudithook(hook)
    import torch

    real_load = torch.load

    def load(*a: Any, **k: Any) -> Any:
        if k.get("weights_only") is not True:
            record(f"torch.load without weights_only=True: {a[:1]!r}")
        return real_load(*a, **k)

    torch.load = load
    from mispec.cli.main import main

    sys.exit(main(sys.argv[1:]))


def cli_audited(*args: str, cwd: Path, log: Path) -> subprocess.CompletedProcess[str]:
    return _cli_via("main_with_load_audit", AUDIT_ENV, str(log), args, cwd)
