"""The spec language: strict, frozen pydantic models (``extra="forbid"``), format version 1.

A spec declares models (trained by mispec, a local folder, a pretrained family, or a
plugin's source; one entry class per source), their checkpoints and seeds, prompt sets, and a DAG of metrics. Structural rules live here;
rules that need registries or cross-references live in ``mispec.validation.checks``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Tag,
    field_validator,
    model_serializer,
    model_validator,
)

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)]
DType = Literal["float32", "float16", "bfloat16"]
CachePolicy = Literal["store", "float16", "skip"]
MAX_STEP = 10**9
# The largest scale factor of a weight edit (``init: [{op: scale, factor: ...}]``).
MAX_SCALE_FACTOR = 1e6


class Strict(BaseModel):
    """Unknown keys are errors, and values are never coerced across types (pydantic strict
    mode): ``steps: true`` or ``steps: "40"`` is refused, not read as 1 or 40; an integer
    where a float is expected stays allowed (``lr: 1``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _list_to_tuple(value: Any) -> Any:
    """YAML and JSON have lists, not tuples: a fixed-length field takes a list (strict mode
    alone would refuse it)."""
    return tuple(value) if isinstance(value, list) else value


# --------------------------------------------------------------------------- checkpoints
class StepsSelector(Strict):
    """Explicit training steps: ``{steps: [0, 100, 1000]}``."""

    steps: Annotated[list[Annotated[int, Field(ge=0, le=MAX_STEP)]], Field(min_length=1)] = Field(
        description="the training steps to read, e.g. [0, 100, 1000]"
    )


class RangeSelector(Strict):
    """Every N steps: ``{every: 100}`` or ``{start: 0, stop: 1000, every: 50}`` (stop inclusive)."""

    every: Annotated[int, Field(gt=0, le=MAX_STEP)] = Field(description="read every N-th step")
    start: Annotated[int, Field(ge=0, le=MAX_STEP)] = Field(
        default=0, description="first step (default 0)"
    )
    stop: Annotated[int, Field(ge=0, le=MAX_STEP)] | None = Field(
        default=None, description="last step, inclusive (default: the last one there is)"
    )

    @model_validator(mode="after")
    def _order(self) -> RangeSelector:
        if self.stop is not None and self.stop < self.start:
            raise ValueError(f"stop ({self.stop}) is before start ({self.start})")
        return self


class ScheduleSelector(Strict):
    """``count`` checkpoints spaced on a schedule: ``{schedule: log, count: 40}``.

    ``log`` takes step 0 and log-spaced steps up to the last one (more early, where
    training dynamics happen); ``linear`` spaces them evenly.
    """

    schedule: Literal["log", "linear"] = Field(
        description="log: more checkpoints early (step 0, then log-spaced); linear: evenly spaced"
    )
    count: Annotated[int, Field(gt=0, le=100_000)] = Field(description="how many checkpoints")
    start: Annotated[int, Field(ge=0, le=MAX_STEP)] = Field(
        default=0, description="first step (default 0)"
    )
    stop: Annotated[int, Field(ge=0, le=MAX_STEP)] | None = Field(
        default=None, description="last step (default: the last one there is)"
    )


def _selector_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return type(value).__name__
    if isinstance(value, str):
        return "name"
    if isinstance(value, dict):
        if "steps" in value:
            return "StepsSelector"
        if "schedule" in value or "count" in value:
            return "ScheduleSelector"
        if "every" in value:
            return "RangeSelector"
    return None


Selector = Annotated[
    Annotated[Literal["all", "last"], Tag("name")]
    | Annotated[StepsSelector, Tag("StepsSelector")]
    | Annotated[RangeSelector, Tag("RangeSelector")]
    | Annotated[ScheduleSelector, Tag("ScheduleSelector")],
    Discriminator(
        _selector_kind,
        custom_error_type="selector",
        custom_error_message="expected 'all', 'last', {steps: [...]}, {every: N}, "
        "{start: A, stop: B, every: N} or {schedule: log|linear, count: N}",
    ),
]


# --------------------------------------------------------------------------- models
class ArchSpec(Strict):
    """Architecture of a toy model mispec trains (a TransformerLens-native model)."""

    n_layers: Annotated[int, Field(gt=0, le=128)] = Field(
        description="number of transformer blocks"
    )
    n_heads: Annotated[int, Field(gt=0, le=256)] = Field(description="attention heads per block")
    d_model: Annotated[int, Field(gt=0, le=65536)] = Field(
        description="width of the residual stream"
    )
    d_head: Annotated[int, Field(gt=0, le=4096)] = Field(description="width of each attention head")
    d_mlp: Annotated[int, Field(gt=0, le=262144)] | None = Field(
        default=None, description="MLP hidden width (default 4 * d_model; unused with attn_only)"
    )  # default 4 * d_model
    attn_only: bool = Field(default=False, description="attention-only blocks (no MLPs)")
    normalization: Literal["LN", "LNPre", "RMS", "RMSPre"] | None = Field(
        default="LN", description="LayerNorm / RMSNorm variant, or null for none"
    )
    act_fn: Literal["relu", "gelu", "gelu_new", "silu", "solu_ln"] = Field(
        default="relu", description="MLP activation function"
    )
    positional_embedding: Literal["standard", "rotary"] = Field(
        default="standard", description="learned absolute (standard) or rotary positions"
    )
    d_vocab: Annotated[int, Field(gt=1, le=1_000_000)] | None = Field(
        default=None, description="vocabulary size (default: the task's)"
    )  # default: the task's
    n_ctx: Annotated[int, Field(gt=1, le=1_000_000)] | None = Field(
        default=None, description="context length (default: the task's)"
    )  # default: the task's
    init_range: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="std of the weight initialisation (default: TransformerLens's)"
    )


class OptimizerSpec(Strict):
    name: Literal["adamw", "adam", "sgd"] = Field(default="adamw", description="optimizer")
    lr: Annotated[float, Field(gt=0, le=10)] = Field(default=1e-3, description="learning rate")
    weight_decay: Annotated[float, Field(ge=0, le=100)] = Field(
        default=0.0, description="weight decay (decoupled for adamw)"
    )
    betas: Annotated[
        tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]],
        BeforeValidator(_list_to_tuple),
    ] = Field(default=(0.9, 0.999), description="Adam betas [beta1, beta2]")
    momentum: Annotated[float, Field(ge=0, lt=1)] = Field(default=0.0, description="SGD momentum")


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
    BeforeValidator(_list_to_tuple),
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


# Keys added to ``train:`` after format 1 shipped: dumped only when set, so the training
# identity (and spec hash) of a spec without them is what it always was.
TRAIN_CONTROL_KEYS = ("mixture", "init_from", "init", "freeze")


class TrainSpec(Strict):
    """A toy model trained by mispec on an algorithmic task (see ``mispec.tasks``)."""

    task: str | None = Field(
        default=None,
        description="the task to train on: a registered name (`mispec list tasks`) or "
        "module:function (or give a 'mixture' instead)",
    )
    task_args: dict[str, Any] = Field(
        default_factory=dict,
        description="the task's arguments (`mispec list tasks` shows them with defaults)",
    )
    mixture: MixtureSpec | None = Field(
        None, description="train on a weighted mixture of tasks instead of one 'task'"
    )
    init_from: InitFrom | None = Field(
        None, description="start from another model entry's checkpoint (fine-tuning)"
    )
    init: list[SurgeryOp] = Field(
        default_factory=list, description="edits of the initial weights, in order, before step 0"
    )
    freeze: WeightTarget | None = Field(
        None,
        description="weights held at their step-0 value during training (no gradient); "
        "a zeroed head that is frozen stays knocked out",
    )
    arch: ArchSpec = Field(description="architecture of the toy transformer")
    steps: Annotated[int, Field(gt=0, le=10_000_000)] = Field(description="training steps")
    batch_size: Annotated[int, Field(gt=0, le=1_000_000)] | None = Field(
        default=64, description="sequences per step; null: the full batch (finite tasks)"
    )  # None: full batch
    optimizer: OptimizerSpec = Field(
        default=OptimizerSpec(), description="optimizer and its hyperparameters"
    )
    warmup_steps: Annotated[int, Field(ge=0)] = Field(
        default=0, description="linear learning-rate warmup steps"
    )
    grad_clip: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="clip the gradient norm to this value (default: no clipping)"
    )
    loss_dtype: Literal["float32", "float64"] | None = Field(
        default=None,
        description="precision of the training cross-entropy (default float32); float64 "
        "avoids the loss spikes of a tiny loss (Nanda et al.'s grokking runs)",
    )
    dtype: DType = Field(default="float32", description="dtype of training")
    device: str = Field(default="cpu", description="device to train on (cpu, cuda, auto)")

    @model_validator(mode="after")
    def _one_task(self) -> TrainSpec:
        if (self.task is None) == (self.mixture is None):
            raise ValueError("train needs exactly one of 'task' or 'mixture'")
        if self.mixture is not None and self.task_args:
            raise ValueError("'task_args' belongs to each task of the mixture")
        return self

    @model_serializer(mode="wrap")
    def _without_unset_control(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for key in TRAIN_CONTROL_KEYS:
            if key in data and not data[key]:
                del data[key]
        if data.get("task", "") is None:
            del data["task"]
        return data


class ModelSpecBase(Strict):
    """What every model entry has, whatever its source: the ``seeds`` (one run each), the
    ``checkpoints`` to read (default: the source's), and how to load them."""

    seeds: Annotated[list[Annotated[int, Field(ge=0, le=2**31 - 1)]], Field(min_length=1)] = Field(
        default=[0], description="one training run (or checkpoint family) per seed"
    )
    checkpoints: Selector | None = Field(
        default=None,
        description="which steps to read: all, last, {steps: [...]}, {every: N}, {schedule: log, count: N} (default: the source's)",
    )  # default: the source's (log/32 for train, else all)
    dtype: DType = Field(default="float32", description="dtype to load checkpoints in")
    device: str = Field(
        default="auto", description="device to run metrics on (auto: CUDA when present)"
    )
    tokenizer: str | None = Field(
        default=None, description="a local tokenizer folder, for models that come without one"
    )  # a local tokenizer folder for models without one

    @model_validator(mode="after")
    def _distinct_seeds(self) -> ModelSpecBase:
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds are repeated")
        return self

    def source_name(self) -> str:
        """The name of this entry's source in ``mispec.sources.SOURCES``."""
        raise NotImplementedError


class _BuiltinSourceSpec(ModelSpecBase):
    """A built-in source's entry. It dumps the other built-in source keys as ``None``, as
    the single model class before it did, so ``spec_hash`` (run provenance) is unchanged."""

    @model_serializer(mode="wrap")
    def _with_absent_sources(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for key in _ABSENT_WHEN_UNSET:  # keys added later: an entry without them dumps as before
            if data.get(key, 0) is None:
                del data[key]
        return {**dict.fromkeys(BUILTIN_SOURCE_KEYS), **data}


class RefineSpec(Strict):
    """Adaptive checkpoints around a transition: after a first pass, add checkpoints inside
    the gap where a ``crossing_step`` metric's series crosses its level, round after round,
    until the gap is at most ``resolution`` steps or ``budget`` checkpoints were added
    (``mispec.execute.refine``)."""

    transition: Name = Field(
        description="a crossing_step metric of this spec: its series and level say what to locate"
    )
    resolution: Annotated[int, Field(ge=1, le=MAX_STEP)] = Field(
        default=1, description="stop when the crossing is known to this many steps"
    )
    budget: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=32, description="at most this many extra checkpoints per seed"
    )
    split: Annotated[int, Field(ge=2, le=64)] = Field(
        default=4, description="each round cuts the gap into this many parts (split - 1 new steps)"
    )


class TrainedModelSpec(_BuiltinSourceSpec):
    """``train:`` a toy model that mispec trains (every step exists)."""

    train: TrainSpec = Field(description="a toy model mispec trains itself on an algorithmic task")
    refine: RefineSpec | None = Field(
        default=None, description="add checkpoints where a transition happens (adaptive)"
    )
    live: list[Name] | None = Field(
        default=None,
        description="metrics computed inside the training loop at checkpoint steps, shown live",
    )

    def source_name(self) -> str:
        return "train"


class PretrainedModelSpec(_BuiltinSourceSpec):
    """``pretrained:`` a published family, one revision per step; ``{seed}`` names one run
    per seed (``EleutherAI/pythia-70m-seed{seed}``)."""

    pretrained: str = Field(
        description="a published model family with per-step revisions, e.g. EleutherAI/pythia-70m"
    )

    def source_name(self) -> str:
        return "pretrained"


class LocalFolderModelSpec(_BuiltinSourceSpec):
    """``path:`` a local folder of checkpoints (relative to the spec); ``{seed}`` names one
    folder per seed."""

    path: str = Field(
        description="a local folder of checkpoints (step<N>/, checkpoint-<N>/ or *_<N>.safetensors)"
    )

    def source_name(self) -> str:
        return "path"


class PluginModelSpec(ModelSpecBase):
    """``source:`` a model source from a plugin (a registered name or ``module:Class``) with
    its own ``options``, which the source itself checks."""

    source: str = Field(
        description="a model source from a plugin: a registered name (`mispec list sources`) or module:Class"
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="the plugin source's own options"
    )

    def source_name(self) -> str:
        return self.source


BUILTIN_SOURCE_KEYS = ("train", "pretrained", "path")
_ABSENT_WHEN_UNSET = ("refine", "live")
SOURCE_KEYS = (*BUILTIN_SOURCE_KEYS, "source")
_ENTRY_TAGS = {
    "train": "TrainedModelSpec",
    "pretrained": "PretrainedModelSpec",
    "path": "LocalFolderModelSpec",
    "source": "PluginModelSpec",
}


def _one_source(value: Any) -> Any:
    """Exactly one source key per model entry (a source key set to null counts as absent)."""
    if not isinstance(value, dict):
        return value
    value = {k: v for k, v in value.items() if not (k in SOURCE_KEYS and v is None)}
    given = [k for k in SOURCE_KEYS if k in value]
    if len(given) != 1:
        raise ValueError(
            "a model needs exactly one source: 'train', 'pretrained' or 'path', or 'source' "
            "naming a plugin's model source" + (f" (got {', '.join(given)})" if given else "")
        )
    return value


def _source_tag(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return type(value).__name__
    if isinstance(value, dict):
        return next((_ENTRY_TAGS[k] for k in SOURCE_KEYS if k in value), None)
    return None


ModelSpec = Annotated[
    Annotated[TrainedModelSpec, Tag("TrainedModelSpec")]
    | Annotated[PretrainedModelSpec, Tag("PretrainedModelSpec")]
    | Annotated[LocalFolderModelSpec, Tag("LocalFolderModelSpec")]
    | Annotated[PluginModelSpec, Tag("PluginModelSpec")],
    Discriminator(_source_tag),
    BeforeValidator(_one_source),
]
"""A spec's model entry: one class per source, told apart by the source key it has."""


# --------------------------------------------------------------------------- prompts
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


# --------------------------------------------------------------------------- metrics
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
    models: Annotated[tuple[Name, Name], BeforeValidator(_list_to_tuple)] | None = Field(
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


class Spec(Strict):
    mispec: Literal[1] = Field(description="spec format version; this is version 1")
    name: Name = Field(description="name of the study; the run folder is runs/<name>/")
    description: str = Field(default="", description="what the study is about (free text)")
    include: list[str] = Field(
        default_factory=list,
        description="other spec files whose models, prompts and metrics this one extends",
    )
    models: Annotated[dict[Name, ModelSpec], Field(min_length=1)] = Field(
        description="the models to measure, by name: train, pretrained, path or a plugin source each"
    )
    prompts: dict[Name, PromptSpec] = Field(
        default_factory=dict, description="prompt sets, by name"
    )
    metrics: Annotated[dict[Name, MetricSpec], Field(min_length=1)] = Field(
        description="the metric DAG, by name: each a variable of the results"
    )
    cache: dict[str, CachePolicy] = Field(
        default_factory=dict,
        description="activation cache policy per hook name: store, float16 or skip",
    )  # hook name -> policy


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a spec file, for editors (yaml-language-server)."""
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://mispec.dev/schema/v1.json"
    schema["title"] = "mispec study spec (format 1)"
    return schema
