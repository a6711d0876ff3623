"""Progress bars (rich) that vanish under ``--quiet``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mispec.planning.nodes import WorkNode


class NullBar:
    def add_task(self, *a: Any, **k: Any) -> int:
        return 0

    def advance(self, *a: Any, **k: Any) -> None:
        pass

    def update(self, *a: Any, **k: Any) -> None:
        pass

    def log(self, *a: Any, **k: Any) -> None:
        pass


@contextmanager
def progress_bars(enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield NullBar()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        transient=False,
        console=Console(stderr=True),  # progress on stderr, results on stdout
    ) as bar:
        yield bar


class WorkProgress:
    """Progress of a run's work nodes: one bar per kind (training, checkpoints, reductions)
    with the node at hand as its status; failures printed above the bars as they happen."""

    _BARS = {"train": "training", "group": "checkpoints", "reduction": "reductions"}

    def __init__(self, bars: Any, nodes: Sequence[WorkNode], *, where: str):
        self.bars = bars
        self.enabled = not isinstance(bars, NullBar)
        totals = Counter(n.kind for n in nodes)
        self._ids = {
            kind: bars.add_task(label, total=totals[kind], status="")
            for kind, label in self._BARS.items()
            if totals.get(kind)
        }
        self.where = where

    def starting(self, node: WorkNode) -> None:
        """The node about to run here (executors that run nodes in this process)."""
        if node.kind in self._ids:
            self.bars.update(self._ids[node.kind], status=describe(node))

    def finished(self, node: WorkNode) -> None:
        if node.kind in self._ids:
            self.bars.update(self._ids[node.kind], status=describe(node))
            self.bars.advance(self._ids[node.kind])

    def done(self) -> None:
        for task in self._ids.values():
            self.bars.update(task, status="done")

    def tell(self, record: dict[str, Any]) -> None:
        """Print a failure as it happens (above the progress bars)."""
        console = getattr(self.bars, "console", None)
        if console is None:
            return
        from rich.text import Text

        line = Text("failed ", style="red")
        line.append(f"{record['node']}: {record['message']} ")
        line.append("(other tasks continue; finished cells are kept)", style="dim")
        console.print(line, highlight=False)


def describe(node: WorkNode) -> str:
    """A work node in words, for progress lines."""
    from mispec.planning.nodes import GroupNode, ReductionNode

    if isinstance(node, GroupNode):
        return f"{node.model} seed {node.seed} step {node.step}"
    if isinstance(node, ReductionNode):
        return f"{node.metric} of {node.model} seed {node.seed}"
    return f"training {node.model} seed {node.seed}"
