"""What a study claims about its results (``claims:``): named, one-line sentences a paper
would write, each with one check over the results that every run evaluates.

A claim reads a metric's results through an *operand*: a metric name (``transition``), a
``model/metric`` (``fresh/transition``; a ``pairs: {models: [A, B]}`` result lives under the
model ``A_vs_B``), or a mapping that also selects labels (``where: {layer: 1}``, any dim, a
sweep's included) and a ``step`` (``last``, ``first`` or a step number). Exactly one check:

* ``value`` with ``between: [lo, hi]`` / ``above`` / ``below`` (``is: nan`` — the event does
  not happen — or ``is: finite``);
* ``before: [A, B]``: A's event step comes before B's, per seed (and point);
* ``compare: [A, "<", B]`` (or ``">"``), with an optional ``margin`` (A < B - margin);
* ``argmax`` with ``over: [dims]`` and ``at: {dim: label}``: where the largest value lies;
* ``count`` with ``over: [dims]`` and a range: how many entries are non-zero.

Dims left over after selection are quantified: ``seeds`` over ``seed``, ``steps`` over
``step``, ``points`` over every other dim (a sweep's, a head's, ``seed_b``...): ``every``
(the default), ``any`` or a fraction of them. ``expect: fail`` with a ``reason`` marks a
claim the study is known to fail; it is reported as an expected failure, never as a pass.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from mispec.spec.fields import MAX_STEP, Name, Strict, list_to_tuple

Label = int | float | str
Quantifier = Literal["every", "any"] | Annotated[float, Field(gt=0, le=1)]
QUANTIFIER_HELP = "every (the default), any, or the fraction of them that must hold (0-1]"


class Operand(Strict):
    """A metric's results, optionally of one model, at chosen labels and step."""

    metric: Name = Field(description="a metric of this spec (a key of metrics:)")
    model: Name | None = Field(
        default=None,
        description="the model (or pair node A_vs_B) whose results it reads; default: the "
        "only model that has this metric",
    )
    where: dict[Name, Label] = Field(
        default_factory=dict,
        description="labels to select, by dim: {layer: 1, seed: 0, weight_decay: 1.0}",
    )
    step: Annotated[int, Field(ge=0, le=MAX_STEP)] | Literal["first", "last"] | None = Field(
        default=None, description="one step (first, last or a step); default: every step"
    )

    def shown(self) -> str:
        """``model/metric`` with its selection: ``loss@last``, ``induction[layer=1]``."""
        text = f"{self.model}/{self.metric}" if self.model else self.metric
        if self.step is not None:
            text += f"@{self.step}"
        if self.where:
            text += "[" + ",".join(f"{d}={x}" for d, x in self.where.items()) + "]"
        return text


def _operand(value: Any) -> Any:
    """``metric`` or ``model/metric`` is ``{metric: ..., model: ...}``."""
    if isinstance(value, str):
        model, _, metric = value.rpartition("/")
        return {"metric": metric, "model": model} if model else {"metric": metric}
    return value


OperandIn = Annotated[Operand, BeforeValidator(_operand, json_schema_input_type=Operand | str)]


class ClaimSpec(Strict):
    """One claim: its sentence (``text``), exactly one check, how dims left over are
    quantified, and whether the study is expected to fail it."""

    text: Annotated[str, Field(min_length=1, max_length=300, pattern=r"^[^\n]*$")] = Field(
        description="the claim as one line, the sentence a paper would write"
    )
    value: OperandIn | None = Field(
        default=None, description="check a value: with between, above, below or is"
    )
    before: Annotated[tuple[OperandIn, OperandIn], BeforeValidator(list_to_tuple)] | None = Field(
        default=None, description="[A, B]: A's event step comes before B's, per seed"
    )
    compare: (
        Annotated[tuple[OperandIn, Literal["<", ">"], OperandIn], BeforeValidator(list_to_tuple)]
        | None
    ) = Field(default=None, description='[A, "<", B]: compare two results, per seed')
    argmax: OperandIn | None = Field(
        default=None, description="where the largest value lies: with over and at"
    )
    count: OperandIn | None = Field(
        default=None, description="how many entries over `over` are non-zero: with a range"
    )
    over: list[Name] = Field(default_factory=list, description="the dims argmax or count runs over")
    at: dict[Name, Label] = Field(
        default_factory=dict, description="argmax: the labels its location must have"
    )
    between: Annotated[tuple[float, float], BeforeValidator(list_to_tuple)] | None = Field(
        default=None, description="[lo, hi]: the value lies in this closed range"
    )
    above: float | None = Field(default=None, description="the value is greater than this")
    below: float | None = Field(default=None, description="the value is less than this")
    is_: Literal["nan", "finite"] | None = Field(
        default=None,
        alias="is",
        description="nan: the event does not happen (the value is NaN); finite: it does",
    )
    margin: Annotated[float, Field(ge=0)] = Field(
        default=0.0, description='compare: by at least this much (A < B - margin for "<")'
    )
    seeds: Quantifier = Field(default="every", description="over seeds: " + QUANTIFIER_HELP)
    steps: Quantifier = Field(default="every", description="over steps: " + QUANTIFIER_HELP)
    points: Quantifier = Field(
        default="every", description="over every other dim left: " + QUANTIFIER_HELP
    )
    expect: Literal["pass", "fail"] = Field(
        default="pass", description="fail: a known failure of the study (give the reason)"
    )
    reason: str | None = Field(default=None, description="why the study fails this claim")

    @property
    def kind(self) -> str:
        return next(k for k in CHECKS if getattr(self, k) is not None)

    def operands(self) -> list[tuple[tuple[str | int, ...], Operand]]:
        """Each operand with its key path inside the claim."""
        if self.before is not None:
            return [(("before", i), op) for i, op in enumerate(self.before)]
        if self.compare is not None:
            return [(("compare", 0), self.compare[0]), (("compare", 2), self.compare[2])]
        return [((self.kind,), getattr(self, self.kind))]

    def has_range(self) -> bool:
        return any(x is not None for x in (self.between, self.above, self.below))

    @model_validator(mode="after")
    def _one_check(self) -> ClaimSpec:
        given = [k for k in CHECKS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a claim needs exactly one check of {', '.join(CHECKS)}"
                + (f" (got {', '.join(given)})" if given else "")
            )
        kind = given[0]
        ranged = self.has_range()
        if kind == "value" and ranged == (self.is_ is not None):
            raise ValueError(
                "a value claim needs a range (between, above, below) or is: nan|finite"
            )
        if kind == "count" and not ranged:
            raise ValueError("a count claim needs a range (between, above, below)")
        if kind in ("before", "compare", "argmax") and (ranged or self.is_ is not None):
            raise ValueError(f"a {kind} claim takes no between, above, below or is")
        if kind == "count" and self.is_ is not None:
            raise ValueError("a count claim takes no is")
        if kind in ("argmax", "count") and not self.over:
            raise ValueError(f"an {kind} claim needs over: [dims]")
        if kind not in ("argmax", "count") and self.over:
            raise ValueError("over: only applies to argmax and count")
        if (kind == "argmax") != bool(self.at):
            raise ValueError("at: is what an argmax claim needs, and only it")
        if self.margin and kind != "compare":
            raise ValueError("margin: only applies to compare")
        if self.between is not None and self.between[0] > self.between[1]:
            raise ValueError(f"between: [{self.between[0]}, {self.between[1]}] is empty")
        if (self.expect == "fail") != (self.reason is not None):
            raise ValueError("expect: fail needs a reason (and a reason needs expect: fail)")
        return self


CHECKS = ("value", "before", "compare", "argmax", "count")

ClaimsBlock = dict[Name, ClaimSpec]
