"""numpy's BLAS threads (OpenBLAS), pinned beside torch's.

OpenBLAS splits some products (matrix-vector, the LAPACK routines behind an SVD) over its
threads in an order that depends on their number, so ``pca_over_steps`` or a Fourier
projection differs in the last bits between a process on every core (the local executor,
its lanes) and a Dask worker (whose nanny starts it with ``OPENBLAS_NUM_THREADS=1``).
Pinning numpy's OpenBLAS to the profile's ``torch_threads`` in every executor makes them
agree. The libraries are found among those this process has loaded (numpy's wheel bundles
``libscipy_openblas64_``, scipy's its own copy); a build without OpenBLAS is left alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator
from functools import cache

# (set, get) symbol pairs: the scipy-openblas wheels' prefixed 64-bit-int and 32-bit-int
# builds, and a plain OpenBLAS
_SYMBOLS = (
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
    ("openblas_set_num_threads", "openblas_get_num_threads"),
)


def _loaded_openblas() -> tuple[tuple[object, object], ...]:
    """The (set, get) thread-count functions of every OpenBLAS this process has loaded (read
    afresh each time: scipy may load its copy later)."""
    import numpy  # noqa: F401  (loads numpy's OpenBLAS)

    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:  # not Linux: left alone
        return ()
    return tuple(f for p in sorted(paths) if (f := _thread_functions(p)) is not None)


@cache
def _thread_functions(path: str) -> tuple[object, object] | None:
    """The (set, get) thread-count functions of the loaded library at ``path``, if it is an
    OpenBLAS."""
    try:
        lib = ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_LOCAL)
    except OSError:
        return None
    for set_name, get_name in _SYMBOLS:
        if hasattr(lib, set_name) and hasattr(lib, get_name):
            setter, getter = getattr(lib, set_name), getattr(lib, get_name)
            setter.argtypes, setter.restype = [ctypes.c_int], None
            getter.argtypes, getter.restype = [], ctypes.c_int
            return setter, getter
    return None


def blas_threads() -> list[int]:
    """The thread count of each loaded OpenBLAS (empty without one)."""
    return [int(get()) for _, get in _loaded_openblas()]  # type: ignore[operator]


@contextlib.contextmanager
def pinned_blas_threads(n: int) -> Iterator[None]:
    """Run the body with every loaded OpenBLAS on ``n`` threads; restore their counts after."""
    libs = _loaded_openblas()
    before = [int(get()) for _, get in libs]  # type: ignore[operator]
    for set_, _ in libs:
        set_(n)  # type: ignore[operator]
    try:
        yield
    finally:
        for (set_, _), count in zip(libs, before, strict=True):
            set_(count)  # type: ignore[operator]
