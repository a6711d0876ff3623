"""What exists: one plain record per registered metric, task, prompt generator, model source
and executor kind, read from the registries themselves (built-ins and installed plugins).

``mispec list``, ``docs/catalogue.md`` and the editor schema (``mispec schema``) all read
these records, so a metric added in a new module appears in all three without a second
definition. Nothing here imports torch: the records come from signatures and docstrings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from mispec.catalogue.records import (
    Entry,
    arg_docs,
    arg_entries,
    origin_of,
    pydantic_args,
    summary_of,
)

KINDS = ("metrics", "tasks", "generators", "sources", "executors")


def entries(kind: str, *, builtin_only: bool = False) -> list[Entry]:
    """The records of one kind (one of ``KINDS``), sorted by name: built-ins and installed
    plugins (entry points), or only the built-ins. A ``module:function`` a spec named in this
    process is no registered name and is left out."""
    from mispec.errors import UserError
    from mispec.registry import did_you_mean

    if kind not in _LISTERS:
        raise UserError(f"nothing to list called '{kind}'{did_you_mean(kind, KINDS)}")
    found = [
        e
        for e in _LISTERS[kind]()
        if ":" not in e.name and (e.origin == "built-in" or not builtin_only)
    ]
    return sorted(found, key=lambda e: e.name)


def catalogue(*, builtin_only: bool = False) -> dict[str, list[Entry]]:
    """Every kind's records, in the order of ``KINDS``."""
    return {kind: entries(kind, builtin_only=builtin_only) for kind in KINDS}


# --------------------------------------------------------------------------- per kind
def _metrics() -> list[Entry]:
    from mispec.metrics.core import METRICS, load_builtin_metrics

    load_builtin_metrics()
    out = []
    for name in _registered(METRICS.names()):
        d = METRICS.get(name)
        dims_note = ""
        if d.dims is None:
            rule = d.dims_rule
            dims_note = (
                summary_of(rule) or "depend on its args and its inputs' dims"
                if rule is not None
                else "as the metric's result says (not known before running)"
            )
        hooks = None if callable(d.hooks) else list(d.hooks)
        out.append(
            Entry(
                kind="metric",
                name=name,
                summary=d.description,
                args=arg_entries(
                    ((a.name, a.default, a.annotation) for a in d.args), arg_docs(d.fn)
                ),
                origin=origin_of(d.fn),
                dims=d.dims,
                dims_note=dims_note,
                units=d.units,
                details={
                    "metric_kind": d.kind,
                    "inputs": list(d.inputs),
                    "hooks": hooks if hooks is not None else "depend on its args",
                    "version": d.version,
                },
            )
        )
    return out


def _tasks() -> list[Entry]:
    from mispec.prompts.generators import argument_schema
    from mispec.tasks import TASKS
    from mispec.tasks.generators import task_class

    out = []
    for name in _registered(TASKS.names()):
        factory = TASKS.get(name)
        cls = task_class(factory)
        params = argument_schema(factory)
        out.append(
            Entry(
                kind="task",
                name=name,
                summary=summary_of(factory) or summary_of(cls),
                args=arg_entries(
                    ((n, d, a) for n, (d, a) in params.items()), arg_docs(factory) or arg_docs(cls)
                ),
                origin=origin_of(factory),
                details={"class": cls.__name__, "prompt_count": cls.prompt_count},
            )
        )
    return out


def _generators() -> list[Entry]:
    from mispec.prompts.generators import GENERATORS
    from mispec.tasks import TASKS
    from mispec.tasks.generators import PROMPT_COUNT_DOC, PROMPT_GENERATORS

    out = []
    for name in _registered(PROMPT_GENERATORS.names()):
        gen = PROMPT_GENERATORS.get(name)
        is_task = name not in GENERATORS.names()
        source: Callable[..., Any] = TASKS.get(name) if is_task else GENERATORS.get(name)
        summary = summary_of(source)
        docs = arg_docs(source)
        if is_task:
            summary = f"the prompts of task '{name}' (its training format). {summary}"
            if "n" in gen.params and "n" not in docs:  # the prompt count the generator adds
                docs = {"n": PROMPT_COUNT_DOC, **docs}
        out.append(
            Entry(
                kind="generator",
                name=name,
                summary=summary.strip(),
                args=arg_entries(((n, d, a) for n, (d, a) in gen.params.items()), docs),
                origin=origin_of(source),
                details={"from": "task" if is_task else "function"},
            )
        )
    return out


def _sources() -> list[Entry]:
    from mispec.sources import SOURCES, source_class
    from mispec.spec.model_entry import ModelSpecBase

    common = set(ModelSpecBase.model_fields)
    out = []
    for name in _registered(SOURCES.names()):
        cls = source_class(name)
        entry_type = getattr(cls, "entry_type", None)
        builtin = name in ("train", "pretrained", "path")
        args = (
            pydantic_args(entry_type, skip=common)
            if builtin
            else pydantic_args(getattr(cls, "options_type", None))
        )
        own_doc = cls.__dict__.get("__doc__")  # not the base class's
        summary = summary_of(entry_type) if builtin else summary_of(cls) if own_doc else ""
        out.append(
            Entry(
                kind="source",
                name=name,
                summary=summary,
                args=args,
                origin=origin_of(cls),
                details={
                    "spec": f"{name}: ..." if builtin else f"source: {name}, options: {{...}}"
                },
            )
        )
    return out


def _executors() -> list[Entry]:
    from mispec.execute.executor import EXECUTORS, executor_class

    out = []
    for name in _registered(EXECUTORS.names()):
        cls = executor_class(name)
        out.append(
            Entry(
                kind="executor",
                name=name,
                summary=summary_of(cls),
                args=pydantic_args(getattr(cls, "Options", None)),
                origin=origin_of(cls),
            )
        )
    return out


_LISTERS: dict[str, Callable[[], list[Entry]]] = {
    "metrics": _metrics,
    "tasks": _tasks,
    "generators": _generators,
    "sources": _sources,
    "executors": _executors,
}


def _registered(names: Iterable[str]) -> list[str]:
    """Registered names, not the ``module:attr`` references a spec resolved in this process."""
    return [n for n in names if ":" not in n]
