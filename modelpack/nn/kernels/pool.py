"""Max and average pooling over strided views of the unpadded input, forward and backward.

Both directions loop over the window's offsets (a pool's few positions, never its pixels).
An offset reads the input at a stride for every output position; where the window hangs over
the padding (or ceil mode's last window past the end), only the outputs whose tap lands
inside the input take part (``_span``), so no padded copy of the input is ever made: padding
neither wins a maximum (as if -inf) nor adds to a sum (as if 0), and the gradient comes back
on the input's own shape. The forward folds one spatial axis at a time, each offset along it
a strided view folded into a buffer in place (``np.maximum`` or ``np.add``; along the last
axis, strided windows that overlap fold at stride 1 first, then every s-th is kept); the backward
sends each output's gradient back through the window's offsets. Where windows do not overlap
(stride ≥ pool size, the usual case) each offset writes its own input positions, so the
backward writes them directly instead of adding. With the ``accel`` extra, the last axis's
3-wide windows at stride 2 (the stems' 3×3/2 max pools) are folded by ``compiled_pool``'s loop.
"""

from __future__ import annotations

import itertools
from types import ModuleType
from typing import Any

import numpy as np

from .. import budget
from . import backend, parallel

__all__ = ["fold_axes", "max_backward", "spread", "divisors"]

Sizes = tuple[int, ...]
Span = tuple[int, int]


def _span(j: int, s: int, p: int, n: int, o: int) -> Span:
    """Outputs [lo, hi) whose tap at window offset ``j`` reads inside an input of ``n``
    (input index o·s + j − p in [0, n)); lo ≥ hi when none does."""
    return max(0, -(-(p - j) // s)), min(o, (n - 1 + p - j) // s + 1)


def _read(j: int, s: int, p: int, span: Span) -> slice:
    """The input positions the outputs ``span`` read at offset ``j``."""
    start = span[0] * s + j - p
    return slice(start, start + (span[1] - span[0] - 1) * s + 1, s)


def _offsets(k: int, s: int, p: int, n: int, o: int) -> list[tuple[int, Span]]:
    """Each window offset along one axis with the outputs it reaches, skipping those reaching
    none (only offsets in [p − (o−1)·s, n − 1 + p] can: a pool far larger than the input costs
    its overlap, not its size)."""
    first, last = max(0, p - (o - 1) * s), min(k - 1, n - 1 + p)
    spans = ((j, _span(j, s, p, n, o)) for j in range(first, last + 1))
    return [(j, span) for j, span in spans if span[0] < span[1]]


def _disjoint(pool: Sizes, strides: Sizes) -> bool:
    return all(s >= k for k, s in zip(pool, strides, strict=True))


def fold_axes(array: np.ndarray, pool: Sizes, strides: Sizes, padding: Sizes, out: Sizes, step: Any,
              fill: float) -> np.ndarray:
    """Every window of an (N, C, *spatial) input padded by ``padding`` with ``fill`` (-inf
    with ``np.maximum``, 0 with ``np.add``) folded by ``step``: (N, C, *out). A window is a
    box, so it folds one spatial axis at a time, the first axis first: that axis's offsets are
    runs of whole rows, and each later axis folds an input already shrunk by the pools before
    it (a 2×2 pool reads two views of the input and two of half of it, not four of the input
    with a stride each). The offsets fold in order, the first one's uncovered outputs set to
    ``fill``, so a sum adds exactly what it added over a padded copy (0 + v is v); it may differ
    in the last bit from a sum in another order. Measured at one thread against folding each of
    the window's offsets over the whole input: LeNet's 2×2 average pools 0.24 → 0.15 ms
    (64×6×28×28) and 0.16 → 0.10 ms (64×16×10×10); a ResNet stem's 3×3/2 max pool of
    32×64×32×32 3.2 → 2.9 ms."""
    result = np.empty((*array.shape[:2], *out), array.dtype)
    last = len(pool) - 1

    def run(rows: slice) -> None:
        current = array[rows]
        for axis, (k, s, p, o) in enumerate(zip(pool, strides, padding, out, strict=True)):
            shape = (*current.shape[:axis + 2], o, *current.shape[axis + 3:])
            folded = result[rows] if axis == last else np.empty(shape, array.dtype)
            _fold_axis(current, folded, axis + 2, (k, s, p), step, fill)
            current = folded

    # (the first axis's fold, an input only its pool smaller, is charged by the caller; the
    # last's running windows, as large as its input, here)
    contiguous = last > 0 or array.flags.c_contiguous  # (a first fold's output is a fresh array)
    geometry = (pool[last], strides[last], padding[last])
    if _runs(geometry, array.shape[-1], contiguous) and _loops(geometry, array.dtype, step) is None:
        budget.charge(budget.nbytes((*array.shape[:2], *out[:last], array.shape[-1]), array.dtype),
                      "its running windows")
    parallel.over_batch(run, array.shape[0], array.size, min_elements=parallel.ELEMENTWISE_MIN_ELEMENTS)
    return result


def _fold_axis(current: np.ndarray, folded: np.ndarray, axis: int, geometry: Sizes, step: Any,
               fill: float) -> None:
    """``folded`` ← the offsets' views of ``current`` along ``axis`` folded by ``step``."""
    k, s, p = geometry
    o = folded.shape[axis]
    if axis == current.ndim - 1 and _runs(geometry, current.shape[axis], current.flags.c_contiguous):
        loops = _loops(geometry, current.dtype, step)
        if loops is not None and folded.flags.c_contiguous:
            _fold_compiled(loops, current, folded, geometry, step, fill)
        else:
            _fold_running(current, folded, geometry, step, fill)
        return
    before = (slice(None),) * axis
    taps = _offsets(k, s, p, current.shape[axis], o)
    views = [(current[before + (_read(j, s, p, span),)], before + (slice(*span),)) for j, span in taps]
    lo, hi = taps[0][1]
    if (lo, hi) == (0, o) and len(taps) > 1 and taps[1][1] == (0, o):  # two whole offsets: one pass
        step(views[0][0], views[1][0], out=folded)
        views = views[2:]
    else:
        np.copyto(folded[views[0][1]], views[0][0])
        folded[before + (slice(0, lo),)] = fill
        folded[before + (slice(hi, o),)] = fill
        views = views[1:]
    for view, where in views:
        target = folded[where]
        step(target, view, out=target)


# A contiguous pass costs about half of a strided one per element: MaxPool1D on 16×100×498 at 2
# threads (ms, running windows against the offsets' views): 3/2 0.36 against 0.55, 4/3 0.38
# against 0.40, 5/4 0.40 against 0.37, 9/8 0.54 against 0.48, 17/16 0.88 against 0.65.
RUNNING_MAX_WORK = 2


def _runs(geometry: Sizes, n: int, contiguous: bool) -> bool:
    """Whether ``_fold_running`` folds the last axis (``n`` long): contiguous, strided and
    overlapping (1 < stride < pool), at least a window long, and its k − 1 passes over every
    position fewer than ``RUNNING_MAX_WORK`` times the offsets' k passes over every s-th."""
    k, s, _ = geometry
    return contiguous and 1 < s < k <= n and (k - 1) * s < RUNNING_MAX_WORK * k


def _fold_running(current: np.ndarray, folded: np.ndarray, geometry: Sizes, step: Any, fill: float) -> None:
    """The last axis folded as every window at stride 1 first (k − 1 contiguous passes over the
    whole flat chunk, which numpy vectorises; the positions straddling two rows are never read),
    then every s-th of them copied out; the few windows over the padding folded one output at a
    time. The same folds in the same order as the offsets' views, each of which numpy reads one
    element at a time at the stride (2 threads, alternating in one process: MaxPool1D 3/2 on
    16×100×498 float32 0.42 → 0.27 ms, i3d's 1×3×3/1×2×2 on 4×64×8×56×56 5.4 → 4.8 ms; the
    ResNet stem's 3×3/2 even)."""
    k, s, p = geometry
    n, o = current.shape[-1], folded.shape[-1]
    flat = current.reshape(-1)
    length = flat.size - (k - 1)
    windows = np.empty(flat.size, current.dtype)  # charged by ``fold_axes``
    step(flat[:length], flat[1:1 + length], out=windows[:length])
    for j in range(2, k):
        step(windows[:length], flat[j:j + length], out=windows[:length])
    rows = windows.reshape(current.shape)
    lo, hi = _inside(geometry, n, o)
    if lo < hi:
        np.copyto(folded[..., lo:hi], rows[..., s * lo - p:s * (hi - 1) - p + 1:s])
    _fold_edges(current, folded, geometry, step, fill)


def _inside(geometry: Sizes, n: int, o: int) -> Span:
    """The outputs [lo, hi) whose window lies wholly inside an axis ``n`` long."""
    k, s, p = geometry
    return -(-p // s), min(o, (n - k + p) // s + 1)


def _fold_edges(current: np.ndarray, folded: np.ndarray, geometry: Sizes, step: Any, fill: float) -> None:
    """The last axis's few outputs whose window hangs over the padding, one at a time."""
    k, s, p = geometry
    n, o = current.shape[-1], folded.shape[-1]
    lo, hi = _inside(geometry, n, o)
    for out in (*range(min(lo, o)), *range(max(hi, lo), o)):
        target = folded[..., out]
        target[...] = fill
        for i in range(max(0, s * out - p), min(n, s * out - p + k)):
            step(target, current[..., i], out=target)


def _loops(geometry: Sizes, dtype: np.dtype, step: Any) -> ModuleType | None:
    """``compiled_pool``'s loop when the compiled kernels are in use and it folds this
    window (``compiled_pool.WINDOW``) of float32 values by max or sum; else None."""
    if backend.compiled() is None or dtype != np.float32 or step not in (np.maximum, np.add):
        return None
    from . import compiled_pool  # (numba: imported once the compiled kernels are in use)

    return compiled_pool if geometry[:2] == compiled_pool.WINDOW else None


def _fold_compiled(loops: ModuleType, current: np.ndarray, folded: np.ndarray, geometry: Sizes, step: Any,
                   fill: float) -> None:
    """The last axis folded by ``compiled_pool``'s loop where windows lie inside (into a
    C-contiguous ``folded``: its rows are reshaped), the edges as ``_fold_running`` folds them."""
    n, o = current.shape[-1], folded.shape[-1]
    lo, hi = _inside(geometry, n, o)
    if lo < hi:
        loops.fold_three_by_two(current.reshape(-1, n), folded.reshape(-1, o), -geometry[2], lo, hi,
                                step is np.maximum)
    _fold_edges(current, folded, geometry, step, fill)


def _boxes(pool: Sizes, strides: Sizes, padding: Sizes, sizes: Sizes, out: Sizes
           ) -> list[tuple[tuple[Any, ...], tuple[Any, ...]]]:
    """Each window offset that reaches some output, in scan order (the first axis slowest, as
    torch scans a window): where it reads the input and which outputs read there, as indexes
    on (N, C, *spatial) and (N, C, *out)."""
    axes = [_offsets(k, s, p, n, o) for k, s, p, n, o in zip(pool, strides, padding, sizes, out, strict=True)]
    everything = (slice(None), slice(None))
    boxes = []
    for offset in itertools.product(*axes):
        read = tuple(_read(j, s, p, span) for (j, span), s, p in zip(offset, strides, padding, strict=True))
        boxes.append(((*everything, *read), (*everything, *(slice(*span) for _, span in offset))))
    return boxes


def _phases(pool: Sizes, strides: Sizes, padding: Sizes, sizes: Sizes, out: Sizes
            ) -> list[tuple[Sizes, tuple[Any, ...], tuple[Any, ...]]]:
    """``_boxes`` on the input's phases: an offset reads input o·s + j − p = (o + q)·s + r
    for output o, so it reads phase r (every s-th position from r, along each axis) at the
    contiguous run from o + q. Each offset's phase, its slice of that phase, its outputs."""
    axes = [_offsets(k, s, p, n, o) for k, s, p, n, o in zip(pool, strides, padding, sizes, out, strict=True)]
    everything = (slice(None), slice(None))
    boxes = []
    for offset in itertools.product(*axes):
        shifts = [divmod(j - p, s) for (j, _), s, p in zip(offset, strides, padding, strict=True)]
        phase = tuple(r for _, r in shifts)
        read = tuple(slice(lo + q, hi + q) for (_, (lo, hi)), (q, _) in zip(offset, shifts, strict=True))
        boxes.append((phase, (*everything, *read), (*everything, *(slice(*span) for _, span in offset))))
    return boxes


def _phase(phase: Sizes, strides: Sizes) -> tuple[Any, ...]:
    """Phase ``phase`` of an (N, C, *spatial) array: every s-th position from r on each axis."""
    return (slice(None), slice(None), *(slice(r, None, s) for r, s in zip(phase, strides, strict=True)))


def max_backward(grad: np.ndarray, x: np.ndarray, out: np.ndarray, pool: Sizes, strides: Sizes,
                 padding: Sizes) -> np.ndarray:
    """The input's gradient: each output's to the first position of its window (in scan
    order, as torch) that holds the maximum; padding never holds it. A strided pool reads and
    writes each offset's positions at a stride, one element at a time; copied into its phases
    (contiguous, one per position modulo the strides), the input is compared and its gradient
    gathered a row at a time, and written back once per phase where windows overlap (a
    ResNet stem's 3×3/2 pool: 9 strided reads and 9 strided writes become 4 and 4). Disjoint
    windows read and write each position once either way: they skip the copies."""
    disjoint = _disjoint(pool, strides)
    strided = any(s > 1 for s in strides) and not disjoint
    geometry = (pool, strides, padding, x.shape[2:], out.shape[2:])
    if strided:
        boxes = _phases(*geometry)
    else:  # the input is its one phase
        boxes = [((), read, outputs) for read, outputs in _boxes(*geometry)]
    phases = sorted({phase for phase, _, _ in boxes})
    every_phase = len(phases) == int(np.prod(strides))
    result = (np.empty if strided and every_phase else np.zeros)(x.shape, grad.dtype)

    def run(rows: slice) -> None:
        x_part, grad_part, out_part, result_part = x[rows], grad[rows], out[rows], result[rows]
        if strided:
            inputs = {phase: np.ascontiguousarray(x_part[_phase(phase, strides)]) for phase in phases}
            grads = {phase: np.zeros_like(inputs[phase]) for phase in phases}
        else:
            inputs, grads = {(): x_part}, {(): result_part}
        free = np.ones(out_part.shape, bool)  # outputs whose maximum is not placed yet
        hit = np.empty(out_part.shape, bool)
        products = np.empty(out_part.shape, grad.dtype)
        for k, (phase, read, outputs) in enumerate(boxes):
            here = hit[outputs]
            np.equal(inputs[phase][read], out_part[outputs], out=here)
            here &= free[outputs]
            if k < len(boxes) - 1:
                free[outputs] ^= here
            target = grads[phase][read]
            if disjoint:
                np.multiply(grad_part[outputs], here, out=target)
            else:
                product = products[outputs]
                np.multiply(grad_part[outputs], here, out=product)
                target += product
        if strided:
            for phase in phases:
                np.copyto(result_part[_phase(phase, strides)], grads[phase])

    parallel.over_batch(run, grad.shape[0], grad.size * len(boxes))
    return result


def spread(share: np.ndarray, pool: Sizes, strides: Sizes, padding: Sizes, sizes: Sizes) -> np.ndarray:
    """The gradient of an (N, C, *``sizes``) input when every window position inside it gets
    its output's ``share`` (average pooling)."""
    result = np.zeros((*share.shape[:2], *sizes), share.dtype)
    disjoint = _disjoint(pool, strides)
    boxes = _boxes(pool, strides, padding, sizes, share.shape[2:])

    def run(rows: slice) -> None:
        result_part, share_part = result[rows], share[rows]
        for read, outputs in boxes:
            target = result_part[read]
            if disjoint:
                np.copyto(target, share_part[outputs])
            else:
                target += share_part[outputs]

    parallel.over_batch(run, share.shape[0], share.size * len(boxes))
    return result


def divisors(sizes: Sizes, out: Sizes, pool: Sizes, strides: Sizes, padding: Sizes, include_pad: bool,
             dtype: np.dtype) -> Any:
    """What each window's sum is divided by for an average: one number when every window counts
    the same, else the outer product of the per-axis counts. Along an axis a window counts the
    positions it covers inside the input padded on both sides (``include_pad``), or inside the
    input alone; a window that covers none of them (MXNet's ``full`` convention can end on
    one past the padding) divides its empty sum, 0, by 1."""
    counts = np.ones((), dtype=np.int64)
    for axis, (n, o, k, s, p) in enumerate(zip(sizes, out, pool, strides, padding, strict=True)):
        start = np.arange(o) * s - p
        if include_pad:
            along = np.minimum(start + k, n + p) - start
        else:
            along = np.minimum(start + k, n) - np.maximum(start, 0)
        shape = [1] * len(pool)
        shape[axis] = o
        counts = counts * np.maximum(along, 1).reshape(shape)  # outer product over axes
    first = counts.flat[0]
    return dtype.type(first) if np.all(counts == first) else counts.astype(dtype)
