"""A finished run's results as experiment-tracker runs: plain data, no tracker imported.

One tracker run per (model, seed) and per point of any dim outside the metric vocabulary (a
sweep dim): its scalars by training step, its step-less values, its config (the spec's model
entry with its ``train`` block, the run's identity, the provenance) and the files to attach.
A value indexed by dims (``induction`` over ``layer``, ``head``) becomes one key per index,
labelled: ``induction/layer_1/head_0`` (``_``, not ``=``: MLflow refuses ``=`` in a key).
NaN is not logged: the assembly pads a seed that lacks another seed's step with NaN, and a
tracker shows a missing point as a gap.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mispec.metrics.vocabulary import DIMS

ARTIFACTS = ("spec.yaml", "provenance.json")  # files of the run folder a tracker run keeps
# what a tracker run's config keeps of provenance.json (not its checksums or summary)
PROVENANCE = (
    "run_id",
    "study",
    "spec_path",
    "spec_hash",
    "plan_key",
    "started",
    "finished",
    "seconds",
    "versions",
    "python",
    "platform",
    "device",
    "executor",
    "git_commit",
    "seeds",
    "counters",
    "store",
)
_UNSAFE = re.compile(r"[^\w.\- ]")  # what MLflow allows in a key (with ``/``), portably


@dataclass
class TrackerRun:
    """One tracker run: ``scalars[step][key]``, ``summary[key]`` (values without a step)."""

    name: str
    group: str
    point: dict[str, Any]  # model, seed and any sweep dims: where in the results it comes from
    config: dict[str, Any]
    scalars: dict[int, dict[str, float]] = field(default_factory=dict)
    summary: dict[str, float] = field(default_factory=dict)
    artifacts: list[Path] = field(default_factory=list)


@dataclass
class RunExport:
    """What the export of one run folder holds, before any tracker is touched."""

    study: str
    runs: list[TrackerRun]
    skipped: list[str]  # variables not logged as scalars, each with its reason


def label(value: Any) -> str:
    """A coordinate label as a key segment: ints as ints, other text made key-safe."""
    if isinstance(value, np.generic):
        value = value.item()
    return _UNSAFE.sub("_", str(value))


def key_of(name: str, index: dict[str, Any]) -> str:
    """``induction`` at ``{layer: 1, head: 0}`` → ``induction/layer_1/head_0``."""
    return "/".join([label(name), *(f"{label(d)}_{label(v)}" for d, v in index.items())])


def tracker_runs(run_folder: Path, tree: Any, max_values: int) -> RunExport:
    """The tracker runs of a run folder's results ``tree``; a variable with more than
    ``max_values`` values per step (or in all, without a step) is skipped and named."""
    study = str(tree.attrs.get("study", run_folder.name))
    spec = _read_yaml(run_folder / "spec.yaml")
    provenance = {  # the file itself is attached; its checksums and headline values are not
        k: v for k, v in _read_json(run_folder / "provenance.json").items() if k in PROVENANCE
    }
    artifacts = [run_folder / a for a in ARTIFACTS if (run_folder / a).is_file()]
    runs: list[TrackerRun] = []
    skipped: list[str] = []
    for model, node in sorted(tree.children.items()):
        ds = node.to_dataset()
        entry = (spec.get("models") or {}).get(model, {})
        numeric, notes = _numeric_vars(ds, max_values)
        skipped += [f"{model}/{n}" for n in notes]
        for point in _points(ds):
            config = {
                "mispec": {
                    "study": study,
                    "model": model,
                    **point,
                    "source": ds.attrs.get("source"),
                    "run_id": provenance.get("run_id"),
                    "plan_key": tree.attrs.get("plan_key"),
                    "spec_hash": provenance.get("spec_hash"),
                    "run_folder": str(run_folder.resolve()),
                },
                "model": entry,
                "provenance": provenance,
            }
            where = "/".join(f"{label(d)}_{label(v)}" for d, v in point.items())
            run = TrackerRun(
                f"{model}/{where}",
                f"{study}/{model}",
                {"model": model, **point},
                config,
                artifacts=list(artifacts),
            )
            _fill(run, ds, numeric, point)
            runs.append(run)
    return RunExport(study, runs, skipped)


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _run_dims(ds: Any) -> list[str]:
    """``seed`` and every dim outside the metric vocabulary (a sweep's): one run per point."""
    sweep = sorted(str(d) for d in ds.dims if d not in DIMS)
    return ["seed", *sweep] if "seed" in ds.dims else sweep


def _points(ds: Any) -> list[dict[str, Any]]:
    dims = _run_dims(ds)
    labels = [[_plain(v) for v in ds[d].values] for d in dims]
    return [dict(zip(dims, combo, strict=True)) for combo in itertools.product(*labels)]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _numeric_vars(ds: Any, max_values: int) -> tuple[list[str], list[str]]:
    """The variables (and numeric coords along ``step``) to log, and why the others are not."""
    run_dims = set(_run_dims(ds))
    keep, notes = [], []
    names = [*ds.data_vars, *(c for c in ds.coords if c not in ds.dims and "step" in ds[c].dims)]
    for name in names:
        var = ds[name]
        if var.dtype.kind not in "biuf":
            notes.append(f"{name} ({var.dtype} values are not scalars)")
            continue
        per = int(np.prod([n for d, n in var.sizes.items() if d not in run_dims | {"step"}]))
        if per > max_values:
            notes.append(f"{name} ({per} values per step > --max-values {max_values})")
            continue
        keep.append(name)
    return keep, notes


def _fill(run: TrackerRun, ds: Any, names: list[str], point: dict[str, Any]) -> None:
    for name in names:
        var = ds[name]
        var = var.sel({d: v for d, v in point.items() if d in var.dims})
        index_dims = [d for d in var.dims if d != "step"]
        stepped = "step" in var.dims
        values = var.transpose(*(["step"] if stepped else []), *index_dims).values
        steps = [int(s) for s in var["step"].values] if stepped else [None]
        labels = [var[d].values for d in index_dims]
        for i, step in enumerate(steps):
            at = values[i] if stepped else values
            for pos in np.ndindex(*at.shape):
                value = float(at[pos])
                if np.isnan(value):
                    continue
                key = key_of(
                    name,
                    {d: labels[k][j] for k, (d, j) in enumerate(zip(index_dims, pos, strict=True))},
                )
                if step is None:
                    run.summary[key] = value
                else:
                    run.scalars.setdefault(step, {})[key] = value
