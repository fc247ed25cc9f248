"""Winograd F(4×4, 3×3)'s input and output transforms as loops compiled by numba (the ``accel``
extra), for ``winograd``'s float32 blocks: the GEMMs between them stay on BLAS.

numpy's path pads each block's input into planes, gathers its 6×6 tiles, and transforms them
with four small GEMMs (``Bᵀ``'s and ``Aᵀ``'s six columns make them run far below BLAS's
speed), then lays the 4×4 results out with the bias in another pass: six passes over data
several times the block's size, each a numpy call that hands the interpreter to the other
thread and back. Here one loop reads the tiles straight from the input (zeros where they
hang over the edge) and writes their 36 transformed values, and one reads the GEMMs' sums
and writes the output, bias added; neither holds the interpreter. Measured, 3×3 padded
by 1, ms for ``winograd.forward`` (numpy's transforms → these, the GEMMs included): one
thread, batch 32, 32 channels on 16×16 6.4 → 1.6, 16 on 32×32 9.4 → 2.2; two threads, 3.1 →
1.0 and 2.7 → 1.4, and 64 channels on 8×56×56 9.6 → 4.8 (torch 5.3).

The weight's gradient (``winograd.weight_grad``) takes the output's gradient back through the
output transform, A·dY·Aᵀ (``gradient_tiles``), against the input's tiles.

The arithmetic is ``winograd``'s (``BT`` and ``AT``'s entries, in float32), each product's terms
added in the matrices' column order; its sums are not BLAS's, so the results agree with numpy's
path to float32 rounding, not bit for bit. A tile's values do not depend on the block or the
thread that computes it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

__all__ = ["scratch_values", "input_tiles", "output_tiles", "gradient_tiles"]

_jit = njit(nogil=True, cache=True)
_inlined = njit(inline="always")  # (inlined by numba before LLVM sees the loops: they vectorise)

# winograd.BT's and winograd.AT's entries, as float32 constants (numba keeps a global's type)
_2, _4, _5, _8 = np.float32(2), np.float32(4), np.float32(5), np.float32(8)
_ZERO = np.float32(0)


@_inlined
def _bt(d0: Any, d1: Any, d2: Any, d3: Any, d4: Any, d5: Any) -> Any:
    """Bᵀ·d for six values d (a tile's column, or a row of Bᵀ·tile)."""
    return (_4 * d0 - _5 * d2 + d4, -_4 * d1 - _4 * d2 + d3 + d4, _4 * d1 - _4 * d2 - d3 + d4,
            -_2 * d1 - d2 + _2 * d3 + d4, _2 * d1 - d2 - _2 * d3 + d4, _4 * d1 - _5 * d3 + d5)


@_inlined
def _at(m0: Any, m1: Any, m2: Any, m3: Any, m4: Any, m5: Any) -> Any:
    """Aᵀ·m for six values m (a column of a tile's sums, or a row of Aᵀ·sums)."""
    return (m0 + m1 + m2 + m3 + m4, m1 - m2 + _2 * m3 - _2 * m4, m1 + m2 + _4 * m3 + _4 * m4,
            m1 - m2 + _8 * m3 - _8 * m4 + m5)


@_inlined
def _a(t0: Any, t1: Any, t2: Any, t3: Any) -> Any:
    """A·t for four values t (Aᵀ's transpose: a row of a gradient's 4×4 tile, or a column of
    tile·Aᵀ), six values."""
    return (t0, t0 + t1 + t2 + t3, t0 - t1 + t2 - t3, t0 + _2 * t1 + _4 * t2 + _8 * t3,
            t0 - _2 * t1 + _4 * t2 - _8 * t3, t3)


def scratch_values(count: int, rows: int, cols: int) -> int:
    """The float32 values ``input_tiles`` and ``output_tiles`` allocate for a block of
    ``count`` examples of rows × cols tiles (their bands of rows of tiles, Aᵀ·M and its A),
    for the caller's activation budget; ``gradient_tiles`` allocates fewer than the latter."""
    span = 4 * cols + 2
    return 6 * span + 6 * count * rows * span + (4 * 6 + 4 * 4) * count * rows * cols


@_jit
def input_tiles(x: Any, first: int, count: int, top: int, left: int, rows: int, cols: int, v: Any) -> None:
    """``v`` (36, C, count·rows·cols) ← Bᵀ·d·B of every 6×6 tile d of examples [first, first +
    count) of x (N, C, H, W), tile (r, q) reading rows 4r − top … and columns 4q − left … (zero
    outside x); v's columns in (example, tile row, tile column) order, as ``winograd``'s.

    A channel at a time. Each row of tiles: its six input rows copied into a zero-padded band,
    Bᵀ applied down the band's columns (one loop along the row). Then B along each tile's six
    columns, six of v's 36 rows at a time (36 runs written at once spread over the cache:
    measured 15–40% slower)."""
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    span = 4 * cols + 2
    band = np.zeros((6, span), np.float32)
    t = np.empty((count * rows, 6, span), np.float32)  # Bᵀ·band of each of the channel's rows of tiles
    inside = max(0, min(span, left + width) - left)  # the band's columns that x covers, from ``left``
    for c in range(channels):
        for e in range(count):
            plane = x[first + e, c]
            for r in range(rows):
                for i in range(6):
                    y = 4 * r - top + i
                    if 0 <= y < height:
                        for j in range(min(left, span)):
                            band[i, j] = _ZERO
                        for j in range(inside):
                            band[i, left + j] = plane[y, j]
                        for j in range(left + inside, span):
                            band[i, j] = _ZERO
                    else:
                        for j in range(span):
                            band[i, j] = _ZERO
                tb = t[e * rows + r]
                for j in range(span):  # Bᵀ·band, down each column
                    tb[0, j], tb[1, j], tb[2, j], tb[3, j], tb[4, j], tb[5, j] = _bt(
                        band[0, j], band[1, j], band[2, j], band[3, j], band[4, j], band[5, j])
        for u in range(6):  # ·B, along each tile's six columns: v's rows 6u … 6u + 5
            out = v[6 * u:6 * u + 6, c]
            for b in range(count * rows):
                tu, at = t[b, u], b * cols
                for q in range(cols):
                    a, k = 4 * q, at + q
                    out[0, k], out[1, k], out[2, k], out[3, k], out[4, k], out[5, k] = _bt(
                        tu[a], tu[a + 1], tu[a + 2], tu[a + 3], tu[a + 4], tu[a + 5])


@_jit
def output_tiles(m: Any, bias: Any, first: int, count: int, rows: int, cols: int, out: Any) -> None:
    """Examples [first, first + count) of ``out`` (N, O, H, W) ← Aᵀ·M·A of each tile's 6×6
    sums in m (36, O, count·rows·cols), plus ``bias`` (O values, or none if empty); a tile's
    4×4 block cropped at the output's edge.

    An output channel at a time: Aᵀ down the sums' six rows, then A along their six columns,
    each a loop over all the block's tiles (m's contiguous runs), then the 4×4 blocks laid out."""
    channels, height, width = out.shape[1], out.shape[2], out.shape[3]
    tiles = rows * cols
    total = count * tiles
    s = np.empty((4, 6, total), np.float32)
    y = np.empty((4, 4, total), np.float32)
    for o in range(channels):
        shift = bias[o] if bias.size else _ZERO
        for w in range(6):  # s = Aᵀ·M, down each of the six columns
            m0, m1, m2 = m[w, o], m[6 + w, o], m[12 + w, o]
            m3, m4, m5 = m[18 + w, o], m[24 + w, o], m[30 + w, o]
            s0, s1, s2, s3 = s[0, w], s[1, w], s[2, w], s[3, w]
            for k in range(total):
                s0[k], s1[k], s2[k], s3[k] = _at(m0[k], m1[k], m2[k], m3[k], m4[k], m5[k])
        for p in range(4):  # y = s·A, along each row of six
            a0, a1, a2, a3, a4, a5 = s[p, 0], s[p, 1], s[p, 2], s[p, 3], s[p, 4], s[p, 5]
            y0, y1, y2, y3 = y[p, 0], y[p, 1], y[p, 2], y[p, 3]
            for k in range(total):
                y0[k], y1[k], y2[k], y3[k] = _at(a0[k], a1[k], a2[k], a3[k], a4[k], a5[k])
        for e in range(count):
            plane = out[first + e, o]
            for r in range(rows):
                base = e * tiles + r * cols
                for p in range(min(4, height - 4 * r)):
                    target = plane[4 * r + p]
                    for j in range(width):
                        target[j] = y[p, j % 4, base + j // 4] + shift


@_jit
def gradient_tiles(grad: Any, first: int, count: int, rows: int, cols: int, dm: Any) -> None:
    """``dm`` (36, O, count·rows·cols) ← A·t·Aᵀ of every 4×4 tile t of examples [first, first +
    count) of the output's gradient (N, O, H, W), zero past its edge: the transpose of
    ``output_tiles``'s Aᵀ·M·A, which takes the gradient back to the GEMMs' sums. Columns in
    ``input_tiles``'s order; an output channel at a time, ·Aᵀ along each tile's rows, then A
    down each column of six, a loop over all the block's tiles."""
    channels, height, width = grad.shape[1], grad.shape[2], grad.shape[3]
    tiles = rows * cols
    total = count * tiles
    line = np.zeros(4 * cols, np.float32)  # a row of the gradient, zeros past its width
    s = np.empty((4, 6, total), np.float32)  # tile·Aᵀ: (tile row, column of six, tile)
    reach = min(width, 4 * cols)
    for o in range(channels):
        for e in range(count):
            plane = grad[first + e, o]
            for r in range(rows):
                base = e * tiles + r * cols
                for p in range(4):
                    y = 4 * r + p
                    if y < height:
                        for j in range(reach):
                            line[j] = plane[y, j]
                        for j in range(reach, 4 * cols):
                            line[j] = _ZERO
                    else:
                        for j in range(4 * cols):
                            line[j] = _ZERO
                    s0, s1, s2, s3, s4, s5 = s[p, 0], s[p, 1], s[p, 2], s[p, 3], s[p, 4], s[p, 5]
                    for q in range(cols):
                        a, k = 4 * q, base + q
                        s0[k], s1[k], s2[k], s3[k], s4[k], s5[k] = _a(line[a], line[a + 1], line[a + 2],
                                                                      line[a + 3])
        for w in range(6):  # A down each column of six: dm's rows w, 6 + w, …, 30 + w
            t0, t1, t2, t3 = s[0, w], s[1, w], s[2, w], s[3, w]
            d0, d1, d2 = dm[w, o], dm[6 + w, o], dm[12 + w, o]
            d3, d4, d5 = dm[18 + w, o], dm[24 + w, o], dm[30 + w, o]
            for k in range(total):
                d0[k], d1[k], d2[k], d3[k], d4[k], d5[k] = _a(t0[k], t1[k], t2[k], t3[k])
