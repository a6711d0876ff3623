"""What a spec measures: prompt sets (``prompts:``) and the metric DAG (``metrics:``), with
the inputs a metric reads from other checkpoints and the pairs a comparison reads."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from mispec.spec.fields import MAX_STEP, CachePolicy, Name, Strict, list_to_tuple


class PromptSpec(Strict):
    """A prompt set: a registered ``generator`` with ``args`` and ``seed``, or a text ``file``
    (``.txt``: one prompt per line; ``.jsonl``: ``{"text": ...}`` per line, optionally with
    ``answer``, ``wrong_answer``, ``corrupt_text`` and named ``positions``)."""

    generator: str | None = Field(
        default=None,
        description="a prompt generator or task name (`mispec list generators`) or module:function",
    )
    args: dict[str, Any] = Field(
        default_factory=dict,
        description="the generator's arguments (n: how many prompts, then the task's args)",
    )
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = Field(
        default=0, description="random seed of the generated prompts"
    )
    file: str | None = Field(
        default=None,
        description='a text file of prompts (.txt: one per line; .jsonl: {"text": ...} per line)',
    )
    prepend_bos: bool = Field(default=True, description="prepend the BOS token to text prompts")
    max_tokens: Annotated[int, Field(gt=1, le=1_000_000)] | None = Field(
        default=None, description="truncate text prompts to this many tokens"
    )
    limit: Annotated[int, Field(gt=0)] | None = Field(
        default=None, description="use only the first N prompts of the file"
    )

    @model_validator(mode="after")
    def _one_source(self) -> PromptSpec:
        if (self.generator is None) == (self.file is None):
            raise ValueError("a prompt set needs exactly one of 'generator' or 'file'")
        if self.file is not None and self.args:
            raise ValueError("'args' only applies to a 'generator'")
        return self


StepRef = Annotated[int, Field(ge=0, le=MAX_STEP)] | Literal["first", "last"]


class InputRef(Strict):
    """Another metric's result taken from elsewhere than the reading cell's own checkpoint:
    a fixed ``step`` of the same run (``{metric: freqs, step: last}``: chosen at the last
    checkpoint, used at every step), another ``seed`` or another ``model`` (at the same step
    unless ``step`` says which). Unset fields mean "the reading cell's own"."""

    metric: Name = Field(description="the metric whose per-checkpoint result is read")
    step: StepRef | None = Field(
        default=None,
        description="a fixed training step (or 'first'/'last' of the run read); "
        "default: the reading cell's own step",
    )
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = Field(
        default=None, description="another seed of the model read; default: the reading cell's own"
    )
    model: Name | None = Field(
        default=None,
        description="another model entry of this spec; default: the reading cell's own",
    )

    @property
    def is_local(self) -> bool:
        """True when it reads the reading cell's own checkpoint (a plain metric name)."""
        return self.step is None and self.seed is None and self.model is None


class PairSpec(Strict):
    """Which two sides a comparison metric reads (exactly one key): ``seeds`` — every
    unordered pair of seeds of each model (``all``, or the listed seeds); ``models`` — model
    A against model B at the seeds and steps they share; ``steps`` — each checkpoint against
    one step of the same run (``last``, ``first`` or a step); ``models`` with ``steps`` — model
    A at each of its steps against one step of model B (a fine-tuned model against its parent's
    last checkpoint)."""

    seeds: Literal["all"] | Annotated[list[int], Field(min_length=2)] | None = Field(
        default=None,
        description="compare every unordered pair of these seeds of each model ('all': every "
        "seed); results gain a 'seed_b' dim",
    )
    models: Annotated[tuple[Name, Name], BeforeValidator(list_to_tuple)] | None = Field(
        default=None,
        description="compare model A (first) against model B (second) at the seeds and steps "
        "they share; results go to a DataTree node '<A>_vs_<B>'",
    )
    steps: Literal["last", "first"] | Annotated[int, Field(ge=0, le=MAX_STEP)] | None = Field(
        default=None,
        description="compare each checkpoint with this step of the same run (last, first or "
        "a step), or with 'models', with this step of model B; results gain a 'step_b' dim",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> PairSpec:
        given = [k for k in ("seeds", "models", "steps") if getattr(self, k) is not None]
        if given == ["models", "steps"]:  # model A at each step against one step of model B
            return self
        if len(given) != 1:
            raise ValueError(
                "a pair declaration needs exactly one of 'seeds', 'models' or 'steps' (or "
                "'models' with 'steps': model A at each step against that step of model B)"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


def _pairs_shorthand(value: Any) -> Any:
    """``pairs: seeds`` is ``pairs: {seeds: all}``."""
    return {"seeds": "all"} if value == "seeds" else value


class MetricSpec(Strict):
    """One node of the metric DAG: ``fn`` from the metric registry (or ``module:function``),
    the ``prompts`` it reads, ``inputs`` wiring other metrics to its parameters, ``args``.

    An input is a metric name (its result at the same checkpoint) or an :class:`InputRef`
    (its result at a fixed step, another seed or another model)."""

    fn: str = Field(
        description="the metric function: a registered name (`mispec list metrics`) or module:function"
    )
    prompts: str | None = Field(
        default=None, description="the prompt set it reads (a key of prompts:)"
    )
    inputs: dict[str, str | InputRef] = Field(
        default_factory=dict,
        description="other metrics wired to the function's parameters: {parameter: metric} "
        "or {parameter: {metric: m, step: last}}",
    )
    args: dict[str, Any] = Field(
        default_factory=dict,
        description="the function's arguments (`mispec list metrics` shows them with defaults)",
    )
    models: list[str] | None = Field(
        default=None, description="compute it only for these models (default: all)"
    )
    cache: CachePolicy | None = Field(
        default=None,
        description="cache policy for the activations it reads: store, float16 or skip",
    )
    pairs: (
        Annotated[
            PairSpec,
            BeforeValidator(_pairs_shorthand, json_schema_input_type=PairSpec | Literal["seeds"]),
        ]
        | None
    ) = Field(
        default=None,
        description="the two sides a comparison metric reads: 'seeds' (every seed pair), "
        "{models: [A, B]} or {steps: last}; its other-side inputs read the second side",
    )

    @model_serializer(mode="wrap")
    def _without_absent_pairs(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A metric without ``pairs`` dumps as before the key existed (``spec_hash``)."""
        data: dict[str, Any] = handler(self)
        if data.get("pairs") is None:
            data.pop("pairs", None)
        return data

    def input_refs(self) -> dict[str, InputRef]:
        """Every input as an :class:`InputRef` (a plain name reads the same checkpoint)."""
        return {
            p: r if isinstance(r, InputRef) else InputRef(metric=r) for p, r in self.inputs.items()
        }

    def input_metrics(self) -> dict[str, str]:
        """Parameter -> the name of the metric it reads."""
        return {p: r.metric for p, r in self.input_refs().items()}
