"""Checksums of a run folder, recorded in its ``provenance.json`` when the run is written:

* one blake2b per variable of ``results.zarr`` (data variables and coordinates, by
  ``<model>/<name>``), of the values read back from the written store;
* one blake2b per ``zarr.json`` of ``results.zarr`` (raw bytes): every attribute (e.g. a
  variable's ``metric_fn``), dim, dtype, codec and fill value, the consolidated metadata
  included — what a reader is told about the values;
* one each of ``plan.json`` and ``spec.yaml``;
* ``provenance_blake2b``: of ``provenance.json`` itself (all but this field), so the record
  of checksums (and the summary an unchanged re-run prints) cannot be edited unseen.

An unchanged re-run verifies them and rebuilds a damaged run folder from the cell store;
``open_results`` — and so ``diff``, ``plot`` and ``report`` — refuses a damaged run folder,
naming what is damaged, and one whose provenance records no checksums (an older mispec, or an
edit): nothing vouches for its bytes."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np


def digest(values: Any) -> str:
    """blake2b of an array's shape, dtype and values (every NaN counts as the same NaN)."""
    a = np.asarray(values)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{a.shape}|{a.dtype.kind}|".encode())
    if a.dtype.kind in "OUS":
        h.update("\x1f".join(str(v) for v in a.ravel().tolist()).encode("utf-8"))
    else:
        if a.dtype.kind == "f":
            a = np.where(np.isnan(a), np.nan, a)
        h.update(a.dtype.str.encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def text_digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


FORMAT = 2  # provenance "checksums_format": what this module records and requires
SELF_KEY = "provenance_blake2b"


def provenance_digest(prov: dict[str, Any]) -> str:
    """blake2b of a provenance record without its own digest (canonical JSON)."""
    rest = {k: v for k, v in prov.items() if k != SELF_KEY}
    return text_digest(json.dumps(rest, sort_keys=True, separators=(",", ":")))


def metadata_checksums(results: Path) -> dict[str, str]:
    """blake2b of the bytes of every ``zarr.json`` under ``results``, by relative path."""
    return {
        p.relative_to(results).as_posix(): hashlib.blake2b(
            p.read_bytes(), digest_size=16
        ).hexdigest()
        for p in sorted(results.rglob("zarr.json"))
    }


def folder_checksums(folder: Path) -> dict[str, Any]:
    """The checksum fields of a run folder's provenance (results.zarr, plan.json and
    spec.yaml as written in ``folder``); :func:`seal` adds the provenance's own."""
    results = folder / "results.zarr"
    return {
        "checksums_format": FORMAT,
        "checksums": results_checksums(results),
        "metadata_checksums": metadata_checksums(results),
        "plan_json_blake2b": text_digest((folder / "plan.json").read_text("utf-8")),
        "spec_yaml_blake2b": text_digest((folder / "spec.yaml").read_text("utf-8")),
    }


def seal(prov: dict[str, Any]) -> dict[str, Any]:
    """``prov`` with its own digest recorded in it."""
    return {**prov, SELF_KEY: provenance_digest(prov)}


def _open(results: Path) -> Any:
    import xarray as xr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_datatree(results, engine="zarr")


def _variables(tree: Any) -> dict[str, Any]:
    out = {}
    for node in tree.subtree:
        prefix = node.path.strip("/")
        for name, var in node.dataset.variables.items():
            out[f"{prefix}/{name}" if prefix else str(name)] = var
    return out


def results_checksums(results: Path) -> dict[str, str]:
    """The checksum of every variable of the ``results.zarr`` at ``results``, read back."""
    return {name: digest(var.values) for name, var in _variables(_open(results)).items()}


def damaged_variables(results: Path, expected: dict[str, str]) -> list[str]:
    """The variables of ``results`` that are missing, unreadable or not what ``expected``
    (the recorded checksums) says; ``["results.zarr"]`` when it cannot be opened at all."""
    try:
        found = _variables(_open(results))
    except Exception:
        return ["results.zarr"]
    damaged = []
    for name, want in expected.items():
        try:
            ok = name in found and digest(found[name].values) == want
        except Exception:  # a chunk that does not decompress
            ok = False
        if not ok:
            damaged.append(name)
    damaged.extend(sorted(set(found) - set(expected)))
    return damaged


def damage_in_folder(folder: Path) -> list[str]:
    """What in a run folder does not verify against its provenance: ``provenance.json``
    itself (missing, not JSON, edited, or recording no checksums), variables of
    ``results.zarr`` (``<model>/<name>``), its ``zarr.json`` files (``results.zarr/<path>``),
    ``plan.json``, ``spec.yaml``. Empty: the folder is what its run wrote."""
    try:
        prov = json.loads((folder / "provenance.json").read_text("utf-8"))
    except FileNotFoundError:
        return ["provenance.json (missing)"]
    except (OSError, ValueError):
        return ["provenance.json (not JSON)"]
    if not isinstance(prov, dict) or prov.get("checksums_format") != FORMAT or SELF_KEY not in prov:
        return ["provenance.json (records no checksums: written by an older mispec, or edited)"]
    if provenance_digest(prov) != prov[SELF_KEY]:
        return ["provenance.json (edited: its own checksum does not match)"]
    checksums, metadata = prov.get("checksums"), prov.get("metadata_checksums")
    if not isinstance(checksums, dict) or not isinstance(metadata, dict):
        return ["provenance.json (records no checksums: written by an older mispec, or edited)"]
    results = folder / "results.zarr"
    damaged = damaged_variables(results, checksums)
    try:
        found = metadata_checksums(results)
    except OSError:
        found = {}
    damaged += [
        f"results.zarr/{name}"
        for name in sorted(set(found) | set(metadata))
        if found.get(name) != metadata.get(name)
    ]
    for name, key in (("plan.json", "plan_json_blake2b"), ("spec.yaml", "spec_yaml_blake2b")):
        try:
            ok = text_digest((folder / name).read_text("utf-8")) == prov.get(key)
        except (OSError, ValueError):
            ok = False
        if not ok:
            damaged.append(name)
    return damaged


def check_run_folder(folder: Path) -> None:
    """Raise :class:`~mispec.errors.ResultsError` (exit 2) unless every file of the run
    folder verifies against the checksums of its provenance."""
    from mispec.errors import ResultsError

    damaged = damage_in_folder(folder)
    if damaged:
        raise ResultsError(
            f"the run folder {folder.resolve()} is damaged: {', '.join(damaged)} do(es) not "
            "match the checksums in provenance.json; re-run `mispec run SPEC` to rebuild it "
            "from the cell store"
        )
