"""The worker processes that run lanes (:mod:`mispec.execute.local.lanes`): one
``python -m mispec.execute.local.lane_worker`` per lane, told its job as JSON on stdin, its
record read from the last line of its stdout; every one of them stopped on an interrupt, and
a worker that ended without its record explained (killed by a signal, or a bug)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mispec.errors import MispecError


# how long a worker has to stop at its next step or cell once told to, before it is killed
STOP_PATIENCE_S = 30.0


class Workers:
    """The worker processes running now, so that an interrupt reaches every one of them."""

    def __init__(self) -> None:
        self._procs: set[subprocess.Popen[str]] = set()
        self._lock = threading.Lock()
        self.stopping = False

    def start(self, argv: list[str]) -> subprocess.Popen[str]:
        with self._lock:
            if self.stopping:
                raise KeyboardInterrupt  # the run is stopping: no new worker
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, PARENT_ENV: str(os.getpid())},
            )
            self._procs.add(proc)
            return proc

    def ended(self, proc: subprocess.Popen[str]) -> None:
        with self._lock:
            self._procs.discard(proc)

    def stop(self, patience: float = STOP_PATIENCE_S) -> None:
        """SIGINT every worker (each stops at once; what it wrote is whole), wait up to
        ``patience`` seconds for them all, then SIGKILL those left."""
        with self._lock:
            self.stopping = True
            procs = list(self._procs)
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + patience
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# the parent's pid, told to a worker so that it dies with it (mispec.execute.local.lane_worker)
PARENT_ENV = "MISPEC_LANE_PARENT"


def run_worker(job: dict[str, Any], workers: Workers) -> dict[str, Any]:
    """Run one lane in a worker process; its record (counters, the nodes done, a failure)."""
    import json
    import sys

    from mispec.execute.remote import failure

    proc = workers.start([sys.executable, "-m", "mispec.execute.local.lane_worker"])
    try:
        stdout, stderr = proc.communicate(json.dumps(job))
    finally:
        workers.ended(proc)
    lines = stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return failure(job["nodes"][0], worker_error(job, proc.returncode, stderr))
    record: dict[str, Any] = json.loads(lines[-1])
    return record


def worker_error(job: dict[str, Any], code: int, stderr: str) -> MispecError:
    """Why a worker ended without its record: a signal (negative code, or 128 + the signal
    as a shell reports it) is a machine fault; anything else a bug, with stderr's tail."""
    from mispec.errors import MispecError, WorkerKilledError

    lane = job.get("lane", job["nodes"][0])
    number = -code if code < 0 else code - 128 if 128 < code < 128 + 65 else None
    if number is not None:
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        hint = " — out of memory? (see `dmesg`)" if number == signal.SIGKILL else ""
        return WorkerKilledError(
            f"the worker process of the lane {lane} ({job['nodes'][0]}) was killed by "
            f"{name}{hint}; what it finished is kept in the store ({job['store']}): run "
            "again to continue"
        )
    tail = stderr.strip().splitlines()[-5:]
    return MispecError(
        f"the worker process of the lane {lane} ({job['nodes'][0]}) exited with code "
        f"{code} (a bug: please report it): " + " | ".join(tail)
    )
