"""Torch intra-op threads (and numpy's BLAS threads), pinned per run.

The thread count changes floating-point reduction order (LayerNorm's backward pass gives
slightly different gradients with 2 threads than with 1), so trained checkpoints — and every
metric after them — are bit-identical across executors only when each runs under the same
count. Profiles set it (``torch_threads``, default 1: on a shared 2-core machine one thread
per process was also 4.5x faster than torch's default under contention). numpy's OpenBLAS
is pinned to the same count (``blas_threads.py``): its matrix-vector products and SVDs
depend on the thread count too, and a Dask worker starts with one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def pinned_torch_threads(n: int | None) -> Iterator[None]:
    """Run the body with ``torch.set_num_threads(n)`` and numpy's OpenBLAS on ``n`` threads;
    restore the previous counts after. ``None`` leaves both alone."""
    if n is None:
        yield
        return
    import torch

    from mispec.runtime.blas_threads import pinned_blas_threads

    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        with pinned_blas_threads(n):
            yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def core_free() -> bool:
    """Whether a core is left over from torch's intra-op threads (for a helper thread: a
    thread on a core an OpenMP thread also needs stalls every parallel region)."""
    import torch

    return torch.get_num_threads() < usable_cores()
