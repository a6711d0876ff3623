"""The activation cache: a real Zarr (v3) hierarchy keyed by content.

``activations.zarr/<fk[:2]>/<fk>/<hook>`` holds one array per (forward key, hook template):
one forward pass of one checkpoint on one prompt set, stored as ONE chunk (so each checkpoint
is its own chunk set). The codec chain is standard Zarr v3 — ``bytes`` (little endian) →
``blosc`` (lz4, level 1) → ``crc32c`` — so any Zarr reader opens an entry and verifies its
checksum. Attributes record the entry's identity (forward key and stored hook name), the
source dtype, the chunk's crc32c, and ``mispec_digest``: a blake2b of the whole ``zarr.json``
but itself (shape, dtype, chunking, codecs, fill value, attributes). An entry is used only
when its metadata verifies, names the (forward key, hook) it is read under and its chunk is
the one the metadata records — a flipped shape, an entry moved or copied under another name,
or one written by an older mispec (no digest) is corrupt: dropped and recomputed.

Entries are written by :func:`encode_entry` directly in that layout rather than through
``zarr.create_array``: zarr's asynchronous machinery costs ~5 ms per array whatever its size,
which was most of a small model's cold run (benchmarks/RESULTS.md). Reading does the same in
reverse for entries in that exact layout and hands anything else (entries written by an older
mispec through zarr) to zarr itself. ``tests/test_store_activations.py`` checks that zarr
reads what we write bit for bit and that we read what zarr writes.

An entry is written under a temporary name and renamed into place, so a killed writer never
leaves a half-written entry that reads as valid. A checksum mismatch or an undecodable chunk
is reported and the entry dropped so the caller recomputes it.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mispec.hashing import bytes_digest
from mispec.store.files import publish_dir, remove_tree, write_bytes_atomic

_GROUP_JSON = json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}).encode()
_BLOSC = {"cname": "lz4", "clevel": 1, "shuffle": "noshuffle", "blocksize": 0}
# dtypes whose numpy name is also their Zarr v3 data_type name, with their fill value
_DIRECT_DTYPES = {
    **{f"float{b}": 0.0 for b in (16, 32, 64)},
    **{f"int{b}": 0 for b in (8, 16, 32, 64)},
    **{f"uint{b}": 0 for b in (8, 16, 32, 64)},
    "bool": False,
}


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


def chunk_key(ndim: int) -> str:
    """The one chunk's key under Zarr v3's default chunk-key encoding with separator ``.``
    (``c.0.0.0.0.0``: one file beside ``zarr.json``, where ``/`` would nest one directory per
    dimension, and each directory costs as much to create as a megabyte costs to write)."""
    return ".".join(["c"] + ["0"] * ndim)


def _metadata(values: np.ndarray, attributes: dict[str, Any]) -> dict[str, Any]:
    shape = list(values.shape)
    return {
        "shape": shape,
        "data_type": values.dtype.name,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": shape}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "."}},
        "fill_value": _DIRECT_DTYPES[values.dtype.name],
        "codecs": [
            {"name": "bytes", "configuration": {"endian": "little"}},
            {"name": "blosc", "configuration": {"typesize": values.dtype.itemsize, **_BLOSC}},
            {"name": "crc32c"},
        ],
        "attributes": attributes,
        "zarr_format": 3,
        "node_type": "array",
        "storage_transformers": [],
    }


def can_encode(values: np.ndarray) -> bool:
    return values.dtype.name in _DIRECT_DTYPES and values.size > 0


DIGEST_ATTR = "mispec_digest"


def metadata_digest(meta: dict[str, Any]) -> str:
    """blake2b of an entry's ``zarr.json`` (parsed) without its own digest attribute."""
    attributes = {k: v for k, v in (meta.get("attributes") or {}).items() if k != DIGEST_ATTR}
    rest = {**meta, "attributes": attributes}
    return bytes_digest(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode())


def with_digest(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` with its :func:`metadata_digest` recorded in its attributes."""
    digest = metadata_digest(meta)
    return {**meta, "attributes": {**(meta.get("attributes") or {}), DIGEST_ATTR: digest}}


def encode_entry(values: np.ndarray, attributes: dict[str, Any]) -> tuple[bytes, bytes]:
    """``(zarr.json, chunk)`` bytes of a single-chunk Zarr v3 array holding ``values``; the
    metadata records the chunk's crc32c and its own digest."""
    import google_crc32c
    from numcodecs import Blosc

    values = values.astype(values.dtype.newbyteorder("<"), order="C", copy=False)
    codec = Blosc(cname=_BLOSC["cname"], clevel=_BLOSC["clevel"], shuffle=Blosc.NOSHUFFLE)
    body = bytes(codec.encode(values))
    crc = google_crc32c.value(body)
    chunk = body + np.uint32(crc).astype("<u4").tobytes()
    meta = with_digest(_metadata(values, {**attributes, "chunk_crc32c": int(crc)}))
    return json.dumps(meta, indent=2).encode(), chunk


def _is_direct(meta: dict[str, Any]) -> bool:
    codecs = meta.get("codecs") or []
    return (
        meta.get("node_type") == "array"
        and meta.get("data_type") in _DIRECT_DTYPES
        and meta.get("chunk_grid", {}).get("configuration", {}).get("chunk_shape")
        == meta.get("shape")
        and meta.get("chunk_key_encoding")
        == {"name": "default", "configuration": {"separator": "."}}
        and [c.get("name") for c in codecs] == ["bytes", "blosc", "crc32c"]
        and codecs[0].get("configuration", {}).get("endian") == "little"
    )


class CorruptEntry(ValueError):
    pass


def verify_metadata(meta: Any, forward_key: str, hook: str) -> None:
    """``CorruptEntry`` unless ``meta`` (a parsed ``zarr.json``) carries a digest that
    matches it and names the entry (``forward_key``, ``hook``) it is read as."""
    attributes = meta.get("attributes") if isinstance(meta, dict) else None
    if not isinstance(attributes, dict) or DIGEST_ATTR not in attributes:
        raise CorruptEntry("no checksum of its metadata: written by an older mispec")
    if metadata_digest(meta) != attributes[DIGEST_ATTR]:
        raise CorruptEntry("checksum mismatch in zarr.json")
    found = (attributes.get("forward_key"), attributes.get("hook"))
    if found != (forward_key, hook):
        raise CorruptEntry(
            f"the entry is forward pass {found[0]}, hook {found[1]}, not the one it is read as "
            "(moved or copied under another name)"
        )


def decode_chunk(meta: dict[str, Any], chunk: bytes) -> np.ndarray:
    """The values of a single-chunk entry in mispec's layout; ``CorruptEntry`` when its
    crc32c does not match (the chunk's own, or the one its metadata records) or it does not
    decode to the recorded shape."""
    import google_crc32c
    from numcodecs import Blosc

    if len(chunk) < 4:
        raise CorruptEntry("truncated chunk")
    body, stored = chunk[:-4], int(np.frombuffer(chunk[-4:], dtype="<u4")[0])
    if google_crc32c.value(body) != stored:
        raise CorruptEntry("checksum mismatch (crc32c)")
    if stored != meta.get("attributes", {}).get("chunk_crc32c"):
        raise CorruptEntry("the chunk is not the one its zarr.json records (crc32c)")
    dtype = np.dtype(meta["data_type"]).newbyteorder("<")
    shape = tuple(meta["shape"])
    out = np.empty(shape, dtype=dtype.newbyteorder("="))  # writable: torch.from_numpy wants it
    # the blosc header: version, versionlz, flags, typesize, nbytes, blocksize, cbytes
    nbytes, cbytes = (int.from_bytes(body[i : i + 4], "little") for i in (4, 12))
    if len(body) < 16 or nbytes != out.nbytes or cbytes != len(body):
        raise CorruptEntry(f"the chunk does not hold a {shape} {dtype.name} array")
    try:
        Blosc().decode(body, out=out)
    except RuntimeError as exc:  # blosc: "error during blosc decompression"
        raise CorruptEntry(f"undecodable chunk ({exc})") from exc
    return out


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
            if _is_direct(meta):
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
                write_bytes_atomic(meta, _GROUP_JSON)

    def size_bytes(self) -> int:
        total = 0
        if self.root.exists():
            for dirpath, _dirs, files in os.walk(self.root):
                total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
        return total

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
