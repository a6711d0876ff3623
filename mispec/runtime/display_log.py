"""Progress where there is no terminal (``nohup``, a SLURM log, CI, a pipe): a plain line
every ``every`` seconds, as tqdm and Lightning write into logs, and a last one when the run
ends. A line holds every task: what it is at, done/total, and its rate and time left once
known::

    [mispec 0:01:05] training 1/2 (toy seed 1) | checkpoints 3/40 0.9/s ETA 0:00:41 (toy seed 0 step 12) | train toy seed 1 300/1000 25.1/s ETA 0:00:28 (loss 2.9312 icl=0.41)

A change shows at once when the last line is ``every`` seconds old (``every=0``: every
change); a ticker thread writes a line every ``every`` seconds while nothing changes (a long
forward pass). The clock is injectable: tests step it instead of sleeping.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from mispec.runtime.display import Display


@dataclass
class TaskState:
    label: str
    total: int
    kind: str
    status: str
    started: float
    completed: int = 0


class LogDisplay(Display):
    def __init__(
        self,
        *,
        every: float,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        ticker: bool = False,
    ):
        super().__init__()
        self.every = every
        self.stream = stream
        self.clock = clock
        self.tasks: dict[int, TaskState] = {}
        self.begun = clock()
        self.last_line = self.begun  # the first line comes ``every`` seconds in
        self._next = 1
        self._stop = threading.Event()
        if ticker and every > 0:
            threading.Thread(target=self._tick_forever, daemon=True).start()

    # ---------------------------------------------------------------- the tasks
    def add(self, label: str, total: int, *, status: str = "", kind: str = "work") -> int:
        with self.lock:
            task, self._next = self._next, self._next + 1
            self.tasks[task] = TaskState(label, total, kind, status, self.clock())
            self._changed()
            return task

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
        with self.lock:
            state = self.tasks.get(task)
            if state is None:
                return
            if completed is not None:
                state.completed = completed
            state.completed += advance
            if total is not None:
                state.total = total
            if status is not None:
                state.status = status
            self._changed()

    def reset(self, task: int, *, total: int, status: str = "") -> None:
        with self.lock:
            state = self.tasks.get(task)
            if state is not None:
                state.total, state.completed, state.status = total, 0, status
                state.started = self.clock()
                self._changed()

    def remove(self, task: int) -> None:
        with self.lock:
            self.tasks.pop(task, None)

    def note(self, text: str, *, style: str = "") -> None:
        with self.lock:
            self._write(text)

    def close(self) -> None:
        self._stop.set()
        with self.lock:
            if self.tasks:
                self._write(self.line())  # the final counts, whenever the last line was

    # ---------------------------------------------------------------- the lines
    def tick(self) -> None:
        """Write a line if the last one is ``every`` seconds old (the ticker's call)."""
        with self.lock:
            if self.tasks and self.clock() - self.last_line >= self.every:
                self._write(self.line())

    def _changed(self) -> None:
        if self.clock() - self.last_line >= self.every:
            self._write(self.line())

    def line(self) -> str:
        now = self.clock()
        parts = [describe(state, now) for state in self.tasks.values()]
        return f"[mispec {clock_text(now - self.begun)}] " + " | ".join(parts)

    def _write(self, text: str) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        print(text, file=stream, flush=True)
        self.last_line = self.clock()

    def _tick_forever(self) -> None:
        while not self._stop.wait(self.every):
            self.tick()


def describe(state: TaskState, now: float) -> str:
    """``label done/total [rate ETA] [(status)]``: the rate once something is done, the
    time left while something is left."""
    text = f"{state.label} {state.completed}/{state.total}"
    seconds = now - state.started
    if 0 < state.completed < state.total and seconds > 0:
        rate = state.completed / seconds
        text += f" {rate:.3g}/s ETA {clock_text((state.total - state.completed) / rate)}"
    if state.status:
        text += f" ({state.status})"
    return text


def clock_text(seconds: float) -> str:
    """``H:MM:SS``, as rich's bars show time."""
    s = int(round(max(seconds, 0.0)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
