"""Progress bars (rich) that vanish under ``--quiet``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        transient=False,
    ) as bar:
        yield bar
