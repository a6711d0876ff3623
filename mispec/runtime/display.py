"""One progress display per run: whatever shows progress (the walk's work bars, a training
loop's bar, a Dask worker's training mirrored on the client) adds its tasks to the display
that is open, so one display owns the terminal for the whole run.

* In a terminal (or Jupyter): rich bars in one live region (:mod:`mispec.runtime.display_live`);
  a finished training bar is removed, so nothing frozen stays above the bars.
* Elsewhere (``nohup``, a SLURM log, CI, a pipe): a plain line every ``every`` seconds
  (:mod:`mispec.runtime.display_log`), like tqdm and Lightning in logs; ``every`` is
  ``mispec run --progress-every``, else ``$MISPEC_PROGRESS_EVERY``, else 30 s.

:func:`run_display` opens a display, or hands out the one already open (a refine round's walk,
a training loop inside a walk); :func:`forwarding` makes a worker process's display send
its updates to the client (:mod:`mispec.runtime.display_forward`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from mispec.errors import UserError

EVERY_ENV = "MISPEC_PROGRESS_EVERY"
DEFAULT_EVERY = 30.0  # seconds between plain progress lines outside a terminal


class Display:
    """Progress tasks (``label done/total status``) on one display; this base shows nothing.

    ``kind`` is ``"work"`` (a bar that stays until the run ends; elapsed time shown) or
    ``"training"`` (a training loop's bar, removed by its owner when it ends; time left
    shown). ``flush=True`` asks for an update to be shown or sent now (a live metric's new
    value), not only at the next interval."""

    def __init__(self) -> None:
        self.keyed: dict[str, int] = {}  # bars kept across a run's rounds, by key
        self.lock = threading.RLock()

    def add(self, label: str, total: int, *, status: str = "", kind: str = "work") -> int:
        return 0

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
        pass

    def reset(self, task: int, *, total: int, status: str = "") -> None:
        """Start ``task`` again from 0 of ``total`` (its clock too)."""

    def remove(self, task: int) -> None:
        pass

    def note(self, text: str, *, style: str = "") -> None:
        """A line printed above the bars (a failure as it happens)."""

    def close(self) -> None:
        pass

    def bar(self, key: str, label: str, total: int, *, status: str = "") -> int:
        """The ``work`` bar named ``key``: added once, reset by a later round of the run."""
        with self.lock:
            if key in self.keyed:
                self.reset(self.keyed[key], total=total, status=status)
            else:
                self.keyed[key] = self.add(label, total, status=status)
            return self.keyed[key]

    def drop_bars(self, keep: set[str]) -> None:
        """Remove the keyed bars not in ``keep`` (a round without training, say)."""
        with self.lock:
            for key in [k for k in self.keyed if k not in keep]:
                self.remove(self.keyed.pop(key))


class _Open(threading.local):
    def __init__(self) -> None:
        self.stack: list[Display] = []  # the display of this thread's run in progress, if any


_open_here = _Open()  # per thread: a Dask worker's threads each run tasks of their own


def current() -> Display | None:
    return _open_here.stack[-1] if _open_here.stack else None


@contextmanager
def run_display(enabled: bool = True, *, every: float | None = None) -> Iterator[Display]:
    """The display open in this process, or a new one for the ``with`` block (a terminal's
    live bars, else plain lines every ``every`` seconds); nothing shown when not
    ``enabled`` (``--quiet``)."""
    if not enabled:
        yield Display()
        return
    if _open_here.stack:
        yield _open_here.stack[-1]
        return
    display = new_display(every)
    with _opened(display):
        yield display


@contextmanager
def _opened(display: Display) -> Iterator[Display]:
    _open_here.stack.append(display)
    try:
        yield display
    finally:
        _open_here.stack.remove(display)
        display.close()


def new_display(every: float | None = None) -> Display:
    """Live bars when stderr is a terminal (or Jupyter), else plain lines."""
    from rich.console import Console

    console = Console(stderr=True)  # progress on stderr, results on stdout
    if console.is_terminal or console.is_jupyter:
        from mispec.runtime.display_live import LiveDisplay

        return LiveDisplay(console)
    from mispec.runtime.display_log import LogDisplay

    return LogDisplay(every=progress_every(every), ticker=True)


def progress_every(every: float | None = None) -> float:
    """Seconds between plain progress lines: ``every``, else ``$MISPEC_PROGRESS_EVERY``,
    else 30; a bad value is a ``UserError`` naming where it came from."""
    where = "--progress-every"
    if every is None:
        raw = os.environ.get(EVERY_ENV)
        if raw is None or raw.strip() == "":
            return DEFAULT_EVERY
        where = f"${EVERY_ENV}"
        try:
            every = float(raw)
        except ValueError:
            raise UserError(
                f"{where}={raw!r} is not a number of seconds (e.g. {EVERY_ENV}=60)"
            ) from None
    if not every >= 0:  # NaN too
        raise UserError(f"{where}: {every} is not a number of seconds >= 0 (0: every change)")
    return float(every)


@contextmanager
def forwarding(send: Callable[[dict[str, Any]], None] | None) -> Iterator[None]:
    """In a worker process: the display for the block sends its updates through ``send``
    (to the client, which mirrors them); nothing when ``send`` is None."""
    if send is None or _open_here.stack:
        yield
        return
    from mispec.runtime.display_forward import ForwardingDisplay

    with _opened(ForwardingDisplay(send)):
        yield
