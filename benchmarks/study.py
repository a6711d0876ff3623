"""The default study end to end, training included: serial vs parallel training processes.

Both contenders are the CLI (`mispec run specs/induction_heads.yaml --quiet`) in a child
process from an empty store, under profiles that differ only in the local executor's
``processes`` (1: every run in the run's own process; ``auto``: one training process per
(model, seed) run while cores are free). Repetitions alternate the two, so the machine's drift
hits both alike; the ratio of the best of each is what counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.common import PYTHON, REPO, fresh_dir, run_child

SPEC = REPO / "specs" / "induction_heads.yaml"


def _profile(work: Path, name: str, processes: str) -> Path:
    path = work / f"study-{name}.yaml"
    path.write_text(
        f"name: study-{name}\nkind: local\ndevice: cpu\ntorch_threads: 1\n"
        f"processes: {processes}\nparallel_min_steps: 1\n",
        encoding="utf-8",
    )
    return path


def measure(work: Path, repeats: int, log: Any) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    profiles = {
        "serial": _profile(work, "serial", "1"),
        "parallel": _profile(work, "parallel", "auto"),
    }
    walls: dict[str, list[float]] = {k: [] for k in profiles}
    results: dict[str, Any] = {}
    for rep in range(repeats):
        for name, profile in profiles.items():
            store = fresh_dir(work / "stores" / f"study-{name}")
            out = fresh_dir(work / "runs" / f"study-{name}")
            log(f"study: {name} run {rep + 1}/{repeats} from an empty store")
            child = run_child(
                [
                    PYTHON,
                    "-m",
                    "mispec.cli.main",
                    "run",
                    str(SPEC),
                    "--quiet",
                    "--store",
                    str(store),
                    "--out",
                    str(out),
                    "--executor",
                    str(profile),
                ]
            )
            if child["rc"] != 0:
                raise RuntimeError(f"study {name} failed: {child['stderr'][-3000:]}")
            walls[name].append(child["wall"])
            results[name] = out / "results.zarr"
    import xarray as xr

    a = xr.open_datatree(results["serial"], engine="zarr")
    b = xr.open_datatree(results["parallel"], engine="zarr")
    identical = all(a[g].to_dataset().equals(b[g].to_dataset()) for g in a.groups if g != "/")
    best = {k: min(v) for k, v in walls.items()}
    return {
        "walls": walls,
        "best": best,
        "ratio": best["parallel"] / best["serial"],
        "identical": identical,
        "repeats": repeats,
    }
