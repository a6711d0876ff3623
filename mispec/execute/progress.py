"""The walk's progress bars (on the run's one display) that vanish under ``--quiet``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mispec.planning.nodes import WorkNode
    from mispec.runtime.display import Display


class WorkProgress:
    """Progress of a run's work nodes: one bar per kind (training, checkpoints, reductions)
    with the node at hand as its status, on the run's one display
    (:mod:`mispec.runtime.display`); failures printed above the bars as they happen. A later
    walk of the run (a refine round) starts the same bars again at its own totals."""

    _BARS = {"train": "training", "group": "checkpoints", "reduction": "reductions"}

    def __init__(self, display: Display, nodes: Sequence[WorkNode], *, where: str, enabled: bool):
        self.display = display
        self.enabled = enabled
        totals = Counter(n.kind for n in nodes)
        kinds = [kind for kind in self._BARS if totals.get(kind)]
        display.drop_bars(keep=set(kinds))
        self._ids = {kind: display.bar(kind, self._BARS[kind], totals[kind]) for kind in kinds}
        self.where = where

    def starting(self, node: WorkNode) -> None:
        """The node about to run here (executors that run nodes in this process)."""
        if node.kind in self._ids:
            self.display.update(self._ids[node.kind], status=describe(node))

    def finished(self, node: WorkNode) -> None:
        if node.kind in self._ids:
            self.display.update(self._ids[node.kind], status=describe(node), advance=1)

    def done(self) -> None:
        for task in self._ids.values():
            self.display.update(task, status="done")

    def tell(self, record: dict[str, Any]) -> None:
        """Print a failure as it happens (above the progress bars)."""
        self.display.note(
            f"failed {record['node']}: {record['message']} "
            "(other tasks continue; finished cells are kept)",
            style="red",
        )


def describe(node: WorkNode) -> str:
    """A work node in words, for progress lines."""
    from mispec.planning.nodes import GroupNode, ReductionNode

    if isinstance(node, GroupNode):
        return f"{node.model} seed {node.seed} step {node.step}"
    if isinstance(node, ReductionNode):
        return f"{node.metric} of {node.model} seed {node.seed}"
    return f"training {node.model} seed {node.seed}"
