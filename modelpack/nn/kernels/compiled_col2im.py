"""``col2im.by_windows`` in 2-D as one loop compiled by numba (the ``accel`` extra) per thread's
share of the batch: each block of examples' windows gathered, one GEMM of every phase (BLAS's
own, called from the loop: ``blas.sgemm``), and its products laid out channel-first with the
bias, all without the interpreter.

numpy's path makes a GEMM per phase, whose C/G columns (32 for DCGAN's 64 → 32) run BLAS far
below its speed, and the more so with two threads calling it at once; and it adds each
phase's products into every s-th output position of every s-th row, reading them at a stride
of the channels in runs as short as a phase's row (~150 M values a second: 43% of the
forward, line-profiled). Here one GEMM per block multiplies every block position's window
with every phase's weights (s·s·C/G columns), computing whole blocks where the phases'
outputs leave a partial one at an edge (on 16×16 inputs 17×17 blocks of 4 phases for 32×32
outputs: 13% more multiply-adds), and each output row is written once, whole, from its
phases' products while they are in L1. Measured on DCGAN's 4×4/2 (batch 32, medians of 60
calls, ms, numpy's path with this module's layout pass → this, at 1 / 2 threads): 64 → 32 on
16×16 11.6 / 9.7 → 9.2 / 7.0, 128 → 64 on 8×8 8.9 / 6.7 → 8.3 / 6.0 (torch: 6.4 / 3.3–4.1 and
5.2 / 3.5). The bits are numpy's path's: BLAS computes each product element the same in
either GEMM, and the bias is added once (a copy where there is none).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from .blas import NO_TRANSPOSE, ROW_MAJOR

__all__ = ["windows_2d", "place_blocks"]

_jit = njit(nogil=True, cache=True)


@_jit
def windows_2d(gemm: Any, padded: Any, taps: Any, bias: Any, out: Any, columns: Any, products: Any,
               first_rows: Any, first_columns: Any, blocks_y: int, blocks_x: int, reach_y: int, reach_x: int,
               first: int, stop: int, per: int) -> None:
    """``by_windows`` for examples ``[first, stop)``, ``per`` at a time. padded (G, N, Hp, Wp,
    R): the input channels last, zero-padded, Hp ≥ blocks_y + reach_y - 1 (Wp likewise); taps
    (G, K, phases·C/G), K = reach_y·reach_x·R: each group's weights, a phase's C/G columns
    after another's (row phase first); ``columns`` and ``products`` scratch for a block's
    (blocks_y·per·blocks_x, K) and (…, phases·C/G); first_rows[py] = (first output row, first
    block, rows) of row phase py, first_columns[px] the same of column phase px; ``gemm``
    BLAS's cblas_sgemm (``blas.sgemm``); bias (C,) or empty for none."""
    groups, examples, height, width_in, r = padded.shape
    flat = padded.reshape(-1)
    depth, width = taps.shape[1], taps.shape[2]
    run = reach_x * r  # a window's row: reach_x positions' channels, contiguous in padded
    one, zero = np.float32(1), np.float32(0)
    for start in range(first, stop, per):
        count = min(per, stop - start)
        for group in range(groups):
            to = 0  # rows (block row, example, block column), each the window's rows in turn
            for i in range(blocks_y):
                for b in range(count):
                    for j in range(blocks_x):
                        for wy in range(reach_y):
                            at = (((group * examples + start + b) * height + i + wy) * width_in + j) * r
                            columns[to:to + run] = flat[at:at + run]
                            to += run
            gemm(ROW_MAJOR, NO_TRANSPOSE, NO_TRANSPOSE, blocks_y * count * blocks_x, width, depth, one,
                 columns.ctypes, depth, taps[group].ctypes, width, zero, products.ctypes, width)
            place_blocks(out, products, first_rows, first_columns, bias, count, blocks_x,
                         width // (first_rows.shape[0] * first_columns.shape[0]), start, group)


@_jit
def place_blocks(out: Any, products: Any, first_rows: Any, first_columns: Any, bias: Any, count: int,
                 blocks_x: int, cg: int, first: int, group: int) -> None:
    """A block of examples' products (blocks_y, count, blocks_x, sy·sx phases, cg channels),
    flat, laid out at out[first + b, group·cg + c, y0 + sy·k, x0 + sx·j] from block (i0 + k,
    j0 + j) and phase (py, px), first_rows[py] = (y0, i0, rows), first_columns[px] = (x0, j0,
    columns); the bias (C,) added, or (empty) none."""
    sy, sx = first_rows.shape[0], first_columns.shape[0]
    width = sy * sx * cg
    for b in range(count):
        for py in range(sy):
            y0, i0, rows = first_rows[py, 0], first_rows[py, 1], first_rows[py, 2]
            for k in range(rows):
                for c in range(cg):
                    channel = group * cg + c
                    target = out[first + b, channel, y0 + sy * k]
                    for px in range(sx):
                        x0, j0, columns = first_columns[px, 0], first_columns[px, 1], first_columns[px, 2]
                        base = (((i0 + k) * count + b) * blocks_x + j0) * width + (py * sx + px) * cg + c
                        if bias.size:
                            shift = bias[channel]
                            for j in range(columns):
                                target[x0 + sx * j] = products[base + j * width] + shift
                        else:  # copied, not + 0 (which would turn -0 into +0)
                            for j in range(columns):
                                target[x0 + sx * j] = products[base + j * width]
