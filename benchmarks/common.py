"""Timing, machine facts, child-process peak RSS and table formatting for the benchmarks."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


@dataclass
class Timing:
    """Wall seconds and this process's CPU seconds (user + system, all threads)."""

    wall: float = 0.0
    cpu: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@contextlib.contextmanager
def timed() -> Iterator[Timing]:
    t = Timing()
    w0, c0 = time.perf_counter(), _cpu_seconds()
    try:
        yield t
    finally:
        t.wall = time.perf_counter() - w0
        t.cpu = _cpu_seconds() - c0


def best_timing(timings: Sequence[Timing]) -> Timing:
    """The run with the least wall time (its CPU time comes with it): on a machine shared
    with other processes, interference only ever adds time, so the minimum is the robust
    estimate."""
    return min(timings, key=lambda t: t.wall)


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def machine() -> dict[str, Any]:
    mem_gib = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024**2, 1)
    cpu_model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    import torch

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "cpu": cpu_model,
        "ram_gib": mem_gib,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--", "mispec")),
        "load_before": load_average(),
    }


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def run_child(argv: Sequence[str], *, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a child process; return its wall time, exit code, output and peak RSS (MiB),
    read with ``wait4`` for exactly this child."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
        cwd=REPO,
    )
    out, err = b"", b""
    # Drain the pipes first (a full pipe would block the child), then reap it with wait4.
    out = proc.stdout.read() if proc.stdout else b""
    err = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "rc": proc.returncode,
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        # Linux keeps the parent's high-water mark through fork + exec: read peaks in the child
        "maxrss_mib_inherited": usage.ru_maxrss / 1024,
        "stdout": out.decode(errors="replace"),
        "stderr": err.decode(errors="replace"),
    }


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def fresh_dir(path: Path) -> Path:
    """An empty folder at ``path``. What was there is deleted and the deletion synced: on a
    filesystem mounted with ``discard`` (this machine's ext4) the freed blocks are trimmed at
    the next journal commit, which stalled the writes of whatever ran next by up to 2x
    (measured: a cold run right after deleting the previous 250 MB store took 2.0-2.4 s,
    1.3 s after ``sync``)."""
    if path.exists() or path.is_symlink():
        if path.is_symlink() or path.is_file():
            path.unlink()
        else:
            shutil.rmtree(path)
            os.sync()
    path.mkdir(parents=True)
    return path


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}×" if x < 0.1 else f"{x:.2f}×"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
