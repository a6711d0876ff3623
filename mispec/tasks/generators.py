"""Every prompt generator a spec can name: the pure ones, and one derived from every task.

A task owns its prompts. ``generator: toy_ioi`` with ``args: {n: 16, n_names: 8}`` and
``seed: 3`` builds ``make_task("toy_ioi", {"n_names": 8}).prompt_set(16, 3)``: the prompts
are exactly the training format of a model trained on that task with those arguments, from
a random stream disjoint from training batches. Nothing is written twice: the generator's
argument schema is the task factory's signature plus ``n``, whose default is the task
class's ``prompt_count``; a finite task (``prompt_count = None``, e.g. modular addition)
always gives its whole table and takes no ``n``. Plugin tasks (the ``mispec.tasks``
entry-point group, or ``module:function``) are generators the same way.

A name is looked up among the pure generators first (``GENERATORS``: registered names and
the ``mispec.generators`` entry points), then among the tasks (``TASKS``); an unknown name
gets a did-you-mean over both. A ``module:function`` reference (imported beside the spec's
folder) names a pure generator when its callable takes ``seed``, else a task (a
:class:`~mispec.tasks.base.Task` subclass, or a factory of task arguments).

This module is where :mod:`mispec.prompts` and :mod:`mispec.tasks` meet: it imports both,
and :mod:`mispec.prompts` imports nothing of the tasks.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mispec.code_identity import code_identity
from mispec.errors import UserError
from mispec.plugin_import import import_reference
from mispec.prompts.core import PromptSet
from mispec.prompts.generators import (
    GENERATORS,
    PromptGenerator,
    argument_schema,
    function_generator,
    takes_seed,
)
from mispec.registry import Registry
from mispec.tasks import TASKS, TaskFactory, build_task
from mispec.tasks.base import Task

if TYPE_CHECKING:
    from mispec.spec.train import TrainSpec


class PromptGenerators(Registry[PromptGenerator]):
    """The generator namespace of a spec: ``GENERATORS`` and ``TASKS`` seen as one registry
    of :class:`PromptGenerator` records (read-only; register into either of those)."""

    def __init__(self) -> None:
        super().__init__("prompt generator")

    def register(
        self, name: str, item: PromptGenerator, base_dir: Path | None = None
    ) -> PromptGenerator:
        raise TypeError("register a task in mispec.tasks.TASKS, a pure generator in GENERATORS")

    def names(self) -> list[str]:
        return sorted(set(GENERATORS.names()) | set(TASKS.names()))

    def get_or_none(self, name: str, base_dir: Path | None = None) -> PromptGenerator | None:
        cached = self.known(name)
        if cached is None:
            base_dir = self.base_of(name, base_dir)
            generator = _find(name, base_dir)
            if generator is None:
                return None
            cached = self._items[name] = generator
            if ":" in name:  # remembered with its files: an edit finds it again
                Registry.register(self, name, generator, base_dir)
        return cached


PROMPT_GENERATORS = PromptGenerators()


def _find(name: str, base_dir: Path | None) -> PromptGenerator | None:
    if ":" not in name:
        fn = GENERATORS.get_or_none(name)
        if fn is not None:
            return function_generator(name, fn)
        factory = TASKS.get_or_none(name)
        return None if factory is None else task_generator(name, factory)
    obj = import_reference(name, base_dir)
    if isinstance(obj, type) and issubclass(obj, Task):
        return task_generator(name, TASKS.register(name, obj, base_dir))
    if not callable(obj):
        raise UserError(f"'{name}' is neither a prompt generator nor a task (not callable)")
    if takes_seed(obj):
        return function_generator(name, GENERATORS.register(name, obj, base_dir))
    return task_generator(name, TASKS.register(name, obj, base_dir))


# What the ``n`` a task's prompt generator adds means (the catalogue's entry for it).
PROMPT_COUNT_DOC = (
    "how many prompts to draw (default: the task's ``prompt_count``), from a random stream "
    "disjoint from the training batches."
)


def task_generator(name: str, factory: TaskFactory) -> PromptGenerator:
    """The prompt generator of the task ``factory`` builds (see the module doc)."""
    params = argument_schema(factory)
    count = task_class(factory).prompt_count
    if count is not None:
        if "n" in params:
            raise UserError(
                f"task '{name}' has a task argument 'n', the name its prompt generator "
                "gives the prompt count: rename that argument"
            )
        params = {"n": (count, "int"), **params}

    def build(seed: int, args: dict[str, Any]) -> PromptSet:
        task_args = dict(args)
        n = task_args.pop("n", None) if count is not None else None
        return build_task(name, factory, task_args).prompt_set(n, seed)

    namespace = getattr(factory, "__globals__", {})
    return PromptGenerator(name, params, build, namespace, task_class(factory).data_version)


def task_class(factory: TaskFactory) -> type[Task]:
    """The :class:`Task` subclass ``factory`` builds: the factory itself when it is one,
    else the class its return annotation names; ``Task`` when neither says."""
    if isinstance(factory, type) and issubclass(factory, Task):
        return factory
    try:
        annotation: Any = inspect.signature(factory).return_annotation
    except (TypeError, ValueError):
        return Task
    if isinstance(annotation, str):  # ``from __future__ import annotations``: a name
        annotation = _lookup_name(annotation, getattr(factory, "__globals__", {}))
    if isinstance(annotation, type) and issubclass(annotation, Task):
        return annotation
    return Task


def _lookup_name(text: str, namespace: dict[str, Any]) -> Any:
    """``a.b.C`` looked up in ``namespace`` (never evaluated: no code runs)."""
    head, *rest = text.strip().split(".")
    obj = namespace.get(head) if head.isidentifier() else None
    for part in rest:
        obj = getattr(obj, part, None)
    return obj


def task_code(name: str, base_dir: Path | None = None) -> Any:
    """What the training and prompt keys of task ``name`` hold for its code
    (:func:`mispec.code_identity.code_identity` of its factory and the class it builds)."""
    factory = TASKS.get(name, base_dir)
    cls = task_class(factory)
    return code_identity(*((factory,) if cls is factory or cls is Task else (factory, cls)))


def training_code(train: TrainSpec) -> Any:
    """The code identity of what a ``train:`` model trains on: its task's, or those of its
    mixture's tasks by name; None when every one is a built-in at its first version."""
    if train.mixture is None:
        assert train.task is not None  # TrainSpec: exactly one of task / mixture
        return task_code(train.task)
    codes = {name: task_code(part.task) for name, part in train.mixture.tasks.items()}
    codes = {name: code for name, code in codes.items() if code is not None}
    return codes or None


def generator_code(name: str, base_dir: Path | None = None) -> Any:
    """What a generated prompt set's key holds for the code of generator ``name``."""
    PROMPT_GENERATORS.get(name, base_dir)  # resolved (imported again where edited)
    fn = GENERATORS.known(name)
    if fn is not None:
        return code_identity(fn)
    return task_code(name, base_dir)
