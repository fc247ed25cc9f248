"""``shifted.last_axis_forward`` in 2-D as one loop compiled by numba (the ``accel`` extra) per
thread's blocks of examples: the padded planes filled, the columns copied from them, one GEMM
per group (BLAS's own, called from the loop: ``blas.sgemm``), and the last axis's taps summed
on the output side straight into the cropped output with the bias, without the interpreter.

numpy's path makes six passes around its GEMM (pad, columns, two adds of the shifted
products, the crop with the bias, each a numpy call): on ResNet-18-style's 16 → 16 channels
on 32×32 the GEMM was under half of the convolution's time. Here the adds, the crop and the
bias are one pass, each output value read from its taps' products while they are in cache.
The arithmetic is numpy's path's, in its order (the taps' products added first to last, then
the bias), an example a block (their columns and products stay in L2: ResNet-18-style's 16 →
16 channels on 32×32×32×32 took 2.5 ms at 2 threads so, 3.2 by numpy's blocks of 8): the same
bits as numpy's path an example a block, while its wider blocks' GEMMs may round apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from .blas import NO_TRANSPOSE, ROW_MAJOR

__all__ = ["last_axis_2d"]


@njit(nogil=True, cache=True)
def last_axis_2d(gemm: Any, x: Any, kernels: Any, bias: Any, out: Any, flat: Any, cols: Any, products: Any,
                 per: int, plane: int, wp: int, top: int, left: int, row_step: int, column_step: int,
                 span: int, first_block: int, stop_block: int) -> None:
    """Blocks ``[first_block, stop_block)`` of ``per`` examples of x (N, C, H, W) correlated
    with ``kernels`` (G, k·O/G, C/G·kh): rows (last tap, output), columns (channel, leading
    tap). flat (C, per·plane): the block's planes padded (``top``, ``left``) on rows ``wp``
    long, end to end, their padding zero; cols (G, C/G·kh, span + reach) and products (G, k·O/G,
    span + reach) scratch, reach = (k - 1)·column_step; a leading tap reads ``row_step``
    values on, a last-axis tap ``column_step``. out (N, O, OH, OW) ← the sums on the padded grid
    (OH rows of ``wp``) cropped, the bias (O,) added, or (empty) none."""
    n, c, h, w = x.shape
    groups, taps_rows, depth = kernels.shape
    oh, ow = out.shape[2], out.shape[3]
    og = out.shape[1] // groups
    last = taps_rows // og
    cg = c // groups
    lead = depth // cg
    width = cols.shape[2]  # span + reach
    planes = flat.reshape(-1)
    columns = cols.reshape(groups, -1)
    sums = products.reshape(groups, -1)
    one, zero = np.float32(1), np.float32(0)
    for block in range(first_block, stop_block):
        first = block * per
        count = min(per, n - first)
        for ch in range(c):  # the block's planes: the interior (the padding stays zero)
            for e in range(count):
                for y in range(h):
                    at = ch * per * plane + e * plane + (y + top) * wp + left
                    planes[at:at + w] = x[first + e, ch, y]
        for group in range(groups):
            for ci in range(cg):  # a row per (channel, leading tap): one run of the planes
                for ky in range(lead):
                    row = ci * lead + ky
                    at = (group * cg + ci) * per * plane + ky * row_step
                    columns[group, row * width:(row + 1) * width] = planes[at:at + width]
            gemm(ROW_MAJOR, NO_TRANSPOSE, NO_TRANSPOSE, taps_rows, width, depth, one, kernels[group].ctypes,
                 depth, columns[group].ctypes, width, zero, sums[group].ctypes, width)
            for e in range(count):
                for o in range(og):
                    channel = group * og + o
                    for y in range(oh):
                        target = out[first + e, channel, y]
                        at = o * width + e * plane + y * wp
                        for q in range(ow):  # each tap's run in turn: loops that vectorise
                            target[q] = sums[group, at + q]
                        for j in range(1, last):
                            tap = j * og * width + at + j * column_step
                            for q in range(ow):
                                target[q] += sums[group, tap + q]
                        if bias.size:
                            shift = bias[channel]
                            for q in range(ow):
                                target[q] += shift
