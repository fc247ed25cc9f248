"""col2im by phases: the sum of a strided convolution's taps' products placed back where the
taps read, one GEMM and one add per block shift instead of per tap. It is a transposed
convolution's forward (``transposed``) and a strided convolution's input gradient (``conv``),
both of which once placed their products tap by tap (``conv._col2im_last``, still used at
stride 1 and with dilation, where a tap is already a whole shifted plane).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from .. import budget
from . import parallel
from .columns import Geometry, Sizes

__all__ = ["usable", "by_phases"]


def usable(g: Geometry) -> bool:
    """Whether ``by_phases`` takes this geometry: a stride above 1, no dilation."""
    return max(g.strides) > 1 and max(g.dilation) == 1


# The products of a block of examples are about this large at most (one example's may be more).
_BLOCK_BYTES = 256 << 10


def by_phases(rows: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, g: Geometry,
              in_sizes: Sizes, full: Sizes, sizes: Sizes, what: str) -> np.ndarray:
    """``conv._col2im_last`` for strides above 1 (undilated), by phases rather than tap by tap:
    Σ over kernel taps of rows (G, N·P, O/G) times that tap's weights, each added where the tap
    read, the padding cropped, ``bias`` added: (N, C, *sizes).

    Along an axis of stride s, tap t = q·s + r lands on output position i·s + t, that is at
    offset r of block i + q: for one shift q, the s taps r = 0…s-1 fill disjoint offsets of
    the blocks, so one GEMM gives all their products and one add places them. That is
    ⌈k/s⌉ steps per axis instead of k (d2l's FCN upsampling, 64×64 at stride 32: 4 steps for
    4,096 taps; 103 → 29 ms at 2 threads, torch 27), the same multiplications. Each output
    position still receives its taps' products in the taps' order (q ascending), as before.
    A few examples at a time on each thread: their sums are placed in a buffer of their own,
    zeroed per block, and laid out channel-first (bias added) while in cache."""
    dims, groups, cg = len(g.kernel), g.groups, weight.shape[1]
    n = rows.shape[1] // math.prod(in_sizes)
    strides, channels, positions = g.strides, groups * cg, math.prod(in_sizes)
    shifts = tuple(-(-k // s) for k, s in zip(g.kernel, strides, strict=True))  # ⌈k/s⌉
    blocks = tuple(-(-f // s) for f, s in zip(full, strides, strict=True))  # ⌈full/s⌉ ≥ in + shifts - 1
    phases = math.prod(strides)
    budget.charge(budget.nbytes(weight.shape, weight.dtype), "its weights by phase")
    budget.charge(budget.nbytes((n, channels, *sizes), rows.dtype), what)
    # A block's products and sums, on each thread.
    per = max(1, min(n, _BLOCK_BYTES // max(1, positions * phases * channels * rows.itemsize)))
    threads = min(parallel.threads(), n)
    budget.charge(budget.nbytes((threads * per * positions, phases, channels), rows.dtype), "its products")
    budget.charge(budget.nbytes((threads * per, *blocks, phases, channels), rows.dtype),
                  "the sums it adds into")
    # Per shift q, the taps q·s + r as a (G, C/G, r1·r2·…·O/G) matrix whose columns go
    # (r1, r2, …, o), r up to the kernel's end (fewer than s where s does not divide k).
    by_shift = {}
    for shift in itertools.product(*(range(q) for q in shifts)):
        reach = tuple(min(s, k - q * s) for q, s, k in zip(shift, strides, g.kernel, strict=True))
        window = tuple(slice(q * s, q * s + r) for q, s, r in zip(shift, strides, reach, strict=True))
        index = (slice(None), slice(None), *window)
        taps = np.ascontiguousarray(np.moveaxis(weight[index], 1, -1))
        by_shift[shift] = reach, taps.reshape(groups, -1, math.prod(reach) * cg)
    crop = (slice(None), *(slice(p, p + size) for p, size in zip(g.padding, sizes, strict=True)))
    out = np.empty((n, channels, *sizes), rows.dtype)
    offset = None if bias is None else bias.reshape(1, -1, *(1,) * dims)  # the bias, per channel
    # The products' axes (G, n, i1, i2, …, r1, r2, …, o) in the sums' order (n, i1, r1, i2, r2, …, G, o).
    order = (1, *itertools.chain.from_iterable((2 + a, 2 + dims + a) for a in range(dims)), 0, 2 + 2 * dims)

    def run(b: slice) -> None:
        count = min(per, b.stop - b.start)
        product = np.empty(groups * count * positions * phases * cg, rows.dtype)
        # Channels last, each axis as (block, offset): (n, b1, s1, b2, s2, …, G, O/G).
        axes = itertools.chain.from_iterable(zip(blocks, strides, strict=True))
        sums = np.empty((count, *axes, groups, cg), rows.dtype)
        spread = sums.reshape(count, *(b * s for b, s in zip(blocks, strides, strict=True)), channels)
        inner = np.moveaxis(spread[crop], -1, 1)  # (n, C, *sizes), the padding cropped
        for start in range(b.start, b.stop, per):
            block = slice(start, min(start + per, b.stop))
            count = block.stop - block.start
            mine = rows[:, start * positions:block.stop * positions]
            sums[:count] = 0
            for shift, (reach, taps) in by_shift.items():
                width = taps.shape[-1]
                made = product[:groups * count * positions * width].reshape(groups, -1, width)
                np.matmul(mine, taps, out=made)
                placed = made.reshape(groups, count, *in_sizes, *reach, cg).transpose(order)
                where = (slice(0, count), *itertools.chain.from_iterable(
                    (slice(q, q + i), slice(0, r)) for q, i, r in zip(shift, in_sizes, reach, strict=True)))
                target = sums[where]
                np.add(target, placed, out=target)
            if offset is None:
                np.copyto(out[block], inner[:count])
            else:
                np.add(inner[:count], offset, out=out[block])

    parallel.split(run, n, rows.shape[1] * math.prod(g.kernel) * channels * rows.shape[2])
    return out
