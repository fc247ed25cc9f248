"""``strips.forward`` in 2-D as one loop compiled by numba (the ``accel`` extra) per thread's
examples: each strip of output rows' columns gathered from the strides' phase planes, a GEMM
per group (BLAS's own, called from the loop: ``blas.sgemm``) straight into the channel-first
output, and the bias added while the strip is in cache, without the interpreter.

numpy's path makes a copy per phase, a GEMM and a bias pass per group and strip, each a numpy
call; here a strip's columns are gathered run by run (an output row of each tap) and its
sums stay in cache for the bias. On the 7×7/2 stem (8×3×224×224 → 64, medians of 27 calls,
ms, numpy's path → the loop): 33.3 → 32.7 at 1 thread, 29.5 → 23.2 at 2 (torch: 8.9 at 2;
the GEMMs alone, at BLAS's ~100 GFLOP/s a core, take 18.5 at 1). The products are numpy's
path's (the same columns, the same GEMM per group and strip), the bias added once after: the
same bits.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from .blas import NO_TRANSPOSE, ROW_MAJOR

__all__ = ["strips_2d"]


@njit(nogil=True, cache=True)
def strips_2d(gemm: Any, planes: Any, kernels: Any, bias: Any, out: Any, buffer: Any, phases: Any,
              rows: int, first: int, stop: int) -> None:
    """Examples ``[first, stop)``: planes (N, C, sy, sx, Hq, Wq) the padded input dealt into its
    strides' phases; kernels (G, O/G, C/G·K) the weight in the columns' order; phases (P, 8):
    per phase (py, px, taps down, taps across, first offset down, across, step down, across);
    buffer scratch for a strip's columns (C/G·K, rows·OW) per group; out (N, O, OH, OW) ← the
    correlation, the bias (O,) added, or (empty) none."""
    groups, og, depth = kernels.shape
    cg = planes.shape[1] // groups
    oh, ow = out.shape[2], out.shape[3]
    one, zero = np.float32(1), np.float32(0)
    flat = buffer.reshape(-1)
    for example in range(first, stop):
        for start in range(0, oh, rows):
            count = min(rows, oh - start)
            width = count * ow
            for group in range(groups):
                row = 0  # the columns' rows: phase by phase, (channel, tap down, tap across)
                for p in range(phases.shape[0]):
                    py, px, down, across = phases[p, 0], phases[p, 1], phases[p, 2], phases[p, 3]
                    oy, ox, sy, sx = phases[p, 4], phases[p, 5], phases[p, 6], phases[p, 7]
                    for c in range(cg):
                        plane = planes[example, group * cg + c, py, px]
                        for i in range(down):
                            for j in range(across):
                                at = row * width
                                for r in range(count):
                                    source = plane[start + oy + sy * i + r]
                                    flat[at + r * ow:at + (r + 1) * ow] = source[ox + sx * j:ox + sx * j + ow]
                                row += 1
                target = out[example, group * og:(group + 1) * og]
                gemm(ROW_MAJOR, NO_TRANSPOSE, NO_TRANSPOSE, og, width, depth, one, kernels[group].ctypes,
                     depth, flat.ctypes, width, zero, target[0, start].ctypes, oh * ow)
                if bias.size:
                    for o in range(og):
                        shift = bias[group * og + o]
                        for r in range(count):
                            line = target[o, start + r]
                            for q in range(ow):
                                line[q] += shift
