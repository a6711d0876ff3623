"""Validation of a ``train:`` entry's relations: ``init_from``, ``init``, ``freeze``, ``mixture``.

Everything a run would trip over is found before compute, each at its key in the spec:

* :func:`check_refs` (no building): a referenced model that does not exist, a cycle of
  references, a seed the referenced entry does not list, a step it does not have, optimizer
  state carried from a model that has none (or another optimizer); each mixture task's name
  and arguments.
* :func:`check_freeze` (builds the config, never weights): a ``freeze`` of every weight.
* :func:`check_weights` (builds configs, never weights): an ``init_from`` parent whose
  parameters differ in shape (each named, with both shapes), heads out of range, parameter
  names that match nothing, copies between differently shaped entries, and a mixture whose
  tasks clash on a shared vocabulary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mispec.errors import CheckpointError, Problem, UserError
from mispec.models import runs
from mispec.registry import did_you_mean

if TYPE_CHECKING:
    from mispec.sources.trained import TrainedSource
    from mispec.spec.yaml_source import SourceMap


def check_refs(src: TrainedSource, source_map: SourceMap) -> list[Problem]:
    from mispec.sources.trained import TrainedSource

    problems: list[Problem] = []
    others = src.others or {}
    for path, ref in src.refs():
        at = ("train", *path)
        if ref.model not in others:
            message = f"unknown model '{ref.model}'{did_you_mean(ref.model, list(others))}"
            problems.append(src.problem(source_map, (*at, "model"), message))
            continue
        cycle = _cycle(src, others)
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
        if (
            path == ("init_from",)
            and src.train.init_from
            and src.train.init_from.optimizer == "carry"
        ):
            if not isinstance(target, TrainedSource):
                message = (
                    f"model '{ref.model}' has no optimizer state to carry (only train: models do)"
                )
                problems.append(src.problem(source_map, (*at, "optimizer"), message))
            elif target.train.optimizer.name != src.train.optimizer.name:
                message = (
                    f"cannot carry {target.train.optimizer.name} state into a "
                    f"{src.train.optimizer.name} optimizer: use optimizer: fresh"
                )
                problems.append(src.problem(source_map, (*at, "optimizer"), message))
    return problems


def _cycle(src: TrainedSource, others: dict) -> list[str]:
    """The names around a cycle of references through ``src``, or ``[]``."""
    from mispec.sources.trained import TrainedSource

    def walk(name: str, path: list[str]) -> list[str]:
        node = others.get(name)
        if not isinstance(node, TrainedSource):
            return []
        for _, ref in node.refs():
            if ref.model == src.name:
                return [*path, ref.model]
            if ref.model not in path:
                found = walk(ref.model, [*path, ref.model])
                if found:
                    return found
        return []

    return walk(src.name, [src.name])


def check_mixture_tasks(src: TrainedSource, source_map: SourceMap) -> list[Problem]:
    from mispec.tasks import TASKS
    from mispec.validation.checks import _fn_params, _lookup, check_args

    mixture = src.train.mixture
    problems: list[Problem] = []
    if mixture is None:
        return problems
    at = ("models", src.name, "train", "mixture")
    if src.train.batch_size is None:
        message = "a task mixture needs a batch_size (its weights share each batch)"
        problems.append(src.problem(source_map, ("train", "batch_size"), message))
    steps = src.train.steps
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
        factory = _lookup(TASKS, part.task, (*where, "task"), source_map, problems, src.base_dir)
        if factory is not None:
            check_args(
                part.task_args,
                _fn_params(factory),
                getattr(factory, "__globals__", {}),
                (*where, "task_args"),
                source_map,
                problems,
                f"task '{part.task}'",
            )
    return problems


def check_weights(src: TrainedSource, source_map: SourceMap) -> list[Problem]:
    """Shapes, heads and parameter names against the built configs; mixture clashes."""
    from mispec.models.weight_targets import info_shapes, param_shapes, select, shape_mismatches
    from mispec.sources.trained import TrainedSource

    problems: list[Problem] = []
    seed = src.entry.seeds[0]
    cfg = runs.native_config(src.train, seed)
    mine = param_shapes(cfg)
    init_from = src.train.init_from
    if init_from is not None:
        parent = (src.others or {})[init_from.model]
        if isinstance(parent, TrainedSource):
            theirs = param_shapes(runs.native_config(parent.train, seed))
            ours = mine
        else:
            info = parent.validation_info()
            theirs = info_shapes(info) if info is not None else {}
            ours = info_shapes(src.info()) if info is not None else {}
        lines = shape_mismatches(ours, theirs, parent=init_from.model)
        if lines:
            message = f"model '{init_from.model}' does not fit this architecture: " + "; ".join(
                lines
            )
            problems.append(src.problem(source_map, ("train", "init_from", "model"), message))
    targets: list[tuple[tuple[str | int, ...], list, list]] = [
        (("init", i), op.heads, op.params) for i, op in enumerate(src.train.init)
    ]
    if src.train.freeze is not None:
        targets.append((("freeze",), src.train.freeze.heads, src.train.freeze.params))
    for path, heads, params in targets:
        selection, found = select(list(heads), list(params), cfg)
        for key, index, message in found:
            problems.append(src.problem(source_map, ("train", *path, key, index), message))
        op = src.train.init[int(path[1])] if path[0] == "init" else None
        if op is not None and op.source is not None and not found:
            donor = (src.others or {})[op.source.model]
            if not isinstance(donor, TrainedSource):
                continue  # shapes are checked when the checkpoint is read
            dcfg = runs.native_config(donor.train, seed)
            _, dfound = select(list(heads), list(params), dcfg)
            dshapes = param_shapes(dcfg)
            lines = [m for _, _, m in dfound] + shape_mismatches(
                {k: mine[k] for k in selection},
                {k: dshapes[k] for k in selection if k in dshapes},
                parent=op.source.model,
            )
            if lines:
                message = f"cannot copy from '{op.source.model}': " + "; ".join(lines)
                problems.append(src.problem(source_map, ("train", *path, "from", "model"), message))
    problems += _check_clashes(src, source_map)
    return problems


def check_freeze(src: TrainedSource, source_map: SourceMap) -> list[Problem]:
    """A ``freeze:`` that holds every weight whole leaves nothing to train (checked with the
    names, from the built config: no weights; a config that does not build is reported by
    the training checks)."""
    from mispec.models.weight_targets import param_shapes, select

    freeze = src.train.freeze
    if freeze is None:
        return []
    try:
        cfg = runs.native_config(src.train, src.entry.seeds[0])
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


def _check_clashes(src: TrainedSource, source_map: SourceMap) -> list[Problem]:
    from mispec.tasks import task_for
    from mispec.tasks.mixture import Mixture, clashes

    if src.train.mixture is None:
        return []
    try:
        mixture = task_for(src.train)
    except UserError as exc:
        return [src.problem(source_map, ("train", "mixture", "tasks"), str(exc))]
    assert isinstance(mixture, Mixture)
    return [
        src.problem(
            source_map,
            ("train", "mixture", "vocab"),
            f"{line}: give the tasks distinct tokens (e.g. eq_token) or use vocab: offset",
        )
        for line in clashes(mixture)
    ]
