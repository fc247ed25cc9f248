"""A convolution's parameters' gradients: the weight's, in the layouts ``conv``'s forwards
leave (a deferred forward's input regathered in blocks; channels-last columns, one GEMM per
group; channels-first columns, one product per example), and the bias's. ``conv.backward``
chooses which; ``transposed`` asks for the deferred one directly.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import budget
from . import parallel
from .columns import Geometry, Sizes, per_group

__all__ = ["weight_deferred", "weight_last", "weight_first", "bias"]


# Examples per block of ``weight_deferred`` (measured at 2 threads, batch 32, 16 channels
# on 32×32: 1, 2, 4 and 8 took 2.4, 2.4, 2.3 and 2.8 ms).
EXAMPLES_PER_BLOCK = 4


def weight_deferred(grad: np.ndarray, x: np.ndarray, g: Geometry, out_sizes: Sizes,
                    shape: tuple[int, ...]) -> np.ndarray:
    """The weight's gradient of a deferred forward (ungrouped, on ``shifted``) from its input x
    and the output's gradient: blocks of ``EXAMPLES_PER_BLOCK`` examples, each padded and laid
    out channels-last, gathered into columns and multiplied with its rows of the gradient while
    in cache, the blocks spread over ``parallel``'s threads and their products summed in order
    (the same bits whatever the thread count). Gathering the whole batch's columns first (19 MB
    at batch 32, 16 channels on 32×32) and one GEMM took 4.1 ms at 2 threads, this 2.3 ms."""
    n, c, o, dims = x.shape[0], x.shape[1], shape[0], len(g.kernel)
    per = min(EXAMPLES_PER_BLOCK, n)
    blocks = -(-n // per)
    width, positions = math.prod(g.kernel) * c, math.prod(out_sizes)
    padded = tuple(size + 2 * p for size, p in zip(x.shape[2:], g.padding, strict=True))
    scratch = per * (math.prod(padded) * c + positions * (width + o))
    budget.charge(parallel.threads() * scratch * x.dtype.itemsize, "gathering its windows (im2col)")
    # One weight-sized product per block, summed at the end: a batch of many small inputs makes
    # these, not the scratch, what the weight's gradient holds.
    budget.charge(budget.nbytes((blocks, o, width), x.dtype), "its blocks' weight-gradient products")
    parts = np.empty((blocks, o, width), x.dtype)
    inside = (slice(None), *(slice(p, p + size) for p, size in zip(g.padding, x.shape[2:], strict=True)))

    def run(chunk: slice) -> None:
        buffer = np.zeros((per, *padded, c), x.dtype)  # its padding stays zero
        s = buffer.strides
        strides = (s[0], *(s[1 + i] * g.strides[i] for i in range(dims)),
                   *(s[1 + i] * g.dilation[i] for i in range(dims)), s[-1])
        view = as_strided(buffer, (per, *out_sizes, *g.kernel, c), strides, writeable=False)
        cols = np.empty(view.shape, x.dtype)
        rows = np.empty((per, *out_sizes, o), x.dtype)
        for block in range(chunk.start, chunk.stop):
            first, stop = block * per, min(n, block * per + per)
            count = stop - first
            np.copyto(buffer[inside][:count], np.moveaxis(x[first:stop], 1, -1))
            np.copyto(cols[:count], view[:count])
            np.copyto(rows[:count], np.moveaxis(grad[first:stop], 1, -1))
            np.matmul(rows[:count].reshape(-1, o).T, cols[:count].reshape(-1, width), out=parts[block])

    parallel.split(run, blocks, n * positions * o * width)
    total = parts.sum(axis=0).reshape(o, -1, c)  # (O, K, C)
    return np.ascontiguousarray(total.swapaxes(1, 2)).reshape(shape)


def weight_last(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, ...], groups: int) -> np.ndarray:
    """The weight's gradient from rows (G, N·P, O/G) and the columns (N·P, G, K·C/G): one GEMM
    per group, its columns split among the threads (each element the same sum as unsplit)."""
    o, cg = shape[:2]
    width = cols.shape[-1]
    products = np.empty((groups, o // groups, width), rows.dtype)  # (G, O/G, K·C/G)
    by_row = rows.transpose(0, 2, 1)

    def run(b: slice) -> None:
        products[:, :, b] = np.matmul(by_row, per_group(cols)[:, :, b])

    parallel.split(run, width, rows.shape[1] * o * width)
    split = products.reshape(groups, o // groups, -1, cg)
    return np.ascontiguousarray(split.transpose(0, 1, 3, 2)).reshape(shape)


# From this many positions per example on, ``weight_first`` multiplies the columns by the
# output's gradient, (C/G·K, P)·(P, O/G), rather than the gradient by the columns, (O/G, P)·(P,
# C/G·K): BLAS ran that way faster on long rows. Measured at 2 threads, the weight's gradient:
# 3×3×3, 3 → 32 on 4×8×56×56 (25,088 positions) 4.24 → 3.33 ms, 3×3, 3 → 32 on 64×32×32 (1,024)
# 0.94 → 0.87; it lost on fewer: LeNet's 5×5, 1 → 6 on 64×28×28 (784) 0.32 → 0.34, a 1×1,
# 32 → 64 on 32×16×16 (256) 0.43 → 0.47. The same bits either way on these.
COLUMNS_LEFT_MIN_POSITIONS = 1 << 12


def weight_first(per_example: np.ndarray, cols: np.ndarray, weight: np.ndarray, *,
                 depthwise: bool) -> np.ndarray:
    """The weight's gradient from the output's (N, G, O/G, P) and the columns (N, G, K, P): one
    product per example (BLAS reads the transposed operand in place; chunks of the batch on
    their own threads), summed over the batch in one pass."""
    if depthwise:  # one input channel per group: a few taps a product
        return np.einsum("ngop,ngkp->gok", per_example, cols).reshape(weight.shape)
    n, positions = per_example.shape[0], per_example.shape[3]
    left = positions >= COLUMNS_LEFT_MIN_POSITIONS
    # (N, G, K, O/G) with the columns on the left, else (N, G, O/G, K)
    sizes = (*cols.shape[:3], per_example.shape[2]) if left else (*per_example.shape[:3], cols.shape[2])
    products = np.empty(sizes, per_example.dtype)

    def run(b: slice) -> None:
        if left:
            np.matmul(cols[b], np.swapaxes(per_example[b], -1, -2), out=products[b])
        else:
            np.matmul(per_example[b], np.swapaxes(cols[b], -1, -2), out=products[b])

    parallel.split(run, n, products.size * positions)
    total = products.sum(axis=0)
    return (np.ascontiguousarray(total.swapaxes(-1, -2)) if left else total).reshape(weight.shape)


# From this many positions per channel and values on, ``bias`` sums its channels on
# ``parallel``'s threads (each channel's sum the same whichever thread runs it). Measured at 2
# threads: 4×32×8×56×56 (a Conv3D stem's output, 25,088 positions) 1.23 → 0.73 ms, 8×64×112×112
# (a 7×7/2 stem's) 2.09 → 1.15, 1×21×320×480 (FCN's upsampling) 2.03 → 1.29; it lost on 1,024
# positions (64×32×32×32 0.31 → 0.35), 784 (16×128×28×28 0.28 → 0.35), and on 16×3×128×128's
# 0.8 M values (0.12 → 0.19).
BIAS_SPLIT_POSITIONS = 1 << 13
BIAS_SPLIT_VALUES = 1 << 21


def bias(grad: np.ndarray) -> np.ndarray:
    """Σ of the output's gradient per channel: over the batch first (whole rows added at once),
    then pairwise along each channel's positions. Short rows summed first ran one tiny
    reduction per (example, channel): 87 µs against 12 µs on 32×128×4×4 values."""
    rows = grad.reshape(grad.shape[0], grad.shape[1], -1)
    out = np.empty(grad.shape[1], grad.dtype)

    def run(channels: slice) -> None:
        out[channels] = rows[:, channels].sum(axis=0).sum(axis=1)

    if rows.shape[2] < BIAS_SPLIT_POSITIONS:
        run(slice(None))
    else:
        parallel.over_batch(run, grad.shape[1], grad.size, min_elements=BIAS_SPLIT_VALUES)
    return out
