"""From a result back to the model: the checkpoint of a run's model, at a seed and step.

:func:`load_model` gives the TransformerLens bridge the metrics used (hooks and all), opened
by the model's own source exactly as the executor opens it (``source.open(seed, store)``
then ``load(step)``); :func:`export_checkpoint` writes that checkpoint as a standard Hugging
Face folder (:mod:`mispec.models.hf_export`). A run is named by its run folder
(``runs/<name>/``, or one of its ``history/<run_id>/``) or by its spec file (with its store).
The steps offered are the run's checkpoints of that (model, seed): what its metrics read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mispec.errors import CheckpointError, ResultsError, SpecError, UserError
from mispec.spec.load import LoadedSpec

if TYPE_CHECKING:
    from mispec.models.hf_export import Exported
    from mispec.sources.base import ModelSource


@dataclass(frozen=True)
class RunModel:
    """One (model, seed) of a run: its source, its store and the run's steps of it."""

    name: str
    seed: int
    steps: tuple[int, ...]
    source: ModelSource
    store_dir: Path
    dtype: str

    def pick(self, step: int | None) -> int:
        """``step`` if it is one of the run's checkpoints (default: the last one)."""
        if step is None:
            return self.steps[-1]
        if step not in self.steps:
            raise CheckpointError(
                f"{self.what()}: step {step} is not one of the run's checkpoints; "
                f"available: {_listing(self.steps)}"
            )
        return step

    def what(self, step: int | None = None) -> str:
        at = "" if step is None else f" step {step}"
        return f"model '{self.name}' seed {self.seed}{at}"

    def open(self, step: int, *, device: str = "cpu") -> Any:
        """The source's handle, as the executor opens it; a ``train:`` step the store does
        not hold is an error here (a run trains; loading a model never does)."""
        if self.source.pending_training(self.seed, [step], self.store_dir):
            raise CheckpointError(
                f"{self.what(step)} is not in the store {self.store_dir} (not trained yet, or "
                "collected by gc); run the spec again to train it"
            )
        return self.source.open(self.seed, self.store_dir, device=device, dtype=self.dtype)


def _listing(steps: tuple[int, ...] | list[int], most: int = 24) -> str:
    if len(steps) <= most:
        return ", ".join(map(str, steps))
    half = most // 2
    return f"{', '.join(map(str, steps[:half]))}, … ({len(steps) - most} more) …, " + ", ".join(
        map(str, steps[-half:])
    )


def run_model(
    run_or_spec: str | Path | LoadedSpec,
    model: str,
    *,
    seed: int | None = None,
    store: str | Path | None = None,
) -> RunModel:
    """The (model, seed) of a run folder or spec; ``seed`` may be left out when the model
    has one. Unknown models and seeds are ``UserError``s listing what there is."""
    loaded, store_arg = _spec_of(run_or_spec, store)
    from mispec.results.planned import plan

    planned = plan(loaded, store=store_arg)
    models = list(loaded.spec.models)
    if model not in models:
        raise UserError(
            f"no model '{model}' in {loaded.path}; its models: {', '.join(models) or 'none'}"
        )
    seeds = list(loaded.spec.models[model].seeds)
    if seed is None:
        if len(seeds) != 1:
            raise UserError(f"model '{model}' has seeds {seeds}: choose one (seed=, --seed)")
        seed = seeds[0]
    if seed not in seeds:
        raise UserError(f"model '{model}' has no seed {seed}; its seeds: {seeds}")
    series = planned.plan.resolution.series[(model, seed)]
    return RunModel(
        model,
        seed,
        tuple(series.steps),
        planned.plan.resolution.sources[model],
        planned.store_dir,
        loaded.spec.models[model].dtype,
    )


def _spec_of(
    run_or_spec: str | Path | LoadedSpec, store: str | Path | None
) -> tuple[LoadedSpec, str | Path | None]:
    """The spec of a run folder (verified, its relative paths against where it lived, and the
    store it ran on unless ``store`` names one) or of a spec file."""
    from mispec.validation.load import load_spec

    if isinstance(run_or_spec, LoadedSpec):
        return run_or_spec, store
    path = Path(run_or_spec)
    if not path.exists():
        raise UserError(f"{path}: no such run folder or spec file")
    if not path.is_dir():
        return load_spec(path), store
    from mispec.store.checksums import check_run_folder
    from mispec.store.run_folder import read_run_json

    spec_file = path / "spec.yaml"
    provenance = read_run_json(path, "provenance.json")
    if not spec_file.is_file() or provenance is None:
        raise ResultsError(f"{path}: not a mispec run folder (needs spec.yaml and provenance.json)")
    check_run_folder(path)
    return run_folder_spec(path, provenance), store or provenance.get("store")


def run_folder_spec(folder: Path, provenance: dict[str, Any]) -> LoadedSpec:
    """The ``spec.yaml`` of a (verified) run folder, validated with its relative paths
    (``path:`` models, plugins) resolved where the spec lived when it ran (provenance's
    ``spec_path``), not in the run folder."""
    from mispec.validation.checks import check_spec
    from mispec.validation.load import load_spec

    spec_file = folder / "spec.yaml"
    loaded = load_spec(spec_file, check=False)
    original = Path(provenance.get("spec_path", spec_file))
    if original.parent.is_dir():  # relative paths resolve where the spec lived
        loaded = LoadedSpec(loaded.spec, original, loaded.source, loaded.text)
    problems = check_spec(loaded.spec, loaded.source, loaded.base_dir)
    if problems:
        raise SpecError(problems)
    return loaded


def load_model(
    run_or_spec: str | Path | LoadedSpec,
    model: str,
    *,
    seed: int | None = None,
    step: int | None = None,
    store: str | Path | None = None,
    device: str = "cpu",
) -> Any:
    """The TransformerLens bridge of ``model`` at ``seed`` and ``step`` (default: the run's
    last checkpoint) — the one the run's metrics read: ``run_with_cache`` and hooks work
    as on any bridge. ``run_or_spec``: a run folder or a spec file (``store``: its store,
    default the spec's). A step that is not one of the run's checkpoints is a
    ``CheckpointError`` listing them."""
    which = run_model(run_or_spec, model, seed=seed, store=store)
    at = which.pick(step)
    handle = which.open(at, device=device)
    try:
        return handle.load(at)
    finally:
        handle.close()  # the bridge stays usable; the handle only lets go of it


def export_checkpoint(
    run_or_spec: str | Path | LoadedSpec,
    model: str,
    out: str | Path,
    *,
    seed: int | None = None,
    step: int | None = None,
    store: str | Path | None = None,
) -> Exported:
    """Write ``model`` at ``seed`` and ``step`` as a Hugging Face folder at ``out``
    (``config.json`` + ``model.safetensors``): HF models as they are, TransformerLens-native
    ones as the exact GPT-2 (:mod:`mispec.models.hf_gpt2`) or refused when there is none.
    ``out`` must be absent or empty; nothing is written on any error."""
    from mispec.models.hf_export import check_destination, export_step

    out = Path(out).resolve()
    check_destination(out)
    which = run_model(run_or_spec, model, seed=seed, store=store)
    at = which.pick(step)
    handle = which.open(at)
    try:
        return export_step(handle, at, out, what=which.what(at))
    finally:
        handle.close()
