"""Metric cells: one small labelled array per content key, as ``cells/<k[:2]>/<k>.npz``.

An ``.npz`` is a zip: every member carries a CRC-32 that numpy checks on read, and the values
also carry a blake2b checksum; no pickle is ever loaded (``allow_pickle=False``). Written
atomically; a corrupt cell is reported, removed and recomputed.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mispec.hashing import bytes_digest
from mispec.store.files import write_bytes_atomic


class CellStore:
    def __init__(self, root: Path):
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def write_encoded(self, key: str, data: bytes) -> None:
        """Store ``data`` (from :meth:`encode`) under ``key``, atomically."""
        write_bytes_atomic(self.path(key), data)

    @staticmethod
    def encode(array: Any) -> bytes:
        """The ``.npz`` bytes of a labelled array (``xarray.DataArray``)."""
        values = np.array(array.values, order="C")  # (ascontiguousarray makes 0-d arrays 1-d)
        meta = {
            "dims": list(array.dims),
            "attrs": _jsonable(dict(array.attrs)),
            "checksum": bytes_digest(values.tobytes()),
            "coords": [str(c) for c in array.coords if c in array.dims],
        }
        payload: dict[str, np.ndarray] = {"values": values, "meta": np.array(json.dumps(meta))}
        for c in meta["coords"]:
            payload[f"coord__{c}"] = _plain(np.asarray(array.coords[c].values))
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
            if bytes_digest(np.array(values, order="C").tobytes()) != meta["checksum"]:
                raise ValueError("checksum mismatch")
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
