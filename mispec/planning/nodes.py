"""Plan nodes: one frozen record per kind of node, each with a deterministic content key.

The kinds, and the edges the planner draws between them (``a → b``: b needs a):

* ``PromptsNode``  one prompt set                       → forward, cell (interventions)
* ``TrainNode``    training of one (model, seed)         → its groups
* ``GroupNode``    one checkpoint group (model, seed, step): THE unit of work — load the
                   weights once, run what its members need; its key is the checkpoint's
                   identity                              → its forwards and cells (membership)
* ``ForwardNode``  one forward pass of a group on one prompt set, with the union of the
                   hooks its cells read                  → its cells
* ``CellNode``     one metric at one checkpoint          → derived cells, reductions, assemble
* ``ReductionNode`` one metric over a whole ``step`` axis of one (model, seed)
                                                         → later reductions, assemble
* ``AssembleNode`` the results of the whole run

Executors run *work nodes* (train, group, reduction); forwards and cells run inside their
group. Node ids are made here and only here.

A node also carries what running it needs from the spec, worked out once by the planner:
a cell or reduction its metric's bound args (``args``: the spec's args over the function's
defaults, what the function receives) and a cell the hooks it reads from its forward pass
(``hooks``); a group and a forward pass the dtype their model is loaded in (``dtype``).
Executors read these, never the spec. They are *carried* fields: the key already hashes
what they say, and the plan's JSON leaves them out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

# --------------------------------------------------------------------------- ids


def prompts_id(prompts: str) -> str:
    return f"prompts:{prompts}"


def series_label(model: str, seed: int) -> str:
    """``model/s<seed>``: how a (model, seed) is named in ids and messages."""
    return f"{model}/s{seed}"


def train_id(model: str, seed: int) -> str:
    return f"train:{series_label(model, seed)}"


def _group_label(model: str, seed: int, step: int) -> str:
    return f"{series_label(model, seed)}/step{step}"


def group_id(model: str, seed: int, step: int) -> str:
    return f"group:{_group_label(model, seed, step)}"


def forward_id(model: str, seed: int, step: int, prompts: str) -> str:
    return f"forward:{_group_label(model, seed, step)}/{prompts}"


def cell_id(metric: str, model: str, seed: int, step: int) -> str:
    return f"cell:{metric}/{_group_label(model, seed, step)}"


def pair_cell_id(metric: str, model: str, seed: int, step: int, other: tuple[str, int, int]) -> str:
    """A comparison cell: metric at (model, seed, step) against the checkpoint ``other``."""
    return f"{cell_id(metric, model, seed, step)}/vs/{_group_label(*other)}"


def reduction_id(metric: str, model: str, seed: int) -> str:
    return f"reduce:{metric}/{series_label(model, seed)}"


ASSEMBLE_ID = "assemble"


# --------------------------------------------------------------------------- nodes
class BoundArgs(Mapping[str, Any]):
    """A metric's bound args, read-only: the mapping a node carries (a plan is shared by
    every group it runs, and by the processes it is sent to)."""

    __slots__ = ("_args",)

    def __init__(self, args: Mapping[str, Any] | None = None) -> None:
        self._args = dict(args or {})

    def __getitem__(self, name: str) -> Any:
        return self._args[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._args)

    def __len__(self) -> int:
        return len(self._args)

    def __repr__(self) -> str:
        return f"BoundArgs({self._args!r})"


_CARRIED = {"carried": True}  # a field executors read, which the plan's JSON leaves out


@dataclass(frozen=True)
class _Node:
    kind: ClassVar[str]
    id: str
    key: str

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "key": self.key}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in out or f.name == "inputs" or f.metadata or value is None or value == ():
                continue
            out[f.name] = dict(value) if f.name == "hooks" else value
        return out


@dataclass(frozen=True)
class PromptsNode(_Node):
    kind: ClassVar[str] = "prompts"
    prompts: str


@dataclass(frozen=True)
class TrainNode(_Node):
    kind: ClassVar[str] = "train"
    model: str
    seed: int


@dataclass(frozen=True)
class GroupNode(_Node):
    kind: ClassVar[str] = "group"
    model: str
    seed: int
    step: int
    dtype: str = field(metadata=_CARRIED)  # its model's: what its weights are loaded in


@dataclass(frozen=True)
class ForwardNode(_Node):
    kind: ClassVar[str] = "forward"
    model: str
    seed: int
    step: int
    prompts: str
    hooks: tuple[tuple[str, str], ...]  # hook template -> storage policy (store|float16|skip)
    dtype: str = field(metadata=_CARRIED)  # its model's: the dtype its activations come in


@dataclass(frozen=True)
class CellNode(_Node):
    kind: ClassVar[str] = "cell"
    model: str
    seed: int
    step: int
    metric: str
    prompts: str | None
    forward: str | None  # the forward node it reads (activation metrics)
    inputs: tuple[tuple[str, str], ...] = ()  # param -> same-group cell id (derived metrics)
    # a comparison cell (``pairs:``): the (model, seed, step) of its second side
    pair: tuple[str, int, int] | None = None
    args: BoundArgs = field(default_factory=BoundArgs, hash=False, metadata=_CARRIED)
    hooks: tuple[str, ...] = field(default=(), metadata=_CARRIED)  # what it reads of its forward


@dataclass(frozen=True)
class ReductionNode(_Node):
    kind: ClassVar[str] = "reduction"
    model: str
    seed: int
    metric: str
    # param -> the cell ids over steps (in step order), or the one reduction id it reads
    inputs: tuple[tuple[str, tuple[str, ...]], ...] = ()
    args: BoundArgs = field(default_factory=BoundArgs, hash=False, metadata=_CARRIED)


@dataclass(frozen=True)
class AssembleNode(_Node):
    kind: ClassVar[str] = "assemble"


Node = PromptsNode | TrainNode | GroupNode | ForwardNode | CellNode | ReductionNode | AssembleNode
# every kind, in the order a plan is told (work first, then what it computes)
NODE_TYPES: tuple[type[Node], ...] = (
    TrainNode,
    GroupNode,
    PromptsNode,
    ForwardNode,
    CellNode,
    ReductionNode,
    AssembleNode,
)
WorkNode = TrainNode | GroupNode | ReductionNode
ResultNode = CellNode | ReductionNode
