"""numpy's BLAS held to one thread while the kernels run their GEMMs on their own threads.

OpenBLAS's worker threads spin for about 2^28 cycles (~0.1 s here) after each threaded GEMM,
waiting for the next: on a 2-vCPU machine that spinning takes the core which ``parallel``'s
threads need for the copies and element-wise passes between GEMMs (a ResNet-18-style
training step at 2 threads took as long as at 1). So where a pass is split over the batch,
each thread runs its share's GEMMs on one BLAS thread (``serial``): OpenBLAS's workers get no
job, fall asleep, and the second core is ours. A product split by rows comes out as one GEMM
gives it wherever the BLAS computes a row the same however many rows the call has: OpenBLAS's
kernels for most CPUs do, so the bits do not depend on the thread count; its Haswell kernels
(``OPENBLAS_CORETYPE=Haswell``) do not, and there a split product differs in the last bits.

The switch is OpenBLAS's own ``openblas_set_num_threads`` (well under a microsecond), found
among the libraries this process has loaded; with another BLAS, or none found, ``usable()``
is False and the kernels keep their GEMMs whole on BLAS's threads. The same library's
``cblas_sgemm`` (``sgemm``) lets a loop compiled by numba run its GEMMs between its own passes
with no return to the interpreter (``backend.gemm_loops``: ``compiled_col2im``,
``compiled_shifted``, ``compiled_strips``). numba takes the ctypes function as an argument, so
the loops stay cached on disk (an address compiled in would not be).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np  # noqa: F401  (loads numpy's BLAS before it is looked for)

__all__ = ["usable", "serial", "for_product", "SMALL_PRODUCT", "sgemm", "ROW_MAJOR", "NO_TRANSPOSE"]

# The setter's names: the reference build's, then numpy's and scipy's wheels' (scipy-openblas,
# 64-bit integers, symbols suffixed).
_NAMES = (
    ("openblas_set_num_threads", "openblas_get_num_threads"),
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
)

# The same library's float32 GEMM, for loops compiled by numba that call it themselves
# (``sgemm``): numpy's wheels' (64-bit integers, suffixed), the reference build's (32-bit).
_SGEMM_NAMES = (("scipy_cblas_sgemm64_", ctypes.c_int64), ("cblas_sgemm64_", ctypes.c_int64),
                ("cblas_sgemm", ctypes.c_int))
ROW_MAJOR, NO_TRANSPOSE = 101, 111  # CBLAS's CblasRowMajor, CblasNoTrans

# A product of fewer multiply-adds runs on one BLAS thread (``for_product``): threaded, it
# gains a few microseconds and leaves OpenBLAS's workers spinning for ~0.1 s on the cores the
# kernels' threads need (a 64×4096 by 4096×10 Dense layer in a training step of convolutions:
# the step 42 → 30 ms at 2 threads, with the split convolutions).
SMALL_PRODUCT = 1 << 23

_Switch = tuple[Callable[[int], None], Callable[[], int]]
_switch: _Switch | None = None
_sgemm: Any = None
_looked = False
_lock = threading.Lock()
_depth = 0  # serial regions open, on any thread
_saved = 1  # BLAS's thread count before the first of them


def _loaded_openblas() -> list[str]:
    """Paths of the loaded libraries named like OpenBLAS (Linux: /proc/self/maps)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = {line.split(None, 5)[-1].strip() for line in maps if "openblas" in line.lower()}
    except OSError:
        return []
    return sorted(path for path in paths if path.startswith("/") and ".so" in path)


def _find() -> tuple[_Switch | None, Any]:
    """The thread switch and the float32 GEMM of the first loaded OpenBLAS that has them.
    Only a library already loaded, its symbols kept local (made global, its BLAS symbols could
    take the place of another BLAS in libraries loaded later)."""
    mode = getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_LOCAL
    for path in _loaded_openblas():
        try:
            library = ctypes.CDLL(path, mode=mode)
        except OSError:
            continue
        for set_name, get_name in _NAMES:
            setter, getter = getattr(library, set_name, None), getattr(library, get_name, None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype = [ctypes.c_int], None
                getter.argtypes, getter.restype = [], ctypes.c_int
                return (setter, getter), _gemm_of(library)
    return None, None


def _gemm_of(library: ctypes.CDLL) -> Any:
    """``library``'s cblas_sgemm as a ctypes function with its arguments declared, or None."""
    for name, integer in _SGEMM_NAMES:
        function = getattr(library, name, None)
        if function is not None:
            number, pointer = ctypes.c_float, ctypes.c_void_p
            function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, integer, integer, integer, number,
                                 pointer, integer, pointer, integer, number, pointer, integer]
            function.restype = None
            return function
    return None


def _handle() -> _Switch | None:
    global _switch, _sgemm, _looked
    if not _looked:
        with _lock:
            if not _looked:
                (_switch, _sgemm), _looked = _find(), True
    return _switch


def sgemm() -> Any:
    """numpy's OpenBLAS's ``cblas_sgemm`` (ctypes, arguments declared: a compiled loop can take
    it as an argument and call it without the interpreter), or None where there is none (or
    its thread count cannot be switched, so it could not be held to one thread either). The
    same routine numpy's matmul calls for float32 matrices: the same bits."""
    return _sgemm if _handle() is not None else None


def usable() -> bool:
    """Whether numpy's BLAS is an OpenBLAS whose thread count can be switched here."""
    return _handle() is not None


@contextlib.contextmanager
def serial() -> Iterator[None]:
    """BLAS on one thread inside (every thread's GEMMs), its old count restored when the last
    region open on any thread closes."""
    global _depth, _saved
    switch = _handle()
    if switch is None:
        yield
        return
    setter, getter = switch
    with _lock:
        if _depth == 0:
            _saved = getter()
            setter(1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                setter(_saved)


def for_product(m: int, n: int, k: int) -> contextlib.AbstractContextManager[None]:
    """The context to run an (m×k)·(k×n) product in: ``serial()`` below ``SMALL_PRODUCT``
    multiply-adds, else BLAS as it is."""
    return serial() if m * n * k < SMALL_PRODUCT else contextlib.nullcontext()


def _after_fork() -> None:
    """A forked child has no region open (its parent's threads are gone)."""
    global _depth, _lock
    if _depth and _switch is not None:
        _switch[0](_saved)
    _depth, _lock = 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
