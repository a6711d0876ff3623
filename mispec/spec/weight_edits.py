"""How a trained model starts: another entry's checkpoint (``init_from``), edits of its initial
weights (``init``) and the weights held during training (``freeze``)."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BeforeValidator, ConfigDict, Field, field_validator, model_validator

from mispec.spec.fields import MAX_STEP, Name, Strict, list_to_tuple

# The largest scale factor of a weight edit (``init: [{op: scale, factor: ...}]``).
MAX_SCALE_FACTOR = 1e6


class CheckpointRef(Strict):
    """One checkpoint of another model entry of the spec: ``{model: base, step: 100}``."""

    model: Name = Field(description="the spec's model entry whose checkpoint this is")
    step: Annotated[int, Field(ge=0, le=MAX_STEP)] | Literal["last"] = Field(
        "last", description="the step of that model ('last': its last available step)"
    )
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = Field(
        None, description="that model's seed (default: the seed of the model being trained)"
    )


class InitFrom(CheckpointRef):
    """``init_from``: start training from another model's checkpoint instead of a fresh init."""

    optimizer: Literal["fresh", "carry"] = Field(
        "fresh",
        description="'fresh': a new optimizer; 'carry': the parent's optimizer state "
        "(a train: parent with the same optimizer only)",
    )


HeadIndex = Annotated[
    tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]],
    BeforeValidator(list_to_tuple),
]


class WeightTarget(Strict):
    """Which weights: whole attention heads by ``[layer, head]`` and/or parameters by name
    (TransformerBridge keys such as ``blocks.0.attn.q.weight``; ``*`` globs allowed)."""

    heads: list[HeadIndex] = Field(
        default_factory=list,
        description="attention heads as [layer, head]: their Q, K, V rows and O columns",
    )
    params: list[str] = Field(
        default_factory=list,
        description="parameter names (bridge keys, e.g. 'embed.weight', 'blocks.*.mlp.*')",
    )

    @model_validator(mode="after")
    def _something(self) -> WeightTarget:
        if not self.heads and not self.params:
            raise ValueError("name at least one of 'heads' or 'params'")
        return self


class SurgeryOp(WeightTarget):
    """One edit of the initial weights, applied in order before step 0."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    op: Literal["copy", "zero", "randomize", "scale"] = Field(
        description="copy from another checkpoint, zero, re-draw from a fresh init, or scale"
    )
    source: CheckpointRef | None = Field(
        None, alias="from", description="copy: the checkpoint the weights are copied from"
    )
    factor: float | None = Field(
        None,
        description=f"scale: the factor the weights are scaled by (finite, |factor| <= "
        f"{MAX_SCALE_FACTOR:g})",
    )
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = Field(
        None,
        description="randomize: the seed of the fresh init drawn from (default: 1000003 + "
        "the model's seed)",
    )

    @field_validator("factor")
    @classmethod
    def _finite_factor(cls, factor: float | None) -> float | None:
        if factor is not None and not (math.isfinite(factor) and abs(factor) <= MAX_SCALE_FACTOR):
            raise ValueError(
                f"a scale factor must be a finite number between {-MAX_SCALE_FACTOR:g} and "
                f"{MAX_SCALE_FACTOR:g} (got {factor!r}): a larger one overflows float32 "
                "weights (max ~3.4e38) or makes every activation inf/NaN"
            )
        return factor

    @model_validator(mode="after")
    def _op_fields(self) -> SurgeryOp:
        if (self.op == "copy") != (self.source is not None):
            raise ValueError("'from' is required by op 'copy' and only allowed there")
        if (self.op == "scale") != (self.factor is not None):
            raise ValueError("'factor' is required by op 'scale' and only allowed there")
        if self.seed is not None and self.op != "randomize":
            raise ValueError("'seed' only applies to op 'randomize'")
        return self
