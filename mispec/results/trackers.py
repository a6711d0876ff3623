"""Export a finished run to the experiment trackers researchers already use: Weights & Biases in
offline mode (never the network; ``wandb sync`` uploads later) and MLflow with a local file
store. The mapping onto tracker runs is :mod:`mispec.results.tracker_runs`; here each tracker's
own client writes it. The client libraries are the optional ``trackers`` extra, imported only
when an export runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mispec.errors import MissingDependencyError, UserError
from mispec.results.tracker_runs import RunExport, TrackerRun, tracker_runs

TRACKERS = ("wandb", "mlflow")
DEFAULT_DIRS = {"wandb": ".", "mlflow": "mlruns"}  # each tracker's own default place
_PARAM_MAX = 6000  # MLflow's longest param value
_PARAM_UNSAFE = re.compile(r"[^/\w.\- ]")  # what MLflow refuses in a param key


@dataclass
class ExportedRun:
    name: str
    id: str
    steps: int
    keys: int


@dataclass
class ExportReport:
    tracker: str
    dir: Path
    project: str
    runs: list[ExportedRun]
    skipped: list[str]


def export_run(
    run: str | Path,
    to: str,
    dir: str | Path | None = None,
    *,
    project: str | None = None,
    max_values: int = 256,
) -> ExportReport:
    """Write the results of run folder ``run`` to tracker ``to`` (``wandb`` or ``mlflow``)
    under ``dir``: one tracker run per (model, seed, sweep point). Checks the tracker, the run
    and the client library before anything is written."""
    from mispec.results.open import open_results

    if to not in TRACKERS:
        raise UserError(f"unknown tracker {to!r}: choose one of {', '.join(TRACKERS)}")
    if max_values < 1:
        raise UserError(f"--max-values must be at least 1, got {max_values}")
    _client(to)
    tree = open_results(run).load()
    folder = Path(run)
    folder = folder.parent if folder.name == "results.zarr" else folder
    export = tracker_runs(folder, tree, max_values)
    out = Path(dir if dir is not None else DEFAULT_DIRS[to]).resolve()
    name = project or export.study
    write = _write_wandb if to == "wandb" else _write_mlflow
    runs = write(export, out, name)
    return ExportReport(to, out, name, runs, export.skipped)


def _client(to: str) -> Any:
    """The tracker's client module, or a :class:`MissingDependencyError` naming the extra."""
    import importlib

    package = {"wandb": "wandb", "mlflow": "mlflow-skinny"}[to]
    try:
        return importlib.import_module("wandb" if to == "wandb" else "mlflow.tracking")
    except ImportError:
        raise MissingDependencyError(
            f"export --to {to}", "trackers", f"pip install {package}"
        ) from None


def _counts(run: TrackerRun) -> tuple[int, int]:
    keys = {k for values in run.scalars.values() for k in values} | set(run.summary)
    return len(run.scalars), len(keys)


# --------------------------------------------------------------------------- W&B
def _write_wandb(export: RunExport, out: Path, project: str) -> list[ExportedRun]:
    wandb = _client("wandb")
    out.mkdir(parents=True, exist_ok=True)
    settings = wandb.Settings(
        silent=True, console="off", disable_git=True, save_code=False, x_disable_stats=True
    )
    done = []
    with _env(WANDB_MODE="offline", WANDB_SILENT="true"):
        for tr in export.runs:
            run = wandb.init(
                mode="offline",
                dir=str(out),
                project=project,
                name=tr.name,
                group=tr.group,
                tags=[f"{k}:{v}"[:64] for k, v in tr.point.items()],
                config=tr.config,
                settings=settings,
            )
            try:
                for step in sorted(tr.scalars):
                    run.log(tr.scalars[step], step=step)
                run.summary.update(tr.summary)
                for path in tr.artifacts:  # the run's files folder travels with the run
                    shutil.copy(path, Path(run.dir) / path.name)
            finally:
                run.finish()
            done.append(ExportedRun(tr.name, run.id, *_counts(tr)))
    return done


# --------------------------------------------------------------------------- MLflow
def _write_mlflow(export: RunExport, out: Path, experiment: str) -> list[ExportedRun]:
    tracking = _client("mlflow")
    from mlflow.entities import Metric, Param

    out.mkdir(parents=True, exist_ok=True)
    done = []
    with _env(MLFLOW_ALLOW_FILE_STORE="true"):  # MLflow >= 3.7 asks for this opt-in
        client = tracking.MlflowClient(tracking_uri=out.as_uri())
        found = client.get_experiment_by_name(experiment)
        exp_id = found.experiment_id if found else client.create_experiment(experiment)
        for tr in export.runs:
            tags = {f"mispec.{k}": str(v) for k, v in tr.point.items()}
            run = client.create_run(exp_id, run_name=tr.name, tags=tags)
            run_id = run.info.run_id
            params = [Param(k, v) for k, v in flat_params(tr.config).items()]
            now = int(time.time() * 1000)
            metrics = [
                Metric(k, v, now, step) for step, vs in tr.scalars.items() for k, v in vs.items()
            ] + [Metric(k, v, now, 0) for k, v in tr.summary.items()]
            for i in range(0, len(params), 100):  # MLflow's batch limits
                client.log_batch(run_id, params=params[i : i + 100])
            for i in range(0, len(metrics), 1000):
                client.log_batch(run_id, metrics=metrics[i : i + 1000])
            for path in tr.artifacts:
                client.log_artifact(run_id, str(path))
            client.set_terminated(run_id)
            done.append(ExportedRun(tr.name, run_id, *_counts(tr)))
    return done


def flat_params(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config → MLflow params: ``model.train.steps`` = ``"40"`` (keys made key-safe,
    values cut at MLflow's limit)."""
    out: dict[str, str] = {}
    for k, v in config.items():
        key = prefix + _PARAM_UNSAFE.sub("_", str(k))
        if isinstance(v, dict) and v:
            out.update(flat_params(v, key + "."))
        else:
            out[key] = str(v)[:_PARAM_MAX]
    return out


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    """Set environment variables for the export, restoring what was there after."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
