"""Checks that need more than names: the files and folders a spec points at, the sizes of
what it asks for, the prompt sets it builds, and the shape of the data flowing along metric
``inputs``. They run in ``load_spec`` (so ``validate``, ``plan`` and ``run`` all refuse a bad
spec before anything is written), each problem at ``file:line:col``.

* files and folders: a prompt ``file:`` exists (a model's folders are its source's to check:
  ``ModelSource.check``, run with the registry checks). Relative paths resolve against the
  spec's folder and messages show the resolved path.
* sizes: a generated prompt set has between 1 and ``MAX_PROMPTS`` prompts; each model's
  source checks what it would build (``ModelSource.check_built``: a toy model to train has
  at most ``MAX_TRAIN_PARAMS`` parameters).
* prompt sets: generated ones are built (cheap, numpy only); a generator that refuses its
  arguments, tokens outside the vocabulary of a model that reads them and prompts longer
  than its context are reported at the prompt set (for models whose source knows their
  shape from local files, ``ModelSource.validation_info``; a pretrained model's config may
  need the hub, so it is checked when the run loads it)
  (:mod:`mispec.validation.prompt_set_checks`).
* data flow: a reduction over ``step`` reads per-checkpoint metrics; a derived metric does
  not mix per-checkpoint and per-series inputs; an input carries the dims its metric declares
  it needs (``@metric(input_dims=...)``), where the input's dims are known before running
  (all worked out by ``mispec.metrics.dag.build_metric_graph``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mispec.errors import Problem, PromptError, UserError
from mispec.spec.schema import Spec
from mispec.spec.yaml_source import SourceMap
from mispec.validation.prompt_files import build_text_sets, file_problem
from mispec.validation.prompt_set_checks import (
    build_prompt_sets,
    check_prompt_extras,
    check_prompt_fit,
    check_text_tokenizers,
)

if TYPE_CHECKING:
    from mispec.sources import ModelSource

# Prompts per generated set: every cached activation holds one row per prompt.
MAX_PROMPTS = 1_000_000


def check_resources(spec: Spec, source: SourceMap, base_dir: Path) -> list[Problem]:
    """Files, folders and sizes (independent of the registry checks)."""
    problems: list[Problem] = []
    for name, prompt in spec.prompts.items():
        if prompt.file is not None:
            path = _resolve(prompt.file, base_dir)
            if not path.is_file():
                what = "is a folder, not a file" if path.is_dir() else "not found"
                problems.append(
                    source.problem(("prompts", name, "file"), f"prompt file {what}: {path}")
                )
            elif path.suffix.lower() not in (".txt", ".jsonl"):
                problems.append(
                    source.problem(
                        ("prompts", name, "file"),
                        f"{path}: prompt files must be .txt (one prompt per line) or .jsonl "
                        '({"text": ...} per line)',
                    )
                )
            else:  # read as a run reads it: bad JSON, unknown or missing fields, no prompts
                from mispec.prompts.records import read_records

                try:
                    read_records(path)
                except (PromptError, OSError, UnicodeDecodeError) as exc:
                    problems.append(file_problem(source, name, exc))
        n = prompt.args.get("n")
        if isinstance(n, int) and not isinstance(n, bool) and not 0 < n <= MAX_PROMPTS:
            problems.append(
                source.problem(
                    ("prompts", name, "args", "n"),
                    f"a prompt set needs between 1 and {MAX_PROMPTS} prompts, got n = {n}",
                )
            )
    return problems


def check_built(spec: Spec, source: SourceMap, base_dir: Path) -> list[Problem]:
    """Checks that build things: the training config, generated prompt sets against the
    models that read them, and the dims along metric inputs. Names and args must be valid
    (``check_spec`` runs this only when every other check passed)."""
    from mispec.sources import sources_for

    problems: list[Problem] = []
    sources = sources_for(dict(spec.models), base_dir)
    for model_source in sources.values():
        problems.extend(model_source.check_built(source))  # e.g. a training config's size
    built = build_prompt_sets(spec, source, base_dir, problems)
    check_prompt_fit(spec, source, sources, built, problems)
    check_text_tokenizers(spec, source, sources, problems)
    texts = build_text_sets(spec, source, sources, base_dir, problems)
    check_prompt_extras(spec, source, {**built, **texts}, base_dir, problems)
    _check_dataflow(spec, source, problems)
    _check_cache_hooks(spec, source, problems)
    problems.extend(input_step_problems(spec, source, _local_steps(spec, sources)))
    return problems


# --------------------------------------------------------------------------- input steps
def _local_steps(spec: Spec, sources: dict[str, ModelSource]) -> dict[tuple[str, int], list[int]]:
    """The selected steps of each (model, seed) whose source knows them from local files (a
    pretrained family's revisions may need the hub: those are checked when a run resolves)."""
    from mispec.errors import CheckpointError
    from mispec.spec.selectors import resolve_selector

    out: dict[tuple[str, int], list[int]] = {}
    for name, model_source in sources.items():
        if model_source.validation_info() is None:
            continue
        for seed in spec.models[name].seeds:
            try:
                available = model_source.available_steps(seed)
                out[(name, seed)] = list(resolve_selector(model_source.selector(), available))
            except (CheckpointError, UserError):
                continue  # reported by the source's own checks
    return out


def input_step_problems(
    spec: Spec, source: SourceMap, steps: dict[tuple[str, int], list[int]]
) -> list[Problem]:
    """Every input read from another checkpoint names a step that the run read selects
    (``steps``: the selected steps of each known (model, seed); unknown ones are skipped)."""
    problems: list[Problem] = []
    for name, m in spec.metrics.items():
        for param, ref in m.input_refs().items():
            if ref.is_local or ref.metric not in spec.metrics:
                continue
            for reader in m.models or list(spec.models):
                target = ref.model or reader
                for seed in spec.models[reader].seeds:
                    t_seed = seed if ref.seed is None else ref.seed
                    mine, theirs = steps.get((reader, seed)), steps.get((target, t_seed))
                    if mine is None or theirs is None or not theirs:
                        continue
                    if isinstance(ref.step, int):
                        wanted = [ref.step]
                    elif ref.step is None:
                        wanted = mine
                    else:
                        continue  # first / last: every run has them
                    lacking = [s for s in wanted if s not in theirs]
                    if lacking:
                        key = "step" if ref.step is not None else "metric"
                        problems.append(
                            source.problem(
                                ("metrics", name, "inputs", param, key),
                                f"{target}/s{t_seed} has no checkpoint at step(s) "
                                f"{_steps_shown(lacking)} (its checkpoints: "
                                f"{_steps_shown(theirs)}); choose one of them"
                                + (
                                    ""
                                    if ref.step is not None
                                    else " with `step:`, or give "
                                    f"'{target}' the checkpoints of '{reader}'"
                                ),
                            )
                        )
                        return problems
    return problems


def _steps_shown(steps: list[int]) -> str:
    return ", ".join(map(str, steps[:8])) + (f", … ({len(steps)} in all)" if len(steps) > 8 else "")


# --------------------------------------------------------------------------- files
def _resolve(path: str, base_dir: Path) -> Path:
    p = Path(path).expanduser()
    return (p if p.is_absolute() else Path(base_dir) / p).resolve()


# --------------------------------------------------------------------------- data flow
def _check_dataflow(spec: Spec, source: SourceMap, problems: list[Problem]) -> None:
    """The problems of the metric DAG (``mispec.metrics.dag``), each at its spec entry."""
    from mispec.metrics.core import METRICS, MetricDef
    from mispec.metrics.dag import build_metric_graph, find_cycle

    if find_cycle(spec.metrics):  # reported by the cross-reference checks
        return
    defs: dict[str, MetricDef] = {}
    for name, m in spec.metrics.items():
        mdef = METRICS.get_or_none(m.fn)
        if isinstance(mdef, MetricDef):
            defs[name] = mdef
    graph = build_metric_graph(spec.metrics, defs)
    problems.extend(source.problem(p.path, p.message) for p in graph.problems)


# --------------------------------------------------------------------------- cache
def _check_cache_hooks(spec: Spec, source: SourceMap, problems: list[Problem]) -> None:
    """Every hook named under the top-level ``cache:`` is one a metric of the spec reads or a
    TransformerLens hook (a template with ``{layer}`` or one layer's name, e.g.
    ``blocks.0.attn.hook_pattern``); anything else is a typo that would silently do nothing."""
    import re

    from mispec.metrics.core import METRICS, PSEUDO_HOOKS, TL_HOOK_TEMPLATES, MetricDef

    if not spec.cache:
        return
    read: set[str] = set()
    for m in spec.metrics.values():
        mdef = METRICS.get_or_none(m.fn)
        if isinstance(mdef, MetricDef) and mdef.kind == "activation":
            read.update(mdef.hooks_for(m.args))
    known = read | set(PSEUDO_HOOKS) | set(TL_HOOK_TEMPLATES)
    for hook in spec.cache:
        template = re.sub(r"^blocks\.\d+\.", "blocks.{layer}.", hook)
        if hook in known or template in known:
            continue
        from mispec.registry import did_you_mean

        problems.append(
            source.problem(
                ("cache", hook),
                f"unknown hook '{hook}' under `cache:`{did_you_mean(template, sorted(known))}; "
                "name a hook a metric reads"
                + (f" ({', '.join(sorted(read))})" if read else "")
                + " or a TransformerLens hook such as 'blocks.{layer}.attn.hook_pattern'",
                at_key=True,
            )
        )
