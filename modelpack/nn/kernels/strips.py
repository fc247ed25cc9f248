"""An inference convolution over large planes in strips of output rows: each strip's columns
are gathered, multiplied and written while they are in cache.

im2col's columns hold K·C/G values for every output position. On a network's first layer
(few input channels, large planes: ResNet's 7×7/2 stem on 3×224×224, a C3D stem) they are
several megabytes an example, so gathering them whole writes them to memory and the GEMM
reads them back. Here a strip of output rows (along the first spatial axis) is gathered from
the padded input by one strided copy into a buffer of about ``STRIP_BYTES``, multiplied by
each group's weight straight into the channel-first output, and given its bias and
activation there. The products are im2col's (the same GEMM per position, in strips), so the
results agree with it to float rounding.

Measured at 2 threads on the 7×7/2 stem, batch 8 (ms, whole columns → strips; torch 6.6–7.0):
20.2–20.5 → 12.9–13.9. Strips of 1 MB lost a little (14.1–18.7), 4 MB was best.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import budget
from . import parallel
from .columns import Geometry, Sizes, pad

__all__ = ["usable", "forward"]

# Columns per strip, in bytes (about: at least one row of outputs).
STRIP_BYTES = 4 << 20
# From this many column values an example on (4 MB of float32): below, an example's whole
# columns stay in cache and im2col's one GEMM per example is as fast.
MIN_COLUMN_VALUES = 1 << 20


def usable(weight: np.ndarray, out_sizes: Sizes) -> bool:
    """Whether an inference convolution goes in strips: an example's columns are large."""
    return weight[0].size * math.prod(out_sizes) >= MIN_COLUMN_VALUES


def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, g: Geometry, out_sizes: Sizes,
            activation: Callable[[np.ndarray], object] | None = None) -> np.ndarray:
    """Cross-correlation of x (N, C, *S) with weight (O, C/G, *K), plus bias, then
    ``activation`` in place: (N, O, *out_sizes)."""
    n, c, groups, o = x.shape[0], x.shape[1], g.groups, weight.shape[0]
    dims, per_group = len(g.kernel), weight[0].size  # C/G·K values a column
    first, rest = out_sizes[0], math.prod(out_sizes[1:])
    padded, fill = pad(x, g.padding)
    rows = max(1, min(first, STRIP_BYTES // max(1, per_group * groups * rest * x.itemsize)))
    threads = min(parallel.threads(), n)
    budget.charge(budget.nbytes((threads, groups * per_group, rows * rest), x.dtype), "its strips of columns")
    budget.charge(budget.nbytes((n, o, *out_sizes), x.dtype), "its output")
    out = np.empty((n, groups, o // groups, first, rest), x.dtype)
    kernels = weight.reshape(groups, o // groups, per_group)
    shift = None if bias is None else bias.reshape(groups, o // groups, 1)
    st = padded.strides
    # One example's windows, from a strip's first row: (C, *K, rows, *out_sizes[1:]).
    window_strides = (st[1], *(st[2 + a] * g.dilation[a] for a in range(dims)),
                      *(st[2 + a] * g.strides[a] for a in range(dims)))

    def run(b: slice) -> None:
        fill(b)
        buffer = np.empty(groups * per_group * rows * rest, x.dtype)
        for example in range(b.start, b.stop):
            for start in range(0, first, rows):
                count = min(rows, first - start)
                corner = padded[(example, slice(None), slice(start * g.strides[0], None))]
                shape = (c, *g.kernel, count, *out_sizes[1:])
                view = as_strided(corner, shape, window_strides, writeable=False)
                cols = buffer[:view.size].reshape(groups, per_group, count * rest)
                np.copyto(cols.reshape(shape), view)
                target = out[example, :, :, start:start + count].reshape(groups, o // groups, count * rest)
                for group in range(groups):  # (a stacked matmul ran slower on one group)
                    product = target[group]
                    np.matmul(kernels[group], cols[group], out=product)
                    if shift is not None:
                        product += shift[group]
                if activation is not None:
                    activation(target)

    parallel.split(run, n, n * math.prod(out_sizes) * o * per_group)
    return out.reshape(n, o, *out_sizes)
