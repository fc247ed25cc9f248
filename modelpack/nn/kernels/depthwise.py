"""A depthwise convolution at stride 1 whose output keeps its input's sizes (MobileNet's 3×3
with padding 1, and its input's gradient), computed on the unpadded planes.

Each kernel tap reads the input shifted by one offset into the flattened planes, so the tap's
contribution to a whole chunk of the batch is one multiply of a contiguous run by a weight
plane, and the taps' sum is written straight into the output: no padded planes (each chunk
is copied whole, with the few values around it its shifts reach), no cropped copy of the
result. A shift runs past a row's end into the next row (or plane, or example); there the
tap's weight plane holds 0 (``_taps``), as zero padding would contribute. The products and
their order are those of ``shifted.depthwise_forward``'s padded planes, so the results are
the same bits, with one exception: a non-finite input value read where the weight is masked
gives 0·inf = NaN where padding gives 0. A chunk whose sum is not finite is therefore
recomputed on the padded planes (a finite sum means no value in it is NaN or infinite).

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

import numpy as np

from .. import budget
from . import parallel, shifted
from .columns import Geometry, Sizes

__all__ = ["usable", "fits", "forward"]


# Values one thread's chunk of the batch may hold for this to run on it: beyond, its taps'
# passes run out of cache, and ``shifted.depthwise_forward``'s blocks of padded planes are
# faster (3×3 on 8×128×56×56, one thread: 46 ms here, 18 ms there; on MobileNet-style 32×32
# channels of 16×16, here 1.7 ms, there 2.5).
MAX_CHUNK_ELEMENTS = 1 << 18


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
            out[b] = shifted.depthwise_forward(x[b], weight, bias, g, sizes)
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
