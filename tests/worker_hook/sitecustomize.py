"""Test hooks inside every Python process of a run, lane workers included
(tests/system/test_trust_faults.py puts this folder first on PYTHONPATH). Inactive unless:

* ``MISPEC_TEST_HOLD_DIR``: at the 20th training step a process writes
  ``training-<pid>`` there, then waits while ``hold`` exists there (mid-training, on purpose);
* ``MISPEC_TEST_ENOSPC``: writing a checkpoint fails with ENOSPC (a full disk).
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Any

HOLD_AT = 20


def _hold(folder: Path) -> None:
    import mispec.models.training as training

    real, calls = training.masked_loss, [0]

    def held(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == HOLD_AT:
            (folder / f"training-{os.getpid()}").write_text("")
            while (folder / "hold").exists():
                time.sleep(0.01)
        return real(*args, **kwargs)

    training.masked_loss = held


def _full_disk() -> None:
    import mispec.models.checkpoints as checkpoints

    def full(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if "w" in mode:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return open(path, mode, *args, **kwargs)

    checkpoints.open = full  # type: ignore[attr-defined]


if os.environ.get("MISPEC_TEST_HOLD_DIR"):
    _hold(Path(os.environ["MISPEC_TEST_HOLD_DIR"]))
if os.environ.get("MISPEC_TEST_ENOSPC"):
    _full_disk()
