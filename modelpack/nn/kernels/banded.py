"""A 2-D depthwise convolution as small GEMMs of the padded planes' rows with banded matrices
of each channel's taps (MobileNet's 3×3, at stride 1 or 2), forward and backward.

Output row r of a plane reads padded rows s·r + d·j (j the kernel's row), and along a row
output column x reads padded columns s·x + d·i. For one kernel row j, a tile of T output
columns of every output row is therefore one GEMM: the padded rows (each output row's
s·(T − 1) + span contiguous values from the tile's first column: a strided view, the rows'
pitch its leading dimension) times a banded (Toeplitz) matrix of that row's taps, tap i on
the diagonal s·x + d·i. Each channel's padded planes hold the batch's examples one after
another, so one GEMM covers every example's rows, and a block of channels shares each numpy
call (the stacked GEMMs of one ``matmul``, the sums of the kernel rows' products as the
output is written). Numpy's multiply and add of each tap's shifted planes (``depthwise``, 2
passes a tap) ran at ~5·10⁹ values/s in cache; these GEMMs do ~(T + 2)/3 times the
multiply-adds, the band's zeros included, at ~75 GFLOP/s. The weight's gradient is the same
GEMMs transposed, the taps read off the products' diagonals; the input's, bands of the taps
spreading each tile of the output's gradient back over the input columns it read
(``grad_input``).

Measured at 2 threads, wall, in one process against the paths before it (ms): inference 3×3/1
on 8×128×56×56 14.1 → 8.8 (``depthwise``'s taps in blocks), 3×3/2 on 8×64×112×112 12.4 → 7.3
(im2col's einsum); training 39.3 → 22.4 and 37.2 → 21.1; 3×3/1 on 8×512×14×14 12.3 → 7.5,
on 64×32×32×32 30.9 → 16.6, 3×3/2 on 8×256×28×28 19.1 → 7.7; 32×32×16×16 at stride 2 1.19 →
1.05 inference, 3.4 → 2.8 training; batch 1 (1×32×112×112) as before, 1.3 and 3.8–3.9. Against
torch (``bench/layers.py``): 3×3/1 5.8× → 3.8× inference, 5.3× → 3.2× training; 3×3/2 4.0× →
2.5× and 4.2× → 2.1×. One channel at a time, the per-call costs made 3×3/1 on 8×512×14×14
12.5 ms against 3.1 in blocks. MobileNet-style 32×32×16×16's inference stays on ``depthwise``'s
unpadded chunks (1.26 ms; here 1.77), its training comes here (im2col 3.5 ms, here 3.2).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import budget
from . import depthwise, parallel
from .columns import Geometry

__all__ = ["usable", "trainable", "forward", "grad_weight", "grad_input"]

# Output columns per GEMM, at most: a tile of T costs s·(T − 1) + span multiply-adds per output
# and kernel row, for kw useful ones; narrower, the GEMMs are too small to run well. Forward /
# input's / weight's gradients at tiles of 12, 16, 20, 28 (2 threads, ms): 3×3/1 on 8×128×56×56
# 9.1 / 9.1 / 6.1, 7.4 / 8.9 / 5.2, 10.1 / 10.6 / 7.1, 8.5 / 13.5 / 7.5; 3×3/2 on 8×64×112×112
# 6.8 / 7.6 / 5.4, 5.9 / 8.0 / 5.1, 7.7 / 8.3 / 6.6, 6.8 / 9.0 / 7.0. The weight's at 8: 4.5,
# 4.7 (16: 4.3, 4.6).
TILE = 16
# Values one thread's block holds (its padded planes and the kernel rows' products): whole
# examples of a few channels, so each GEMM's rows span the batch and a numpy call covers several
# channels: larger than the cache, and still faster at 2 threads (fewer calls per thread).
# Forward / input's / weight's gradients (ms) at 2^18, 2^19, 2^20, 2^22 values, 2 threads:
# 3×3/1 on 8×128×56×56 8.0 / 12.3 / 5.6, 6.7 / 8.9 / 5.0, 6.4 / 7.7 / 4.5, 8.1 / 8.0 / 4.5;
# 3×3/2 on 8×64×112×112 7.8 / 8.2 / 6.4, 6.5 / 7.3 / 5.4, 5.4 / 7.1 / 4.4, 5.8 / 9.1 / 4.8. (At one
# thread 2^18 was best, 2^20 up to 20% slower; at 2^15 a block splits the batch: 1.5–3× slower.)
BLOCK_ELEMENTS = 1 << 20
# Inputs of fewer values stay on im2col, where a convolution of a few hundred microseconds costs
# fewer numpy calls (training at 2 threads, ms, im2col against here: 1×16×8×8 0.18 / 0.22,
# 2×32×14×14 at stride 2 0.28 / 0.32; from 32×32×16×16 on, here was faster: 3.5 / 3.2).
MIN_ELEMENTS = 1 << 16


def usable(x: np.ndarray, weight: np.ndarray, g: Geometry) -> bool:
    """Whether this convolution comes here: 2-D, depthwise (one input channel per group), on
    a plain array of float32 or float64 (BLAS's types) of at least ``MIN_ELEMENTS`` values."""
    return (
        len(g.kernel) == 2
        and x.size >= MIN_ELEMENTS
        and type(x) is np.ndarray
        and x.dtype in (np.float32, np.float64)
        and g.groups == x.shape[1] > 1
        and weight.shape[1] == 1
    )


def trainable(x: np.ndarray, weight: np.ndarray, g: Geometry) -> bool:
    """Whether a training forward comes here (``usable``, with one output per input channel,
    which ``grad_input`` needs): its backward then runs here too."""
    return usable(x, weight, g) and weight.shape[0] == g.groups


def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, g: Geometry,
            out_sizes: tuple[int, ...],
            activation: Callable[[np.ndarray], object] | None = None) -> np.ndarray:
    """x (N, C, H, W) correlated per channel with weight (C·M, 1, kh, kw), plus bias, then
    ``activation`` in place: (N, C·M, *out_sizes) (output channel c·M + i reads input channel
    c). The channels are split among ``parallel``'s threads, each GEMM on one BLAS thread, a
    block of channels at a time, so each numpy call (the copy in, one ``matmul`` for every
    GEMM of the block, the sums) covers them all."""
    n, c, o = x.shape[0], x.shape[1], weight.shape[0]
    m, kh = o // c, g.kernel[0]
    oh, ow = out_sizes
    at = _Layout(x.shape, g, (oh, ow))
    bands = _bands(weight.astype(x.dtype, copy=False), g, at.tile, at.width)
    bands = bands.reshape(c, m, kh, 1, at.width, at.tile)
    shift = None if bias is None else bias.astype(x.dtype, copy=False).reshape(c, m, 1, 1, 1)
    products = (at.block, kh, at.per * at.rows, at.tiles * at.tile)  # per thread
    budget.charge(budget.nbytes(bands.shape, x.dtype) + parallel.threads() * budget.nbytes(
        (at.size + math.prod(products),), x.dtype), f"padding the input by {g.padding}")
    budget.charge(budget.nbytes((n, o, oh, ow), x.dtype), "its output")
    out = np.empty((n, o, oh, ow), x.dtype)
    targets = out.reshape(n, c, m, oh, ow)
    crop = (slice(None), slice(None), slice(None), slice(0, oh), slice(0, ow))

    def run(channels: slice) -> None:
        local, inside = at.planes(x.dtype)
        sums = np.empty(products, x.dtype)
        for first in range(0, n, at.per):
            count = min(n, first + at.per) - first
            reads = at.reads(local, count)
            into = at.tiled(sums, count)
            kept = sums[:, :, :count * at.rows].reshape(at.block, kh, count, at.rows, -1)[crop]
            for start in range(channels.start, channels.stop, at.block):
                stop = min(channels.stop, start + at.block)
                mine = slice(0, stop - start)
                np.copyto(inside[mine, :count], x[first:first + count, start:stop].swapaxes(0, 1))
                for i in range(m):
                    with np.errstate(invalid="ignore"):  # 0·inf in a band: recomputed below
                        np.matmul(reads[mine], bands[start:stop, i], out=into[mine])
                    written = targets[first:first + count, start:stop, i].swapaxes(0, 1)  # C, N, oh, ow
                    total = kept[mine, 0]  # summed in cache, the bias too, then written once
                    if shift is not None:
                        np.add(total, shift[start:stop, i], out=total)
                    for j in range(1, kh - 1):
                        np.add(total, kept[mine, j], out=total)
                    if kh > 1:
                        np.add(total, kept[mine, kh - 1], out=written)
                    else:
                        np.copyto(written, total)
                    # A band's zeros times an infinity or NaN give NaN: a channel whose sum is
                    # not finite is recomputed (its output is 1/s² of its input's size to sum).
                    for channel in np.flatnonzero(~np.isfinite(np.add.reduce(written, axis=(1, 2, 3)))):
                        index = (start + channel) * m + i
                        _exactly(x[first:first + count, start + channel], weight[index],
                                 None if bias is None else bias[index], g, written[channel])
        if activation is not None:
            activation(out[:, channels.start * m:channels.stop * m])

    parallel.split(run, c, 2 * kh * at.tiles * at.tile * at.width * n * at.rows * o)
    return out


def grad_input(grad: np.ndarray, weight: np.ndarray, g: Geometry, in_shape: tuple[int, ...]) -> np.ndarray:
    """The input's gradient (``in_shape``) of ``forward`` (one output channel per input channel)
    from the output's (N, C, oh, ow): a tile of s·T padded input columns receives from the
    T + E output columns that reach it (E = ⌈d·(kw − 1)/s⌉, windows that overlap as the
    forward's do), through a band of kernel row j's taps (``_spread``); a padded row s·u + a
    receives from output rows u − (d·j − a)/s, for the kernel rows j with d·j ≡ a (mod s). So
    each phase a of the rows sums one GEMM per such kernel row, written straight into its rows
    of the gradient: whole rows, every column phase at once (the forward's phases, one
    correlation per phase of both axes, wrote columns at a stride: 3×3/2 on 8×64×112×112,
    2 threads, 22.0 → 9.5 ms)."""
    if g.strides == (1, 1) and all(p < span for p, span in zip(g.padding, g.span, strict=True)):
        # The forward's correlation of the output's gradient with the flipped taps: its one GEMM
        # call for every kernel row ran faster (3×3/1 on 8×128×56×56, 2 threads: 8.8 → 6.3 ms).
        padding = tuple(span - 1 - p for p, span in zip(g.padding, g.span, strict=True))
        flipped = Geometry(g.kernel, g.strides, padding, g.dilation, g.groups)
        return forward(grad, np.ascontiguousarray(weight[:, :, ::-1, ::-1]), None, flipped, in_shape[2:])
    n, c, oh, ow = grad.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = g.kernel, g.strides, g.padding, g.dilation
    h, w = in_shape[2:]
    tile = -(-TILE // sw)  # output columns per GEMM: s·T input columns
    tiles, reach = -(-(pw + w) // (sw * tile)), -(-dw * (kw - 1) // sw)
    depth = dh * (kh - 1) // sh  # how many output rows back a padded row reaches, at most
    spread = _spread(weight.astype(grad.dtype, copy=False), g, tile, reach)  # (C, kh, T + E, s·T)
    phases = []  # (its kernel rows' bands, the rows they read, its first output row, its input rows)
    for a in range(sh):
        first = max(0, -(-(ph - a) // sh))
        taps = [j for j in range(kh) if (dh * j) % sh == a]
        # Output row u sends kernel row j to padded row s·u + a from buffer row u + depth − (d·j − a)/s:
        # the taps' rows are evenly spaced, a slice of ``_Layout.reads``' rows.
        backs = [depth - (dh * j - a) // sh for j in taps]
        step = backs[1] - backs[0] if len(taps) > 1 else -1
        reads = slice(backs[0], backs[-1] + step if backs[-1] + step >= 0 else None, step) if taps else None
        phases.append((spread[:, taps, None], reads, first, slice(sh * first + a - ph, h, sh)))
    at = _Layout((n, c, oh, ow), Geometry((depth + 1, 1), (1, 1), (depth, reach), (1, 1), c),
                 (max(oh, *(first + len(range(h)[rows]) for *_, first, rows in phases)), tiles * tile),
                 tile, tile + reach)
    products = (at.block, depth + 1, at.per * at.rows, tiles * sw * tile)  # per thread
    budget.charge(budget.nbytes(spread.shape, grad.dtype) + parallel.threads() * budget.nbytes(
        (at.size + math.prod(products),), grad.dtype), f"padding the input by {g.padding}")
    budget.charge(budget.nbytes(in_shape, grad.dtype), "its input's gradient")
    out = np.empty(in_shape, grad.dtype)

    def run(channels: slice) -> None:
        local, inside = at.planes(grad.dtype)
        sums = np.empty(products, grad.dtype)
        for first in range(0, n, at.per):
            count = min(n, first + at.per) - first
            reads = at.reads(local, count)  # (block, depth + 1, tiles, count · rows, T + E)
            into = at.tiled(sums, count, sw * tile)
            kept = sums[:, :, :count * at.rows].reshape(*products[:2], count, at.rows, -1)
            for start in range(channels.start, channels.stop, at.block):
                stop = min(channels.stop, start + at.block)
                mine = slice(0, stop - start)
                np.copyto(inside[mine, :count], grad[first:first + count, start:stop].swapaxes(0, 1))
                # A band's zeros times an infinity or NaN give NaN: such channels are recomputed
                # (their gradient is s² times larger to sum than the output's).
                read = np.add.reduce(local[:(stop - start) * at.channel].reshape(stop - start, -1), axis=1)
                written = out[first:first + count, start:stop].swapaxes(0, 1)  # (C, N, h, w)
                for bands, rows_read, row, rows in phases:
                    target = written[:, :, rows]
                    if rows_read is None or not target.size:
                        target[...] = 0  # positions no tap reaches
                        continue
                    taps = bands.shape[1]
                    with np.errstate(invalid="ignore"):
                        np.matmul(reads[mine, rows_read], bands[start:stop], out=into[mine, :taps])
                    wanted = (mine, slice(None), slice(row, row + target.shape[2]), slice(pw, pw + w))
                    total = kept[:, 0][wanted]
                    for j in range(1, taps - 1):
                        np.add(total, kept[:, j][wanted], out=total)
                    if taps > 1:
                        np.add(total, kept[:, taps - 1][wanted], out=target)
                    else:
                        np.copyto(target, total)
                for channel in np.flatnonzero(~np.isfinite(read)):
                    _scattered(grad[first:first + count, start + channel], weight[start + channel, 0], g,
                               written[channel])

    parallel.split(run, c, 2 * kh * tiles * sw * tile * (tile + reach) * n * at.rows * c // sh)
    return out


def grad_weight(grad: np.ndarray, x: np.ndarray, g: Geometry, shape: tuple[int, ...]) -> np.ndarray:
    """The weight's gradient (``shape``: C·M, 1, kh, kw) of ``forward`` from its input x and the
    output's gradient (N, C·M, oh, ow), on the forward's padded planes and tiles: per kernel
    row and tile, the padded rows' transpose times the gradient's columns, one GEMM (width × T
    values: tap (j, i) on its diagonal), the tiles summed and the diagonals read off. Each
    channel's sums are its own, so the bits do not depend on the threads. (A non-finite input
    makes its channel's gradient NaN: the gradient's zeros past the output meet it too.)"""
    n, c, o = x.shape[0], x.shape[1], shape[0]
    m = o // c
    (kh, kw), sw, dw = g.kernel, g.strides[1], g.dilation[1]
    oh, ow = grad.shape[2:]
    at = _Layout(x.shape, g, (oh, ow))
    laid_shape = (at.block, at.per, at.rows, at.tiles * at.tile)
    sums_shape = (at.block, kh, at.tiles, at.width, at.tile)
    scratch = (at.size + math.prod(laid_shape) + math.prod(sums_shape),)  # per thread
    budget.charge(parallel.threads() * budget.nbytes(scratch, x.dtype), f"padding the input by {g.padding}")
    out = np.zeros((c, m, kh, kw), x.dtype)
    sources = grad.reshape(n, c, m, oh, ow)

    def run(channels: slice) -> None:
        local, inside = at.planes(x.dtype)
        laid = np.zeros(laid_shape, x.dtype)  # the gradient on the planes' grid: zeros past it
        sums = np.empty(sums_shape, x.dtype)
        for first in range(0, n, at.per):
            count = min(n, first + at.per) - first
            reads = at.reads(local, count).swapaxes(3, 4)  # (block, kh, tiles, width, rows)
            columns = at.tiled(laid.reshape(at.block, 1, -1, laid.shape[-1]), count)  # (block, 1, tiles, …)
            for start in range(channels.start, channels.stop, at.block):
                stop = min(channels.stop, start + at.block)
                mine = slice(0, stop - start)
                np.copyto(inside[mine, :count], x[first:first + count, start:stop].swapaxes(0, 1))
                for i in range(m):
                    source = sources[first:first + count, start:stop, i]
                    np.copyto(laid[mine, :count, :oh, :ow], source.swapaxes(0, 1))
                    np.matmul(reads[mine], columns[mine], out=sums[mine])
                    total = sums[mine].sum(axis=2)  # (C, kh, width, T)
                    t = total.strides  # tap (j, i) of column x: row sw·x + dw·i
                    diagonals = (*t[:2], dw * t[2], sw * t[2] + t[3])
                    taps = as_strided(total, (stop - start, kh, kw, at.tile), diagonals)
                    out[start:stop, i] += taps.sum(axis=3)

    parallel.split(run, c, 2 * kh * at.tiles * at.tile * at.width * n * at.rows * o)
    return out.reshape(shape)


class _Layout:
    """Where the padded planes lie in a thread's buffer, and the GEMMs' views of them: a block
    of ``block`` channels, each ``per`` examples (a block of the batch) one after another, each
    ``sh · rows`` padded rows of ``pitch`` values, so output row r of a channel's stacked rows
    reads row sh·r + dh·j, and a tile of T output columns its ``width`` columns from sw·T·t."""

    def __init__(self, shape: tuple[int, ...], g: Geometry, out_sizes: tuple[int, ...],
                 tile: int | None = None, width: int | None = None) -> None:
        (h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw) = shape[2:], g.kernel, g.strides, g.padding, g.dilation
        oh, ow = out_sizes
        self.g, self.h, self.w = g, h, w
        self.tiles = -(-ow // (tile or TILE))
        self.tile = tile or -(-ow // self.tiles)  # output columns per GEMM
        self.width = width or sw * (self.tile - 1) + dw * (kw - 1) + 1  # padded columns a tile reads
        self.pitch = max(pw + w, sw * (self.tiles - 1) * self.tile + self.width)
        self.rows = -(-max(ph + h, sh * (oh - 1) + dh * (kh - 1) + 1) // sh)  # output rows per example
        plane = sh * self.rows * self.pitch
        # With the kernel rows' products (about kh · rows · tiles · T a plane): in cache.
        footprint = plane + kh * self.rows * self.tiles * self.tile
        self.per = max(1, min(shape[0], BLOCK_ELEMENTS // footprint))
        self.block = max(1, min(shape[1], BLOCK_ELEMENTS // (self.per * footprint)))
        self.channel = self.per * plane  # a channel's planes
        # The last example's rows past its output read up to dh·(kh − 1) rows past its planes.
        self.size = self.block * self.channel + dh * (kh - 1) * self.pitch

    def planes(self, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        """(buffer, inside): a thread's zeroed buffer, and the view of it the input is copied
        into (block, per, h, w) (the padding around stays zero)."""
        local = np.zeros(self.size, dtype)
        sh, (ph, pw) = self.g.strides[0], self.g.padding
        planes = local[:self.block * self.channel].reshape(self.block, self.per, sh * self.rows, self.pitch)
        return local, planes[:, :, ph:ph + self.h, pw:pw + self.w]

    def reads(self, local: np.ndarray, count: int) -> np.ndarray:
        """(block, kh, tiles, count · rows, width): what each kernel row's GEMM of each tile
        reads, for each channel of the block."""
        (kh, _), (sh, sw), (dh, _) = self.g.kernel, self.g.strides, self.g.dilation
        item, pitch = local.itemsize, self.pitch
        strides = (self.channel * item, dh * pitch * item, sw * self.tile * item, sh * pitch * item, item)
        shape = (self.block, kh, self.tiles, count * self.rows, self.width)
        return as_strided(local, shape, strides, writeable=False)

    def tiled(self, sums: np.ndarray, count: int, tile: int | None = None) -> np.ndarray:
        """(…, tiles, count · rows, tile): the tiles of ``sums`` (…, rows, tiles · tile), each
        a GEMM's operand or output."""
        tile = tile or self.tile
        shape = (*sums.shape[:-2], self.tiles, count * self.rows, tile)
        strides = (*sums.strides[:-2], tile * sums.itemsize, sums.strides[-2], sums.itemsize)
        return as_strided(sums, shape, strides)


def _exactly(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, g: Geometry,
             written: np.ndarray) -> None:
    """One channel's output (N, oh, ow) from its input x (N, h, w) and weight (1, kh, kw), on
    ``depthwise``'s padded planes: where its input holds an infinity or NaN, which a band's
    zeros would spread as NaN over its tiles."""
    alone = Geometry(g.kernel, g.strides, g.padding, g.dilation, 1)
    shift = None if bias is None else bias.reshape(1)
    exact = depthwise.padded_forward(x[:, None], weight[None], shift, alone, written.shape[1:])
    np.copyto(written, exact[:, 0])


def _bands(weight: np.ndarray, g: Geometry, tile: int, width: int) -> np.ndarray:
    """Each output channel's banded matrices (C·M, kh, width, tile), one per kernel row: tap
    (j, i) at row s·x + d·i of column x, zeros elsewhere."""
    o, (kh, kw), sw, dw = weight.shape[0], g.kernel, g.strides[1], g.dilation[1]
    bands = np.zeros((o, kh, width, tile), weight.dtype)
    columns = np.arange(tile)
    for i in range(kw):
        bands[:, :, sw * columns + dw * i, columns] = weight[:, 0, :, i, None]
    return bands


def _spread(weight: np.ndarray, g: Geometry, tile: int, reach: int) -> np.ndarray:
    """Each channel's bands of ``grad_input`` (C, kh, T + E, s·T), one per kernel row: output
    column k − E of a tile sends tap (j, i) to input column s·(k − E) + d·i of it."""
    c, (kh, kw), sw, dw = weight.shape[0], g.kernel, g.strides[1], g.dilation[1]
    spread = np.zeros((c, kh, tile + reach, sw * tile), weight.dtype)
    for i in range(kw):
        for k in range(tile + reach):
            column = sw * (k - reach) + dw * i
            if 0 <= column < sw * tile:
                spread[:, :, k, column] = weight[:, 0, :, i]
    return spread


def _scattered(grad: np.ndarray, taps: np.ndarray, g: Geometry, written: np.ndarray) -> None:
    """One channel's input gradient (N, h, w) from its output's (N, oh, ow), tap by tap onto
    zeroed padded planes: where the output's gradient holds an infinity or NaN, which a band's
    zeros would spread as NaN over its tile."""
    (ph, pw), (h, w) = g.padding, written.shape[1:]
    full = np.zeros((grad.shape[0], h + 2 * ph, w + 2 * pw), grad.dtype)
    for offset in g.offsets():
        full[(slice(None),) + g.taps(offset, grad.shape[1:])] += taps[offset] * grad
    np.copyto(written, full[:, ph:ph + h, pw:pw + w])
