"""What every part of the spec shares: the strict base model and the common field types."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)]
DType = Literal["float32", "float16", "bfloat16"]
CachePolicy = Literal["store", "float16", "skip"]
MAX_STEP = 10**9


class Strict(BaseModel):
    """Unknown keys are errors, and values are never coerced across types (pydantic strict
    mode): ``steps: true`` or ``steps: "40"`` is refused, not read as 1 or 40; an integer
    where a float is expected stays allowed (``lr: 1``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def list_to_tuple(value: Any) -> Any:
    """YAML and JSON have lists, not tuples: a fixed-length field takes a list (strict mode
    alone would refuse it)."""
    return tuple(value) if isinstance(value, list) else value
