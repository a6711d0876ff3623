"""The activation cache: a real Zarr (v3) hierarchy keyed by content.

``activations.zarr/<fk[:2]>/<fk>/<hook>`` holds one array per (forward key, hook template):
one forward pass of one checkpoint on one prompt set, so each checkpoint is its own chunk set.
Arrays are zstd-compressed, record their dtype, source dtype, dims and a checksum of the raw
bytes; an entry is written under a temporary name and renamed into place, so a killed writer
never leaves a half-written entry that reads as valid. A checksum mismatch is reported and the
entry dropped so the caller recomputes it.
"""

from __future__ import annotations

import json
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mispec.hashing import bytes_digest
from mispec.store.files import publish_dir, remove_tree, write_bytes_atomic

_GROUP_JSON = json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}).encode()


def hook_entry_name(template: str) -> str:
    return template.replace("{layer}", "L")


def stored_hook(hook: str, policy: str) -> str:
    """The cache identity of a hook under a storage policy: a float16 copy is a different
    entry from the float32 one, so a run that wants full precision never reads a rounded
    activation (and vice versa)."""
    return f"{hook}.f16" if policy == "float16" else hook


class ActivationCache:
    def __init__(self, root: Path):
        self.root = root

    def _dir(self, forward_key: str) -> Path:
        return self.root / forward_key[:2] / forward_key

    def entry_path(self, forward_key: str, hook: str) -> Path:
        return self._dir(forward_key) / hook_entry_name(hook)

    def has(self, forward_key: str, hook: str) -> bool:
        return (self.entry_path(forward_key, hook) / "zarr.json").is_file()

    def write(self, forward_key: str, hook: str, values: np.ndarray, *, source_dtype: str) -> None:
        import zarr

        values = np.ascontiguousarray(values)
        final = self.entry_path(forward_key, hook)
        if final.exists():
            return
        self._ensure_groups(forward_key)
        tmp = final.parent / f".tmp-{uuid.uuid4().hex[:12]}"
        try:
            arr = zarr.create_array(
                store=str(tmp),
                shape=values.shape,
                dtype=values.dtype,
                chunks=values.shape if values.ndim else (),
                overwrite=True,
                compressors=zarr.codecs.ZstdCodec(level=1),  # ~2x faster than the default level
                attributes={
                    "hook": hook,
                    "source_dtype": source_dtype,
                    "checksum": bytes_digest(memoryview(values).cast("B")),
                },
            )
            arr[...] = values
            publish_dir(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # never leave a half-written entry behind
            raise

    def read(self, forward_key: str, hook: str) -> np.ndarray | None:
        """The stored array, or None when absent or corrupt (corrupt entries are removed)."""
        import zarr

        path = self.entry_path(forward_key, hook)
        if not (path / "zarr.json").is_file():
            return None
        try:
            arr = zarr.open_array(store=str(path), mode="r")
            values = np.asarray(arr[...])
            ok = bytes_digest(np.ascontiguousarray(values).tobytes()) == arr.attrs.get("checksum")
        except Exception as exc:  # unreadable metadata or chunk
            ok, values = False, None
            reason = f"{type(exc).__name__}: {exc}"
        else:
            reason = "checksum mismatch"
        if not ok:
            warnings.warn(
                f"mispec: corrupt activation cache entry {path} ({reason}); recomputing it",
                stacklevel=2,
            )
            remove_tree(path)
            return None
        return values

    def _ensure_groups(self, forward_key: str) -> None:
        for group in (self.root, self.root / forward_key[:2], self._dir(forward_key)):
            meta = group / "zarr.json"
            if not meta.is_file():
                write_bytes_atomic(meta, _GROUP_JSON)

    def size_bytes(self) -> int:
        return (
            sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())
            if self.root.exists()
            else 0
        )

    def entries(self) -> list[tuple[str, str]]:
        out = []
        if self.root.exists():
            for meta in self.root.glob("*/*/*/zarr.json"):
                if not meta.parent.name.startswith("."):  # skip unfinished (.tmp-) writes
                    out.append((meta.parent.parent.name, meta.parent.name))
        return out

    def info(self, forward_key: str, hook: str) -> dict[str, Any]:
        import zarr

        arr = zarr.open_array(store=str(self.entry_path(forward_key, hook)), mode="r")
        return {"shape": arr.shape, "dtype": str(arr.dtype), **dict(arr.attrs)}
