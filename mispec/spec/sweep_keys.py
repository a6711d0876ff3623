"""Which key paths of ``train:`` a ``sweep:`` may name: a field of ``train:`` or of one of its
blocks (``optimizer.lr``, ``arch.n_layers``), or ``task_args.<name>``; never the task itself."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel

from mispec.registry import did_you_mean

UNSWEEPABLE = {
    "task": "the task decides the prompts and metrics; write one entry per task",
    "mixture": "a mixture is a set of tasks; write one entry per mixture",
    "init_from": "a start from another checkpoint is not a setting; write one entry each",
    "init": "weight edits are not a setting; write one entry each",
    "freeze": "frozen weights are not a setting; write one entry each",
}


def key_problem(key: str) -> str | None:
    """Why ``key`` (a path under ``train:``) cannot be swept, or None."""
    from mispec.spec.train import TrainSpec

    parts = key.split(".")
    if parts[0] in UNSWEEPABLE:
        return f"'{parts[0]}' cannot be swept: {UNSWEEPABLE[parts[0]]}"
    model: Any = TrainSpec
    for i, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields:
            where = "train" if i == 0 else "train." + ".".join(parts[:i])
            return f"unknown key path '{key}': {where} has no '{part}'{did_you_mean(part, list(fields))}"
        if part == "task_args" and i == 0:
            if len(parts) != 2:
                return "a task argument is swept as task_args.<name>"
            return None
        inner = _model_of(fields[part].annotation)
        if i == len(parts) - 1:
            if inner is not None:
                return (
                    f"'{key}' is a block: sweep one of its keys ({', '.join(inner.model_fields)})"
                )
            return None
        if inner is None:
            return f"unknown key path '{key}': '{'.'.join(parts[: i + 1])}' has no keys"
        model = inner
    return None


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (Optional / Annotated stripped), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
