"""Progress where there is no terminal (``nohup``, a SLURM log, CI, a pipe): a plain line
every ``every`` seconds, as tqdm and Lightning write into logs, and a last one when the run
ends. A line holds every task: what it is at, done/total, and its rate and time left once
known::

    [mispec 0:01:05] training 1/2 (toy seed 1) | checkpoints 3/40 ETA after training (toy seed 0 step 12) | train toy seed 1 300/1000 25.1/s ETA 0:00:28 (loss 2.9312 icl=0.41)

Checkpoints and reductions wait on training while it is under way, so their time left is
told once it is over (``checkpoints 23/40 2.1/s ETA 0:00:08``).

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
    base: int = 0  # done before ``started``: the rate counts from there


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
        self._training = False  # training under way at the last change
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
                state.started, state.base = self.clock(), 0
                self._changed()

    def remove(self, task: int) -> None:
        with self.lock:
            self.tasks.pop(task, None)
            self._training_over()

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

    def _training_over(self) -> None:
        """When training ends, the work that waited on it starts its rate afresh: what it
        did at training's pace does not count toward its time left."""
        training = any(waits_for(state) for state in self.tasks.values())
        if self._training and not training:
            now = self.clock()
            for state in self.tasks.values():
                state.started, state.base = now, state.completed
        self._training = training

    def _changed(self) -> None:
        self._training_over()
        if self.clock() - self.last_line >= self.every:
            self._write(self.line())

    def line(self) -> str:
        now = self.clock()
        training = any(waits_for(state) for state in self.tasks.values())
        parts = [describe(state, now, after_training=training) for state in self.tasks.values()]
        return f"[mispec {clock_text(now - self.begun)}] " + " | ".join(parts)

    def _write(self, text: str) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        print(text, file=stream, flush=True)
        self.last_line = self.clock()

    def _tick_forever(self) -> None:
        while not self._stop.wait(self.every):
            self.tick()


def is_training(state: TaskState) -> bool:
    """A training loop's bar, or the run's bar counting its training runs."""
    return state.kind == "training" or state.label == "training"


def waits_for(state: TaskState) -> bool:
    """Whether ``state`` is training still under way (other work goes at its pace)."""
    return is_training(state) and state.completed < state.total


def describe(state: TaskState, now: float, *, after_training: bool = False) -> str:
    """``label done/total [rate ETA] [(status)]``: the rate once something is done, the
    time left while something is left. Work that follows training (``after_training``: the
    checkpoints, the reductions) goes at training's pace while training is under way, so
    its rate so far says nothing of its end: ``ETA after training`` instead."""
    text = f"{state.label} {state.completed}/{state.total}"
    seconds = now - state.started
    if after_training and not is_training(state):
        if state.base < state.completed < state.total:  # where a time left would show
            text += " ETA after training"
    elif state.base < state.completed < state.total and seconds > 0:
        rate = (state.completed - state.base) / seconds
        text += f" {rate:.3g}/s ETA {clock_text((state.total - state.completed) / rate)}"
    if state.status:
        text += f" ({state.status})"
    return text


def clock_text(seconds: float) -> str:
    """``H:MM:SS``, as rich's bars show time."""
    s = int(round(max(seconds, 0.0)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
