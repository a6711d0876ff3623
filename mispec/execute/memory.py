"""glibc malloc settings for a process that runs many small forward passes.

With glibc's defaults, a freed block above the (dynamic) mmap threshold goes back to the OS
and the heap top is trimmed once 2x that threshold is free, so the same few megabytes of
attention patterns are unmapped and faulted in again on every forward pass. On the reference
machine (a VM where a first touch of a page is expensive) that made the toy's forward pass
10-20% slower inside a run than in a tight loop (``benchmarks/RESULTS.md``). Keeping blocks
up to 32 MiB in the heap (glibc's own ceiling for its dynamic threshold) and trimming only
when 512 MiB are free removes that churn; memory is still reused, and still returned once a
large amount is free.

Applied once per process, only where the user set no ``MALLOC_*`` variable of their own;
Linux/glibc only (a no-op elsewhere).
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
    """Set the thresholds (once); True if this call set them."""
    global _TUNED
    if _TUNED:
        return False
    _TUNED = True
    if any(k.startswith("MALLOC_") for k in os.environ):
        return False  # the user (or Dask's nanny) chose: see dask_executor.tune_malloc
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        return libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    return False
