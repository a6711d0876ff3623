"""Checksums of a run's results: one blake2b per variable of ``results.zarr`` (data variables
and coordinates, by ``<model>/<name>``), recorded in ``provenance.json`` when the run is
written, from the values read back from the written store. An unchanged re-run verifies
them and rebuilds a damaged ``results.zarr`` from the cell store; ``diff``, ``plot`` and
``report`` refuse a damaged run folder, naming the variable."""

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


def damage_in_folder(folder: Path) -> list[str] | None:
    """What is damaged in a run folder whose provenance records checksums (None when it
    records none: written by an older mispec, nothing to check against)."""
    try:
        prov = json.loads((folder / "provenance.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    checksums = prov.get("checksums") if isinstance(prov, dict) else None
    if not isinstance(checksums, dict):
        return None
    damaged = damaged_variables(folder / "results.zarr", checksums)
    plan_hash = prov.get("plan_json_blake2b")
    if isinstance(plan_hash, str):
        try:
            ok = text_digest((folder / "plan.json").read_text("utf-8")) == plan_hash
        except (OSError, ValueError):
            ok = False
        if not ok:
            damaged.append("plan.json")
    return damaged
