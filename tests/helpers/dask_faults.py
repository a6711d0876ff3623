"""Test-only plugin metrics for the Dask executor's fault tests
(``fn: tests.helpers.dask_faults:…``).

* ``kill_once`` SIGKILLs the Dask worker process running it, the first time only (a marker
  file records that it happened, with the dead worker's pid); otherwise it is an ordinary
  weights metric (the norm of the token embedding), so results can be compared.
* ``always_fails`` raises on every checkpoint: a deterministic metric failure.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from mispec.metrics.core import metric


def _in_dask_worker() -> bool:
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False
    return True


@metric(dims=(), units="L2 norm", register=False)
def kill_once(bridge: Any, marker: str = "") -> Any:
    """Norm of the token embedding; kills its Dask worker the first time it runs there."""
    if marker and _in_dask_worker():
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # exactly one killer
        except FileExistsError:
            pass
        else:
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)
    return bridge.W_E.detach().double().norm()


@metric(dims=(), register=False)
def always_fails(bridge: Any, why: str = "deliberate failure") -> Any:
    """Raises on every checkpoint."""
    raise ValueError(why)


def killed_pid(marker: str | Path) -> int:
    return int(Path(marker).read_text())
