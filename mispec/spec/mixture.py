"""A weighted mixture of tasks to train on (``train: {mixture: ...}``), its weights changing
at given steps."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from mispec.spec.fields import MAX_STEP, Name, Strict

# A mixture weight: finite and >= 0 (``.inf`` / ``.nan`` are refused at validate; the
# weights are normalised by their largest, so even ``1e308`` each stays exact).
MixtureWeight = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class MixtureTask(Strict):
    """One task of a mixture, with its own arguments and weight."""

    task: str = Field(description="a registered task (see mispec.tasks)")
    task_args: dict[str, Any] = Field(default_factory=dict, description="the task's arguments")
    weight: MixtureWeight = Field(
        1.0, description="relative share of the batch's sequences (before any schedule phase)"
    )


class MixturePhase(Strict):
    """From update ``step`` on, the mixture's weights are ``weights``."""

    step: Annotated[int, Field(ge=0, le=MAX_STEP)] = Field(
        description="the first update (0-based) with these weights"
    )
    weights: dict[Name, MixtureWeight] = Field(
        description="task name -> weight (tasks not named get 0)"
    )


class MixtureSpec(Strict):
    """A weighted mixture of tasks, optionally changing at given steps."""

    tasks: Annotated[dict[Name, MixtureTask], Field(min_length=1)] = Field(
        description="name -> task of the mixture"
    )
    vocab: Literal["shared", "offset"] = Field(
        "shared",
        description="'shared': token ids mean the same in every task (checked for clashes); "
        "'offset': each task gets its own range of ids, in order",
    )
    schedule: list[MixturePhase] = Field(
        default_factory=list, description="weight changes, by increasing step"
    )

    @model_validator(mode="after")
    def _phases(self) -> MixtureSpec:
        steps = [p.step for p in self.schedule]
        if steps != sorted(set(steps)):
            raise ValueError("schedule steps must increase")
        for phase in self.schedule:
            unknown = sorted(set(phase.weights) - set(self.tasks))
            if unknown:
                raise ValueError(
                    f"schedule names unknown tasks {unknown} (tasks: {list(self.tasks)})"
                )
            if not any(phase.weights.values()):
                raise ValueError(f"schedule phase at step {phase.step} has no positive weight")
        if not any(t.weight for t in self.tasks.values()):
            raise ValueError("every task has weight 0")
        return self
