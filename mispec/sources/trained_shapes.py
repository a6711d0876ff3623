"""Validation of a ``train:`` entry against its built configs (never weights), run once the
rest of the spec is valid: the task's argument values, the architecture against the task,
an ``init_from`` parent whose parameters differ in shape (each named, with both shapes),
heads out of range, parameter names that match nothing, copies between differently shaped
entries, a mixture whose tasks clash on a shared vocabulary, and the model's size.

``src`` is the entry's source, ``train`` its ``train:`` block; ``others`` are the spec's
sources by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from mispec.errors import Problem, UserError
from mispec.models import runs

if TYPE_CHECKING:
    from mispec.sources.base import ModelSource
    from mispec.spec.train import TrainSpec
    from mispec.spec.yaml_source import SourceMap

# A toy trainer: a model above this many parameters is a typo (or the wrong tool).
MAX_TRAIN_PARAMS = 1_000_000_000


def check_config(
    src: ModelSource, train: TrainSpec, others: Mapping[str, ModelSource], source_map: SourceMap
) -> list[Problem]:
    """The config builds (task arguments, architecture), the weights it names and starts
    from fit it, and the model is a toy's size."""
    try:
        cfg = runs.native_config(train, src.entry.seeds[0])
    except UserError as exc:
        where = "arch" if str(exc).startswith("arch.") else "task_args"
        if where == "task_args" and train.mixture is not None:
            where = "mixture"
        return [src.problem(source_map, ("train", where), str(exc))]
    problems = check_weights(src, train, others, source_map)
    if problems:
        return problems
    d, layers = cfg["d_model"], cfg["n_layers"]
    attn = 4 * cfg["n_heads"] * cfg["d_head"] * d
    mlp = 0 if cfg["attn_only"] else 2 * d * cfg.get("d_mlp", 4 * d)
    params = 2 * cfg["d_vocab"] * d + cfg["n_ctx"] * d + layers * (attn + mlp)
    if params <= MAX_TRAIN_PARAMS:
        return []
    return [
        src.problem(
            source_map,
            ("train", "arch"),
            f"this model would have about {params:.1e} parameters (~{params * 16 / 2**30:.0f}"
            f" GiB to train with Adam); mispec trains toy models of at most "
            f"{MAX_TRAIN_PARAMS:.0e}: check d_model, d_head, n_heads, n_layers and d_mlp",
        )
    ]


def check_weights(
    src: ModelSource, train: TrainSpec, others: Mapping[str, ModelSource], source_map: SourceMap
) -> list[Problem]:
    """Shapes, heads and parameter names against the built configs; mixture clashes."""
    from mispec.models.weight_targets import info_shapes, param_shapes, select, shape_mismatches

    problems: list[Problem] = []
    seed = src.entry.seeds[0]
    cfg = runs.native_config(train, seed)
    mine = param_shapes(cfg)
    init_from = train.init_from
    if init_from is not None:
        parent = others[init_from.model]
        parent_train = parent.train_spec()
        if parent_train is not None:
            theirs = param_shapes(runs.native_config(parent_train, seed))
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
        (("init", i), op.heads, op.params) for i, op in enumerate(train.init)
    ]
    if train.freeze is not None:
        targets.append((("freeze",), train.freeze.heads, train.freeze.params))
    for path, heads, params in targets:
        selection, found = select(list(heads), list(params), cfg)
        for key, index, message in found:
            problems.append(src.problem(source_map, ("train", *path, key, index), message))
        op = train.init[int(path[1])] if path[0] == "init" else None
        if op is not None and op.source is not None and not found:
            donor_train = others[op.source.model].train_spec()
            if donor_train is None:
                continue  # shapes are checked when the checkpoint is read
            dcfg = runs.native_config(donor_train, seed)
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
    problems += _check_clashes(src, train, source_map)
    return problems


def _check_clashes(src: ModelSource, train: TrainSpec, source_map: SourceMap) -> list[Problem]:
    from mispec.tasks import task_for
    from mispec.tasks.mixture import Mixture, clashes

    if train.mixture is None:
        return []
    try:
        mixture = task_for(train)
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
