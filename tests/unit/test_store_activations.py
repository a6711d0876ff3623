"""The activation cache writes standard single-chunk Zarr v3 arrays by hand (bytes → blosc →
crc32c); zarr itself must read them bit for bit, we must read what zarr writes, and a flipped
byte anywhere in a chunk must be caught."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import zarr

from mispec.store.activations import ActivationCache
from mispec.store.zarr_entry import chunk_key

FKEY = "ab" + "0" * 30


def _softmax_pattern(rng: np.random.Generator) -> np.ndarray:
    s = rng.normal(size=(2, 3, 4, 7, 7)) * 3
    s = np.where(np.triu(np.ones((7, 7), bool), 1), -np.inf, s)
    p = np.exp(s - s.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize(
    "values",
    [
        _softmax_pattern(np.random.default_rng(0)),
        np.random.default_rng(1).normal(size=(5, 11)).astype(np.float16),
        np.random.default_rng(2).normal(size=(3,)).astype(np.float64),
        np.arange(12, dtype=np.int64).reshape(3, 4),
        np.array([True, False, True]),
        np.array(2.5, dtype=np.float32),  # 0-d: the chunk key is just "c"
        np.zeros((4, 4), np.float32),  # all fill value: zarr itself would write no chunk
    ],
    ids=["pattern", "f16", "f64", "i64", "bool", "scalar", "zeros"],
)
def test_zarr_reads_our_entries_bit_for_bit(tmp_path, values):
    cache = ActivationCache(tmp_path / "activations.zarr")
    cache.write(FKEY, "blocks.{layer}.attn.hook_pattern", values, source_dtype="float32")
    path = cache.entry_path(FKEY, "blocks.{layer}.attn.hook_pattern")
    assert (path / chunk_key(values.ndim)).is_file()

    arr = zarr.open_array(store=str(path), mode="r")  # zarr verifies the crc32c on decode
    back = np.asarray(arr[...])
    assert back.dtype == values.dtype and back.shape == values.shape
    assert back.tobytes() == values.tobytes()
    assert arr.attrs["hook"] == "blocks.{layer}.attn.hook_pattern"
    assert arr.attrs["source_dtype"] == "float32"
    assert [type(c).__name__ for c in arr.compressors] == ["BloscCodec", "Crc32cCodec"]

    ours = cache.read(FKEY, "blocks.{layer}.attn.hook_pattern")
    assert ours.dtype == values.dtype and ours.tobytes() == values.tobytes()
    info = cache.info(FKEY, "blocks.{layer}.attn.hook_pattern")
    assert info["shape"] == values.shape and info["dtype"] == str(values.dtype)
    # the whole store is a Zarr hierarchy zarr can walk
    root = zarr.open_group(store=str(tmp_path / "activations.zarr"), mode="r")
    assert root[f"{FKEY[:2]}/{FKEY}/blocks.L.attn.hook_pattern"].shape == values.shape


def test_our_metadata_is_what_zarr_writes(tmp_path):
    values = _softmax_pattern(np.random.default_rng(3))
    cache = ActivationCache(tmp_path / "a")
    cache.write(FKEY, "h", values, source_dtype="float32")
    ours = json.loads((cache.entry_path(FKEY, "h") / "zarr.json").read_text())
    theirs_arr = zarr.create_array(
        store=str(tmp_path / "z"),
        shape=values.shape,
        dtype=values.dtype,
        chunks=values.shape,
        compressors=[
            zarr.codecs.BloscCodec(cname="lz4", clevel=1, shuffle="noshuffle", typesize=4),
            zarr.codecs.Crc32cCodec(),
        ],
        attributes=ours["attributes"],  # (our identity, crc32c and digest of the metadata)
        chunk_key_encoding={"name": "default", "separator": "."},
    )
    theirs_arr[...] = values
    theirs = json.loads((tmp_path / "z" / "zarr.json").read_text())
    assert ours == theirs
    # and zarr put its chunk where we put ours
    assert (tmp_path / "z" / chunk_key(values.ndim)).is_file()


def test_entries_that_an_older_mispec_wrote_through_zarr_are_recomputed(tmp_path):
    """Entries of an older mispec (zarr.create_array, zstd, blake2b in the attributes) do not
    record which (forward key, hook) they are, nor a digest of their metadata: they are
    dropped and recomputed, never trusted (issue 26)."""
    from mispec.hashing import bytes_digest

    values = _softmax_pattern(np.random.default_rng(4))
    cache = ActivationCache(tmp_path / "a")
    path = cache.entry_path(FKEY, "h")
    arr = zarr.create_array(
        store=str(path),
        shape=values.shape,
        dtype=values.dtype,
        chunks=values.shape,
        compressors=zarr.codecs.ZstdCodec(level=1),
        attributes={"hook": "h", "checksum": bytes_digest(values.tobytes())},
    )
    arr[...] = values
    with pytest.warns(UserWarning, match="written by an older mispec"):
        assert cache.read(FKEY, "h") is None
    assert not path.exists()


@pytest.mark.parametrize("where", [0, 20, -40, -2])  # blosc header, body, near the crc32c
def test_a_flipped_chunk_byte_is_caught_and_the_entry_dropped(tmp_path, where):
    values = _softmax_pattern(np.random.default_rng(5))
    cache = ActivationCache(tmp_path / "a")
    cache.write(FKEY, "h", values, source_dtype="float32")
    chunk = cache.entry_path(FKEY, "h") / chunk_key(values.ndim)
    data = bytearray(chunk.read_bytes())
    data[where] ^= 0x10
    chunk.write_bytes(bytes(data))
    with pytest.raises(ValueError):  # zarr refuses it too
        zarr.open_array(store=str(chunk.parent), mode="r")[...]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cache.read(FKEY, "h") is None
    assert any("corrupt activation cache entry" in str(w.message) for w in caught)
    assert not cache.entry_path(FKEY, "h").exists()  # dropped: the caller recomputes it


def test_truncated_chunk_and_garbled_metadata_are_caught(tmp_path):
    values = np.arange(100, dtype=np.float32)
    cache = ActivationCache(tmp_path / "a")
    cache.write(FKEY, "t", values, source_dtype="float32")
    cache.write(FKEY, "m", values, source_dtype="float32")
    chunk = cache.entry_path(FKEY, "t") / chunk_key(1)
    chunk.write_bytes(chunk.read_bytes()[:10])
    (cache.entry_path(FKEY, "m") / "zarr.json").write_bytes(b"{not json")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cache.read(FKEY, "t") is None
        assert cache.read(FKEY, "m") is None
    assert cache.entries() == []
    assert cache.read(FKEY, "never-written") is None
