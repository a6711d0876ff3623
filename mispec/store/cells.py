"""Metric cells: one small labelled array per content key, as ``cells/<k[:2]>/<k>.npz``.

An ``.npz`` is a zip: every member carries a CRC-32 that numpy checks on read, and the cell
carries a blake2b checksum (``digest``) over everything it holds — its content key, dims,
attributes, and the dtype, shape and bytes of its values and of each coordinate — so a cell
is used only when it is the cell its name says (a file copied or swapped under another key is
corrupt, as git refuses an object whose content is not its name). No pickle is ever loaded
(``allow_pickle=False``). Written atomically; a corrupt cell (or one written by an older
mispec, without the key in its checksum) is reported, removed and recomputed.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mispec.store.files import write_bytes_atomic


class CellStore:
    def __init__(self, root: Path):
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def files(self) -> list[Path]:
        """Every cell's file (not those of unfinished writes, named ``.tmp-*``)."""
        if not self.root.is_dir():
            return []
        return [f for f in self.root.glob("*/*.npz") if not f.name.startswith(".")]

    def write_encoded(self, key: str, data: bytes) -> None:
        """Store ``data`` (from :meth:`encode`) under ``key``, atomically."""
        write_bytes_atomic(self.path(key), data)

    @staticmethod
    def encode(array: Any, key: str) -> bytes:
        """The ``.npz`` bytes of a labelled array (``xarray.DataArray``) stored under ``key``."""
        values = np.array(array.values, order="C")  # (ascontiguousarray makes 0-d arrays 1-d)
        names = [str(c) for c in array.coords if c in array.dims]
        coords = {c: _plain(np.asarray(array.coords[c].values)) for c in names}
        meta: dict[str, Any] = json.loads(  # as a reader will find it (e.g. keys as strings)
            json.dumps(
                {"key": key, "dims": list(array.dims), "attrs": _jsonable(dict(array.attrs))}
            )
        )
        meta["coords"] = names
        meta["digest"] = cell_digest(meta, values, coords)
        payload: dict[str, np.ndarray] = {"values": values, "meta": np.array(json.dumps(meta))}
        for c in names:
            payload[f"coord__{c}"] = coords[c]
        buf = io.BytesIO()
        np.savez(buf, allow_pickle=False, **payload)
        return buf.getvalue()

    def read(self, key: str) -> Any | None:
        import xarray as xr

        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                values = data["values"]
                meta = json.loads(str(data["meta"]))
                coords = {c: data[f"coord__{c}"] for c in meta["coords"]}
            if "digest" not in meta:
                raise ValueError("written by an older mispec: its key is not in its checksum")
            if cell_digest(meta, values, coords) != meta["digest"]:
                raise ValueError("checksum mismatch")
            if meta["key"] != key:
                raise ValueError(f"the file holds the cell of key {meta['key']}, not {key}")
        except Exception as exc:
            warnings.warn(
                f"mispec: corrupt metric cell {path} ({type(exc).__name__}: {exc}); recomputing it",
                stacklevel=2,
            )
            path.unlink(missing_ok=True)
            return None
        return xr.DataArray(values, dims=meta["dims"], coords=coords, attrs=meta["attrs"])

    def count(self) -> int:
        if not self.root.exists():
            return 0
        return sum(1 for p in self.root.glob("*/*.npz") if not p.name.startswith("."))


def cell_digest(meta: dict[str, Any], values: np.ndarray, coords: dict[str, np.ndarray]) -> str:
    """blake2b of a cell: its metadata (key, dims, attrs, coordinate names; all but the
    digest itself) and the dtype, shape and bytes of its values and coordinates."""
    rest = {k: v for k, v in meta.items() if k != "digest"}
    h = hashlib.blake2b(json.dumps(rest, sort_keys=True).encode("utf-8"), digest_size=16)
    for array in (values, *(coords[c] for c in rest["coords"])):
        a = np.array(array, order="C")
        h.update(f"|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _plain(values: np.ndarray) -> np.ndarray:
    """Labels as a plain numpy dtype: an object array of strings (what xarray makes of
    ``coords={"component": ["total"]}``) becomes unicode, so no cell ever needs a pickle."""
    if values.dtype == object:
        if all(isinstance(v, str) for v in values.ravel()):
            return values.astype(str)
        raise ValueError(f"labels of mixed Python objects cannot be stored: {values.tolist()!r}")
    return values


def _jsonable(attrs: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in attrs.items():
        if isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, np.generic):
            v = v.item()
        try:
            json.dumps(v)
        except TypeError:
            v = str(v)
        out[k] = v
    return out
