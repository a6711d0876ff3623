"""One activation entry on disk: a single-chunk Zarr (v3) array that any Zarr reader opens.

The array is stored as ONE chunk under the key ``c.0.0.0.0.0`` (:func:`chunk_key`) with the
standard Zarr v3 codec chain ``bytes`` (little endian) → ``blosc`` (lz4, level 1) →
``crc32c``, so any Zarr reader opens an entry and verifies its checksum. Attributes record the
entry's identity (forward key and stored hook name), the source dtype, the chunk's crc32c, and
``mispec_digest``: a blake2b of the whole ``zarr.json`` but itself (shape, dtype, chunking,
codecs, fill value, attributes). An entry is used only when its metadata verifies
(:func:`verify_metadata`), names the (forward key, hook) it is read under and its chunk is the
one the metadata records (:func:`decode_chunk`) — a flipped shape, an entry moved or copied
under another name, or one written by an older mispec (no digest) is :class:`CorruptEntry`.

Entries are encoded by :func:`encode_entry` directly in that layout rather than through
``zarr.create_array``: zarr's asynchronous machinery costs ~5 ms per array whatever its size,
which was most of a small model's cold run (benchmarks/RESULTS.md). Decoding does the same in
reverse for entries in that exact layout (:func:`is_direct`); the cache hands anything else
(entries written by an older mispec through zarr) to zarr itself.
``tests/unit/test_store_activations.py`` checks that zarr reads what we write bit for bit and that
we read what zarr writes.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from mispec.hashing import bytes_digest

GROUP_JSON = json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}).encode()
_BLOSC = {"cname": "lz4", "clevel": 1, "shuffle": "noshuffle", "blocksize": 0}
# dtypes whose numpy name is also their Zarr v3 data_type name, with their fill value
_DIRECT_DTYPES = {
    **{f"float{b}": 0.0 for b in (16, 32, 64)},
    **{f"int{b}": 0 for b in (8, 16, 32, 64)},
    **{f"uint{b}": 0 for b in (8, 16, 32, 64)},
    "bool": False,
}


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


def is_direct(meta: dict[str, Any]) -> bool:
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
