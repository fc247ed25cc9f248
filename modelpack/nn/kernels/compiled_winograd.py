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

The backward (``winograd.gradients``) takes the output's gradient back through the output
transform, A·dY·Aᵀ (``gradient_tiles``): against the input's tiles for the weight's gradient,
and through the weight's transform and the input transform's transpose (B·dV·Bᵀ, the tiles'
overlaps added: ``input_gradient``) for the input's. Measured at one thread, 16 examples, ms
(``input_tiles`` and ``output_tiles`` of a flipped Winograd forward → ``input_gradient``): 16
channels on 32×32 0.47 + 0.16 → 0.37, 32 on 16×16 0.28 + 0.08 → 0.23, 128 on 4×4 0.14 +
0.05 → 0.11, and the gradient's 6×6 tiles and the flipped kernel's transform are not made.

The arithmetic is ``winograd``'s (``BT`` and ``AT``'s entries, in float32), each product's terms
added in the matrices' column order; its sums are not BLAS's, so the results agree with numpy's
path to float32 rounding, not bit for bit. A tile's values do not depend on the block or the
thread that computes it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

__all__ = ["scratch_values", "input_tiles", "output_tiles", "gradient_tiles", "input_gradient"]

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
def _b(m0: Any, m1: Any, m2: Any, m3: Any, m4: Any, m5: Any) -> Any:
    """B·m for six values m (Bᵀ's transpose: a row of a tile's gradient, or a column of it)."""
    return (_4 * m0, -_4 * m1 + _4 * m2 - _2 * m3 + _2 * m4 + _4 * m5,
            -_5 * m0 - _4 * m1 - _4 * m2 - m3 - m4, m1 - m2 + _2 * m3 - _2 * m4 - _5 * m5,
            m0 + m1 + m2 + m3 + m4, m5)


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

    A channel at a time. Each row of tiles: Bᵀ down the columns of its six input rows, read in
    place (rows outside x read as zeros, columns outside x give zeros), one loop along the row.
    Then B along each tile's six columns, six of v's 36 rows at a time (36 runs written at once
    spread over the cache: measured 15–40% slower). The loops run over slices, from 0: an index
    numba cannot prove non-negative costs a wraparound test that keeps the loop from being
    vectorised (copying the rows into a zero-padded band instead was 1.2–1.4× slower at one
    thread, 16 to 128 channels on 4×4 to 56×56 planes)."""
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    span = 4 * cols + 2
    t = np.empty((count * rows, 6, span), np.float32)  # Bᵀ·rows of each of the channel's rows of tiles
    start = min(left, span)  # the band's columns [start, stop) lie over x's [start − left, stop − left)
    stop = max(start, min(span, left + width))
    zeros = np.zeros(stop - start, np.float32)
    for c in range(channels):
        for e in range(count):
            plane = x[first + e, c]
            for r in range(rows):
                y = 4 * r - top
                d0 = plane[y, start - left:stop - left] if 0 <= y < height else zeros
                d1 = plane[y + 1, start - left:stop - left] if 0 <= y + 1 < height else zeros
                d2 = plane[y + 2, start - left:stop - left] if 0 <= y + 2 < height else zeros
                d3 = plane[y + 3, start - left:stop - left] if 0 <= y + 3 < height else zeros
                d4 = plane[y + 4, start - left:stop - left] if 0 <= y + 4 < height else zeros
                d5 = plane[y + 5, start - left:stop - left] if 0 <= y + 5 < height else zeros
                tb = t[e * rows + r]
                tb[:, :start] = _ZERO
                tb[:, stop:] = _ZERO
                t0, t1, t2 = tb[0, start:stop], tb[1, start:stop], tb[2, start:stop]
                t3, t4, t5 = tb[3, start:stop], tb[4, start:stop], tb[5, start:stop]
                for j in range(stop - start):  # Bᵀ down each column
                    t0[j], t1[j], t2[j], t3[j], t4[j], t5[j] = _bt(d0[j], d1[j], d2[j], d3[j], d4[j], d5[j])
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


@_jit
def input_gradient(dv: Any, first: int, count: int, top: int, left: int, rows: int, cols: int,
                   out: Any) -> None:
    """Examples [first, first + count) of ``out`` (N, C, H, W) ← the input's gradient from its
    tiles' (36, C, count·rows·cols), in ``input_tiles``'s order: the transpose of
    ``input_tiles``, B·dV·Bᵀ of each tile added where the tile read (tiles overlap by two rows
    and columns; what lands on the padding is dropped).

    A channel at a time. B along each tile's six columns (``input_tiles``'s second pass
    transposed), each row of tiles' overlapping columns added as it goes; then B down each
    row of tiles' six rows, written straight into the output's rows, the last two kept to add
    to the next row of tiles' first two (rows on the padding written to scratch)."""
    channels, height, width = out.shape[1], out.shape[2], out.shape[3]
    span = 4 * cols + 2
    t = np.empty((count * rows, 6, span), np.float32)  # dV·Bᵀ of each row of tiles, overlaps added
    start = min(left, span)  # as ``input_tiles``'s
    stop = max(start, min(span, left + width))
    inside = stop - start
    s = np.empty((6, inside), np.float32)  # rows on the padding (0 … 3); the carried two (4, 5)
    carried4, carried5 = s[4], s[5]
    for c in range(channels):
        for u in range(6):  # rows 6u … 6u + 5 of dV, along each tile's six columns
            d0, d1, d2 = dv[6 * u, c], dv[6 * u + 1, c], dv[6 * u + 2, c]
            d3, d4, d5 = dv[6 * u + 3, c], dv[6 * u + 4, c], dv[6 * u + 5, c]
            for b in range(count * rows):
                tu, at = t[b, u], b * cols
                carry4 = carry5 = _ZERO  # the previous tile's last two columns
                for q in range(cols):
                    k, a = at + q, 4 * q
                    s0, s1, s2, s3, s4, s5 = _b(d0[k], d1[k], d2[k], d3[k], d4[k], d5[k])
                    tu[a], tu[a + 1], tu[a + 2], tu[a + 3] = s0 + carry4, s1 + carry5, s2, s3
                    carry4, carry5 = s4, s5
                tu[4 * cols], tu[4 * cols + 1] = carry4, carry5
        for e in range(count):
            target = out[first + e, c]
            carried4[:] = _ZERO
            carried5[:] = _ZERO
            for r in range(rows):  # B down each column, onto rows 4r − top …
                tb = t[e * rows + r]
                a0, a1, a2 = tb[0, start:stop], tb[1, start:stop], tb[2, start:stop]
                a3, a4, a5 = tb[3, start:stop], tb[4, start:stop], tb[5, start:stop]
                y = 4 * r - top
                w0 = target[y, start - left:stop - left] if 0 <= y < height else s[0]
                w1 = target[y + 1, start - left:stop - left] if 0 <= y + 1 < height else s[1]
                w2 = target[y + 2, start - left:stop - left] if 0 <= y + 2 < height else s[2]
                w3 = target[y + 3, start - left:stop - left] if 0 <= y + 3 < height else s[3]
                for j in range(inside):
                    s0, s1, s2, s3, s4, s5 = _b(a0[j], a1[j], a2[j], a3[j], a4[j], a5[j])
                    w0[j] = s0 + carried4[j]
                    w1[j] = s1 + carried5[j]
                    w2[j] = s2
                    w3[j] = s3
                    carried4[j] = s4
                    carried5[j] = s5
            y = 4 * rows - top
            if 0 <= y < height:
                target[y, start - left:stop - left] = carried4
            if 0 <= y + 1 < height:
                target[y + 1, start - left:stop - left] = carried5
