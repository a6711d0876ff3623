"""``train:`` — a toy model mispec trains: its task (or mixture), architecture, optimizer and
start; and ``refine:``, the checkpoints added around a transition of a trained model."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from mispec.spec.fields import MAX_STEP, DType, Name, Strict, list_to_tuple
from mispec.spec.mixture import MixtureSpec
from mispec.spec.weight_edits import CheckpointRef, InitFrom, SurgeryOp, WeightTarget


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
        BeforeValidator(list_to_tuple),
    ] = Field(default=(0.9, 0.999), description="Adam betas [beta1, beta2]")
    momentum: Annotated[float, Field(ge=0, lt=1)] = Field(default=0.0, description="SGD momentum")


# Keys added to ``train:`` after format 1 shipped: dumped only when set, so the training
# identity (and spec hash) of a spec without them is what it always was.
TRAIN_CONTROL_KEYS = ("mixture", "init_from", "init", "freeze")
# ... and those dumped only when they differ from their default.
TRAIN_DEFAULTS_UNDUMPED: dict[str, Any] = {"warmup_offset": 1}


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
    warmup_offset: Literal[0, 1] = Field(
        default=1,
        description="update u < warmup_steps runs at lr * (u + warmup_offset) / warmup_steps: "
        "1 (default) starts at lr / warmup_steps; 0 is torch's LambdaLR(min(u / n, 1)) as "
        "Nanda et al. use it, whose update 0 has lr 0 but still feeds Adam's moments",
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
        for key, default in TRAIN_DEFAULTS_UNDUMPED.items():
            if data.get(key, default) == default:
                data.pop(key, None)
        if data.get("task", "") is None:
            del data["task"]
        return data

    def checkpoint_refs(self) -> list[tuple[tuple[str | int, ...], CheckpointRef]]:
        """The checkpoints this model starts from (``init_from``, ``init``'s copies), each
        with its key path under ``train``."""
        out: list[tuple[tuple[str | int, ...], CheckpointRef]] = []
        if self.init_from is not None:
            out.append((("init_from",), self.init_from))
        for i, op in enumerate(self.init):
            if op.source is not None:
                out.append((("init", i, "from"), op.source))
        return out


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
