"""The kernels' memory-bound passes (copies, transpositions, element-wise folds), split over
the batch axis onto a few threads.

BLAS runs a GEMM on every core, but numpy runs each copy or ufunc on one; once the GEMMs are
parallel, those passes are most of a convolution's time. numpy releases the GIL inside its
copy and ufunc loops, so chunks of the batch on a small thread pool run side by side. The
thread count follows BLAS's (``MODELPACK_NUM_THREADS``, else ``OPENBLAS_NUM_THREADS``, else
``OMP_NUM_THREADS``, else the CPUs this process may use); 1 turns the pool off.

A hand-off wakes a sleeping thread, which is slow on a VM: an empty one took 70–130 µs on
BENCHMARKS.md's 2-vCPU machine (the longer the worker had slept, the longer), and in a
ResNet-18-style forward (batch 32, 20 hand-offs) the worker started 115–300 µs after the
caller: up to a tenth of the forward. OpenMP's threads spin between jobs to avoid this; a Python
thread that spun would hold the GIL the caller needs, so passes are split only where the
wake-up is small beside them (``SPLIT_MIN_WORK``, ``ELEMENTWISE_MIN_ELEMENTS``).
"""

from __future__ import annotations

import contextvars
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .. import budget
from . import blas, rowloops

__all__ = ["threads", "set_threads", "over_batch", "split", "copy", "ufunc", "output", "total",
           "added_in_order"]

# Below this many elements a reduction's pass takes a few microseconds: not worth a thread's
# wake-up. (It also decides how a reduction is chunked, so changing it changes trained bits.)
MIN_ELEMENTS = 1 << 16
# An element-wise pass or copy is split from this many elements on: below it, handing chunks to
# the pool cost more than it saved (measured at 2 threads: BatchNorm's affine pass on 262k
# float32 values 0.23 ms split against 0.13 ms on one thread; from ~500k on, splitting wins).
# Element-wise results do not depend on the chunking, so this only moves time.
ELEMENTWISE_MIN_ELEMENTS = 1 << 19
# A reduction's partial sums come from this many chunks of the batch whatever the thread count,
# so a trained model's bits do not depend on the machine's cores (a checkpoint resumed on
# another machine continues exactly).
REDUCTION_CHUNKS = 4
# A pass with GEMMs (``split``) goes to the pool from this many multiply-adds on, where one
# hand-off (~70 µs) is a small part of it. Measured at 2 threads, once no threaded BLAS call
# left OpenBLAS's workers spinning: LeNet's forward 3.55 → 2.84 ms with its convolutions (7.5
# and 15 M) split, the MobileNet-style block's 2.15 → 2.03 ms. The compiled loops' passes
# (``direct``) split from it too, each output plane weighed as ``direct.PLANE_WORK`` more.
SPLIT_MIN_WORK = 1 << 22

_lock = threading.Lock()
_local = threading.local()  # .inside: this thread runs a chunk (a nested pass runs on it)
_pool: ThreadPoolExecutor | None = None
_threads: int | None = None


def _from_environment() -> int:
    for name in ("MODELPACK_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return max(1, len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def threads() -> int:
    """How many threads the kernels' passes use."""
    global _threads
    if _threads is None:
        _threads = _from_environment()
    return _threads


def set_threads(count: int) -> None:
    """Use ``count`` threads from now on (1: every pass on the calling thread)."""
    global _threads, _pool
    if count < 1:
        raise ValueError(f"thread count must be at least 1, got {count}")
    with _lock:
        _threads = int(count)
        if _pool is not None:
            _pool.shutdown(wait=False)
            _pool = None


def _forget_pool() -> None:
    """In a forked child the pool's threads do not exist: start a new pool on first use."""
    global _pool, _lock
    _pool, _lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _executor(count: int) -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=count - 1, thread_name_prefix="modelpack-kernels")
        return _pool


def over_batch(
    run: Callable[[slice], Any], batch: int, elements: int, *, chunks: int | None = None,
    min_elements: int = MIN_ELEMENTS,
) -> list[Any]:
    """``run(chunk)`` for chunks of ``range(batch)`` covering it, in parallel when the pass
    touches at least ``min_elements`` elements; the calling thread runs the first chunk.
    Returns the runs' results, in the chunks' order (partial sums, for a reduction).
    ``chunks`` fixes how many chunks whatever the thread count (a reduction's, for the same bits)."""
    count = min(chunks if chunks is not None else threads(), batch)
    if count < 2 or elements < min_elements:
        return [run(slice(0, batch))]
    bounds = [batch * i // count for i in range(count + 1)]
    pieces = [slice(a, b) for a, b in zip(bounds, bounds[1:], strict=False)]
    # A reduction's chunks are fixed for its bits; below an element-wise pass's threshold, a
    # hand-off to the pool (~70 µs on a 2-vCPU VM) costs more than the chunks take.
    if threads() < 2 or _inside() or (chunks is not None and elements < ELEMENTWISE_MIN_ELEMENTS):
        return [run(piece) for piece in pieces]
    return _in_parallel(run, pieces)


def split(run: Callable[[slice], Any], batch: int, work: int) -> list[Any]:
    """``run(chunk)`` for one chunk of ``range(batch)`` per thread, in one hand-off to the pool,
    with BLAS on one thread (``blas.serial``): for a pass whose copies and GEMMs are all per
    example or per row (a convolution's forward, its input's gradient), so each thread's
    share runs whole while in cache. ``work`` counts its multiply-adds; below
    ``SPLIT_MIN_WORK``, inside a chunk already, or where BLAS's threads cannot be switched, the
    calling thread runs the whole batch (its GEMMs on BLAS's threads). Results do not depend
    on the split. Returns the runs' results in the chunks' order."""
    count = min(threads(), batch)
    if count < 2 or work < SPLIT_MIN_WORK or _inside() or not blas.usable():
        return [run(slice(0, batch))]
    bounds = [batch * i // count for i in range(count + 1)]
    with blas.serial():
        return _in_parallel(run, [slice(a, b) for a, b in zip(bounds, bounds[1:], strict=False)])


def _inside() -> bool:
    return getattr(_local, "inside", False)


def _in_parallel(run: Callable[[slice], Any], chunks: list[slice]) -> list[Any]:
    """The chunks in consecutive groups, one per thread, the calling thread running the first
    (more chunks than threads: a reduction's fixed chunks), the results in the chunks' order.
    Each group runs in a copy of the caller's context, so numpy's settings there (its ufunc
    buffer, ``rowloops``; its error handling) hold on the pool's threads too."""
    count = min(threads(), len(chunks))
    bounds = [len(chunks) * i // count for i in range(count + 1)]
    groups = [chunks[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    pool = _executor(threads())

    def run_group(group: list[slice]) -> list[Any]:
        _local.inside = True  # a pass nested in a chunk runs on this thread, not the pool
        try:
            return [run(chunk) for chunk in group]
        finally:
            _local.inside = False

    futures = [pool.submit(contextvars.copy_context().run, run_group, group) for group in groups[1:]]
    try:
        first = run_group(groups[0])
    finally:
        rest = [future.result() for future in futures]
    return [part for parts in (first, *rest) for part in parts]


def _chunk(array: Any, chunk: slice, batch: int) -> Any:
    """Rows ``chunk`` of an array whose first axis is the batch; anything else (a broadcast
    operand such as a bias, or a scalar) whole."""
    if isinstance(array, np.ndarray) and array.ndim and array.shape[0] == batch:
        return array[chunk]
    return array


def copy(target: np.ndarray, source: np.ndarray) -> None:
    """``np.copyto(target, source)``, both with the batch first."""
    batch = target.shape[0]
    over_batch(lambda b: np.copyto(target[b], _chunk(source, b, batch)), batch, target.size,
               min_elements=ELEMENTWISE_MIN_ELEMENTS)


def ufunc(function: np.ufunc, *operands: Any, out: np.ndarray) -> np.ndarray:
    """``function(*operands, out=out)`` with the batch first in ``out``; operands broadcast."""
    batch = out.shape[0]
    over_batch(lambda b: function(*(_chunk(a, b, batch) for a in operands), out=out[b]), batch, out.size,
               min_elements=ELEMENTWISE_MIN_ELEMENTS)
    return out


def output(source: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """A layer's output from a strided view ``source`` (N, G, M, *S), laid out as a fresh
    (N, G·M, *S) array with ``bias`` (G·M values, one per channel) added in the same pass;
    charged to the activation budget before it is allocated."""
    n, groups, per_group, sizes = *source.shape[:3], source.shape[3:]
    budget.charge(budget.nbytes((n, groups * per_group, *sizes), source.dtype), "its output")
    out = np.empty((n, groups * per_group, *sizes), source.dtype)
    target = out.reshape(source.shape)
    if bias is None:
        copy(target, source)
    else:
        with rowloops.long_rows(math.prod(sizes)):
            ufunc(np.add, source, bias.reshape(1, groups, per_group, *(1,) * len(sizes)), out=target)
    return out


def total(reduce: Callable[[np.ndarray], np.ndarray], array: np.ndarray) -> np.ndarray:
    """``reduce(array)`` for a reduction over the batch axis (among others), as the sum of
    its partial results over chunks of the batch."""
    parts = over_batch(lambda b: reduce(array[b]), array.shape[0], array.size, chunks=REDUCTION_CHUNKS)
    return added_in_order(parts)


def added_in_order(parts: Any) -> np.ndarray:
    """The sum of a reduction's partial results (a list, or an array's first axis), added one
    after the other in their order: with chunks fixed by the shapes, the same bits whatever
    the thread count."""
    result = parts[0]
    for part in parts[1:]:
        result = result + part
    return result
