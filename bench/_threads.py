"""The process settings a benchmark fixes before numpy loads: BLAS's thread count (read once,
when the library is loaded) and glibc malloc's thresholds."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def pin_blas_threads(default: str) -> None:
    """Set every BLAS thread variable to ``--threads N`` (or ``--threads=N``), else ``default``."""
    count = default
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            count = sys.argv[i + 1]
        elif arg.startswith("--threads="):
            count = arg.split("=", 1)[1]
    for variable in _VARIABLES:
        os.environ[variable] = count


# glibc's mallopt parameters, and the values pinned: 64 MiB, above any one array the workloads
# allocate, so every array comes from the heap and freed memory is kept for the next one.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_PINNED = 64 << 20


def pin_allocator() -> bool:
    """Fix glibc malloc's mmap and trim thresholds (no-op elsewhere). glibc moves its mmap
    threshold up as large blocks are freed, so how fast one side's arrays come (fresh pages
    from mmap, faulted in on every call, or reused heap) would depend on what the other side
    freed before: torch's times moved 3× with it. Returns whether it was pinned."""
    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallopt"):
        return False
    mmap = libc.mallopt(_M_MMAP_THRESHOLD, _PINNED)
    return bool(mmap) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2 * _PINNED))


def set_up_script(script: str, *, threads: str = "2") -> bool:
    """What a compute benchmark script (``script``: its ``__file__``) does before it imports
    numpy: BLAS threads pinned (``threads`` unless ``--threads`` says), glibc malloc pinned,
    and the repository (for ``modelpack``) and ``bench/`` on ``sys.path``. Whether malloc was
    pinned (``pin_allocator``)."""
    pin_blas_threads(default=threads)
    pinned = pin_allocator()
    here = os.path.dirname(os.path.abspath(script))
    sys.path[:0] = [here, os.path.dirname(here)]
    return pinned
