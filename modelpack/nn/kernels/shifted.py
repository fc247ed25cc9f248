"""Inference convolution as one small GEMM per kernel tap on shifted views, without im2col.

With stride 1, the tap at offset ``j`` of a kernel reads the padded input shifted by ``j``;
flattened over its spatial axes, that shift is a single offset into each channel's plane, so
tap ``j`` contributes ``W[:, :, j] @ plane[:, off_j : off_j + L]`` to every output position
at once (``L`` positions on the padded grid; the few that fall in the padding's columns are
computed and dropped). Summing the taps needs no column matrix at all: on d2l's ResNet-18
shapes (batch 32, 16–64 channels, 14×14 to 32×32 maps) im2col's copy plus its GEMM took
1.3–1.8× as long. Small maps (8×8 and below) and narrow inputs stay on im2col, where fewer,
larger GEMMs win (measured: 128 channels on 4×4, 2.8 ms here against 1.8 ms).

Two calls come here: the forward of an inference call (a training forward keeps im2col's
columns, which its backward reuses for the weight's gradient), and the input's gradient at
stride 1, which is this correlation of the output's gradient with the flipped kernel
(``conv._full_correlation``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .. import budget
from . import parallel

if TYPE_CHECKING:
    from .conv import Geometry

__all__ = ["usable", "forward"]

# Measured at batch 32, 3×3 kernels, one thread: 16 channels in gains from 14×14 maps up; 3 or
# 6 channels (a stem, LeNet) lose at every size; 8×8 maps break even, 4×4 lose.
MIN_CHANNELS = 16
MIN_POSITIONS = 196
# Examples per GEMM call: the per-tap product of a few examples stays in cache while the
# taps are summed into it (4 measured best of 1, 4 and 32).
EXAMPLES_PER_CALL = 4


def usable(x: np.ndarray, weight: np.ndarray, g: Geometry, out_sizes: tuple[int, ...]) -> bool:
    """Whether an inference forward of this convolution is faster here than on im2col."""
    return (
        g.groups == 1
        and all(s == 1 for s in g.strides)
        and x.shape[1] >= MIN_CHANNELS
        and math.prod(g.kernel) > 1
        and math.prod(out_sizes) >= MIN_POSITIONS
    )


def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, g: Geometry,
            out_sizes: tuple[int, ...]) -> np.ndarray:
    """x (N, C, *S) correlated with weight (O, C, *K), plus bias: (N, O, *out)."""
    n, c, dims = x.shape[0], x.shape[1], len(g.kernel)
    o = weight.shape[0]
    padded = tuple(size + 2 * p for size, p in zip(x.shape[2:], g.padding, strict=True))
    # Positions are computed on the padded grid's rows (every axis but the first keeps its
    # padded length), so each tap's operand is one contiguous run of every plane.
    grid = (out_sizes[0], *padded[1:])
    length = math.prod(grid)
    row_strides = [math.prod(padded[i + 1:]) for i in range(dims)]
    offsets = [sum(j * d * s for j, d, s in zip(tap, g.dilation, row_strides, strict=True))
               for tap in np.ndindex(*g.kernel)]
    # The last tap reads up to its offset past the grid's end: zeros there too.
    plane = max(math.prod(padded), offsets[-1] + length)
    budget.charge(budget.nbytes((n, c, plane), x.dtype), f"padding the input by {g.padding}")
    flat = np.zeros((n, c, plane), x.dtype)
    inside = (slice(p, p + size) for p, size in zip(g.padding, x.shape[2:], strict=True))
    inner = (slice(None), slice(None), *inside)
    parallel.copy(flat[:, :, :math.prod(padded)].reshape(n, c, *padded)[inner], x)
    taps = np.ascontiguousarray(weight.reshape(o, c, -1).transpose(2, 0, 1))  # (K, O, C)
    budget.charge(budget.nbytes((n, o, length), x.dtype), "its output on the padded grid")
    sums = np.empty((n, o, length), x.dtype)
    step = min(EXAMPLES_PER_CALL, n)
    scratch = np.empty((step, o, length), x.dtype)
    for start in range(0, n, step):
        stop = min(n, start + step)
        total, product = sums[start:stop], scratch[:stop - start]
        np.matmul(taps[0], flat[start:stop, :, offsets[0]:offsets[0] + length], out=total)
        for tap, offset in zip(taps[1:], offsets[1:], strict=True):
            np.matmul(tap, flat[start:stop, :, offset:offset + length], out=product)
            total += product
    kept = (slice(None), slice(None), *(slice(0, size) for size in out_sizes))
    valid = sums.reshape(n, o, *grid)[kept]
    budget.charge(budget.nbytes((n, o, *out_sizes), x.dtype), "its output")
    out = np.empty((n, o, *out_sizes), x.dtype)
    if bias is None:
        parallel.copy(out, valid)
    else:
        parallel.ufunc(np.add, valid, bias.reshape(1, o, *(1,) * dims), out=out)
    return out
