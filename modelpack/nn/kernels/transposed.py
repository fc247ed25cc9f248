"""Transposed convolution on channel-first batches, forward and backward: the input-gradient of
the convolution whose weight it is (``conv``'s col2im), and its gradients through that
convolution's forward and backward.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from .. import budget
from . import direct, parallel
from .columns import Geometry, Sizes, rows_of
from .conv import _col2im_last, backward, forward

__all__ = ["transpose_sizes", "transpose_forward", "transpose_backward"]


def transpose_sizes(in_sizes: Sizes, g: Geometry, output_padding: Sizes) -> tuple[Sizes, Sizes]:
    """(uncropped, output) spatial sizes of a transposed convolution."""
    full = tuple((i - 1) * s + d * (k - 1) + 1 + a for i, s, d, k, a in
                 zip(in_sizes, g.strides, g.dilation, g.kernel, output_padding, strict=True))
    return full, tuple(f - 2 * p for f, p in zip(full, g.padding, strict=True))


def transpose_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, g: Geometry,
                      output_padding: Sizes) -> np.ndarray:
    """Transposed convolution of x (N, C, *S) with weight (C, O/G, *K): the input-gradient of
    the convolution whose weight it is, x standing for that convolution's output gradient."""
    n, dims = x.shape[0], x.ndim - 2
    full, out_sizes = transpose_sizes(x.shape[2:], g, output_padding)
    channels = weight.shape[1] * g.groups
    if direct.usable(x, weight, g):
        out = direct.grad_input(x, weight, g, (n, channels, *out_sizes))
        if bias is not None:
            out += bias.reshape(1, -1, *(1,) * dims)
        return out
    if max(g.strides) > 1 and max(g.dilation) == 1:
        return _col2im_phases(rows_of(x, g.groups), weight, bias, g, x.shape[2:], full, out_sizes)
    else:
        budget.charge(budget.nbytes((n, channels, *x.shape[2:]), x.dtype), "its products")  # per tap
        out = _col2im_last(rows_of(x, g.groups), weight, g, n, x.shape[2:], full, g.padding, out_sizes,
                           "its output")
    if bias is not None:
        out += bias.reshape(1, -1, *(1,) * dims)
    return out


def transpose_backward(grad: np.ndarray, x: np.ndarray, weight: np.ndarray, g: Geometry, *,
                       need_x: bool = True, need_weight: bool = True
                       ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Gradients of a transposed convolution's input and weight: its output's gradient goes
    through the convolution it is the transpose of."""
    # That convolution's output has exactly the input's sizes (output_padding < strides).
    if direct.usable(grad, weight, g):
        grad_x = direct.forward(grad, weight, None, g) if need_x else None
        grad_w = direct.grad_weight(x, grad, g, weight.shape) if need_weight else None
        return grad_x, grad_w
    grad_x, saved = forward(grad, weight, None, g, last=True)
    grad_w = backward(x, saved, weight, g, need_x=False)[1] if need_weight else None
    return (grad_x if need_x else None), grad_w


# The products of a block of examples are about this large at most (one example's may be more).
_BLOCK_BYTES = 256 << 10


def _col2im_phases(rows: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, g: Geometry,
                   in_sizes: Sizes, full: Sizes, sizes: Sizes) -> np.ndarray:
    """``_col2im_last`` for strides above 1 (undilated), by phases rather than tap by tap.

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
    budget.charge(budget.nbytes((n, channels, *sizes), rows.dtype), "its output")
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
