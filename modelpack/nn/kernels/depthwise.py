"""Depthwise convolutions (one input channel per group, MobileNet's), two ways.

On padded planes (``padded_forward``, ``padded_backward``): any stride, dilation and padding,
a block of one example's channels at a time copied into zero-padded planes (at a stride,
dealt into phase planes), where each tap is one multiply-add of the planes shifted by its
offset.

On the unpadded planes (``forward``), at stride 1 when the output keeps its input's sizes
(MobileNet's 3×3 with padding 1, and its input's gradient): each kernel tap reads the input
shifted by one offset into the flattened planes, so the tap's contribution to a whole chunk
of the batch is one multiply of a contiguous run by a weight plane, and the taps' sum is
written straight into the output: no padded planes (each chunk is copied whole, with the few
values around it its shifts reach), no cropped copy of the result. A shift runs past a row's
end into the next row (or plane, or example); there the tap's weight plane holds 0
(``_taps``), as zero padding would contribute. The products and their order are those of the
padded planes', so the results are the same bits, with one exception: a non-finite input value
read where the weight is masked gives 0·inf = NaN where padding gives 0. A chunk whose sum is
not finite is therefore recomputed on the padded planes (a finite sum means no value in it is
NaN or infinite).

Measured inside the MobileNet-style forward (2 threads, alternating per call): 2.09 → 1.76
ms with this in place of the padded planes, 2.39 → 2.00 ms at one thread. Each thread takes
one chunk of the batch whole: smaller chunks, kept in cache, lost more to the threads'
hand-offs of the GIL between numpy's calls than they gained (the kernel alone, 4 examples a
chunk: 1.1 ms at 2 threads against 0.63–0.87 whole); the whole batch on one thread lost too.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import budget
from . import parallel
from .columns import Geometry, Sizes

__all__ = ["usable", "fits", "forward", "padded_usable", "padded_forward", "padded_backward"]


# Values one thread's chunk of the batch may hold for this to run on it: beyond, its taps'
# passes run out of cache, and ``padded_forward``'s blocks of padded planes are
# faster (3×3 on 8×128×56×56, one thread: 46 ms here, 18 ms there; on MobileNet-style 32×32
# channels of 16×16, here 1.7 ms, there 2.5).
MAX_CHUNK_ELEMENTS = 1 << 18
# ``padded_forward``'s taps run over blocks of about this many values (whole phase planes of
# one example's channels), so the block's shifted runs, its sums and the product stay in
# cache. Measured at one thread (ms, 2^15 / 2^16 / 2^17 / 2^18): 3×3/2 on 8×64×112×112 20.4 /
# 17.2 / 15.9 / 17.3, 3×3/1 on 8×128×56×56 21.9 / 18.1 / 24.1 / 29.1.
BLOCK_ELEMENTS = 1 << 16
# An inference forward with more taps than this goes to ``banded``'s GEMMs where they take it
# (``conv.forward``): their cost grows with the kernel's width, the taps' with its area.
# Measured at 2 threads, inference, ms (taps → banded): 5×5 on 8×240×14×14 4.68 → 2.04,
# 8×960×7×7 4.84 → 2.56, 8×72×28×28 5.86 → 2.06, 64×16×16×16 1.77 → 1.32; 7×7 on 8×32×28×28
# 3.41 → 1.41. At 3×3 the taps mostly win (8×1024×7×7 1.59 against 1.80, 32×32×16×16 0.81
# against 0.92).
MAX_TAPS = 9


def usable(x: np.ndarray, weight: np.ndarray, g: Geometry, out_sizes: tuple[int, ...]) -> bool:
    """Whether this depthwise convolution (one input channel per group) comes here: one output
    per channel, at stride 1, its output the input's sizes, no tap reaching past a plane, and
    a thread's chunk of the batch small enough to stay in cache."""
    sizes = x.shape[2:]
    return (
        fits(x)
        and type(x) is np.ndarray
        and g.groups == x.shape[1] == weight.shape[0]
        and weight.shape[1] == 1
        and all(s == 1 for s in g.strides)
        and tuple(out_sizes) == tuple(sizes)
        and all(span <= size for span, size in zip(g.span, sizes, strict=True))
    )


def fits(x: np.ndarray) -> bool:
    """Whether a thread's chunk of this batch stays in cache (``MAX_CHUNK_ELEMENTS``)."""
    share = -(-x.shape[0] // parallel.threads())
    return share * math.prod(x.shape[1:]) <= MAX_CHUNK_ELEMENTS


def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, g: Geometry,
            activation: Callable[[np.ndarray], object] | None = None) -> np.ndarray:
    """x (N, C, *S) correlated per channel with weight (C, 1, *K), plus bias, then
    ``activation`` in place: (N, C, *S), each chunk of the batch on its own thread."""
    n, c, sizes = x.shape[0], x.shape[1], x.shape[2:]
    per = c * math.prod(sizes)  # one example's values
    taps = math.prod(g.kernel)  # (a weight plane each, as large as one example, and its mask)
    budget.charge(budget.nbytes((taps, per), x.dtype) + budget.nbytes((taps, math.prod(sizes)), np.float32),
                  "its taps' weight planes")
    source = np.ascontiguousarray(x).reshape(-1)
    offsets, planes = _taps(weight, g, sizes)
    shift = None if bias is None else np.repeat(bias.astype(x.dtype, copy=False), math.prod(sizes))
    budget.charge(budget.nbytes(x.shape, x.dtype), "its output")
    reach = max(abs(offset) for offset in offsets)
    share = -(-n // parallel.threads())  # the examples a thread's chunk holds at most
    budget.charge(parallel.threads() * budget.nbytes((2 * share * per + 2 * reach,), x.dtype),
                  "its chunks' taps' products")
    out = np.empty(x.shape, x.dtype)
    flat = out.reshape(-1)

    def run(b: slice) -> None:
        count = b.stop - b.start
        total = flat[b.start * per:b.stop * per]
        product = np.empty_like(total)
        local = _around(source, b.start * per, b.stop * per, reach)
        with np.errstate(invalid="ignore", over="ignore"):  # 0·inf where masked: checked below
            for tap, (offset, plane) in enumerate(zip(offsets, planes, strict=True)):
                shifted_run = local[reach + offset:reach + offset + count * per].reshape(count, per)
                np.multiply(shifted_run, plane, out=(total if tap == 0 else product).reshape(count, per))
                if tap:
                    np.add(total, product, out=total)
            rows = total.reshape(count, per)
            if shift is not None:
                np.add(rows, shift, out=rows)
            finite = np.isfinite(np.add.reduce(total))
        if not finite:  # a NaN or infinity in reach: what zero padding gives, on the padded planes
            out[b] = padded_forward(x[b], weight, bias, g, sizes)
        if activation is not None:
            activation(out[b])

    parallel.over_batch(run, n, 2 * len(offsets) * x.size, min_elements=parallel.ELEMENTWISE_MIN_ELEMENTS)
    return out


def _around(source: np.ndarray, start: int, stop: int, reach: int) -> np.ndarray:
    """source[start − reach : stop + reach] as a fresh array (one contiguous copy, which the
    taps then read from cache), zeros where it runs past the batch's ends."""
    base = start - reach
    local = np.empty(stop - start + 2 * reach, source.dtype)
    first, last = max(0, base), min(source.size, stop + reach)
    local[:first - base] = 0
    local[last - base:] = 0
    local[first - base:last - base] = source[first:last]
    return local


def _taps(weight: np.ndarray, g: Geometry, sizes: tuple[int, ...]) -> tuple[tuple[int, ...], np.ndarray]:
    """(offsets, planes): each tap's offset into the flattened planes, and its weight over one
    example's positions (C·S values), 0 where the tap reads outside its channel's plane."""
    offsets, inside = _reach(g.kernel, g.dilation, g.padding, sizes)
    taps = weight.reshape(weight.shape[0], -1).T  # (K, C)
    planes = np.einsum("kc,ks->kcs", taps, inside.astype(weight.dtype, copy=False))  # (K, C, S)
    return offsets, planes.reshape(len(offsets), -1)


@functools.lru_cache(maxsize=64)
def _reach(kernel: Sizes, dilation: Sizes, padding: Sizes, sizes: Sizes
           ) -> tuple[tuple[int, ...], np.ndarray]:
    """(offsets, inside): each tap's offset into a flattened plane, and whether it reads
    within the plane from each position (K, S), 1 or 0; the same for every call of a layer."""
    dims = len(sizes)
    row_strides = [math.prod(sizes[i + 1:]) for i in range(dims)]
    grids = np.indices(sizes).reshape(dims, -1)  # each position's coordinates
    offsets, inside = [], []
    for tap in np.ndindex(*kernel):
        reach = [t * d - p for t, d, p in zip(tap, dilation, padding, strict=True)]
        offsets.append(sum(r * s for r, s in zip(reach, row_strides, strict=True)))
        within = np.ones(grids.shape[1], bool)
        for axis, r in enumerate(reach):
            within &= (grids[axis] + r >= 0) & (grids[axis] + r < sizes[axis])
        inside.append(within)
    mask = np.array(inside, np.float32)
    mask.flags.writeable = False
    return tuple(offsets), mask


# -- on padded planes ---------------------------------------------------------------------


def padded_usable(weight: np.ndarray, g: Geometry) -> bool:
    """Whether a forward of this depthwise convolution (one input channel per group) goes to
    the padded planes: at stride 1. (Strided, the phase planes compute it too, faster at one thread, but
    at two im2col's einsum won: 3×3/2 on 8×64×112×112, 22–25 against 31 ms.)"""
    return g.groups > 1 and weight.shape[1] == 1 and all(s == 1 for s in g.strides)



def padded_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, g: Geometry,
                      out_sizes: tuple[int, ...]) -> np.ndarray:
    """x (N, C, *S) correlated per channel with weight (C·M, 1, *K), plus bias: (N, C·M, *out)
    (output channel c·M + i reads input channel c). A block of one example's channels at a
    time is copied into zero-padded planes, where each tap is one multiply-add of the planes
    shifted by its offset, computed over whole planes (the positions in the padding dropped
    as the block's sums are written out with the bias), so every pass is contiguous and in
    cache. At a stride the padded planes are dealt into their phase planes (``_phases``),
    where each tap is a shift again. Measured at 2 threads, MobileNet's 3×3 on 64 channels of
    112×112, batch 8: at stride 2 im2col's einsum 14.6 ms, this 5.5 ms; the padded planes of the
    whole batch first (no blocks), 12 ms. The chunks of the batch run on ``parallel``'s threads."""
    n, c, o, dims = x.shape[0], x.shape[1], weight.shape[0], len(g.kernel)
    m = o // c
    grid, shifts, copies = _phases(g, x.shape[2:], out_sizes)
    area, phases = math.prod(grid), math.prod(g.strides)
    block = max(1, min(c, BLOCK_ELEMENTS // (phases * area)))  # channels per block
    offsets = [phase * block * area + shift for phase, shift in shifts]  # into a block's planes
    farthest = max(shift for _, shift in shifts)  # the last tap reads past the planes: zeros
    taps = weight.reshape(c, m, -1).transpose(1, 2, 0)  # (M, K, C)
    budget.charge(parallel.threads() * budget.nbytes(((phases + 2) * block * area + farthest,), x.dtype),
                  f"padding the input by {g.padding}")
    budget.charge(budget.nbytes((n, o, *out_sizes), x.dtype), "its output")
    out = np.empty((n, o, *out_sizes), x.dtype)
    target = out.reshape(n, c, m, *out_sizes)
    crop = (slice(None), *(slice(0, size) for size in out_sizes))
    shift = None if bias is None else bias.reshape(c, m, *(1,) * dims).astype(x.dtype, copy=False)

    def run(batch: slice) -> None:
        local = np.zeros(phases * block * area + farthest, x.dtype)  # its padding stays zero
        planes = local[:phases * block * area].reshape(*g.strides, block, *grid)
        sums, product = np.empty((block, area), x.dtype), np.empty((block, area), x.dtype)
        for example in range(batch.start, batch.stop):
            for first in range(0, c, block):
                last = min(c, first + block)
                count = last - first
                _fill(planes, x, example, slice(first, last), copies)
                total, mine = sums[:count], product[:count]
                for i in range(m):
                    for k, offset in enumerate(offsets):
                        shifted = local[offset:offset + count * area].reshape(count, area)
                        np.multiply(shifted, taps[i, k, first:last, None], out=mine if k else total)
                        if k:
                            total += mine
                    kept, written = total.reshape(count, *grid)[crop], target[example, first:last, i]
                    if shift is None:
                        np.copyto(written, kept)
                    else:
                        np.add(kept, shift[first:last, i], out=written)

    work = 2 * len(offsets) * n * o * area
    parallel.over_batch(run, n, work, min_elements=parallel.ELEMENTWISE_MIN_ELEMENTS)
    return out


def padded_backward(grad: np.ndarray, x: np.ndarray, weight: np.ndarray, g: Geometry, *,
                       need_x: bool = True, need_weight: bool = True
                       ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The input's and the weight's gradients of ``padded_forward`` from its input x and the
    output's gradient (N, C·M, *out), on the same blocks: a block's gradient laid on the
    planes' grid (zeros where the forward dropped positions); the weight's, each tap's sum of
    its products with the block's (phase) planes, one einsum per tap; the input's, each tap's
    products added onto zeroed planes at its offset, then dealt back (the forward's copies
    reversed). No columns of the taps (im2col's, 9× the input for a 3×3), no scatter per tap
    over the whole batch. The weight's ``parallel.REDUCTION_CHUNKS`` partial sums are added in
    order: the same bits whatever the thread count."""
    n, c = x.shape[0], x.shape[1]
    m = weight.shape[0] // c
    out_sizes = grad.shape[2:]
    grid, shifts, copies = _phases(g, x.shape[2:], out_sizes)
    area, phases = math.prod(grid), math.prod(g.strides)
    block = max(1, min(c, BLOCK_ELEMENTS // (phases * area)))
    offsets = [phase * block * area + shift for phase, shift in shifts]
    farthest = max(shift for _, shift in shifts)
    size = phases * block * area + farthest
    budget.charge(parallel.threads() * budget.nbytes((2 * size + 2 * block * area,), x.dtype),
                  f"padding the input by {g.padding}")
    if need_x:
        budget.charge(budget.nbytes(x.shape, x.dtype), "its input's gradient")
    grad_x = np.zeros(x.shape, x.dtype) if need_x else None  # positions no tap reads: 0
    kept = (slice(None), *(slice(0, length) for length in out_sizes))
    rows = grad.reshape(n, c, m, *out_sizes)
    taps = weight.reshape(c, m, -1).transpose(1, 2, 0)  # (M, K, C)

    def run(batch: slice) -> np.ndarray:
        local = np.zeros(size, x.dtype)  # its padding stays zero
        planes = local[:phases * block * area].reshape(*g.strides, block, *grid)
        scattered = np.zeros(size, x.dtype)
        back = scattered[:phases * block * area].reshape(*g.strides, block, *grid)
        laid = np.zeros((block, *grid), x.dtype)  # the gradient on the grid: zeros past the output
        product = np.empty((block, area), x.dtype)
        sums = np.zeros((m, len(offsets), c), x.dtype)
        for example in range(batch.start, batch.stop):
            for first in range(0, c, block):
                last = min(c, first + block)
                count = last - first
                flat, mine = laid[:count].reshape(count, area), product[:count]
                if need_weight:
                    _fill(planes, x, example, slice(first, last), copies)
                if grad_x is not None:
                    scattered.fill(0)
                for i in range(m):
                    np.copyto(laid[:count][kept], rows[example, first:last, i])
                    for k, offset in enumerate(offsets):
                        if need_weight:
                            shifted = local[offset:offset + count * area].reshape(count, area)
                            sums[i, k, first:last] += np.einsum("cq,cq->c", shifted, flat)
                        if grad_x is not None:
                            np.multiply(flat, taps[i, k, first:last, None], out=mine)
                            target = scattered[offset:offset + count * area].reshape(count, area)
                            target += mine
                if grad_x is not None:
                    for phase, inner, source in copies:
                        into: tuple[Any, ...] = (example, slice(first, last), *source)
                        sent: tuple[Any, ...] = (slice(0, count), *inner)
                        grad_x[into] = back[phase][sent]
        return sums

    work = 2 * len(offsets) * grad.size
    parts = parallel.over_batch(run, n, work, chunks=parallel.REDUCTION_CHUNKS)
    grad_w = None
    if need_weight:
        total = parallel.added_in_order(parts)
        grad_w = np.ascontiguousarray(total.transpose(2, 0, 1)).reshape(weight.shape)  # (C, M, K)
    return grad_x, grad_w



def _fill(planes: np.ndarray, x: np.ndarray, example: int, channels: slice, copies: list[Copy]) -> None:
    """Copy ``x[example, channels]`` into the first of ``planes``' blocks, phase by phase."""
    count = channels.stop - channels.start
    for phase, inner, source in copies:
        reads: tuple[Any, ...] = (example, channels, *source)
        into: tuple[Any, ...] = (slice(0, count), *inner)
        np.copyto(planes[phase][into], x[reads])


Copy = tuple[tuple[int, ...], tuple[slice, ...], tuple[slice, ...]]


def _phases(g: Geometry, sizes: tuple[int, ...], out_sizes: tuple[int, ...]
            ) -> tuple[tuple[int, ...], list[tuple[int, int]], list[Copy]]:
    """(grid, shifts, copies): the sizes of the padded input's phase planes; each kernel tap's
    (phase, offset into that phase's plane), in the taps' order; and for each phase the
    (phase, slices of its plane, slices of the input) that fill it. At stride s, padded
    position u·s + a is phase a's position u, and the tap reaching r = j·d along an axis
    reads phase r mod s shifted by r div s: a stride-1 tap again, on planes 1/s the size.
    A plane holds the output's positions plus the shifts (what a tap reads beyond them lands
    in dropped positions). At stride 1 there is one phase: the padded planes themselves."""
    dims = len(g.kernel)
    grid = tuple(o + (d * (k - 1)) // s for o, k, d, s in zip(out_sizes, g.kernel, g.dilation, g.strides,
                                                             strict=True))
    row_strides = [math.prod(grid[i + 1:]) for i in range(dims)]
    shifts = []
    for tap in np.ndindex(*g.kernel):
        reach = [j * d for j, d in zip(tap, g.dilation, strict=True)]
        phase = int(np.ravel_multi_index([r % s for r, s in zip(reach, g.strides, strict=True)], g.strides))
        shifts.append((phase, sum(r // s * stride for r, s, stride in zip(reach, g.strides, row_strides,
                                                                          strict=True))))
    copies = []
    for phase in np.ndindex(*g.strides):
        inner, source = [], []
        for a, s, p, q, length in zip(phase, g.strides, g.padding, grid, sizes, strict=True):
            first = max(0, -(-(p - a) // s))  # the first u whose u·s + a − p is inside the input
            last = min(q, (length - 1 + p - a) // s + 1)
            if last <= first:
                break
            inner.append(slice(first, last))
            source.append(slice(first * s + a - p, (last - 1) * s + a - p + 1, s))
        else:
            copies.append((phase, tuple(inner), tuple(source)))
    return grid, shifts, copies
