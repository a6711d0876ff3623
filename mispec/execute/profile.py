"""Execution profiles (``executors/*.yaml``): where and how to run, validated like specs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mispec.errors import ExecutorError, SpecError


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "local"
    kind: Literal["local", "dask-local", "dask-remote", "dask-slurm"] = "local"
    device: str = "auto"  # auto: CUDA when present
    batch_size: Annotated[int, Field(gt=0)] | None = 64  # prompts per forward micro-batch
    store: str | None = None  # store folder or fsspec URL; default .mispec beside the spec
    workers: Annotated[int, Field(gt=0)] = 2  # dask-local
    threads_per_worker: Annotated[int, Field(gt=0)] = 1
    address: str | None = None  # dask-remote
    slurm: dict[str, object] = Field(default_factory=dict)  # dask-slurm: SLURMCluster kwargs
    jobs: Annotated[int, Field(gt=0)] = 1
    retries: Annotated[int, Field(ge=0)] = 2
    # torch intra-op threads per process; null: torch's default. The same count in every
    # executor keeps results bit-identical (see mispec/execute/threads.py).
    torch_threads: Annotated[int, Field(gt=0)] | None = 1


PROFILE_DIR = Path(__file__).resolve().parents[2] / "executors"


def load_profile(name_or_path: str | None) -> Profile:
    """A profile by name (``executors/<name>.yaml`` of this repo or the cwd) or by path."""
    if name_or_path is None or name_or_path == "local":
        candidates = [Path("executors/local.yaml"), PROFILE_DIR / "local.yaml"]
        for c in candidates:
            if c.is_file():
                return _read(c)
        return Profile()
    path = Path(name_or_path)
    if not path.suffix:
        options = [Path("executors") / f"{name_or_path}.yaml", PROFILE_DIR / f"{name_or_path}.yaml"]
        path = next((p for p in options if p.is_file()), options[0])
    if not path.is_file():
        known = sorted(
            {
                p.stem
                for d in (Path("executors"), PROFILE_DIR)
                if d.is_dir()
                for p in d.glob("*.yaml")
            }
        )
        from mispec.registry import did_you_mean

        raise ExecutorError(
            f"unknown execution profile '{name_or_path}' (no {path})"
            f"{did_you_mean(name_or_path, known)}"
        )
    return _read(path)


def _read(path: Path) -> Profile:
    from mispec.spec.load import _problems_from
    from mispec.spec.yaml_source import read_yaml_file

    data, source = read_yaml_file(path)
    try:
        return Profile.model_validate(data or {})
    except ValidationError as exc:
        raise SpecError(_problems_from(exc, data, source, Profile)) from None
