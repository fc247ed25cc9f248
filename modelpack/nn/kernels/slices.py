"""A 3-D convolution's columns gathered one input depth slice at a time, each slice once.

im2col gathers, for every output position, the k_d·k_h·k_w taps of every input channel: each
input slice along the depth axis is copied into the columns once for every depth tap that
reads it (k_d times at stride 1). Here each padded input slice's own 2-D columns
(C·k_h·k_w rows, one per channel and in-plane tap, by the output plane's positions) are
gathered once, into one buffer, slice after slice. Output depth z reads padded slices
s·z … s·z + k_d − 1, whose columns are then k_d·C·k_h·k_w consecutive rows of that buffer:
one GEMM per output depth, (O, k_d·C·k_h·k_w) by those rows, read in place, with the weight's
taps in that order (depth tap, channel, in-plane taps). The products are im2col's, their
sums in another order, so the results agree with it to float rounding.

A bias rides in the GEMMs: each slice's columns end with a row of ones, whose column in the
weight holds the bias for the first depth tap and zeros for the others (3 more rows of 84,
where a pass adding the bias took 0.3 ms a thread: the C3D stem's forward, alternating on a
busier machine, 4.9–5.1 → 4.6–4.8 ms).

A training forward keeps no columns: ``weight_grad`` gathers them again, per example, and
sums each output depth's product with its rows of the output's gradient in order, then over
the batch in order (the same bits at any thread count).

Taken by every 3-D convolution that Winograd's and the pointwise paths do not take, where each
output depth has at least ``MIN_PLANE`` positions (the GEMMs are that wide), in place of
strips (large columns) and im2col. Measured with ``bench/layers.py`` at 2 threads on a C3D
stem, 3 → 32, 3×3×3 padded by 1, on 4×3×8×56×56 (ms, strips → slices; torch 1.8–1.9 and
4.1–4.3): forward 5.0 → 4.0–4.2, training (forward and the weight's gradient) 10.9 →
9.1–9.2. Each copies a third of the strips' columns; the rest is the GEMMs, O × 81 by 81 ×
H·W, which OpenBLAS runs at ~120 GFLOP/s a core here (torch's MKL ~170). Inference at 2
threads, numba's kernels (ms, the path before → slices): 3×3×3/2 16 → 32 on 4×8×56×56 8.2 →
3.9 and 64 → 64 on 2×8×28×28 6.1 → 3.1 (strips), 32 → 64 on 4×8×28×28 2.9 → 2.7, 8 → 8 on
4×8×28×28 2.3 → 1.7, 1×3×3/(1,2,2) 64 → 64 on 4×8×56×56 22.0 → 14.4 (im2col); training steps
(forward, both gradients) 10.9 → 10.2, 9.7 → 7.9 and 13.5 → 12.5 for three of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import budget
from . import parallel
from .columns import Geometry, Sizes

__all__ = ["usable", "forward", "weight_grad"]

# Output positions an output depth has at least: the GEMMs' width. On 7×7 planes im2col's one
# GEMM an example won (3×3×3/2 64 → 128 on 2×4×14×14, inference 1.04 against 1.18 ms, a
# training step 4.10 against 4.27); 12×12 was even (24 → 24 on 2×6×12×12 0.68 → 0.65).
MIN_PLANE = 128
# Columns gathered at a time, in bytes (about; at least one output depth's k_d slices): a
# run of output depths whose slices fit, so the GEMMs read the columns from cache. On the
# C3D stem's forward at 2 threads (ms): 1 MB (a depth a block, its slices gathered 3 times)
# 4.3, 2 MB 4.2–4.5, 4 MB 3.9–4.1, 8 MB 5.4.
CHUNK_BYTES = 4 << 20
COLUMNS_CHARGE = "its slices' columns, a block a thread"


def usable(x: np.ndarray, weight: np.ndarray, g: Geometry, out_sizes: Sizes) -> bool:
    """Whether this convolution goes slice by slice: 3-D, ungrouped, undilated along the
    depth axis, and at least ``MIN_PLANE`` output positions a depth. (With one depth tap
    nothing is gathered twice, but the GEMMs a depth at a time still beat im2col's.)"""
    return x.ndim == 5 and g.groups == 1 and g.dilation[0] == 1 and math.prod(out_sizes[1:]) >= MIN_PLANE


class _Slices:
    """The gathering of one convolution's slices: an example's padded input (``pad``) and the
    columns of a run of its padded depth slices (``gather``), into buffers of one thread."""

    def __init__(self, x: np.ndarray, g: Geometry, out_sizes: Sizes, *, ones: bool = False) -> None:
        c, sizes = x.shape[1], x.shape[2:]
        self.x, self.g, self.out_sizes = x, g, out_sizes
        self.padded_shape = (c, *(n + 2 * p for n, p in zip(sizes, g.padding, strict=True)))
        self.taps = c * math.prod(g.kernel[1:])  # a slice's columns: (C, k_h, k_w)
        self.rows = self.taps + ones  # ... and, ``ones``, a row of ones (for the bias)
        self.plane = math.prod(out_sizes[1:])
        kd, sd = g.kernel[0], g.strides[0]
        slice_bytes = self.rows * self.plane * x.itemsize
        # output depths a block: their slices (s·(count − 1) + k_d of them) fit in CHUNK_BYTES
        self.depths = max(1, min(out_sizes[0], (CHUNK_BYTES // max(1, slice_bytes) - kd) // sd + 1))
        self.block_slices = sd * (self.depths - 1) + kd

    def buffers(self) -> tuple[np.ndarray, np.ndarray]:
        """One thread's padded example (its borders zero) and block of columns."""
        padded = np.zeros(self.padded_shape, self.x.dtype)
        cols = np.empty((self.block_slices, self.rows, self.plane), self.x.dtype)
        cols[:, self.taps:] = 1  # (the gathers never write it)
        return padded, cols

    def charge(self, threads: int) -> None:
        per_thread = math.prod(self.padded_shape) + self.block_slices * self.rows * self.plane
        budget.charge(threads * per_thread * self.x.itemsize, COLUMNS_CHARGE)

    def pad(self, padded: np.ndarray, example: int) -> None:
        inside = tuple(slice(p, p + n) for p, n in zip(self.g.padding, self.x.shape[2:], strict=True))
        padded[(slice(None),) + inside] = self.x[example]

    def gather(self, padded: np.ndarray, cols: np.ndarray, first_depth: int, depths: int) -> np.ndarray:
        """The columns of the padded slices output depths first_depth … + depths read: (slices,
        C·k_h·k_w, plane), slice t of it padded slice s·first_depth + t."""
        g = self.g
        (_, kh, kw), (sd, sh, sw), (_, dh, dw) = g.kernel, g.strides, g.dilation
        count = sd * (depths - 1) + g.kernel[0]
        sc, sz, sy, sx = padded.strides
        oh, ow = self.out_sizes[1:]
        view = as_strided(padded[:, sd * first_depth:], (count, padded.shape[0], kh, kw, oh, ow),
                          (sz, sc, dh * sy, dw * sx, sh * sy, sw * sx), writeable=False)
        block = cols[:count]
        np.copyto(block[:, :self.taps].reshape(view.shape), view)
        return block

    def blocks(self, padded: np.ndarray, cols: np.ndarray, example: int
               ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Example ``example`` padded, then its runs of output depths: (the first, how many,
        their block of columns), the block gathered just before it is handed out."""
        self.pad(padded, example)
        for first in range(0, self.out_sizes[0], self.depths):
            count = min(self.depths, self.out_sizes[0] - first)
            yield first, count, self.gather(padded, cols, first, count)

    def window(self, block: np.ndarray, depth: int) -> np.ndarray:
        """The rows output depth ``depth`` of the block reads: (k_d·C·k_h·k_w, plane)."""
        start = self.g.strides[0] * depth
        return block[start:start + self.g.kernel[0]].reshape(-1, self.plane)


def _kernel_rows(weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """The weight (O, C, k_d, k_h, k_w) as the windows hold its taps: (O, k_d·C·k_h·k_w); with
    ``bias``, each depth tap's taps followed by a column for the row of ones, the bias in the
    first depth tap's and zeros in the others'."""
    o, kd = weight.shape[0], weight.shape[2]
    taps = weight.transpose(0, 2, 1, 3, 4).reshape(o, kd, -1)
    if bias is None:
        return np.ascontiguousarray(taps).reshape(o, -1)
    rows = np.zeros((o, kd, taps.shape[2] + 1), weight.dtype)
    rows[:, :, :-1] = taps
    rows[:, 0, -1] = bias
    return rows.reshape(o, -1)


def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, g: Geometry, out_sizes: Sizes,
            activation: Callable[[np.ndarray], object] | None = None) -> np.ndarray:
    """Cross-correlation of x (N, C, D, H, W) with weight (O, C, k_d, k_h, k_w), plus bias,
    then ``activation`` in place: (N, O, *out_sizes)."""
    n, o = x.shape[0], weight.shape[0]
    slices = _Slices(x, g, out_sizes, ones=bias is not None)
    slices.charge(min(parallel.threads(), n))
    budget.charge(budget.nbytes((n, o, *out_sizes), x.dtype), "its output")
    out = np.empty((n, o, out_sizes[0], slices.plane), x.dtype)
    kernel = _kernel_rows(weight, None if bias is None else bias.astype(x.dtype, copy=False))

    def run(b: slice) -> None:
        padded, cols = slices.buffers()
        for example in range(b.start, b.stop):
            for first, count, block in slices.blocks(padded, cols, example):
                for depth in range(count):
                    np.matmul(kernel, slices.window(block, depth), out=out[example, :, first + depth])
                if activation is not None:
                    activation(out[example, :, first:first + count])

    parallel.split(run, n, n * math.prod(out_sizes) * kernel.size)
    return out.reshape(n, o, *out_sizes)


def weight_grad(grad: np.ndarray, x: np.ndarray, g: Geometry, shape: tuple[int, ...]) -> np.ndarray:
    """The weight's gradient (``shape``: O, C, k_d, k_h, k_w) of a convolution ``forward``
    computed, from its input x and the output's gradient (N, O, *out): each output depth's
    rows of the gradient by its window of the columns, gathered again."""
    n, o = x.shape[0], shape[0]
    out_sizes = grad.shape[2:]
    slices = _Slices(x, g, out_sizes)
    slices.charge(min(parallel.threads(), n))
    width = math.prod(shape[1:])
    budget.charge(budget.nbytes((n, o, width), x.dtype), "its examples' weight-gradient products")
    products = np.empty((n, width, o), x.dtype)  # (taps, outputs): the GEMMs' faster way round
    grads = grad.reshape(n, o, out_sizes[0], slices.plane)

    def run(b: slice) -> None:
        padded, cols = slices.buffers()
        part = np.empty((width, o), x.dtype)
        for example in range(b.start, b.stop):
            total = products[example]
            for first, count, block in slices.blocks(padded, cols, example):
                for depth in range(count):
                    z = first + depth
                    into = total if z == 0 else part
                    np.matmul(slices.window(block, depth), grads[example, :, z].T, out=into)
                    if z:
                        total += part

    parallel.split(run, n, n * math.prod(out_sizes) * o * width)
    kd, c = shape[2], shape[1]
    summed = products.sum(axis=0).T.reshape(o, kd, c, *shape[3:])  # in the windows' order
    return np.ascontiguousarray(summed.transpose(0, 2, 1, 3, 4))
