"""Plan nodes: one frozen record per unit of work, each with a deterministic content key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

NodeKind = Literal["train", "checkpoint", "prompts", "forward", "cell", "reduction", "assemble"]
NODE_KINDS: tuple[str, ...] = (
    "train",
    "checkpoint",
    "prompts",
    "forward",
    "cell",
    "reduction",
    "assemble",
)


@dataclass(frozen=True)
class Node:
    id: str
    kind: NodeKind
    key: str
    model: str | None = None
    seed: int | None = None
    step: int | None = None
    prompts: str | None = None
    metric: str | None = None
    # forward: hook template -> storage policy ("store" | "float16" | "skip")
    hooks: tuple[tuple[str, str], ...] = ()
    # cell/reduction: param -> upstream node ids (one for cells, one per step for reductions)
    inputs: tuple[tuple[str, tuple[str, ...]], ...] = ()
    forward: str | None = None  # cell: the forward node it reads (activation metrics)
    extra: tuple[tuple[str, Any], ...] = field(default=())

    @property
    def group(self) -> tuple[str, int, int] | None:
        """(model, seed, step): the checkpoint group this node belongs to, if any."""
        if self.model is None or self.seed is None or self.step is None:
            return None
        return (self.model, self.seed, self.step)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "key": self.key}
        for name in ("model", "seed", "step", "prompts", "metric", "forward"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.hooks:
            out["hooks"] = dict(self.hooks)
        return out


def series_id(model: str, seed: int) -> str:
    return f"{model}/s{seed}"


def group_id(model: str, seed: int, step: int) -> str:
    return f"{model}/s{seed}/step{step}"
