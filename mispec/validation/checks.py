"""Cross-reference checks that need registries: names of metric functions, model sources and
prompt generators; metric inputs and their cycles; args against function signatures; each
model entry as its source checks it (``ModelSource.check``: task, selector, folders). Every
problem is collected, none short-circuits.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mispec.errors import Problem, UserError
from mispec.metrics.dag import find_cycle
from mispec.registry import did_you_mean
from mispec.sources.plugin_entry import PluginModelSpec
from mispec.spec.references import check_args, lookup
from mispec.spec.schema import Spec
from mispec.spec.yaml_source import KeyPath, SourceMap


def check_spec(
    spec: Spec, source: SourceMap, base_dir: Path, set_aside: dict[str, set[str]] | None = None
) -> list[Problem]:
    """Every problem the checks find (see :func:`check_spec_all`)."""
    return check_spec_all(spec, source, base_dir, set_aside)[0]


def check_spec_all(
    spec: Spec,
    source: SourceMap,
    base_dir: Path,
    set_aside: dict[str, set[str]] | None = None,
    earlier: Sequence[Problem] = (),
) -> tuple[list[Problem], list[str]]:
    """``(problems, waiting)``: every problem found in one pass, and the entries (``metrics.x``)
    the checks that build things could not run on because they read an entry with a problem
    (``validation.sound_part``). ``set_aside``: entries the schema rejected (not in ``spec``);
    a problem that only says one of them is unknown is theirs, not reported twice.
    ``earlier``: the schema's problems (the entries they are in wait like the others')."""
    from mispec.validation.sound_part import sound_part, without_set_aside

    problems: list[Problem] = []
    _check_models(spec, source, base_dir, problems)
    _check_prompts(spec, source, base_dir, problems)
    _check_metrics(spec, source, problems, base_dir)
    from mispec.validation.metric_args import metric_arg_problems  # args against the models

    problems.extend(metric_arg_problems(spec, source, base_dir))
    from mispec.validation.rings import group_ring_problems  # reads across checkpoints

    problems.extend(group_ring_problems(spec, source, base_dir))
    from mispec.validation.pairs import check_pairs  # two sides of a comparison

    problems.extend(check_pairs(spec, source, base_dir))
    from mispec.validation.claims import claim_problems  # what the study claims

    problems.extend(claim_problems(spec, source))
    problems = without_set_aside(problems, set_aside)
    sound, _ = sound_part(spec, [*earlier, *problems], set_aside)
    if sound is not None:
        from mispec.validation.zoom import zoom_problems  # refine: and live: keys

        problems.extend(zoom_problems(sound, source))
    from mispec.validation import preflight  # files, sizes, prompt sets, dims along inputs

    problems.extend(preflight.check_resources(spec, source, base_dir))
    sound, waiting = sound_part(spec, [*earlier, *problems], set_aside)
    if sound is not None:
        problems.extend(preflight.check_built(sound, source, base_dir))
    problems = sorted(problems, key=lambda p: (p.file or "", p.line or 0, p.col or 0))
    return problems, waiting


# --------------------------------------------------------------------------- models
def _check_models(spec: Spec, source: SourceMap, base_dir: Path, problems: list[Problem]) -> None:
    """Each model's source (a plugin's name must resolve), then what the source checks."""
    from mispec.sources import SOURCES, source_for

    built = {}
    for name, model in spec.models.items():
        ref = model.source_name()
        if isinstance(model, PluginModelSpec):  # a plugin: its name or module:Class resolves
            where: KeyPath = ("models", name, "source")
            if lookup(SOURCES, ref, where, source, problems, base_dir) is None:
                continue
        try:
            model_source = source_for(name, model, base_dir)
        except UserError as exc:
            problems.append(source.problem(("models", name, "source"), str(exc)))
            continue
        built[name] = model_source
    for model_source in built.values():  # entries may refer to each other (init_from)
        model_source.bind(built)
        problems.extend(model_source.check(source))


# --------------------------------------------------------------------------- prompts
def _check_prompts(spec: Spec, source: SourceMap, base_dir: Path, problems: list[Problem]) -> None:
    from mispec.tasks.generators import PROMPT_GENERATORS

    for name, prompt in spec.prompts.items():
        path: KeyPath = ("prompts", name)
        if prompt.generator is None:
            continue
        gen = lookup(
            PROMPT_GENERATORS, prompt.generator, (*path, "generator"), source, problems, base_dir
        )
        if gen is not None:
            check_args(
                prompt.args,
                gen.params,
                gen.namespace,
                (*path, "args"),
                source,
                problems,
                f"generator '{prompt.generator}'",
            )


# --------------------------------------------------------------------------- metrics
def _check_metric_name(
    name: str, fn: str, spec: Spec, source: SourceMap, problems: list[Problem]
) -> None:
    """A metric becomes a variable of its model's result dataset, named like its spec entry:
    a name that is a dim or a coordinate of that dataset would overwrite or lose data."""
    from mispec.metrics.core import ASSEMBLED_COORDS, RESERVED_NAMES

    if name not in RESERVED_NAMES:
        return
    what = "a coordinate" if name in ASSEMBLED_COORDS else "a dimension"
    base = fn.rpartition(":")[2] or "value"
    candidates = [base, f"{name}_{base}", f"{base}_{name}", f"{name}_metric"]
    taken = set(spec.metrics) | RESERVED_NAMES
    suggestion = next(c for c in candidates if c not in taken)
    problems.append(
        source.problem(
            ("metrics", name),
            f"a metric cannot be named '{name}': it is {what} of the results (each metric is "
            f"a variable beside the dims and coordinates {sorted(RESERVED_NAMES)}); "
            f"rename it, e.g. '{suggestion}'",
            at_key=True,
        )
    )


def _check_metrics(
    spec: Spec, source: SourceMap, problems: list[Problem], base_dir: Path | None = None
) -> None:
    from mispec.metrics.core import METRICS, MetricDef, load_builtin_metrics

    load_builtin_metrics()
    defs: dict[str, Any] = {}
    for name, m in spec.metrics.items():
        path: KeyPath = ("metrics", name)
        _check_metric_name(name, m.fn, spec, source, problems)
        mdef = lookup(METRICS, m.fn, (*path, "fn"), source, problems, base_dir)
        if mdef is None:
            continue
        if not isinstance(mdef, MetricDef):  # a module:function that is not a metric
            problems.append(
                source.problem(
                    (*path, "fn"),
                    f"'{m.fn}' is not a mispec metric: decorate the function with "
                    "@mispec.metrics.core.metric(dims=...) (see docs/adding_a_metric.md)",
                )
            )
            continue
        defs[name] = mdef
        params = {
            a.name: (a.default, a.type if a.type is not None else a.annotation) for a in mdef.args
        }
        check_args(
            m.args,
            params,
            getattr(mdef.fn, "__globals__", {}),
            (*path, "args"),
            source,
            problems,
            f"metric '{m.fn}'",
        )
        if mdef.needs_prompts and m.prompts is None and mdef.kind not in ("derived", "reduction"):
            problems.append(
                source.problem(
                    path,
                    f"metric '{m.fn}' reads prompts: add `prompts:` naming one of "
                    f"{sorted(spec.prompts) or 'the prompt sets (none defined)'}",
                    at_key=True,
                )
            )
        if m.prompts is not None:
            if m.prompts not in spec.prompts:
                problems.append(
                    source.problem(
                        (*path, "prompts"),
                        f"unknown prompt set '{m.prompts}'{did_you_mean(m.prompts, list(spec.prompts))}",
                    )
                )
            elif not mdef.needs_prompts:
                problems.append(
                    source.problem(
                        (*path, "prompts"),
                        f"metric '{m.fn}' ({mdef.kind}) reads no prompts; remove `prompts:`",
                    )
                )
        for param, ref in m.input_metrics().items():
            if param not in mdef.inputs:
                problems.append(
                    source.problem(
                        (*path, "inputs", param),
                        f"metric '{m.fn}' has no input '{param}'{did_you_mean(param, list(mdef.inputs))}",
                        at_key=True,
                    )
                )
            at = (*path, "inputs", param) + (
                () if isinstance(m.inputs[param], str) else ("metric",)
            )
            if ref not in spec.metrics:
                problems.append(
                    source.problem(
                        at,
                        f"unknown metric '{ref}'{did_you_mean(ref, [k for k in spec.metrics if k != name])}",
                    )
                )
            elif ref == name:
                problems.append(source.problem(at, "a metric cannot read itself"))
            else:
                problems.extend(_input_ref_problems(spec, source, name, param))
        for param in mdef.inputs:
            if param not in m.inputs:
                problems.append(
                    source.problem(
                        path,
                        f"metric '{m.fn}' needs input '{param}': add `inputs: {{{param}: <metric>}}`",
                        at_key=True,
                    )
                )
        for i, model_name in enumerate(m.models or []):
            if model_name not in spec.models:
                problems.append(
                    source.problem(
                        (*path, "models", i),
                        f"unknown model '{model_name}'{did_you_mean(model_name, list(spec.models))}",
                    )
                )
    cycle = find_cycle(spec.metrics)
    if cycle:
        problems.append(
            source.problem(
                ("metrics", cycle[0], "inputs"), "metric inputs form a cycle: " + " -> ".join(cycle)
            )
        )


def _input_ref_problems(spec: Spec, source: SourceMap, name: str, param: str) -> list[Problem]:
    """An input read from another seed or model names one that exists and that the metric
    read runs on (whether a step exists is the resolution's to say: it knows the steps)."""
    m = spec.metrics[name]
    ref = m.input_refs()[param]
    path: KeyPath = ("metrics", name, "inputs", param)
    problems = []
    if ref.model is not None and ref.model not in spec.models:
        problems.append(
            source.problem(
                (*path, "model"),
                f"unknown model '{ref.model}'{did_you_mean(ref.model, list(spec.models))}",
            )
        )
        return problems
    readers = m.models or list(spec.models)
    for reader in readers:
        target = ref.model or reader
        seeds = spec.models[target].seeds
        if ref.seed is not None and ref.seed not in seeds:
            problems.append(
                source.problem(
                    (*path, "seed"),
                    f"model '{target}' has no seed {ref.seed} (its seeds: {seeds})",
                )
            )
            break
        if ref.seed is None and ref.model is not None:
            lacking = [s for s in spec.models[reader].seeds if s not in seeds]
            if lacking:
                problems.append(
                    source.problem(
                        (*path, "model"),
                        f"'{name}' runs on model '{reader}' with seed(s) {lacking} that model "
                        f"'{target}' lacks: give `seed:` to read one seed of '{target}'",
                    )
                )
                break
        if target not in (spec.metrics[ref.metric].models or [target]):
            problems.append(
                source.problem(
                    (*path, "metric"),
                    f"metric '{ref.metric}' does not run on model '{target}' (its `models:`)",
                )
            )
            break
    return problems
