"""Validation of a ``train:`` entry that builds nothing: its task, ``mixture``, ``init_from``,
``init`` and ``freeze``.

Everything a run would trip over is found before compute, each at its key in the spec:

* :func:`check_task` and :func:`check_mixture_tasks`: each task's name and arguments; a
  mixture's batch size and schedule.
* :func:`check_refs`: a referenced model that does not exist, a cycle of references, a seed
  the referenced entry does not list, a step it does not have, optimizer state carried from
  a model that has none (or another optimizer).
* :func:`check_freeze` (builds the config, never weights): a ``freeze`` of every weight.

What needs the built configs (shapes, heads, parameter names, vocabularies, the model's size)
is :mod:`mispec.sources.trained_shapes`. ``src`` is the entry's source, ``train`` its
``train:`` block; ``others`` are the spec's sources by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mispec.errors import CheckpointError, Problem
from mispec.models import runs
from mispec.registry import did_you_mean
from mispec.spec.references import check_args, fn_params, lookup

if TYPE_CHECKING:
    from mispec.sources.base import ModelSource
    from mispec.spec.train import TrainSpec
    from mispec.spec.yaml_source import KeyPath, SourceMap


def check_task(
    task: str, task_args: dict[str, Any], where: KeyPath, source_map: SourceMap, base_dir: Path
) -> list[Problem]:
    """The task ``where.task`` names exists, and ``where.task_args`` fit its factory."""
    from mispec.tasks import TASKS

    problems: list[Problem] = []
    factory = lookup(TASKS, task, (*where, "task"), source_map, problems, base_dir)
    if factory is not None:
        check_args(
            task_args,
            fn_params(factory),
            getattr(factory, "__globals__", {}),
            (*where, "task_args"),
            source_map,
            problems,
            f"task '{task}'",
        )
    return problems


def check_refs(
    src: ModelSource, train: TrainSpec, others: Mapping[str, ModelSource], source_map: SourceMap
) -> list[Problem]:
    problems: list[Problem] = []
    for path, ref in train.checkpoint_refs():
        at = ("train", *path)
        if ref.model not in others:
            message = f"unknown model '{ref.model}'{did_you_mean(ref.model, list(others))}"
            problems.append(src.problem(source_map, (*at, "model"), message))
            continue
        cycle = _cycle(src.name, others)
        if cycle:
            message = "models start from each other in a cycle: " + " -> ".join(cycle)
            problems.append(src.problem(source_map, (*at, "model"), message))
            continue
        target = others[ref.model]
        seeds = [ref.seed] if ref.seed is not None else list(src.entry.seeds)
        lacking = [s for s in seeds if s not in target.entry.seeds]
        if lacking:
            message = (
                f"model '{ref.model}' has no seed {lacking[0]} (its seeds: "
                f"{list(target.entry.seeds)}): add it there, or name one with 'seed'"
            )
            problems.append(
                src.problem(source_map, (*at, "seed" if ref.seed else "model"), message)
            )
            continue
        if ref.step != "last":
            try:
                available = target.available_steps(seeds[0])
            except CheckpointError as exc:
                problems.append(src.problem(source_map, (*at, "model"), str(exc)))
                continue
            if ref.step not in available:
                span = f"{available[0]}..{available[-1]}" if available else "none"
                message = f"model '{ref.model}' has no step {ref.step} (its steps: {span})"
                problems.append(src.problem(source_map, (*at, "step"), message))
        if path == ("init_from",) and train.init_from and train.init_from.optimizer == "carry":
            target_train = target.train_spec()
            if target_train is None:
                message = (
                    f"model '{ref.model}' has no optimizer state to carry (only train: models do)"
                )
                problems.append(src.problem(source_map, (*at, "optimizer"), message))
            elif target_train.optimizer.name != train.optimizer.name:
                message = (
                    f"cannot carry {target_train.optimizer.name} state into a "
                    f"{train.optimizer.name} optimizer: use optimizer: fresh"
                )
                problems.append(src.problem(source_map, (*at, "optimizer"), message))
    return problems


def _cycle(start: str, others: Mapping[str, ModelSource]) -> list[str]:
    """The names around a cycle of references through the model ``start``, or ``[]``."""

    def walk(name: str, path: list[str]) -> list[str]:
        node = others.get(name)
        train = node.train_spec() if node is not None else None
        if train is None:
            return []
        for _, ref in train.checkpoint_refs():
            if ref.model == start:
                return [*path, ref.model]
            if ref.model not in path:
                found = walk(ref.model, [*path, ref.model])
                if found:
                    return found
        return []

    return walk(start, [start])


def check_mixture_tasks(src: ModelSource, train: TrainSpec, source_map: SourceMap) -> list[Problem]:
    mixture = train.mixture
    problems: list[Problem] = []
    if mixture is None:
        return problems
    at = ("models", src.name, "train", "mixture")
    if train.batch_size is None:
        message = "a task mixture needs a batch_size (its weights share each batch)"
        problems.append(src.problem(source_map, ("train", "batch_size"), message))
    steps = train.steps
    for i, phase in enumerate(mixture.schedule):
        if phase.step >= steps:
            message = (
                f"schedule step {phase.step} is never reached: training runs updates "
                f"0..{steps - 1} (steps: {steps}); move the phase before {steps} or remove it"
            )
            problems.append(
                src.problem(source_map, ("train", "mixture", "schedule", i, "step"), message)
            )
    for name, part in mixture.tasks.items():
        where = (*at, "tasks", name)
        problems += check_task(part.task, part.task_args, where, source_map, src.base_dir)
    return problems


def check_freeze(src: ModelSource, train: TrainSpec, source_map: SourceMap) -> list[Problem]:
    """A ``freeze:`` that holds every weight whole leaves nothing to train (checked with the
    names, from the built config: no weights; a config that does not build is reported by
    the training checks)."""
    from mispec.models.weight_targets import param_shapes, select

    freeze = train.freeze
    if freeze is None:
        return []
    try:
        cfg = runs.native_config(train, src.entry.seeds[0])
    except Exception:
        return []
    selection, found = select(list(freeze.heads), list(freeze.params), cfg)
    if found or not _covers_all(selection, param_shapes(cfg)):
        return []
    message = (
        "this freezes every weight, which leaves nothing to train: name only the weights "
        "to hold (e.g. params: ['embed.*'] or heads: [[0, 1]]), or drop `train:` and read "
        "a checkpoint instead"
    )
    return [src.problem(source_map, ("train", "freeze"), message)]


def _covers_all(selection: dict, shapes: dict) -> bool:
    """Whether a selection holds every parameter whole."""
    return all(key in selection and selection[key] is None for key in shapes)
