"""Stable content keys: a hash of canonical JSON, identical across processes and key order."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

KEY_LENGTH = 20  # hex chars (80 bits): collision-free for any realistic store


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return value  # keep 1.0 distinct from 1 only through JSON's own repr
    if hasattr(value, "model_dump"):
        return _canonical(value.model_dump(mode="json"))
    return value


def canonical_json(value: Any) -> str:
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"), default=str)


def content_key(*parts: Any) -> str:
    """Hash of the canonical JSON of ``parts``; the key of a plan node or store entry."""
    digest = hashlib.blake2b(canonical_json(list(parts)).encode(), digest_size=32)
    return digest.hexdigest()[:KEY_LENGTH]


def bytes_digest(data: bytes | memoryview) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()
