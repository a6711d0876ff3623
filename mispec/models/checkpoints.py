"""Safetensors checkpoints with a checksum, written atomically. No pickle anywhere.

Every file mispec writes carries ``mispec_checksum`` in its safetensors metadata: a
blake2b digest over each tensor's name, dtype, shape and bytes (sorted by name), and
``mispec_metadata_checksum``: a blake2b of the rest of the metadata (the file's identity —
training run, seed, step, which file — the optimizer's settings, and ``mispec_checksum``
itself, which binds the tensors to it). Loading recomputes both; a mismatch (a torn copy,
bit rot, a hand-edited file) raises :class:`CorruptCheckpoint`. A reader that knows which
file it asked for passes ``expect``: a file whose recorded identity differs (a file moved,
copied or swapped under another name) or that records none (written by an older mispec) is
corrupt too, as git refuses an object whose content is not its name. Files are written to ``<name>.tmp-<pid>`` and renamed with
``os.replace``, so a crash never leaves a half-written checkpoint under the real name.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import safe_open, save

from mispec.errors import CheckpointError
from mispec.models import tensor_file
from mispec.models.tensor_file import TensorFile

CHECKSUM_KEY = "mispec_checksum"
METADATA_CHECKSUM_KEY = "mispec_metadata_checksum"


class CorruptCheckpoint(CheckpointError):
    """A checkpoint file is unreadable or fails its checksum."""


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().data)  # the buffer itself, no copy
    return h.hexdigest()


def save_file(tensors: dict[str, torch.Tensor], filename: str, metadata: dict[str, str]) -> None:
    """``safetensors.torch.save_file``, but written by Python: a failed write (a full disk,
    a quota) is an ``OSError`` with its errno and the file's name — the library's own
    writer reports it as an opaque ``SafetensorError``, or not at all."""
    data = save(tensors, metadata=metadata)
    try:
        with open(filename, "wb") as f:
            f.write(data)
    except OSError as exc:
        exc.filename = exc.filename or filename
        raise


def metadata_digest(metadata: Mapping[str, str]) -> str:
    """blake2b of a file's string metadata (all but :data:`METADATA_CHECKSUM_KEY`): small
    text, so cheap beside the tensors' own digest."""
    rest = {k: v for k, v in metadata.items() if k != METADATA_CHECKSUM_KEY}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def write_tensors(
    path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Atomically write ``tensors`` (+ string ``metadata`` and the checksum) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    meta = dict(metadata or {})
    meta[CHECKSUM_KEY] = tensors_digest(tensors)
    meta[METADATA_CHECKSUM_KEY] = metadata_digest(meta)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_tensors(
    path: Path, *, verify: bool = True, expect: Mapping[str, str] | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file, checksums verified when recorded."""
    found = read_file(path, verify=verify, expect=expect)
    return found.tensors, found.metadata


def read_file(
    path: Path, *, verify: bool = True, expect: Mapping[str, str] | None = None
) -> TensorFile:
    """The whole file read once (:mod:`mispec.models.tensor_file`: tensors are views of one
    buffer), checksums verified from its bytes when recorded. A file with a dtype that module
    does not know is read by the safetensors library instead.

    ``expect``: the identity the caller reads the file as (e.g. ``{"step": "20", ...}``):
    the file must record a metadata checksum and these values, else it is corrupt."""
    path = Path(path)
    try:
        found = tensor_file.read(path)
        if found is None:
            with safe_open(str(path), framework="pt") as f:  # one open for tensors and metadata
                meta = dict(f.metadata() or {})
                tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
            found = TensorFile(tensors, meta, {}, bytearray())  # no spans: per tensor
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as exc:
        raise CorruptCheckpoint(f"{path}: unreadable checkpoint ({exc})") from exc
    expected = found.metadata.get(CHECKSUM_KEY)
    if verify and expected is not None:
        actual = found.digest() if found.spans else tensors_digest(found.tensors)
        if actual != expected:
            raise CorruptCheckpoint(f"{path}: checksum mismatch (the file is corrupt)")
    recorded = found.metadata.get(METADATA_CHECKSUM_KEY)
    if verify and recorded is not None and metadata_digest(found.metadata) != recorded:
        raise CorruptCheckpoint(f"{path}: checksum mismatch in its metadata (the file is corrupt)")
    if expect is not None:
        check_identity(path, found.metadata, expect)
    return found


def check_identity(path: Path, metadata: Mapping[str, str], expect: Mapping[str, str]) -> None:
    """Raise :class:`CorruptCheckpoint` unless the (checksummed) metadata says the file is
    the one ``expect`` names."""
    if METADATA_CHECKSUM_KEY not in metadata:
        raise CorruptCheckpoint(
            f"{path}: records no checksummed identity (written by an older mispec), so it "
            "cannot be trusted to be this checkpoint"
        )
    wrong = [k for k in expect if metadata.get(k) != expect[k]]
    if wrong:
        said = ", ".join(f"{k} = {metadata.get(k)!r}" for k in wrong)
        want = ", ".join(f"{k} = {expect[k]!r}" for k in wrong)
        raise CorruptCheckpoint(
            f"{path}: the file says {said} but is read as {want} (a checkpoint moved, copied "
            "or swapped under another name)"
        )


def write_json(path: Path, data: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# ------------------------------------------------------------------ optimizer state
def optimizer_to_tensors(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Split ``optimizer.state_dict()`` into tensors and JSON metadata (no pickle)."""
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for idx, pstate in state["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{key}"] = value
            else:
                plain.setdefault(str(idx), {})[key] = value
    meta = {"optimizer": json.dumps({"param_groups": state["param_groups"], "plain": plain})}
    return tensors, meta


def optimizer_from_tensors(
    tensors: dict[str, torch.Tensor], meta: dict[str, str]
) -> dict[str, Any]:
    info = json.loads(meta["optimizer"])
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    for idx, values in info["plain"].items():
        state.setdefault(int(idx), {}).update(values)
    return {"state": state, "param_groups": info["param_groups"]}
