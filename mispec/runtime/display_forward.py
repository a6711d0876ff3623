"""Progress from worker processes, shown by the client's display: a worker's
:class:`ForwardingDisplay` sends each change as a small message (through ``send``: on Dask,
an event of the run's topic), and the client's :class:`Mirror` applies them to its own
display. So a training loop on a worker, with its loss and its ``live:`` metrics, shows on
the client as it would in a local run.

Messages are plain dicts ``{"src", "seq", "op", "id", ...}``; ``src`` names the sending
display and ``seq`` counts its messages, so a message seen twice (pushed, then read back when
the run ends) is applied once. Updates that only move a bar are sent at most every ``gap``
seconds; an add, a remove, a finished bar and a ``flush`` (a live metric's new value) go at
once."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from mispec.runtime.display import Display

Message = dict[str, Any]


class ForwardingDisplay(Display):
    def __init__(
        self,
        send: Callable[[Message], None],
        *,
        gap: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ):
        super().__init__()
        self.send, self.gap, self.clock = send, gap, clock
        self.src = uuid.uuid4().hex[:12]
        self.seq = 0
        self._next = 1
        self.totals: dict[int, int] = {}
        self.sent_at: dict[int, float] = {}
        self.pending: dict[int, Message] = {}  # an update not sent yet: the latest values

    def _send(self, op: str, task: int, **fields: Any) -> None:
        self.seq += 1
        self.send({"src": self.src, "seq": self.seq, "op": op, "id": task, **fields})

    def add(self, label: str, total: int, *, status: str = "", kind: str = "work") -> int:
        with self.lock:
            task, self._next = self._next, self._next + 1
            self.totals[task] = total
            self._send("add", task, label=label, total=total, status=status, kind=kind)
            self.sent_at[task] = self.clock()
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
            if task not in self.totals:
                return
            change = self.pending.setdefault(task, {})
            if completed is not None:
                change.pop("advance", None)
                change["completed"] = completed
            if advance and "completed" in change:
                change["completed"] += advance
            elif advance:
                change["advance"] = change.get("advance", 0) + advance
            if total is not None:
                change["total"] = self.totals[task] = total
            if status is not None:
                change["status"] = status
            finished = change.get("completed", -1) >= self.totals[task]
            if flush or finished or self.clock() - self.sent_at[task] >= self.gap:
                self._send_pending(task)

    def _send_pending(self, task: int) -> None:
        change = self.pending.pop(task, None)
        if change:
            self._send("update", task, **change)
            self.sent_at[task] = self.clock()

    def reset(self, task: int, *, total: int, status: str = "") -> None:
        with self.lock:
            if task in self.totals:
                self.pending.pop(task, None)
                self.totals[task] = total
                self._send("reset", task, total=total, status=status)

    def remove(self, task: int) -> None:
        with self.lock:
            if self.totals.pop(task, None) is not None:
                self.pending.pop(task, None)
                self._send("remove", task)

    def note(self, text: str, *, style: str = "") -> None:
        with self.lock:
            self._send("note", 0, text=text, style=style)

    def close(self) -> None:
        with self.lock:
            for task in list(self.pending):
                self._send_pending(task)


class Mirror:
    """Applies a worker's messages to the client's ``display``; its tasks are removed by
    :meth:`close` (a worker that died mid-training sent no remove)."""

    def __init__(self, display: Display):
        self.display = display
        self.tasks: dict[tuple[str, int], int] = {}
        self.seen: dict[str, set[int]] = {}

    def apply(self, message: Message) -> None:
        with self.display.lock:
            src, seq = message["src"], message["seq"]
            seen = self.seen.setdefault(src, set())
            if seq in seen:
                return
            seen.add(seq)
            op, key = message["op"], (src, message["id"])
            d = self.display
            if op == "add":
                self.tasks[key] = d.add(
                    message["label"],
                    message["total"],
                    status=message["status"],
                    kind=message["kind"],
                )
            elif op == "note":
                d.note(message["text"], style=message["style"])
            elif key not in self.tasks:
                return  # its add was lost or it was removed already
            elif op == "update":
                fields = {k: message[k] for k in ("completed", "total", "status") if k in message}
                d.update(self.tasks[key], advance=message.get("advance", 0), flush=True, **fields)
            elif op == "reset":
                d.reset(self.tasks[key], total=message["total"], status=message["status"])
            elif op == "remove":
                d.remove(self.tasks.pop(key))

    def close(self) -> None:
        with self.display.lock:
            for task in self.tasks.values():
                self.display.remove(task)
            self.tasks.clear()
