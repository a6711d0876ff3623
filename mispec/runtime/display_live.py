"""Progress in a terminal: every task of the run as a rich bar in ONE live region, so
nothing flickers between two displays and a training bar, removed when its loop ends,
leaves no frozen line above the others. Work bars show the time elapsed, training bars the
time left."""

from __future__ import annotations

from typing import Any

from mispec.runtime.display import Display


class LiveDisplay(Display):
    def __init__(self, console: Any):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        super().__init__()
        elapsed, left = TimeElapsedColumn(), TimeRemainingColumn()

        class TimeColumn(TimeElapsedColumn):
            def render(self, task: Any) -> Any:
                return (left if task.fields.get("kind") == "training" else elapsed).render(task)

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeColumn(),
            TextColumn("{task.fields[status]}"),
            transient=False,
            console=console,
        )
        self.console = console
        self.progress.start()

    def add(self, label: str, total: int, *, status: str = "", kind: str = "work") -> int:
        return int(self.progress.add_task(label, total=total, status=status, kind=kind))

    def update(
        self,
        task: int,
        *,
        completed: int | None = None,
        advance: int = 0,
        total: int | None = None,
        status: str | None = None,
        flush: bool = False,
    ) -> None:
        from rich.progress import TaskID

        tid = TaskID(task)
        with self.lock:
            if tid not in self.progress.task_ids:
                return
            fields: dict[str, Any] = {} if status is None else {"status": status}
            self.progress.update(tid, completed=completed, total=total, **fields)
            if advance:
                self.progress.advance(tid, advance)

    def reset(self, task: int, *, total: int, status: str = "") -> None:
        from rich.progress import TaskID

        self.progress.reset(TaskID(task), total=total, completed=0, status=status)

    def remove(self, task: int) -> None:
        from rich.progress import TaskID

        with self.lock:
            if TaskID(task) in self.progress.task_ids:
                self.progress.remove_task(TaskID(task))

    def note(self, text: str, *, style: str = "") -> None:
        from rich.text import Text

        self.console.print(Text(text, style=style), highlight=False)

    def close(self) -> None:
        self.progress.stop()
