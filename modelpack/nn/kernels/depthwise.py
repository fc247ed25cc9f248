"""A depthwise convolution at stride 1 whose output keeps its input's sizes (MobileNet's 3×3
with padding 1, and its input's gradient), computed on the unpadded planes.

Each kernel tap reads the input shifted by one offset into the flattened planes, so the tap's
contribution to a whole chunk of the batch is one multiply of a contiguous run by a weight
plane, and the taps' sum is written straight into the output: no padded copy of the input,
no cropped copy of the result. A shift runs past a row's end into the next row (or plane,
or example); there the tap's weight plane holds 0 (``_taps``), as zero padding would
contribute. The products and their order are those of ``shifted.depthwise_forward``'s padded
planes, so the results are the same bits, with one exception: a non-finite input value
read where the weight is masked gives 0·inf = NaN where padding gives 0. A chunk whose sum
is not finite is therefore recomputed on the padded planes (a finite sum means no value in
it is NaN or infinite).

Measured on MobileNet's depthwise 3×3 (32 channels of 16×16, batch 32, its ReLU applied):
padded planes 0.95–1.3 ms at 2 threads and 1.10 ms at one, here 0.63–0.87 and 0.72 ms. Each
thread takes one chunk of the batch whole: smaller chunks, kept in cache, lost more to the
threads' hand-offs of the GIL between numpy's calls than they gained (4 examples a chunk:
1.1 ms at 2 threads).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

from .. import budget
from . import parallel, shifted
from .columns import Geometry, Sizes

__all__ = ["usable", "forward"]


def usable(x: np.ndarray, weight: np.ndarray, g: Geometry, out_sizes: tuple[int, ...]) -> bool:
    """Whether this depthwise convolution (one input channel per group) comes here: one output
    per channel, at stride 1, its output the input's sizes, no tap reaching past a plane."""
    sizes = x.shape[2:]
    return (
        type(x) is np.ndarray
        and g.groups == x.shape[1] == weight.shape[0]
        and weight.shape[1] == 1
        and all(s == 1 for s in g.strides)
        and tuple(out_sizes) == tuple(sizes)
        and all(span <= size for span, size in zip(g.span, sizes, strict=True))
    )


def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, g: Geometry,
            activation: Callable[[np.ndarray], object] | None = None) -> np.ndarray:
    """x (N, C, *S) correlated per channel with weight (C, 1, *K), plus bias, then
    ``activation`` in place: (N, C, *S), each chunk of the batch on its own thread."""
    n, c, sizes = x.shape[0], x.shape[1], x.shape[2:]
    per = c * math.prod(sizes)  # one example's values
    source = np.ascontiguousarray(x).reshape(-1)
    offsets, planes = _taps(weight, g, sizes)
    shift = None if bias is None else np.repeat(bias.astype(x.dtype, copy=False), math.prod(sizes))
    budget.charge(budget.nbytes(x.shape, x.dtype), "its output")
    share = -(-n // parallel.threads())  # the examples a thread's chunk holds at most
    budget.charge(parallel.threads() * budget.nbytes((share, per), x.dtype), "its taps' products")
    out = np.empty(x.shape, x.dtype)
    flat = out.reshape(-1)

    def run(b: slice) -> None:
        count = b.stop - b.start
        total = flat[b.start * per:b.stop * per]
        product = np.empty_like(total)
        with np.errstate(invalid="ignore", over="ignore"):  # 0·inf where masked: checked below
            for tap, (offset, plane) in enumerate(zip(offsets, planes, strict=True)):
                _product(source, offset, plane, b, per, total if tap == 0 else product)
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


def _product(source: np.ndarray, offset: int, plane: np.ndarray, b: slice, per: int,
             into: np.ndarray) -> None:
    """``into`` (examples ``b``, flattened) = the input shifted by ``offset``, times the tap's
    ``plane``. Reads before the batch's first value or after its last (the first or last
    example's masked edge) are left out, their products 0."""
    first, last = b.start, b.stop
    end = source.size
    rows = into.reshape(last - first, per)
    if offset < 0 and first == 0:  # the first example's first positions read before the batch
        rows[0, :-offset] = 0
        np.multiply(source[:per + offset], plane[-offset:], out=rows[0, -offset:])
        first += 1
    if offset > 0 and last * per == end:  # the last example's last positions read past it
        rows[-1, per - offset:] = 0
        np.multiply(source[end - per + offset:], plane[:per - offset], out=rows[-1, :per - offset])
        last -= 1
    if first < last:
        run = source[first * per + offset:last * per + offset].reshape(last - first, per)
        np.multiply(run, plane, out=rows[first - b.start:last - b.start])
