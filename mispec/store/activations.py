"""The activation cache: a real Zarr (v3) hierarchy keyed by content.

``activations.zarr/<fk[:2]>/<fk>/<hook>`` holds one array per (forward key, hook template):
one forward pass of one checkpoint on one prompt set, stored as ONE chunk (so each checkpoint
is its own chunk set), in the format of :mod:`mispec.store.zarr_entry` (standard Zarr v3,
checksummed, naming the entry it is). A hook's entry name is its stored identity
(:func:`stored_hook`: a float16 copy and a revised pseudo hook are entries of their own).

An entry is written under a temporary name and renamed into place, so a killed writer never
leaves a half-written entry that reads as valid. A checksum mismatch, an entry under another
name or an undecodable chunk is reported and the entry dropped so the caller recomputes it.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mispec.hashing import bytes_digest
from mispec.store.files import publish_dir, remove_tree, write_bytes_atomic
from mispec.store.zarr_entry import (
    GROUP_JSON,
    CorruptEntry,
    can_encode,
    chunk_key,
    decode_chunk,
    encode_entry,
    is_direct,
    verify_metadata,
    with_digest,
)

_FORWARD_KEY = re.compile(r"^[0-9a-f]{16,64}$")  # a content key (mispec.hashing.content_key)


def hook_entry_name(template: str) -> str:
    return template.replace("{layer}", "L")


# Pseudo hooks whose computation changed, with the suffix of their current entries: a store
# filled before the change holds the old numbers under the plain name, never read again
# (``next_logprob``: float64 log-softmax since issue 26, no longer rounded to 0 when tiny).
REVISED_HOOKS = {"next_logprob": "lp64"}


def stored_hook(hook: str, policy: str) -> str:
    """The cache identity of a hook under a storage policy: a float16 copy is a different
    entry from the float32 one, so a run that wants full precision never reads a rounded
    activation (and vice versa); a revised pseudo hook is a different entry from its older
    computation (``REVISED_HOOKS``)."""
    name = f"{hook}.{REVISED_HOOKS[hook]}" if hook in REVISED_HOOKS else hook
    return f"{name}.f16" if policy == "float16" else name


@dataclass(frozen=True)
class PreparedEntry:
    attributes: dict[str, Any]
    ndim: int
    meta: bytes  # zarr.json
    chunk: bytes  # the one encoded chunk
    values: np.ndarray | None  # set instead when zarr itself must lay the entry out

    @property
    def nbytes(self) -> int:
        return len(self.meta) + len(self.chunk) + (0 if self.values is None else self.values.nbytes)


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
        entry = self.prepare(forward_key, hook, values, source_dtype=source_dtype)
        self.publish(forward_key, hook, entry)

    def prepare(
        self, forward_key: str, hook: str, values: np.ndarray, *, source_dtype: str
    ) -> PreparedEntry:
        """Encode an entry (compression and checksums): an immutable snapshot of ``values``
        that :meth:`publish` writes, on any thread."""
        attributes = {"forward_key": forward_key, "hook": hook, "source_dtype": source_dtype}
        if can_encode(values):
            meta, chunk = encode_entry(values, attributes)
            return PreparedEntry(attributes, values.ndim, meta, chunk, None)
        # an empty array or an unusual dtype: zarr lays it out (from a private copy)
        return PreparedEntry(attributes, values.ndim, b"", b"", np.array(values, order="C"))

    def publish(self, forward_key: str, hook: str, entry: PreparedEntry) -> None:
        final = self.entry_path(forward_key, hook)
        if final.exists():
            return
        self._ensure_groups(forward_key)
        tmp = final.parent / f".tmp-{uuid.uuid4().hex[:12]}"
        try:
            if entry.values is None:
                tmp.mkdir()
                with open(tmp / chunk_key(entry.ndim), "wb") as fh:
                    fh.write(entry.chunk)
                with open(tmp / "zarr.json", "wb") as fh:
                    fh.write(entry.meta)
            else:
                self._write_with_zarr(tmp, entry.values, entry.attributes)
            publish_dir(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # never leave a half-written entry behind
            raise

    @staticmethod
    def _write_with_zarr(tmp: Path, values: np.ndarray, attributes: dict[str, Any]) -> None:
        import zarr
        from zarr.codecs import ZstdCodec

        arr = zarr.create_array(
            store=str(tmp),
            shape=values.shape,
            dtype=values.dtype,
            chunks=values.shape if values.ndim else (),
            overwrite=True,
            compressors=ZstdCodec(level=1),
            attributes={
                **attributes,
                "checksum": bytes_digest(np.ascontiguousarray(values).tobytes()),
            },
        )
        arr[...] = values
        meta_path = tmp / "zarr.json"  # zarr wrote it: record its digest in it
        meta_path.write_bytes(json.dumps(with_digest(json.loads(meta_path.read_bytes()))).encode())

    def read(self, forward_key: str, hook: str) -> np.ndarray | None:
        """The stored array, or None when absent or corrupt (corrupt entries are removed)."""
        path = self.entry_path(forward_key, hook)
        try:
            meta_bytes = (path / "zarr.json").read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            return self._drop(path, f"{type(exc).__name__}: {exc}")
        try:
            meta = json.loads(meta_bytes)
            verify_metadata(meta, forward_key, hook)
            if is_direct(meta):
                chunk = (path / chunk_key(len(meta["shape"]))).read_bytes()
                return decode_chunk(meta, chunk)
            return self._read_with_zarr(path)
        except FileNotFoundError as exc:
            return self._drop(path, f"missing chunk {exc.filename}")
        except CorruptEntry as exc:
            return self._drop(path, str(exc))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError) as exc:
            return self._drop(path, f"{type(exc).__name__}: {exc}")  # unreadable metadata

    @staticmethod
    def _read_with_zarr(path: Path) -> np.ndarray:
        """An entry in another layout (an empty array or an unusual dtype, written through
        zarr, zstd-compressed with a blake2b checksum of the values in its attributes)."""
        import zarr

        arr = zarr.open_array(store=str(path), mode="r")
        values = np.asarray(arr[...])
        expected = arr.attrs.get("checksum")
        if expected is None:
            raise CorruptEntry("no checksum of its values")
        if bytes_digest(np.ascontiguousarray(values).tobytes()) != expected:
            raise CorruptEntry("checksum mismatch")
        return values

    @staticmethod
    def _drop(path: Path, reason: str) -> None:
        warnings.warn(
            f"mispec: corrupt activation cache entry {path} ({reason}); recomputing it",
            stacklevel=3,
        )
        remove_tree(path)
        return None

    def _ensure_groups(self, forward_key: str) -> None:
        """The Zarr groups above an entry (root, ``fk[:2]``, ``fk``): mispec never reads them,
        zarr needs them to walk the hierarchy."""
        folder = self._dir(forward_key)
        if (folder / "zarr.json").is_file():
            return
        for group in (self.root, self.root / forward_key[:2], folder):
            meta = group / "zarr.json"
            if not meta.is_file():
                write_bytes_atomic(meta, GROUP_JSON)

    def forward_folders(self) -> list[Path]:
        """``<fk[:2]>/<fk>/``: one folder per forward pass, holding its hooks' entries."""
        if not self.root.is_dir():
            return []
        return [
            f
            for prefix in self.root.iterdir()
            if prefix.is_dir() and len(prefix.name) == 2
            for f in prefix.iterdir()
            if f.is_dir() and _FORWARD_KEY.match(f.name)
        ]

    def entries(self) -> list[tuple[str, str]]:
        out = []
        if self.root.exists():
            for meta in self.root.glob("*/*/*/zarr.json"):
                if not meta.parent.name.startswith("."):  # skip unfinished (.tmp-) writes
                    out.append((meta.parent.parent.name, meta.parent.name))
        return out

    def info(self, forward_key: str, hook: str) -> dict[str, Any]:
        meta = json.loads((self.entry_path(forward_key, hook) / "zarr.json").read_bytes())
        return {
            "shape": tuple(meta["shape"]),
            "dtype": str(np.dtype(meta["data_type"])),
            **dict(meta.get("attributes") or {}),
        }
