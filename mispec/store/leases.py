"""Leases: a run in progress names, in the store, everything its plan reads, so that
``mispec gc`` keeps it whatever its age.

A run takes its lease before it reads the store (``leases/<pid>-<start>.json`` holding its
plan, as ``plan.json`` would) and drops it when it ends. A lease is *live* while the process
that took it is: its pid runs and that process started when the lease says (so a reused pid
does not count). A run killed with SIGKILL leaves its lease behind; it is stale from then on,
ignored, and removed by the next ``gc --apply``.

Taking a lease and gc exclude each other through ``gc.lock`` (``flock``): gc holds it
exclusively from reading the leases to its last removal, a run holds it shared while it writes
its lease. A run therefore either has its lease seen by gc, or starts reading only after gc
has removed what it was going to remove (and then recomputes what it misses).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LEASES = "leases"
LOCK = "gc.lock"


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, Linux's ``/proc/<pid>/stat``),
    or None when that cannot be read (then the pid alone tells liveness)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]  # field 22: starttime


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def gc_lock(store_root: Path, *, exclusive: bool) -> Iterator[None]:
    """``gc.lock`` of the store, exclusive (gc) or shared (a run writing its lease)."""
    path = Path(store_root) / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


class Lease:
    """The lease of this process on the entries of one plan (see the module docstring)."""

    def __init__(self, store_root: Path):
        self.root = Path(store_root)
        pid = os.getpid()
        self.path = self.root / LEASES / f"{pid}-{process_start(pid) or 0}.json"

    def hold(self, plan: dict[str, Any]) -> None:
        """Name ``plan``'s entries (again: a refine round's plan replaces the last one)."""
        pid = os.getpid()
        record = {"pid": pid, "start": process_start(pid), "plan": plan}
        tmp = self.path.with_name(f".{self.path.name}.tmp-{pid}")
        with gc_lock(self.root, exclusive=False):
            self.path.parent.mkdir(exist_ok=True)
            tmp.write_text(json.dumps(record), "utf-8")
            os.replace(tmp, self.path)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()

    close = release  # contextlib.closing


def read_leases(store_root: Path) -> tuple[list[dict[str, Any]], list[Path]]:
    """The plans of the live leases, and the paths of stale ones. A lease that cannot be
    read is live while its file name's pid runs (gc cannot prove it stale)."""
    live: list[dict[str, Any]] = []
    stale: list[Path] = []
    folder = Path(store_root) / LEASES
    if not folder.is_dir():
        return live, stale
    for path in sorted(folder.glob("*.json")):
        name_pid, _, name_start = path.stem.partition("-")
        try:
            record = json.loads(path.read_text("utf-8"))
            pid, start, plan = int(record["pid"]), record["start"], record["plan"]
        except (OSError, ValueError, KeyError, TypeError):
            if name_pid.isdigit() and pid_alive(int(name_pid)):
                live.append({"unreadable": str(path)})
            elif path.exists():
                stale.append(path)
            continue
        now = process_start(pid)
        if pid_alive(pid) and (start is None or now is None or str(start) == now):
            live.append(plan)
        else:
            stale.append(path)
    return live, stale
