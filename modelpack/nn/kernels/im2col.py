"""A convolution's forward as im2col and GEMMs, in ``columns``' two layouts: the columns
gathered (or, for a 1×1 convolution, the input read as it is), multiplied per group, and the
bias and activation applied in the same pass over each chunk of the batch on its thread.

``conv.forward`` picks among these and the paths without columns (``shifted``, ``winograd``,
``banded``, …); ``conv.backward`` reads the columns these leave, and takes the flipped
kernel's product (``forward_last``) and ``product`` for the input's gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import budget
from . import parallel
from .columns import Geometry, Sizes, columns_first, columns_last, per_group, to_last, weight_last

__all__ = ["forward_last", "forward_first", "forward_recorded", "pointwise", "forward_pointwise",
           "depthwise_groups", "product"]


def forward_last(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, g: Geometry,
                  out_sizes: Sizes, activation: Callable[[np.ndarray], object] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(out, columns) of the channels-last layout: each chunk of the batch padded and
    transposed, gathered into columns, multiplied (one GEMM per group) and laid out
    channel-first with the bias, on its own thread while its arrays are in cache."""
    n, groups, o, dims = x.shape[0], g.groups, weight.shape[0], len(out_sizes)
    positions = math.prod(out_sizes)
    buffer, pad = to_last(x, g.padding)
    cols, gather = columns_last(buffer, g, out_sizes)
    kernels = weight_last(weight, groups).transpose(0, 2, 1)  # (G, K·C/G, O/G)
    budget.charge(2 * budget.nbytes((n, o, *out_sizes), x.dtype), "its output")  # the GEMM's rows, the output
    rows = np.empty((groups, n * positions, o // groups), x.dtype)
    out = np.empty((n, o, *out_sizes), x.dtype)
    # rows (G, N·P, O/G) seen as (N, G, O/G, *out): the output's layout, per example
    source = rows.reshape(groups, n, *out_sizes, o // groups).transpose(1, 0, 2 + dims, *range(2, 2 + dims))
    target = out.reshape(source.shape)
    shift = None if bias is None else bias.reshape(1, groups, o // groups, *(1,) * dims)

    def run(b: slice) -> None:
        pad(b)
        gather(b)
        span = slice(b.start * positions, b.stop * positions)
        np.matmul(per_group(cols[span]), kernels, out=rows[:, span])
        if shift is None:
            np.copyto(target[b], source[b])
        else:
            np.add(source[b], shift, out=target[b])
        if activation is not None:
            activation(out[b])

    parallel.split(run, n, n * positions * o * cols.shape[-1])
    return out, cols


def forward_recorded(x: Any, weight: Any, bias: Any, g: Geometry, out_sizes: Sizes
                      ) -> tuple[Any, np.ndarray]:
    """The channels-first product for operands that record their own ops (autograd's
    Variables, in a layer run op by op): whole, with no preallocated output to write into."""
    n, dims, groups, o = x.shape[0], len(g.kernel), g.groups, weight.shape[0]
    cols, source, pad = columns_first(np.asarray(x), g, out_sizes)
    pad(slice(0, n))
    parallel.copy(cols, source)
    cols = cols.reshape(n, groups, -1, math.prod(out_sizes))
    kernels = weight.reshape(1, groups, o // groups, -1)
    out = product(kernels, cols, "gok,ngkp->ngop").reshape(n, o, *out_sizes)
    return (out if bias is None else out + bias.reshape(1, -1, *(1,) * dims)), cols


def forward_first(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, g: Geometry,
                   out_sizes: Sizes, activation: Callable[[np.ndarray], object] | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(out, columns) of the channels-first layout, (N, G, C/G·K, P): a GEMM per example (an
    einsum for a depthwise convolution), each chunk of the batch padded, gathered and
    multiplied on its own thread."""
    n, groups = x.shape[0], g.groups
    cols, source, pad = columns_first(x, g, out_sizes)
    flat_cols = cols.reshape(n, groups, -1, math.prod(out_sizes))

    def gather(b: slice) -> None:
        pad(b)
        parallel.copy(cols[b], source[b])

    out = _channels_first_product(flat_cols, weight, bias, out_sizes, activation, gather)
    return out, flat_cols


def pointwise(g: Geometry) -> bool:
    """A 1×1 convolution at stride 1, unpadded: its columns would be a copy of its input."""
    return math.prod(g.kernel) == 1 and all(s == 1 for s in g.strides) and not any(g.padding)


def forward_pointwise(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, g: Geometry,
                       activation: Callable[[np.ndarray], object] | None = None) -> np.ndarray:
    """An inference call of a ``pointwise`` convolution: the channels-first GEMMs read the input
    itself, with no columns copied from it (a MobileNet-style block's 32 → 64 channels on
    16×16, batch 32: 0.36 → 0.31 ms at 2 threads, 0.49 → 0.42 ms at 1; the same bits)."""
    sizes = x.shape[2:]
    operand = x.reshape(x.shape[0], g.groups, -1, math.prod(sizes))
    return _channels_first_product(operand, weight, bias, sizes, activation)


def _channels_first_product(
    operand: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, out_sizes: Sizes,
    activation: Callable[[np.ndarray], object] | None, prepare: Callable[[slice], None] | None = None,
) -> np.ndarray:
    """The output (N, O, *out_sizes) of the GEMMs of ``weight`` with a channels-first operand
    (N, G, C/G·K, P), bias added and ``activation`` applied, each chunk of the batch on its own
    thread after ``prepare`` (gathering its columns, if any) while it is in cache."""
    n, groups, o = operand.shape[0], operand.shape[1], weight.shape[0]
    kernels = weight.reshape(1, groups, o // groups, -1)
    budget.charge(budget.nbytes((n, o, *out_sizes), operand.dtype), "its output")
    out = np.empty((n, groups, o // groups, operand.shape[-1]), operand.dtype)
    # (Repeating the bias along the positions makes numpy's add vectorised — MobileNet's
    # pointwise 0.35 → 0.33 ms — but a training forward's positions span the whole batch: the
    # repeated bias then costs the ResNet-18-style step ~30% with numba kernels. Broadcast.)
    shift = None if bias is None else bias.reshape(1, groups, o // groups, 1)

    def run(b: slice) -> None:
        if prepare is not None:
            prepare(b)
        product(kernels, operand[b], "gok,ngkp->ngop", out=out[b])
        if shift is not None:
            out[b] += shift
        if activation is not None:
            activation(out[b])

    parallel.split(run, n, out.size * operand.shape[2])
    return out.reshape(n, o, *out_sizes)


def depthwise_groups(weight: np.ndarray, groups: int) -> bool:
    """One input channel per group: each (example, group) product sums a kernel's few taps."""
    return groups > 1 and weight.shape[1] == 1


def product(kernels: np.ndarray, operand: np.ndarray, subscripts: str, *,
             out: np.ndarray | None = None) -> np.ndarray:
    """kernels (1, G, A, B) @ operand (N, G, B, P): a GEMM per (example, group), or for a
    depthwise convolution one einsum (N·G GEMMs of a few taps each cost more to call than to
    run: einsum measured 2.5× faster on d2l's shapes)."""
    if kernels.shape[1] > 1 and min(kernels.shape[2:]) == 1 and max(kernels.shape[2:]) <= 64:
        return np.einsum(subscripts, kernels[0], operand, out=out)
    return np.matmul(kernels, operand, out=out)
