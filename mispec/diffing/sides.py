"""What ``mispec diff`` compares: a spec file, a run folder, or ``spec.yaml@<git-rev>``.
Each side resolves to a loaded spec, its plan, and (when available) its results."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mispec.errors import DiffError
from mispec.spec.load import LoadedSpec


@dataclass
class Side:
    label: str
    loaded: LoadedSpec
    plan: Any
    store_dir: Path
    results: Any | None  # xarray.DataTree
    results_note: str  # where the results came from, or why there are none


def open_side(arg: str, *, store: str | Path | None = None, need_results: bool = True) -> Side:
    path = Path(arg)
    if "@" in arg and not path.exists():
        return _git_side(arg, store)
    if path.is_dir():
        return _run_folder_side(path, store)
    if not path.exists():
        raise DiffError(f"{arg}: no such spec file or run folder")
    from mispec.validation.load import load_spec

    return _spec_side(load_spec(path), arg, store)


def _spec_side(loaded: LoadedSpec, label: str, store: str | Path | None) -> Side:
    from mispec.results.planned import plan

    planned = plan(loaded, store=store)
    results, note = _assemble_if_complete(planned)
    return Side(label, loaded, planned.plan, planned.store_dir, results, note)


def _assemble_if_complete(planned: Any) -> tuple[Any | None, str]:
    from mispec.results.assemble import assemble
    from mispec.store.store import Store

    status = planned.status
    if status.cells_total and status.cells_cached == status.cells_total:
        return assemble(planned.plan, Store(planned.store_dir)), f"store {planned.store_dir}"
    return None, (
        f"no results: {status.cells_total - status.cells_cached} of "
        f"{status.cells_total} results are not computed (run `mispec run` on it)"
    )


def _run_folder_side(folder: Path, store: str | Path | None) -> Side:
    from mispec.results.open import open_results
    from mispec.results.planned import plan

    spec_file = folder / "spec.yaml"
    if not spec_file.is_file() or not (folder / "results.zarr").exists():
        raise DiffError(f"{folder}: not a mispec run folder (needs spec.yaml and results.zarr)")
    from mispec.store.run_folder import read_run_json

    provenance = read_run_json(folder, "provenance.json") or {}
    read_run_json(folder, "plan.json")  # a damaged one is refused, not ignored
    from mispec.store.checksums import check_run_folder

    check_run_folder(folder)  # spec.yaml and provenance are used below: they must verify
    from mispec.results.run_models import run_folder_spec

    loaded = run_folder_spec(folder, provenance)  # relative paths: where the spec lived
    planned = plan(loaded, store=store or provenance.get("store"))
    return Side(
        str(folder),
        loaded,
        planned.plan,
        planned.store_dir,
        open_results(folder).load(),
        f"run folder {folder}",
    )


def _git_side(arg: str, store: str | Path | None) -> Side:
    """``spec.yaml@REV``: the spec as committed at ``REV``. The revision is user text: it is
    checked to be a revision (never an option: ``--output=FILE`` would make ``git show``
    write a file) and resolved to a commit before anything is read from it."""
    from mispec.spec.yaml_source import parse_yaml
    from mispec.validation.load import load_spec_text

    file_part, _, rev = arg.rpartition("@")
    path = Path(file_part).resolve()
    if not rev or rev.startswith("-") or not rev.isprintable():
        raise DiffError(
            f"{arg}: {rev!r} is not a git revision (a revision is a commit, branch or tag "
            f"name and never starts with '-'), e.g. {file_part}@HEAD~1"
        )
    try:
        top = _git("rev-parse", "--show-toplevel", cwd=path.parent).decode().strip()
        rel = path.relative_to(Path(top).resolve())
    except (OSError, ValueError, subprocess.CalledProcessError):
        raise DiffError(f"{arg}: {path.parent} is not inside a git repository") from None
    try:  # --end-of-options: whatever ``rev`` holds, git reads it as a revision
        commit = _git("rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}", cwd=top)
    except subprocess.CalledProcessError:
        raise DiffError(
            f"{arg}: cannot read {rel} at git revision '{rev}': not a commit of {top}"
        ) from None
    try:  # ``<40 hex digits>:<path>`` cannot be read as an option
        blob = _git("cat-file", "blob", f"{commit.decode().strip()}:{rel.as_posix()}", cwd=top)
        text = blob.decode("utf-8")
    except subprocess.CalledProcessError as exc:
        why = exc.stderr.decode(errors="replace").strip().splitlines()
        raise DiffError(
            f"{arg}: cannot read {rel} at git revision '{rev}': {why[-1] if why else 'unknown'}"
        ) from None
    except UnicodeDecodeError:
        raise DiffError(f"{arg}: {rel} at git revision '{rev}' is not UTF-8 text") from None
    spec = load_spec_text(text, f"{rel}@{rev}", base_dir=path.parent)
    _, source = parse_yaml(text, f"{rel}@{rev}")
    loaded = LoadedSpec(spec, path, source, text)
    return _spec_side(loaded, arg, store)


def _git(*args: str, cwd: Path | str) -> bytes:
    """``git ARGS`` in ``cwd``: its stdout, or ``CalledProcessError`` (stderr captured).
    Callers pass user text only after ``--end-of-options`` or behind a fixed prefix."""
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, check=True, timeout=60
    ).stdout
