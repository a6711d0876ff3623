"""Pure prompt generators: functions ``fn(*, seed, **args) -> PromptSet`` a spec names.

A prompt set's ``generator:`` names either a *task* (every task is its own generator, see
:mod:`mispec.tasks.generators`) or a pure generator: a plain function whose keyword
parameters other than ``seed`` (with their defaults and annotations) are the schema of the
spec's ``args:``, like a metric's. mispec ships none; third parties register them through
the ``mispec.generators`` entry-point group, or a spec names ``module:function``.

Both kinds reach the rest of mispec as one record, :class:`PromptGenerator`: the schema
validation checks the spec against, and ``build(seed, args)``. This module knows nothing of
tasks (tasks depend on prompts, never the other way round).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mispec.prompts.core import PromptSet
from mispec.registry import Registry

GENERATORS: Registry[Callable[..., PromptSet]] = Registry(
    "prompt generator",
    entry_point_group="mispec.generators",
    accepts=callable,
    wrong_kind="prompt generator '{name}' is not a function (not callable)",
)

# An argument's (default or ``inspect.Parameter.empty``, annotation) — what validation reads.
ArgSchema = Mapping[str, tuple[Any, Any]]


@dataclass(frozen=True)
class PromptGenerator:
    """What ``generator: <name>`` means: ``params``, the schema of the spec's ``args``
    (name → (default, annotation); annotations evaluate in ``namespace``), and ``build``,
    which turns ``(seed, args)`` into a :class:`PromptSet`; ``data_version``: a task's
    (``Task.data_version``), which enters the prompt set's identity from version 2 on."""

    name: str
    params: ArgSchema
    build: Callable[[int, dict[str, Any]], PromptSet]
    namespace: Mapping[str, Any] = field(default_factory=dict)
    data_version: int = 1

    def __call__(self, *, seed: int, **args: Any) -> PromptSet:
        return self.build(seed, args)


def argument_schema(fn: Callable[..., Any], skip: frozenset[str] = frozenset()) -> ArgSchema:
    """The named parameters of ``fn`` (a class: of its ``__init__``) but ``skip``, as
    ``{name: (default, annotation)}``; ``*args`` and ``**kwargs`` are not part of it."""
    return {
        name: (p.default, p.annotation)
        for name, p in inspect.signature(fn).parameters.items()
        if name not in skip and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def function_generator(name: str, fn: Callable[..., PromptSet]) -> PromptGenerator:
    """The record of a pure generator ``fn(*, seed, **args)``."""

    def build(seed: int, args: dict[str, Any]) -> PromptSet:
        return fn(seed=seed, **args)

    schema = argument_schema(fn, frozenset({"seed"}))
    return PromptGenerator(name, schema, build, getattr(fn, "__globals__", {}))


def takes_seed(obj: Any) -> bool:
    """Whether ``obj`` is callable with a ``seed`` keyword: a pure generator's mark."""
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return False
    return "seed" in params
