"""A convolution over large planes in strips of output rows: each strip's columns are
gathered, multiplied and written while they are in cache.

im2col's columns hold K·C/G values for every output position. On a network's first layer
(few input channels, large planes: ResNet's 7×7/2 stem on 3×224×224, a C3D stem) they are
several megabytes an example, so gathering them whole writes them to memory and the GEMM
reads them back. Here a strip of output rows (along the first spatial axis) is gathered from
the padded input, dealt into its strides' phases so that every copy reads contiguous runs,
into a buffer of about ``STRIP_BYTES``, multiplied by each group's weight (its taps in the
columns' order) straight into the channel-first output, and given its bias and activation
there. A training forward keeps no columns: ``weight_grad`` gathers them again, strip by
strip, for the weight's gradient. The products are im2col's (the same GEMM per position, in
strips, the taps in another order), so the results agree with it to float rounding.

Measured at 2 threads on the 7×7/2 stem, batch 8 (ms, whole columns → strips; torch 6.6–7.0):
20.2–20.5 → 12.9–13.9 (strips of 4 MB, strided reads). In one process, alternating, min and
median of 11 (ms, 4 MB strided reads → 2 MB phases): 12.7 / 15.4 → 12.4 / 13.3 (torch 5.9 /
7.3); the C3D stem 3.85 / 4.74 → 3.72 / 4.61 (torch 1.47 / 1.80).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import budget
from . import backend, blas, parallel
from .columns import Geometry, Sizes, fill_phase, phase_offsets, phase_reads

__all__ = ["usable", "forward", "weight_grad"]

# Columns per strip, in bytes (about: at least one row of outputs): half a core's L2 cache.
# With phases, 2 MB beat 4 MB and 1 MB (the stem 15.2 against 18.4 and 17.0 ms).
STRIP_BYTES = 2 << 20
# From this many column values an example on (4 MB of float32): below, an example's whole
# columns stay in cache and im2col's one GEMM per example is as fast.
MIN_COLUMN_VALUES = 1 << 20


def usable(weight: np.ndarray, out_sizes: Sizes) -> bool:
    """Whether a convolution goes in strips (inference, or training on channels-first columns):
    an example's columns are large."""
    return weight[0].size * math.prod(out_sizes) >= MIN_COLUMN_VALUES


@dataclass(frozen=True)
class _Phase:
    """The taps that read one phase of the strides: along each axis, the first tap, the step
    between taps, how many, and the first one's offset and the step between offsets in the
    phase's plane."""

    index: Sizes  # the phase per axis
    taps: tuple[slice, ...]  # the weight's taps read from it, per axis
    counts: Sizes
    offsets: Sizes
    steps: Sizes


def _phases(g: Geometry) -> list[_Phase]:
    """Tap k of an axis at stride s and dilation d reads s·r + d·k for output r: phase
    d·k mod s of the input at offset d·k // s in it. Each phase's taps step by s / gcd(d, s),
    their offsets by d / gcd(d, s); phases no tap reads are left out."""
    per_axis = []
    for k, s, d in zip(g.kernel, g.strides, g.dilation, strict=True):
        step = s // math.gcd(d, s)
        axis = []
        for phase in range(s):
            first = next((j for j in range(min(k, step)) if (d * j) % s == phase), None)
            if first is not None:
                count = len(range(first, k, step))
                axis.append((phase, slice(first, k, step), count, (d * first) // s, d // math.gcd(d, s)))
        per_axis.append(axis)
    return [_Phase(tuple(a[0] for a in combo), tuple(a[1] for a in combo), tuple(a[2] for a in combo),
                   tuple(a[3] for a in combo), tuple(a[4] for a in combo))
            for combo in itertools.product(*per_axis)]


def _split(x: np.ndarray, g: Geometry) -> tuple[np.ndarray, Callable[[slice], None]]:
    """The padded input dealt into its strides' phases, (N, C, *strides, *⌈padded / strides⌉)
    (at stride 1, the padded input), and ``fill(chunk)`` that copies rows ``chunk`` in: each
    phase's windows then read contiguous runs, where strided reads gathered 2.8× slower
    (7×7/2 on 3×224×224, one thread, 4.5 → 1.6 ms for 8 examples' columns)."""
    n, c, sizes = x.shape[0], x.shape[1], x.shape[2:]
    lengths = tuple(-(-(size + 2 * p) // s) for size, p, s in zip(sizes, g.padding, g.strides, strict=True))
    shape = (n, c, *g.strides, *lengths)
    budget.charge(budget.nbytes(shape, x.dtype), f"padding the input by {g.padding}")
    planes = np.empty(shape, x.dtype)  # (each chunk zeroes its padding: ``fill_phase``)
    whole = (slice(None), slice(None))
    reads = phase_reads(g.strides, g.padding, sizes, lengths)
    copies = [(whole + phase, into, read)
              for phase, (into, read) in zip(phase_offsets(g.strides), reads, strict=True)]

    def fill(b: slice) -> None:
        mine, source = planes[b], x[b]
        for phase, into, read in copies:
            fill_phase(mine[phase], source, into, read)

    return planes, fill


def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, g: Geometry, out_sizes: Sizes,
            activation: Callable[[np.ndarray], object] | None = None) -> np.ndarray:
    """Cross-correlation of x (N, C, *S) with weight (O, C/G, *K), plus bias, then
    ``activation`` in place: (N, O, *out_sizes)."""
    n, groups, o = x.shape[0], g.groups, weight.shape[0]
    first, rest, per_group = out_sizes[0], math.prod(out_sizes[1:]), weight[0].size
    gather, rows, planes, fill = _gatherer(x, g, out_sizes, per_group)
    budget.charge(budget.nbytes((n, o, *out_sizes), x.dtype), "its output")
    out = np.empty((n, groups, o // groups, first, rest), x.dtype)
    kernels = _in_phase_order(weight, g)  # (G, O/G, C/G·K)
    shift = None if bias is None else bias.reshape(groups, o // groups, 1)

    loops = backend.gemm_loops("compiled_strips", len(out_sizes), x, weight)
    if loops is not None:
        gemm = blas.sgemm()
        offset = backend.loop_bias(bias)
        phases = np.array([(*p.index, *p.counts, *p.offsets, *p.steps) for p in _phases(g)], np.int64)
        laid = out.reshape(n, o, *out_sizes)

        def compiled_run(b: slice) -> None:
            fill(b)
            buffer = np.empty(per_group * rows * rest, x.dtype)
            loops.strips_2d(gemm, planes, kernels, offset, laid, buffer, phases, rows, b.start, b.stop)
            if activation is not None:
                activation(laid[b])

        parallel.split(compiled_run, n, n * math.prod(out_sizes) * o * per_group)
        return laid

    def run(b: slice) -> None:
        fill(b)
        buffer = np.empty((groups, per_group, rows * rest), x.dtype)
        for example in range(b.start, b.stop):
            for start in range(0, first, rows):
                count = min(rows, first - start)
                cols = gather(buffer, example, start, count)
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


def _in_phase_order(weight: np.ndarray, g: Geometry) -> np.ndarray:
    """The weight as the strips' columns hold the taps, (G, O/G, C/G·K): phase by phase
    (``_phases``), each phase's (C/G, its taps)."""
    o, groups = weight.shape[0], g.groups
    split = weight.reshape(groups, o // groups, *weight.shape[1:])
    parts = []
    for phase in _phases(g):
        taps: tuple[Any, ...] = (slice(None), slice(None), slice(None), *phase.taps)
        parts.append(split[taps].reshape(groups, o // groups, -1))
    return np.ascontiguousarray(np.concatenate(parts, axis=2))


_Gather = Callable[[np.ndarray, int, int, int], np.ndarray]


def _gatherer(x: np.ndarray, g: Geometry, out_sizes: Sizes, per_group: int
              ) -> tuple[_Gather, int, np.ndarray, Callable[[slice], None]]:
    """(``gather(buffer, example, start, count)`` → the columns (G, C/G·K, count·rest) of output
    rows start… of an example, in ``_in_phase_order``'s order; rows a strip; the phase planes;
    their ``fill(chunk)``), the strips' buffers charged."""
    n, c, groups, dims = x.shape[0], x.shape[1], g.groups, len(g.kernel)
    rest = math.prod(out_sizes[1:])
    rows = max(1, min(out_sizes[0], STRIP_BYTES // max(1, per_group * groups * rest * x.itemsize)))
    planes, fill = _split(x, g)
    threads = min(parallel.threads(), n)
    budget.charge(budget.nbytes((threads, groups * per_group, rows * rest), x.dtype), "its strips of columns")
    st = planes.strides  # (N, C, *phases, *lengths)
    plane_strides = st[2 + dims:]
    cg = c // groups
    phases = []
    column = 0
    for phase in _phases(g):
        taps = math.prod(phase.counts)
        strides = (cg * st[1], st[1], *(s * step for s, step in zip(plane_strides, phase.steps, strict=True)),
                   *plane_strides)
        phases.append((phase, column, cg * taps, strides))
        column += cg * taps

    def gather(buffer: np.ndarray, example: int, start: int, count: int) -> np.ndarray:
        cols = buffer[:, :, :count * rest]
        for phase, column, width, strides in phases:
            at: tuple[Any, ...] = (example, slice(None), *phase.index, start + phase.offsets[0],
                                   *(slice(offset, None) for offset in phase.offsets[1:]))
            corner = planes[at]
            shape = (groups, cg, *phase.counts, count, *out_sizes[1:])
            view = as_strided(corner, shape, strides, writeable=False)
            np.copyto(cols[:, column:column + width].reshape(shape), view)
        return cols

    return gather, rows, planes, fill


def weight_grad(grad: np.ndarray, x: np.ndarray, g: Geometry, shape: tuple[int, ...]) -> np.ndarray:
    """The weight's gradient (``shape``: O, C/G, *K) of a convolution that ``forward`` computed,
    from its input x (N, C, *S) and the output's gradient (N, O, *out): the columns gathered
    again strip by strip, each strip's product with its rows of the gradient summed per
    example in order, then over the batch (the same bits at any thread count)."""
    n, groups, o = x.shape[0], g.groups, shape[0]
    out_sizes = grad.shape[2:]
    first, rest, per_group = out_sizes[0], math.prod(out_sizes[1:]), math.prod(shape[1:])
    gather, rows, _, fill = _gatherer(x, g, out_sizes, per_group)
    budget.charge(budget.nbytes((n, o, per_group), x.dtype), "its examples' weight-gradient products")
    products = np.empty((n, groups, per_group, o // groups), x.dtype)
    grads = grad.reshape(n, groups, o // groups, first * rest)

    def run(b: slice) -> None:
        fill(b)
        buffer = np.empty((groups, per_group, rows * rest), x.dtype)
        part = np.empty(products.shape[1:], x.dtype)
        for example in range(b.start, b.stop):
            total = products[example]
            for start in range(0, first, rows):
                count = min(rows, first - start)
                cols = gather(buffer, example, start, count)
                mine = grads[example, :, :, start * rest:(start + count) * rest]
                np.matmul(cols, mine.transpose(0, 2, 1), out=total if start == 0 else part)
                if start:
                    total += part

    parallel.split(run, n, n * math.prod(out_sizes) * o * per_group)
    summed = products.sum(axis=0).transpose(0, 2, 1)  # (G, O/G, C/G·K) in phase order
    result = np.empty((groups, o // groups, *shape[1:]), x.dtype)
    column = 0
    for phase in _phases(g):
        where: tuple[Any, ...] = (slice(None), slice(None), slice(None), *phase.taps)
        width = shape[1] * math.prod(phase.counts)
        result[where] = summed[:, :, column:column + width].reshape(result[where].shape)
        column += width
    return result.reshape(shape)
