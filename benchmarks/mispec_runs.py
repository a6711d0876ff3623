"""mispec cold / warm / changed-metric runs of a benchmark spec, and reading their results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import Timing, timed

METRIC_VARS = ("loss", "per_token_loss", "induction", "prev_token")
PROFILE: dict[str, Path | None] = {"path": None}  # set by run_all: the benchmark's profile


def write_profile(folder: Path, threads: int) -> Path:
    """A local execution profile (CPU, batch 64 = all prompts at once) that runs mispec under
    the same torch thread count as the hand-written contenders."""
    from mispec.execute.profile import Profile

    lines = ["name: bench", "kind: local", "device: cpu", "batch_size: 64"]
    if "torch_threads" in Profile.model_fields:  # mispec pins threads per run
        lines.append(f"torch_threads: {threads}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bench-profile.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    PROFILE["path"] = path
    return path


def write_batched_profile(folder: Path, checkpoints: int) -> Path:
    """The benchmark profile plus ``batch_checkpoints``: ``checkpoints`` checkpoints per
    forward call (``vmap`` over their stacked weights, mispec/execute/work/batched.py)."""
    base = PROFILE["path"]
    assert base is not None, "write_profile first"
    path = folder / f"bench-profile-batched-{checkpoints}.yaml"
    text = base.read_text(encoding="utf-8").replace("name: bench", "name: bench-batched")
    path.write_text(text + f"batch_checkpoints: {checkpoints}\n", encoding="utf-8")
    return path


def run_spec(
    spec: Path, store: Path, out: Path, profile: Path | None = None
) -> tuple[Timing, dict[str, int]]:
    import mispec

    profile = profile or PROFILE["path"]
    with timed() as t:
        result = mispec.run(
            spec,
            progress=False,
            store=store,
            out=out,
            executor=str(profile) if profile else None,
        )
    t.extra["mispec_seconds"] = result.seconds
    return t, dict(result.counters)


def read_results(run_dir: Path, model: str) -> dict[int, dict[str, Any]]:
    """The run's four metrics per step (seed 0), shaped like the baselines' results."""
    import mispec

    ds = mispec.open_results(run_dir)[model].to_dataset().sel(seed=0)
    out: dict[int, dict[str, Any]] = {}
    for step in ds.step.values:
        row = ds.sel(step=step)
        out[int(step)] = {
            "loss": float(row.loss),
            "per_token_loss": np.asarray(row.per_token_loss.values),
            "induction": np.asarray(row.induction.transpose("layer", "head").values),
            "prev_token": np.asarray(row.prev_token.transpose("layer", "head").values),
        }
    return out
