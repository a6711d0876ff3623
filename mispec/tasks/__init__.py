"""Algorithmic tasks that mispec trains toy models on.

``TASKS`` maps a task name to a *factory*: a function whose keyword parameters (with
defaults) are the task's ``task_args`` schema and which returns a :class:`Task` (annotate
the return type with the task's class), or a :class:`Task` subclass itself. Plugins add
tasks through the ``mispec.tasks`` entry-point group or a ``module:function`` name (a
module beside the spec is found). A task is both something to train on (``train.task``)
and a prompt generator (``prompts.<name>.generator``; :mod:`mispec.tasks.generators`).

Built in: ``repeated_tokens`` (induction), ``modular_addition`` (grokking) with
``modular_subtraction`` and ``modular_division``, ``sorting`` (fixed or variable length),
``toy_ioi``, ``multi_digit_addition``, ``min_max``, ``recurrence``, ``previous_token``,
``permutation``, ``bracket_matching``. Finite ones (``modular_addition``, ``min_max``,
``recurrence``, ``permutation``) carry a train / test split (``mispec.tasks.table``). A
``train:`` model may also train on a weighted mixture of tasks (:mod:`mispec.tasks.mixture`).
Pure numpy; importing this package does not import torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mispec.errors import UserError
from mispec.registry import Registry
from mispec.tasks.arithmetic import (
    ModularAddition,
    ModularDivision,
    ModularSubtraction,
    modular_addition,
    modular_division,
    modular_subtraction,
)
from mispec.tasks.base import Task, TaskBatch, rng_for
from mispec.tasks.bracket_matching import BracketMatching, bracket_matching
from mispec.tasks.induction import RepeatedTokens, repeated_tokens
from mispec.tasks.ioi import ToyIOI, toy_ioi
from mispec.tasks.min_max import MinMax, min_max
from mispec.tasks.multi_digit_addition import MultiDigitAddition, multi_digit_addition
from mispec.tasks.permutation import Permutation, permutation
from mispec.tasks.previous_token import PreviousToken, previous_token
from mispec.tasks.recurrence import Recurrence, recurrence
from mispec.tasks.sorting import Sorting, sorting

if TYPE_CHECKING:
    from mispec.spec.train import TrainSpec

TaskFactory = Callable[..., Task]

TASKS: Registry[TaskFactory] = Registry(
    "task",
    entry_point_group="mispec.tasks",
    accepts=callable,
    wrong_kind="task '{name}' is not a mispec Task subclass or a factory of one (not callable)",
)
for _factory in (
    repeated_tokens,
    modular_addition,
    modular_subtraction,
    modular_division,
    sorting,
    toy_ioi,
    multi_digit_addition,
    min_max,
    recurrence,
    previous_token,
    permutation,
    bracket_matching,
):
    TASKS.register(_factory.__name__, _factory)


def make_task(name: str, args: dict[str, Any] | None = None) -> Task:
    """Build a task from the registry, turning bad arguments into a ``UserError``."""
    return build_task(name, TASKS.get(name), args)


def build_task(name: str, factory: TaskFactory, args: dict[str, Any] | None = None) -> Task:
    """``factory(**args)``, checked to be a :class:`Task`; bad arguments are a ``UserError``."""
    try:
        task = factory(**(args or {}))
    except TypeError as exc:
        raise UserError(f"task '{name}': bad task_args {args!r}: {exc}") from exc
    if not isinstance(task, Task):
        raise UserError(f"task '{name}' returned {type(task).__name__}, not a mispec Task")
    return task


def task_for(train: TrainSpec) -> Task:
    """The :class:`Task` of a ``train:`` model: its ``task`` with its ``task_args``, or its
    ``mixture`` of tasks."""
    if train.mixture is not None:
        from mispec.tasks.mixture import mixture_task

        return mixture_task(train.mixture)
    assert train.task is not None  # TrainSpec: exactly one of task / mixture
    return make_task(train.task, train.task_args)


__all__ = [
    "TASKS",
    "BracketMatching",
    "MinMax",
    "ModularAddition",
    "ModularDivision",
    "ModularSubtraction",
    "MultiDigitAddition",
    "Permutation",
    "PreviousToken",
    "Recurrence",
    "RepeatedTokens",
    "Sorting",
    "Task",
    "TaskBatch",
    "TaskFactory",
    "ToyIOI",
    "build_task",
    "make_task",
    "rng_for",
    "task_for",
]
