"""Checks of metric args against what each metric declares in its ``@metric`` record and
against the models it runs on, before any compute (run by ``check_spec``, every problem
collected, each at its arg in the spec):

* ``check=``: the metric's own verdict on its args together (two positions that must come in
  order);
* ``indexes=``: an arg naming a layer, head, neuron, position or token is inside every model
  the metric runs on whose shape is known before running (a trained model's ``arch``, a local
  folder's config; a pretrained model's config may need the hub: its args are checked when the
  run loads it);
* ``sized_by=``: two metrics of one model that give a result dim different lengths (the
  results of a model share each dim: a PCA with ``k: 2`` beside one with ``k: 3``);
* ``hooks=``: every hook an activation metric reads exists on the models it runs on (a
  TransformerLens hook template, or a name the model's bridge has: a native model's hook names
  are listed from its config without training).

Nothing here names a built-in metric: each metric says what its args mean.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mispec.errors import Problem
from mispec.registry import did_you_mean
from mispec.spec.schema import Spec
from mispec.spec.yaml_source import KeyPath, SourceMap

if TYPE_CHECKING:
    from mispec.metrics.core import MetricDef
    from mispec.models.info import ModelInfo
    from mispec.sources import ModelSource

_AXIS_WORDS = {
    "layer": "layers",
    "head": "heads",
    "neuron": "MLP neurons",
    "pos": "positions (n_ctx)",
    "vocab": "tokens (d_vocab)",
}
_CONCRETE_LAYER = re.compile(r"^blocks\.(\d+)\.")


def metric_arg_problems(spec: Spec, source: SourceMap, base_dir: Path) -> list[Problem]:
    defs = _metric_defs(spec, base_dir)
    infos = _model_infos(spec, base_dir)
    problems: list[Problem] = []
    for name, mdef in defs.items():
        m = spec.metrics[name]
        path: KeyPath = ("metrics", name, "args")
        try:
            found = mdef.arg_problems(m.args)
        except Exception:  # args of the wrong type: reported by the type checks
            found = {}
        for arg, message in found.items():
            at = (*path, arg) if arg in m.args else ("metrics", name)
            problems.append(source.problem(at, message, at_key=arg not in m.args))
        for model in m.models or list(spec.models):
            info = infos.get(model)
            if info is None:
                continue
            problems.extend(_index_problems(mdef, m.args, info, path, source))
    problems.extend(_sized_by_problems(spec, defs, source))
    problems.extend(_hook_problems(spec, defs, infos, source, base_dir))
    return problems


def _metric_defs(spec: Spec, base_dir: Path) -> dict[str, MetricDef]:
    """The ``MetricDef`` of each metric whose function resolves (others are reported by the
    name checks)."""
    from mispec.metrics.core import METRICS, MetricDef, load_builtin_metrics

    load_builtin_metrics()
    out: dict[str, MetricDef] = {}
    for name, m in spec.metrics.items():
        try:
            mdef = METRICS.get_or_none(m.fn, base_dir)
        except Exception:
            continue
        if isinstance(mdef, MetricDef):
            out[name] = mdef
    return out


def _model_infos(spec: Spec, base_dir: Path) -> dict[str, ModelInfo | None]:
    """Each model's shape where its source knows it from local files (else None)."""
    from mispec.sources import source_for

    built: dict[str, ModelSource] = {}
    for name, entry in spec.models.items():
        try:
            built[name] = source_for(name, entry, base_dir)
        except Exception:  # reported by the model checks
            continue
    for src in built.values():
        try:
            src.bind(built)
        except Exception:
            continue
    return {name: src.validation_info() for name, src in built.items()}


# --------------------------------------------------------------------------- indexes
def _index_problems(
    mdef: MetricDef, args: dict[str, Any], info: ModelInfo, path: KeyPath, source: SourceMap
) -> list[Problem]:
    from mispec.metrics.core import INDEX_AXES

    problems = []
    for arg, axes in mdef.indexes.items():
        value = args.get(arg)
        if value is None:
            continue
        entries = _entries(value, len(axes))
        if entries is None:  # a shape the type checks report
            continue
        sizes = [getattr(info, INDEX_AXES[a]) for a in axes]
        for i, entry in enumerate(entries):
            for axis, size, index in zip(axes, sizes, entry, strict=True):
                if size is not None and isinstance(index, int) and 0 <= index < size:
                    continue
                has = (
                    f"has no {_AXIS_WORDS[axis]}"
                    if size is None
                    else f"has {size} {_AXIS_WORDS[axis]}"
                )
                valid = "" if size is None else f" (valid: 0..{size - 1})"
                at = (*path, arg) if not isinstance(value, list) else (*path, arg, i)
                problems.append(
                    source.problem(
                        at,
                        f"{axis} {index!r} does not exist in model '{info.name}', which {has}"
                        f"{valid}; pick one that does",
                    )
                )
                break
    return problems


def _entries(value: Any, n_axes: int) -> list[tuple[Any, ...]] | None:
    """An index arg as a list of index tuples: ``3`` / ``[1, 2]`` for one axis, ``[[0, 1],
    [1, 0]]`` (or one ``[0, 1]``) for several; None for a shape that fits neither."""
    if n_axes == 1:
        items = value if isinstance(value, list) else [value]
        return [(v,) for v in items] if all(not isinstance(v, list) for v in items) else None
    if isinstance(value, list) and value and not isinstance(value[0], list):
        value = [value]
    if not isinstance(value, list) or not all(
        isinstance(v, list) and len(v) == n_axes for v in value
    ):
        return None
    return [tuple(v) for v in value]


# --------------------------------------------------------------------------- sized dims
def _sized_by_problems(spec: Spec, defs: dict[str, MetricDef], source: SourceMap) -> list[Problem]:
    problems: dict[tuple[str, str], Problem] = {}  # by (metric, dim): once, whatever the models
    for model in spec.models:
        first: dict[str, tuple[str, Any]] = {}  # dim -> (metric, size)
        for name, mdef in defs.items():
            m = spec.metrics[name]
            if model not in (m.models or list(spec.models)):
                continue
            bound = mdef.bind_args(m.args)
            for dim, arg in mdef.sized_by.items():
                size = bound.get(arg)
                if dim not in first:
                    first[dim] = (name, size)
                    continue
                other, other_size = first[dim]
                if size != other_size and (name, dim) not in problems:
                    at = ("metrics", name, "args", arg) if arg in m.args else ("metrics", name)
                    problems[(name, dim)] = source.problem(
                        at,
                        f"'{name}' gives dim '{dim}' {size} entries ({arg}: {size}), but "
                        f"'{other}' gives it {other_size}, and the results of model "
                        f"'{model}' share each dim: use the same {arg} in both, or run "
                        "them on different models (`models:`)",
                        at_key=arg not in m.args,
                    )
    return list(problems.values())


# --------------------------------------------------------------------------- hooks
def _hook_problems(
    spec: Spec,
    defs: dict[str, MetricDef],
    infos: dict[str, ModelInfo | None],
    source: SourceMap,
    base_dir: Path,
) -> list[Problem]:
    """Hooks an activation metric reads that a model it runs on does not have."""
    from mispec.metrics.core import PSEUDO_HOOKS, TL_HOOK_TEMPLATES

    known = set(TL_HOOK_TEMPLATES)
    problems: list[Problem] = []
    native_hooks: dict[str, set[str] | None] = {}
    for name, mdef in defs.items():
        m = spec.metrics[name]
        if mdef.kind != "activation":
            continue
        try:
            hooks = [h for h in mdef.hooks_for(m.args) if h not in PSEUDO_HOOKS]
        except Exception:
            continue
        for model in m.models or list(spec.models):
            info = infos.get(model)
            for hook in hooks:
                message = _hook_problem(hook, known, info, model, spec, base_dir, native_hooks)
                if message:
                    problems.append(
                        source.problem(
                            ("metrics", name, "fn"),
                            f"metric '{m.fn}' reads hook '{hook}', {message}",
                        )
                    )
                    break
            else:
                continue
            break
    return problems


def _hook_problem(
    hook: str,
    known: set[str],
    info: ModelInfo | None,
    model: str,
    spec: Spec,
    base_dir: Path,
    native_hooks: dict[str, set[str] | None],
) -> str | None:
    """Why ``model`` lacks ``hook``, or None. A hook template TransformerLens names is taken
    on trust (an attention-only model's MLP hooks aside); any other is looked up in a native
    model's own hook names, and left to the run for a model only the run builds."""
    concrete = _CONCRETE_LAYER.match(hook)
    if concrete and info is not None and int(concrete.group(1)) >= info.n_layers:
        return (
            f"but model '{model}' has {info.n_layers} layers: name a layer below "
            f"{info.n_layers}, or 'blocks.{{layer}}.…' for every layer"
        )
    template = _CONCRETE_LAYER.sub("blocks.{layer}.", hook)
    if template in known and not (info is not None and info.attn_only and "mlp" in template):
        return None
    names = _native_hook_names(model, spec, base_dir, native_hooks)
    if names is None:  # a model whose bridge only the run builds: checked there
        return None
    templates = {_CONCRETE_LAYER.sub("blocks.{layer}.", n) for n in names}
    if template in templates:
        return None
    if info is not None and info.attn_only and "mlp" in template:
        return f"but model '{model}' is attention-only (no MLP): run the metric on other models"
    return (
        f"which model '{model}' does not have{did_you_mean(template, sorted(templates))}; "
        "name a hook of the model (a TransformerLens name such as "
        "'blocks.{layer}.attn.hook_pattern')"
    )


def _native_hook_names(
    model: str, spec: Spec, base_dir: Path, cache: dict[str, set[str] | None]
) -> set[str] | None:
    """The hook names of a trained (native) model's bridge, from its config (no training;
    booted once per config), or None for other sources."""
    from mispec.sources.trained import TrainedModelSpec

    entry = spec.models[model]
    if not isinstance(entry, TrainedModelSpec):
        return None
    try:
        from mispec.models import native, runs

        cfg = runs.native_config(entry.train, entry.seeds[0])
    except Exception:
        return None
    key = json.dumps(cfg, sort_keys=True, default=str)
    if key not in cache:
        try:
            cache[key] = set(native.boot(cfg).hook_dict)
        except Exception:
            cache[key] = None
    return cache[key]
