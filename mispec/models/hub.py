"""The Hugging Face hub cache, read without network where possible (no torch import).

mispec looks in the local hub cache first (``local_files_only``) so that cached
checkpoints load with no network round-trip, and only goes online when the hub is
allowed (``HF_HUB_OFFLINE`` unset). The cache location is read at call time:
``HF_HUB_CACHE``, else ``$HF_HOME/hub``, else huggingface_hub's default.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from mispec.errors import CheckpointError

_TRUE = {"1", "true", "yes", "on"}


def is_offline() -> bool:
    return any(os.environ.get(v, "").lower() in _TRUE for v in ("HF_HUB_OFFLINE", "MISPEC_OFFLINE"))


def hf_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def repo_cache(repo_id: str) -> Path:
    return hf_cache_dir() / ("models--" + repo_id.replace("/", "--"))


def cached_revisions(repo_id: str) -> list[str]:
    """Revisions (branch/tag names) of ``repo_id`` present in the local cache."""
    refs = repo_cache(repo_id) / "refs"
    if not refs.is_dir():
        return []
    return sorted(str(p.relative_to(refs)) for p in refs.rglob("*") if p.is_file())


def snapshot_dir(repo_id: str, revision: str | None = None) -> Path | None:
    """The cached snapshot folder of ``revision`` (default ``main``), if any."""
    repo = repo_cache(repo_id)
    ref = repo / "refs" / (revision or "main")
    commit = ref.read_text().strip() if ref.is_file() else (revision or "")
    snap = repo / "snapshots" / commit
    return snap if commit and snap.is_dir() else None


def cached_config(repo_id: str, revision: str | None = None) -> dict | None:
    """``config.json`` of a cached revision (``revision``, else ``main``, else any)."""
    candidates = [revision] if revision else []
    candidates += ["main"] + cached_revisions(repo_id)
    for rev in candidates:
        snap = snapshot_dir(repo_id, rev)
        if snap is not None and (snap / "config.json").is_file():
            return json.loads((snap / "config.json").read_text())
    return None


def fetch_hint(repo_id: str, revision: str | None) -> str:
    rev = f" --revision {revision}" if revision else ""
    return (
        f"checkpoint {repo_id}{'@' + revision if revision else ''} is neither in the Hugging "
        f"Face cache ({hf_cache_dir()}) nor reachable on the hub. On a machine with network "
        f"run `huggingface-cli download {repo_id}{rev}`, copy its HF cache here (or point "
        "HF_HUB_CACHE at it) and set HF_HUB_OFFLINE=1."
    )


def tl_legacy_labels(repo_id: str) -> list[int]:
    """Checkpoint labels of a legacy TransformerLens repo (``checkpoints/*_<N>.pth``):
    from the cached snapshot when it holds them, else from the hub's file list."""
    pattern = re.compile(r"checkpoints/.*_(\d+)\.pth$")
    files: list[str] = []
    for rev in ["main", *cached_revisions(repo_id)]:
        snap = snapshot_dir(repo_id, rev)
        if snap is not None:
            files += [p.relative_to(snap).as_posix() for p in snap.rglob("*.pth")]
    if not any(pattern.match(f) for f in files) and not is_offline():
        try:
            from huggingface_hub import HfApi

            files = list(HfApi().list_repo_files(repo_id))
        except Exception as exc:  # network, auth, missing repo
            raise CheckpointError(
                f"cannot list the checkpoints of {repo_id}: {exc}. " + fetch_hint(repo_id, None)
            ) from exc
    labels = sorted({int(m.group(1)) for f in files if (m := pattern.match(f))})
    if not labels:
        raise CheckpointError(
            f"no checkpoints/*_<N>.pth files for {repo_id}. " + fetch_hint(repo_id, None)
        )
    return labels


def tl_legacy_file(repo_id: str, label: int) -> Path:
    """Local path of ``checkpoints/*_<label>.pth`` (downloaded when the hub is allowed)."""
    for rev in ["main", *cached_revisions(repo_id)]:
        snap = snapshot_dir(repo_id, rev)
        if snap is not None:
            hits = sorted(snap.glob(f"checkpoints/*_{label}.pth"))
            if hits:
                return hits[0]
    if is_offline():
        raise CheckpointError(f"checkpoint {label}: " + fetch_hint(repo_id, None))
    try:
        from huggingface_hub import HfApi, hf_hub_download

        names = [
            f
            for f in HfApi().list_repo_files(repo_id)
            if re.fullmatch(rf"checkpoints/.*_{label}\.pth", f)
        ]
        return Path(hf_hub_download(repo_id, names[0], cache_dir=hf_cache_dir()))
    except Exception as exc:
        raise CheckpointError(f"checkpoint {label}: {exc}. " + fetch_hint(repo_id, None)) from exc


def hub_json(repo_id: str, filename: str) -> dict:
    """A small json file of a repo, from the cache or (when allowed) the hub."""
    snap = snapshot_dir(repo_id, "main")
    if snap is not None and (snap / filename).is_file():
        return json.loads((snap / filename).read_text())
    if is_offline():
        raise CheckpointError(fetch_hint(repo_id, None))
    try:
        from huggingface_hub import hf_hub_download

        return json.loads(
            Path(hf_hub_download(repo_id, filename, cache_dir=hf_cache_dir())).read_text()
        )
    except Exception as exc:
        raise CheckpointError(f"{repo_id}/{filename}: {exc}. " + fetch_hint(repo_id, None)) from exc
