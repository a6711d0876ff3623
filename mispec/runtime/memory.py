"""glibc malloc settings for a process that runs many small forward passes.

With glibc's defaults, a freed block above the (dynamic) mmap threshold goes back to the OS
and the heap top is trimmed once 2x that threshold is free, so the same few megabytes of
attention patterns are unmapped and faulted in again on every forward pass. On the reference
machine (a VM where a first touch of a page is expensive) that made the toy's forward pass
10-20% slower inside a run than in a tight loop (``benchmarks/RESULTS.md``). Worse, setting
ANY threshold through the environment freezes the mmap threshold at 128 KiB: Dask's nanny
starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, and training the default toy model ran
2.5x slower per step there than in a plain process.

:func:`tune_malloc` keeps blocks up to 32 MiB in the heap (glibc's own ceiling for its
dynamic threshold) and trims only when 512 MiB are free; memory is still reused, and still
returned once a large amount is free. A threshold the environment sets (the user's, or the
nanny's trim threshold) is left as it is. Once per process; Linux/glibc only.
"""

from __future__ import annotations

import contextlib
import os

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 512 << 20
_TUNED = False


def tune_malloc() -> bool:
    """Set the thresholds the environment does not set (once); True if this call set any."""
    global _TUNED
    if _TUNED:
        return False
    _TUNED = True
    wanted = [
        (param, value)
        for param, value, env in (
            (_M_MMAP_THRESHOLD, MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_"),
            (_M_TRIM_THRESHOLD, TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_"),
        )
        if not os.environ.get(env)
    ]
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return any([libc.mallopt(param, value) == 1 for param, value in wanted])
    return False
