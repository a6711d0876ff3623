"""Reading a safetensors file in one pass: one read into one buffer, tensors as views of it.

A checkpoint is read for every checkpoint group of a sweep, so its cost is per checkpoint:
``safe_open(...).get_tensor`` per tensor, then a digest and a finiteness check per tensor,
cost ~2.4 ms for the 26 tensors of the 2-layer benchmark toy (more than the weights
themselves take to copy). Here the file is read once into a ``bytearray``; each tensor is a
``torch.frombuffer`` view of its bytes (no copy); the checksum hashes the same bytes
(``memoryview`` slices: no copy) in the order and format of
:func:`mispec.models.checkpoints.tensors_digest`, so files written by any mispec verify the
same way; and the finiteness check runs once per run of adjacent same-dtype tensors instead
of once per tensor.

The header is checked as strictly as the safetensors library checks it (offsets in order,
inside the file, sizes matching shapes and dtypes): anything else raises ``ValueError``,
which the caller reports as a corrupt checkpoint. A dtype this module does not know is left
to the library (:func:`read` returns None).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_HEADER_MAX = 100 << 20  # the library's own limit on the JSON header


@dataclass
class TensorFile:
    """The tensors (views of one buffer), the string metadata, and where each tensor lies."""

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]
    spans: dict[str, tuple[int, int]]  # name -> [start, end) in ``buffer``
    buffer: bytearray

    def digest(self) -> str:
        """:func:`mispec.models.checkpoints.tensors_digest` of the tensors, from the bytes."""
        h = hashlib.blake2b(digest_size=16)
        view = memoryview(self.buffer)
        for name in sorted(self.tensors):
            t = self.tensors[name]
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            start, end = self.spans[name]
            h.update(view[start:end])
        return h.hexdigest()

    def nonfinite_names(self) -> list[str]:
        """Names of the floating-point tensors holding a NaN or an infinity: one check per
        run of adjacent tensors of one dtype (a whole float32 checkpoint is one check)."""
        order = sorted(self.spans, key=lambda n: self.spans[n][0])
        runs: list[list[str]] = []
        for name in order:
            t = self.tensors[name]
            if not t.is_floating_point() or t.numel() == 0:
                continue
            prev = runs[-1][-1] if runs else None
            if (
                prev is not None
                and self.tensors[prev].dtype == t.dtype
                and self.spans[prev][1] == self.spans[name][0]
            ):
                runs[-1].append(name)
            else:
                runs.append([name])
        bad: list[str] = []
        for names in runs:
            start, end = self.spans[names[0]][0], self.spans[names[-1]][1]
            dtype = self.tensors[names[0]].dtype
            whole = _view(self.buffer, dtype, start, end)
            if bool(torch.isfinite(whole).all()):
                continue
            bad += [n for n in names if _nonfinite(self.tensors[n])]
        return [n for n in self.tensors if n in set(bad)]


def read(path: Path) -> TensorFile | None:
    """The file's tensors and metadata; None when it holds a dtype not in :data:`DTYPES`.
    Raises ``OSError`` (unreadable) or ``ValueError`` (not a well-formed safetensors file)."""
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        f.seek(0)
        buffer = bytearray(size)
        if f.readinto(buffer) != size:
            raise ValueError("the file is shorter than it said")
    if size < 8:
        raise ValueError("no header")
    n = int.from_bytes(buffer[:8], "little")
    if n > _HEADER_MAX or 8 + n > size:
        raise ValueError("the header is larger than the file")
    header = json.loads(bytes(buffer[8 : 8 + n]))
    if not isinstance(header, dict):
        raise ValueError("the header is not a mapping")
    metadata = header.pop("__metadata__", None) or {}
    base = 8 + n
    tensors: dict[str, torch.Tensor] = {}
    spans: dict[str, tuple[int, int]] = {}
    entries = sorted(header.items(), key=lambda kv: tuple(kv[1].get("data_offsets", (0, 0))))
    expected_start = 0
    for name, entry in entries:
        dtype = DTYPES.get(entry.get("dtype"))
        if dtype is None:
            return None
        shape = [int(d) for d in entry["shape"]]
        begin, end = (int(x) for x in entry["data_offsets"])
        itemsize = torch.empty((), dtype=dtype).element_size()
        if begin != expected_start or end - begin != math.prod(shape) * itemsize:
            raise ValueError(f"tensor '{name}': offsets do not match its shape and dtype")
        expected_start = end
        spans[name] = (base + begin, base + end)
        tensors[name] = _view(buffer, dtype, base + begin, base + end).view(shape)
    if base + expected_start != size:
        raise ValueError("the tensors do not fill the file")
    tensors = dict(sorted(tensors.items()))  # by name, as the library's ``keys()``
    return TensorFile(tensors, {str(k): str(v) for k, v in metadata.items()}, spans, buffer)


def _nonfinite(t: torch.Tensor) -> bool:
    return (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all())


def _view(buffer: bytearray, dtype: torch.dtype, start: int, end: int) -> torch.Tensor:
    """``buffer[start:end]`` as a flat tensor of ``dtype``: a view when aligned, else a copy."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    count = (end - start) // itemsize
    if count == 0:
        return torch.empty(0, dtype=dtype)
    if start % itemsize:  # misaligned for its dtype: copy, never read unaligned
        return torch.frombuffer(bytearray(buffer[start:end]), dtype=dtype, count=count)
    return torch.frombuffer(buffer, dtype=dtype, count=count, offset=start)
