"""A 2-D depthwise convolution as small GEMMs of the padded planes' rows with banded matrices
of each channel's taps (MobileNet's 3×3, at stride 1 or 2), forward and backward.

Output row r of a plane reads padded rows s·r + d·j (j the kernel's row), and along a row
output column x reads padded columns s·x + d·i. For one kernel row j, a tile of T output
columns of every output row is therefore one GEMM: the padded rows (each output row's
s·(T − 1) + span contiguous values from the tile's first column: a strided view, the rows'
pitch its leading dimension) times a banded (Toeplitz) matrix of that row's taps, tap i on
the diagonal s·x + d·i. Each channel's padded planes hold the batch's examples one after
another, so one GEMM covers every example's rows; the kernel rows' products are summed as the
output is written. Numpy's multiply and add of each tap's shifted planes (``shifted``, 2 passes
a tap) ran at ~5·10⁹ values/s in cache; these GEMMs do ~(T + 2)/3 times the multiply-adds, the
band's zeros included, at ~75 GFLOP/s. The weight's gradient is the same GEMMs transposed, the
taps read off the products' diagonals; the input's, the same correlation on the output's
gradient, one per phase of the strides (``grad_input``).

Measured at 2 threads, wall, in one process against the paths before it (ms): inference 3×3/1
on 8×128×56×56 12.7 → 7.0 (``shifted``'s taps in blocks), 3×3/2 on 8×64×112×112 13.8 → 5.2
(im2col's einsum); training 35.1 → 24.0 and 38.2 → 23.8. At one thread the same forwards
took 17.0 → 9.8 and 30.6 → 8.3. Tiles of 8, 14, 16 and 28 columns: 8.8, 8.9, 8.3, 9.6 and
6.9, 6.6, 6.1, 6.9 ms at 2 threads. MobileNet-style 32×32×16×16 stays on ``depthwise``'s
unpadded chunks (1.26 ms; here 1.77).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import budget
from . import parallel, shifted
from .columns import Geometry

__all__ = ["usable", "trainable", "forward", "grad_weight", "grad_input"]

# Output columns per GEMM, at most: a tile of T costs s·(T − 1) + span multiply-adds per output
# and kernel row, for kw useful ones; narrower, the GEMMs are too small to run well.
TILE = 16
# Values one thread's padded planes may hold (the examples of one channel, or a block of them):
# with the kernel rows' products they stay in cache.
BLOCK_ELEMENTS = 1 << 17


def usable(x: np.ndarray, weight: np.ndarray, g: Geometry) -> bool:
    """Whether this convolution comes here: 2-D, depthwise (one input channel per group), on
    a plain floating-point array."""
    return (
        len(g.kernel) == 2
        and type(x) is np.ndarray
        and x.dtype.kind == "f"
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
    c). The channels are split among ``parallel``'s threads, each GEMM on one BLAS thread."""
    budget.charge(budget.nbytes((x.shape[0], weight.shape[0], *out_sizes), x.dtype), "its output")
    out = np.empty((x.shape[0], weight.shape[0], *out_sizes), x.dtype)
    _correlate(x, weight, bias, g, out, (0, 0), activation)
    return out


def grad_input(grad: np.ndarray, weight: np.ndarray, g: Geometry, in_shape: tuple[int, ...]) -> np.ndarray:
    """The input's gradient (``in_shape``) of ``forward`` (one output channel per input channel)
    from the output's (N, C, oh, ow), by the input's phases: along an axis, the padded
    positions ≡ a (mod s) receive only the taps j with d·j ≡ a (mod s), a stride-1 correlation
    of the output's gradient with those taps flipped (``_phase``), so each phase is
    ``_correlate``'s GEMMs again, written straight into its strided view of the gradient."""
    out = np.zeros(in_shape, grad.dtype)  # positions no tap reaches: 0
    budget.charge(budget.nbytes(in_shape, grad.dtype), "its input's gradient")
    rows = [_phase(a, *axis) for axis in zip(g.kernel, g.strides, g.padding, g.dilation, in_shape[2:],
                                             strict=True) for a in range(axis[1])]
    s = g.strides[0]
    for along_rows in rows[:s]:
        for along_columns in rows[s:]:
            if along_rows is None or along_columns is None:
                continue
            (first_y, skip_y, taps_y, dilation_y, pad_y) = along_rows
            (first_x, skip_x, taps_x, dilation_x, pad_x) = along_columns
            kernel = np.ascontiguousarray(weight[:, :, taps_y][:, :, :, taps_x])
            phase = Geometry(kernel.shape[2:], (1, 1), (pad_y, pad_x), (dilation_y, dilation_x), g.groups)
            target = out[:, :, first_y::g.strides[0], first_x::g.strides[1]]
            _correlate(grad, kernel, None, phase, target, (skip_y, skip_x))
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
    layout = _Layout(x.shape, g, grad.shape[2:])
    tiles, tile, width, rows, per = layout.tiles, layout.tile, layout.width, layout.rows, layout.per
    oh, ow = grad.shape[2:]
    budget.charge(parallel.threads() * budget.nbytes((layout.size + per * rows * tiles * tile
                                                      + kh * tiles * width * tile,), x.dtype),
                  f"padding the input by {g.padding}")
    out = np.zeros((o, kh, kw), x.dtype)
    item = x.dtype.itemsize

    def run(channels: slice) -> None:
        local, inside = layout.planes(x.dtype)
        laid = np.zeros((per, rows, tiles * tile), x.dtype)  # zeros past the output
        sums = np.empty((kh, tiles, width, tile), x.dtype)
        for first in range(0, n, per):
            count = min(n, first + per) - first
            reads = layout.reads(local, count).swapaxes(2, 3)  # (kh, tiles, width, rows)
            columns = as_strided(laid, (tiles, count * rows, tile), (tile * item, tiles * tile * item, item))
            for channel in range(channels.start, channels.stop):
                np.copyto(inside[:count], x[first:first + count, channel])
                for i in range(channel * m, channel * m + m):
                    np.copyto(laid[:count, :oh, :ow], grad[first:first + count, i])
                    np.matmul(reads, columns, out=sums)
                    total = sums.sum(axis=1)  # (kh, width, tile)
                    t = total.strides  # tap (j, i) of column x: row sw·x + dw·i
                    out[i] += as_strided(total, (kh, kw, tile), (t[0], dw * t[1], sw * t[1] + t[2])).sum(2)

    parallel.split(run, c, 2 * kh * tiles * tile * width * n * rows * o)
    return out.reshape(shape)


def _correlate(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, g: Geometry, out: np.ndarray,
               skip: tuple[int, int], activation: Callable[[np.ndarray], object] | None = None) -> None:
    """``forward``'s output positions from ``skip`` (rows, columns) on, written into ``out``
    (N, C·M, oh, ow), which may be a strided view."""
    n, c, o = x.shape[0], x.shape[1], weight.shape[0]
    m, kh = o // c, g.kernel[0]
    oh, ow = out.shape[2:]
    layout = _Layout(x.shape, g, (skip[0] + oh, skip[1] + ow))
    tiles, tile, rows, per = layout.tiles, layout.tile, layout.rows, layout.per
    bands = _bands(weight, g, tile, layout.width)  # (C·M, kh, width, tile)
    shift = None if bias is None else bias.astype(x.dtype, copy=False)
    budget.charge(budget.nbytes(bands.shape, x.dtype) + parallel.threads() * budget.nbytes(
        (layout.size + kh * per * rows * tiles * tile,), x.dtype), f"padding the input by {g.padding}")
    item = x.dtype.itemsize
    crop = (slice(None), slice(None), slice(skip[0], skip[0] + oh), slice(skip[1], skip[1] + ow))

    def run(channels: slice) -> None:
        local, inside = layout.planes(x.dtype)
        products = np.empty((kh, per * rows, tiles * tile), x.dtype)
        for first in range(0, n, per):
            count = min(n, first + per) - first
            reads = layout.reads(local, count)
            into = as_strided(products, (kh, tiles, count * rows, tile),
                              (products.strides[0], tile * item, products.strides[1], item))
            kept = products[:, :count * rows].reshape(kh, count, rows, tiles * tile)[crop]
            for channel in range(channels.start, channels.stop):
                np.copyto(inside[:count], x[first:first + count, channel])
                for i in range(channel * m, channel * m + m):
                    with np.errstate(invalid="ignore"):  # 0·inf in a band: recomputed below
                        np.matmul(reads, bands[i, :, None], out=into)
                    written = out[first:first + count, i]
                    total = kept[0]
                    for j in range(1, kh - 1):
                        np.add(total, kept[j], out=total)
                    if kh > 1:
                        np.add(total, kept[kh - 1], out=written)
                    else:
                        np.copyto(written, total)
                    if shift is not None:
                        written += shift[i]
                    if not np.isfinite(np.add.reduce(written, axis=None)):
                        _exactly(x[first:first + count, channel:channel + 1], weight[i:i + 1],
                                 None if shift is None else shift[i:i + 1], g, skip, written)
        if activation is not None:
            activation(out[:, channels.start * m:channels.stop * m])

    parallel.split(run, c, 2 * kh * tiles * tile * layout.width * n * rows * o)


def _exactly(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, g: Geometry, skip: tuple[int, int],
             written: np.ndarray) -> None:
    """One channel's output recomputed on ``shifted``'s padded planes, where it is not finite:
    a band's zeros times an infinity or NaN in its window give NaN, where the taps that do
    not read it give a finite sum (a finite sum means every value it read was finite)."""
    oh, ow = written.shape[1:]
    out = shifted.depthwise_forward(x, weight, bias, g, (skip[0] + oh, skip[1] + ow))
    np.copyto(written, out[:, 0, skip[0]:, skip[1]:])


def _phase(a: int, k: int, s: int, p: int, d: int, size: int) -> tuple[int, int, list[int], int, int] | None:
    """Along one axis, for the padded positions s·u + a: (the first input position among them,
    its u, the taps that reach them in the correlation's order, the correlation's dilation and
    front padding); None where no tap or no input position does. Tap j reaches s·u + a from
    output u − (d·j − a)/s when d·j ≡ a (mod s): flipped, a correlation whose taps are
    d/gcd(s, d) apart, padded by the farthest tap's reach."""
    taps = [j for j in range(k) if (d * j) % s == a]
    first = (a - p) % s
    if not taps or first >= size:
        return None
    return first, (first + p - a) // s, taps[::-1], d // math.gcd(s, d), (d * taps[-1] - a) // s


class _Layout:
    """Where a channel's padded planes lie in a thread's buffer, and the GEMMs' views of them:
    ``per`` examples (a block of the batch) one after another, each ``sh · rows`` padded rows
    of ``pitch`` values, so output row r of the block's stacked rows reads row sh·r + dh·j."""

    def __init__(self, shape: tuple[int, ...], g: Geometry, out_sizes: tuple[int, ...]) -> None:
        (h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw) = shape[2:], g.kernel, g.strides, g.padding, g.dilation
        oh, ow = out_sizes
        self.g, self.h, self.w = g, h, w
        self.tiles = -(-ow // TILE)
        self.tile = -(-ow // self.tiles)  # output columns per GEMM
        self.width = sw * (self.tile - 1) + dw * (kw - 1) + 1  # the padded columns a tile reads
        self.pitch = max(pw + w, sw * (self.tiles * self.tile - 1) + dw * (kw - 1) + 1)
        self.rows = -(-max(ph + h, sh * (oh - 1) + dh * (kh - 1) + 1) // sh)  # output rows per example
        self.per = max(1, min(shape[0], BLOCK_ELEMENTS // (sh * self.rows * self.pitch)))
        # The last example's rows past its output read up to dh·(kh − 1) rows past its planes.
        self.size = self.per * sh * self.rows * self.pitch + dh * (kh - 1) * self.pitch

    def planes(self, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        """(buffer, inside): a thread's zeroed buffer, and the view of it the input is copied
        into (per, h, w) (the padding around stays zero)."""
        local = np.zeros(self.size, dtype)
        sh, (ph, pw) = self.g.strides[0], self.g.padding
        planes = local[:self.per * sh * self.rows * self.pitch].reshape(self.per, sh * self.rows, self.pitch)
        return local, planes[:, ph:ph + self.h, pw:pw + self.w]

    def reads(self, local: np.ndarray, count: int) -> np.ndarray:
        """(kh, tiles, count · rows, width): what each kernel row's GEMM of each tile reads."""
        (kh, _), (sh, sw), (dh, _) = self.g.kernel, self.g.strides, self.g.dilation
        item, pitch = local.itemsize, self.pitch
        strides = (dh * pitch * item, sw * self.tile * item, sh * pitch * item, item)
        return as_strided(local, (kh, self.tiles, count * self.rows, self.width), strides, writeable=False)


def _bands(weight: np.ndarray, g: Geometry, tile: int, width: int) -> np.ndarray:
    """Each output channel's banded matrices (C·M, kh, width, tile), one per kernel row: tap
    (j, i) at row s·x + d·i of column x, zeros elsewhere."""
    o, (kh, kw), sw, dw = weight.shape[0], g.kernel, g.strides[1], g.dilation[1]
    bands = np.zeros((o, kh, width, tile), weight.dtype)
    columns = np.arange(tile)
    for i in range(kw):
        bands[:, :, sw * columns + dw * i, columns] = weight[:, 0, :, i, None]
    return bands
