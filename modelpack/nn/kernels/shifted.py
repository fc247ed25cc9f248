"""Stride-1 convolution on shifted views of the padded planes, without im2col.

With stride 1, the tap at offset ``j`` of a kernel reads the padded input shifted by ``j``;
flattened over its spatial axes, that shift is a single offset into each channel's plane, so
tap ``j`` contributes ``W[:, :, j] @ plane[:, off_j : off_j + L]`` to every output position
at once (``L`` positions on the padded grid; the few that fall in the padding's columns are
computed and dropped). The taps of the kernel's last axis are summed on the output side, after
one GEMM of the other taps' columns (contiguous runs of the planes, a third of im2col's for a
3×3) by a weight with k times a tap's rows (``last_axis_forward``): an example per GEMM on
large planes, else a block of examples' planes end to end (with many more inputs than outputs,
a GEMM per tap instead). On 16×16 maps and smaller, one GEMM of K = k·C (im2col's) did better
(``faster``); narrow inputs stay on im2col too.

A depthwise convolution (one input channel per group) sums its taps the same way, each tap a
multiply-add of shifted planes instead of a GEMM (``depthwise``); narrow groups take
``last_axis_forward`` per group.

Two calls come here: the forward of an inference call (a training forward keeps im2col's
columns, which its backward reuses for the weight's gradient, unless ``conv`` defers them: few
outputs, or large planes; beyond 16×16 the weight's gradient is then ``last_axis_weight_grad``), and the
input's gradient at stride 1, which is this correlation of the output's gradient with the
flipped kernel (``conv._full_correlation``). Onto few input channels that correlation's GEMMs have a handful
of rows, so there the input's gradient is the transpose of this scheme instead (``grad_input``):
one GEMM for every tap, each tap's products added onto the planes at its offset.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import budget
from . import backend, blas, parallel

if TYPE_CHECKING:
    from .conv import Geometry

__all__ = ["usable", "faster", "large", "grouped_usable", "last_axis_forward", "last_axis_weight_grad",
           "forward", "grad_input_usable", "grad_input"]

# Measured at batch 32, 3×3 kernels, one thread (ms, im2col → here, a GEMM per tap): 16
# channels on 32×32 5.3 → 3.4, 32 on 16×16 3.6 → 2.6, 64 on 8×8 2.9 → 2.3, 128 on 4×4 2.9 → 2.8;
# 3 or 6 channels in (a stem, LeNet) lose at every size.
MIN_CHANNELS = 16
MIN_POSITIONS = 64
# Up to this many output positions per example, an inference call and an input's gradient take
# im2col's one GEMM of K = k·C (channels last) instead (``faster``). Measured at 2 threads, batch
# 32, 3×3 (ms, here → im2col): 16 channels on 32×32 2.1 → 2.5 (stays here), 32 on 16×16 1.64 →
# 1.55, 64 on 8×8 1.70 → 1.26, 128 on 4×4 2.0 → 1.19; input gradients 32 on 16×16 1.56 → 1.52,
# 64 on 8×8 1.63 → 1.33, 128 on 4×4 2.05 → 1.21 (its col2im 1.5). An input's gradient on 16×16
# stays here (``GRADIENT_IM2COL_MAX_POSITIONS``): the CNN's 64 → 32 channels, batch 64, 4.5 against
# 6.2 (the CNN's training step 31 → 35 ms with it on im2col).
IM2COL_MAX_POSITIONS = 256
GRADIENT_IM2COL_MAX_POSITIONS = 255
# From this many output values per example on the padded grid on, ``forward`` takes an example
# per GEMM (one GEMM of k times a tap's rows and columns: 3×3, 32 channels, 96 by 288). Measured
# at 2 threads, inference, 3×3 (×3) at stride 1 (ms, a GEMM per tap, its product added → an
# example per GEMM): 32 → 32 channels on 4×8×28×28 13.8 → 7.2, 64 on 8×56×56 11.2 → 8.3, 128 on
# 16×28×28 18.9 → 16.1, 32 on 8×56×56 5.1 → 3.3, 64 on 32×32×32 16.6 → 12.8. (The weight's
# gradient of a deferred training forward follows it: ``last_axis_weight_grad``.)
LAST_AXIS_MIN_VALUES = 1 << 16
# Below it, a block of examples per GEMM, their planes end to end, with up to this many values
# of columns. Measured at 2 threads, batch 32, 3×3, 16 channels on 32×32 (ms, examples a block
# 1 / 4 / 8 / 16, a GEMM per tap on 4): 2.86 / 2.34 / 2.11 / 2.06, 2.52.
BLOCK_COLUMNS = 1 << 20
# From this many inputs an output on, the columns' copy (k·C values a position) cost more than
# a GEMM per tap and its products' adds (O values a tap): ``_per_tap``. Measured at 2 threads,
# 3×3 (ms, blocks → a GEMM per tap): the CNN's input gradient, 64 → 32 channels on 64×16×16,
# 4.06 → 3.79, 32 → 16 on 32×32×32 3.00 → 2.75; as many outputs as inputs, the blocks won: 16 on
# 32×32×32 1.92 → 2.06, 64 on 64×16×16 7.07 → 7.98.
PER_TAP_MIN_RATIO = 2
# Examples per GEMM call of ``_per_tap``: the per-tap product of a few examples stays in cache
# while the taps are summed into it (4 measured best of 1, 4 and 32).
EXAMPLES_PER_CALL = 4
# ... in at least this many blocks (a batch that has them), so that the threads share them: one
# block ran whole, its GEMM on BLAS's threads, whose workers then spin on the cores the next
# passes need (ResNet-18-style's training step 140 → 185 ms with its 32 channels' input
# gradients on 16×16 in one block).
MIN_BLOCKS = 4
# ``last_axis_forward`` takes groups of at most GROUPED_MAX_WIDTH input × output channels, from
# GROUPED_MIN_WORK multiply-adds per example on (its examples run one at a time). Measured at 2
# threads, inference, 3×3 at stride 1 (ms, im2col → here): 32 groups of 4 × 4 on 16×128×28×28
# (3.9 M an example) 6.9 → 3.9, of 8 × 8 on 16×256×14×14 5.9 → 3.1; 16 of 4 × 4 on 16×64×56×56
# 18.8 → 6.7, 3×3×3 on 4×64×8×28×28 35 → 7; 8 of 8 × 8 on 8×64×32×32 (5.0 M) even, 1.9; it lost
# below: 8 of 4 × 4 on 32×32×16×16 (0.33 M) 1.2 → 1.7, 1-D 32 of 4 × 4 on 16×128×200 0.8 → 1.3.
GROUPED_MAX_WIDTH = 64
GROUPED_MIN_WORK = 1 << 21


def usable(channels: int, g: Geometry, out_sizes: tuple[int, ...]) -> bool:
    """Whether a convolution of ``channels`` inputs is faster here than on im2col."""
    return (
        g.groups == 1
        and all(s == 1 for s in g.strides)
        and channels >= MIN_CHANNELS
        and math.prod(g.kernel) > 1
        and math.prod(out_sizes) >= MIN_POSITIONS
    )


def faster(channels: int, g: Geometry, out_sizes: tuple[int, ...], *, gradient: bool = False) -> bool:
    """Whether an inference call (an input's ``gradient``) is faster here than on im2col's
    channels-last GEMM: ``usable`` and more than ``IM2COL_MAX_POSITIONS``
    (``GRADIENT_IM2COL_MAX_POSITIONS``) positions."""
    bound = GRADIENT_IM2COL_MAX_POSITIONS if gradient else IM2COL_MAX_POSITIONS
    return usable(channels, g, out_sizes) and math.prod(out_sizes) > bound


def large(x: np.ndarray, outputs: int, g: Geometry, out_sizes: tuple[int, ...]) -> bool:
    """Whether ``forward`` takes ``last_axis_forward`` (``LAST_AXIS_MIN_VALUES``)."""
    return outputs * math.prod(_grid(g, x.shape[2:], out_sizes)) >= LAST_AXIS_MIN_VALUES


def _grid(g: Geometry, sizes: tuple[int, ...], out_sizes: tuple[int, ...]) -> tuple[int, ...]:
    """The padded grid the positions are computed on: every axis but the first keeps its padded
    length, so each tap's operand is one contiguous run of every plane."""
    return (out_sizes[0], *(size + 2 * p for size, p in zip(sizes[1:], g.padding[1:], strict=True)))


def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, g: Geometry,
            out_sizes: tuple[int, ...]) -> np.ndarray:
    """x (N, C, *S) correlated with weight (O, C, *K), plus bias: (N, O, *out), by
    ``last_axis_forward``: an example per GEMM on large planes (``large``), else blocks of
    examples whose columns hold up to ``BLOCK_COLUMNS`` values; from ``PER_TAP_MIN_RATIO``
    inputs an output on, a GEMM per tap (``_per_tap``)."""
    c, o = x.shape[1], weight.shape[0]
    if large(x, o, g, out_sizes):
        return last_axis_forward(x, weight, bias, g, out_sizes, 1)
    if c >= PER_TAP_MIN_RATIO * o:
        return _per_tap(x, weight, bias, g, out_sizes)
    _, _, _, plane = _layout(x, g, out_sizes)
    rows = c * math.prod(g.kernel[:-1])
    return last_axis_forward(x, weight, bias, g, out_sizes, max(1, BLOCK_COLUMNS // (rows * plane)))


def _per_tap(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, g: Geometry,
             out_sizes: tuple[int, ...]) -> np.ndarray:
    """``forward`` as a GEMM per tap on ``EXAMPLES_PER_CALL`` examples' planes, each tap's
    product added into the sums while in cache: no columns copied."""
    n, c, o = x.shape[0], x.shape[1], weight.shape[0]
    padded, grid, offsets, plane = _layout(x, g, out_sizes)
    budget.charge(budget.nbytes((n, c, plane), x.dtype), f"padding the input by {g.padding}")
    flat = np.zeros((n, c, plane), x.dtype)
    inside = (slice(None), slice(None), *_inside(g, x.shape[2:]))
    inner = flat[:, :, :math.prod(padded)].reshape(n, c, *padded)[inside]
    length = math.prod(grid)
    taps = np.ascontiguousarray(weight.reshape(o, c, -1).transpose(2, 0, 1))  # (K, O, C)
    step = min(EXAMPLES_PER_CALL, n)
    scratch_rows = parallel.threads() * step  # a scratch product per thread
    budget.charge(budget.nbytes((n + scratch_rows, o, length), x.dtype), "its output on the padded grid")
    budget.charge(budget.nbytes((n, o, *out_sizes), x.dtype), "its output")
    sums = np.empty((n, o, length), x.dtype)
    out = np.empty((n, o, *out_sizes), x.dtype)
    crop = (slice(None), slice(None), *(slice(0, size) for size in out_sizes))
    kept = sums.reshape(n, o, *grid)[crop]
    shift = None if bias is None else bias.reshape(1, o, *(1,) * len(out_sizes))

    def run(b: slice) -> None:
        np.copyto(inner[b], x[b])
        scratch = np.empty((step, o, length), x.dtype)
        for start in range(b.start, b.stop, step):
            stop = min(b.stop, start + step)
            total, product = sums[start:stop], scratch[:stop - start]
            np.matmul(taps[0], flat[start:stop, :, offsets[0]:offsets[0] + length], out=total)
            for tap, offset in zip(taps[1:], offsets[1:], strict=True):
                np.matmul(tap, flat[start:stop, :, offset:offset + length], out=product)
                total += product
        # the positions in the padding's columns dropped, the bias added in the same pass
        if shift is None:
            np.copyto(out[b], kept[b])
        else:
            np.add(kept[b], shift, out=out[b])

    parallel.split(run, n, n * o * c * len(offsets) * length)
    return out


def grouped_usable(x: np.ndarray, weight: np.ndarray, g: Geometry, out_sizes: tuple[int, ...]) -> bool:
    """Whether an inference call of this grouped convolution comes to ``last_axis_forward``: at
    stride 1, several input channels per group (one is depthwise's), a kernel wider than one
    along its last axis, narrow groups and enough work per example (``GROUPED_MAX_WIDTH``,
    ``GROUPED_MIN_WORK``)."""
    og, cg = weight.shape[0] // g.groups, weight.shape[1]
    work = weight.shape[0] * cg * math.prod(g.kernel) * math.prod(_grid(g, x.shape[2:], out_sizes))
    return (g.groups > 1 and cg > 1 and cg * og <= GROUPED_MAX_WIDTH and g.kernel[-1] > 1
            and all(s == 1 for s in g.strides) and work >= GROUPED_MIN_WORK)


def last_axis_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, g: Geometry,
                      out_sizes: tuple[int, ...], examples: int = 1) -> np.ndarray:
    """x (N, C, *S) correlated (per group) with weight (O, C/G, *K), plus bias: (N, O, *out),
    at stride 1 on the padded grid. The taps of the kernel's last axis are summed on the
    output side: per block of ``examples`` examples, the columns of every other tap (C/G·K/k
    rows a group, each one contiguous run of the block's padded planes laid end to end, a
    third of im2col's for a 3×3) times a weight whose rows are (last tap, output), (G, k·O/G,
    C/G·K/k); the product's k row blocks, shifted back by their taps, are added. Each GEMM then
    has k times the rows that im2col's has, and k times the rows and columns of a tap's.
    Narrow groups gain most: 12 by 12 for ResNeXt's 4 channels a group against im2col's 4 by
    36 (measured at 2 threads on 16×128×28×28 in 32 groups: im2col per example 4.7 ms, its
    columns from the planes' contiguous runs 4.7, a GEMM per tap 4.9, this 3.6). The blocks run
    on ``parallel``'s threads; each is the same GEMM whatever their count: the same bits. With
    the compiled kernels, a 2-D one runs as ``compiled_shifted``'s loop, an example a block
    (ResNet-18-style's 16 → 16 channels on 32×32×32×32, ms at 1 / 2 threads, numpy's path →
    the loop: 4.0 / 3.4 → 3.7 / 2.5; by blocks of 8 it was 4.1 / 3.2)."""
    n, c, o, groups, dims = x.shape[0], x.shape[1], weight.shape[0], g.groups, len(g.kernel)
    cg, og, last = c // groups, o // groups, g.kernel[-1]
    padded, grid, _, plane = _layout(x, g, out_sizes)
    length, reach, item = math.prod(grid), (last - 1) * g.dilation[-1], x.itemsize
    loops = backend.gemm_loops("compiled_shifted", dims, x, weight)
    if loops is not None:  # an example a block: its columns and products stay in cache
        examples = 1
    per = -(-n // max(-(-n // max(1, examples)), min(n, MIN_BLOCKS)))  # blocks alike in size, whatever
    blocks = -(-n // per)  # the threads (a GEMM's bits follow its width)
    # a block's planes end to end: the columns and sums run over each example's grid and on
    # into the next plane (those positions dropped)
    span = (per - 1) * plane + length
    lead = g.kernel[:-1]
    steps = tuple(d * math.prod(padded[i + 1:]) * item for i, d in enumerate(g.dilation[:-1]))
    rows = cg * math.prod(lead)
    # rows (last tap, output), columns (channel, leading taps), per group
    split = weight.reshape(groups, og, cg, math.prod(lead), last)
    kernels = np.ascontiguousarray(split.transpose(0, 4, 1, 2, 3)).reshape(groups, last * og, rows)
    planes = parallel.threads() * budget.nbytes((c, per * plane), x.dtype)
    budget.charge(planes, f"padding the input by {g.padding}")
    scratch = (groups, rows + last * og + og, span + reach)  # the columns, their products, the sums
    budget.charge(parallel.threads() * budget.nbytes(scratch, x.dtype), "its columns, a block a thread")
    budget.charge(budget.nbytes((n, o, *out_sizes), x.dtype), "its output")
    out = np.empty((n, o, *out_sizes), x.dtype)
    if loops is not None:
        gemm = blas.sgemm()
        offset = backend.loop_bias(bias)
        source = np.ascontiguousarray(x)

        def compiled_run(b: slice) -> None:
            flat = np.zeros((c, per * plane), x.dtype)
            cols = np.empty((groups, rows, span + reach), x.dtype)
            products = np.empty((groups, last * og, span + reach), x.dtype)
            wp = padded[-1]
            loops.last_axis_2d(gemm, source, kernels, offset, out, flat, cols, products, per, plane, wp,
                               g.padding[0], g.padding[-1], g.dilation[0] * wp, g.dilation[-1], span, b.start,
                               b.stop)

        parallel.split(compiled_run, blocks, n * o * rows * last * length)
        return out

    crop = (slice(None), slice(None), *(slice(0, size) for size in out_sizes))
    shift = None if bias is None else bias.reshape(o, *(1,) * dims)
    inside = (slice(None), slice(None), *_inside(g, x.shape[2:]))
    grid_strides = tuple(math.prod(grid[i + 1:]) * item for i in range(dims))

    def run(b: slice) -> None:
        flat = np.zeros((c, per * plane), x.dtype)  # the block's padded planes; the padding stays zero
        inner = flat.reshape(c, per, plane)[:, :, :math.prod(padded)].reshape(c, per, *padded)[inside]
        strides = (cg * per * plane * item, per * plane * item, *steps, item)
        view = as_strided(flat, (groups, cg, *lead, span + reach), strides, writeable=False)
        cols = np.empty(view.shape, x.dtype)
        products = np.empty((groups, last * og, span + reach), x.dtype)
        total = np.empty((groups, og, span), x.dtype)
        # each example's sums on its grid, (O, examples, *grid)
        laid = as_strided(total, (o, per, *grid), (span * item, plane * item, *grid_strides), writeable=False)
        step = g.dilation[-1]
        for block in range(b.start, b.stop):
            first, stop = block * per, min(n, block * per + per)
            count = stop - first
            np.copyto(inner[:, :count], x[first:stop].swapaxes(0, 1))
            np.copyto(cols, view)
            np.matmul(kernels, cols.reshape(groups, rows, -1), out=products)
            if last == 1:
                np.copyto(total, products[:, :, :span])
            else:
                np.add(products[:, :og, :span], products[:, og:2 * og, step:step + span], out=total)
            for j in range(2, last):
                total += products[:, j * og:(j + 1) * og, j * step:j * step + span]
            kept = laid[:, :count][crop].swapaxes(0, 1)
            if shift is None:
                np.copyto(out[first:stop], kept)
            else:
                np.add(kept, shift, out=out[first:stop])

    parallel.split(run, blocks, n * o * rows * last * length)
    return out


def last_axis_weight_grad(grad: np.ndarray, x: np.ndarray, g: Geometry, shape: tuple[int, ...]) -> np.ndarray:
    """The weight's gradient (``shape``: O, C, *K) of an ungrouped stride-1 convolution on large
    planes (``large``) from its input x and the output's gradient, on ``last_axis_forward``'s
    columns: per example, the gradient laid on the padded grid k times, shifted by each of the
    last axis's taps (rows (last tap, output)), times the transposed columns of the other taps,
    one GEMM of (k·O, grid) by (grid, C·K/k). No im2col of every tap (k times the columns); the
    examples in ``parallel.REDUCTION_CHUNKS`` blocks on ``parallel``'s threads, their sums added
    in order: the same bits at any thread count."""
    n, c, o = x.shape[0], x.shape[1], shape[0]
    out_sizes, last, step = grad.shape[2:], g.kernel[-1], g.dilation[-1]
    padded, grid, _, plane = _layout(x, g, out_sizes)
    length, reach, item = math.prod(grid), (last - 1) * step, x.itemsize
    lead = g.kernel[:-1]
    steps = tuple(d * math.prod(padded[i + 1:]) * item for i, d in enumerate(g.dilation[:-1]))
    rows = c * math.prod(lead)
    blocks = min(parallel.REDUCTION_CHUNKS, n)
    bounds = [n * i // blocks for i in range(blocks + 1)]
    scratch = c * plane + (rows + last * o) * (length + reach) + last * o * rows
    budget.charge(parallel.threads() * budget.nbytes((scratch,), x.dtype), "its columns, an example a thread")
    budget.charge(budget.nbytes((blocks, last * o, rows), x.dtype), "its blocks' weight-gradient products")
    parts = np.zeros((blocks, last * o, rows), x.dtype)
    inside = (slice(None), *_inside(g, x.shape[2:]))
    fit = (slice(None), *(slice(0, size) for size in out_sizes))

    def run(chunk: slice) -> None:
        flat = np.zeros((c, plane), x.dtype)  # one example's padded planes; the padding stays zero
        inner = flat[:, :math.prod(padded)].reshape(c, *padded)[inside]
        view = as_strided(flat, (c, *lead, length + reach), (plane * item, *steps, item), writeable=False)
        cols = np.empty(view.shape, x.dtype)
        # the gradient on the grid once per tap, shifted by it: zeros past the output and outside
        shifted = np.zeros((last, o, length + reach), x.dtype)
        laid = [shifted[j, :, j * step:j * step + length].reshape(o, *grid)[fit] for j in range(last)]
        product = np.empty((last * o, rows), x.dtype)
        for block in range(chunk.start, chunk.stop):
            for example in range(bounds[block], bounds[block + 1]):
                np.copyto(inner, x[example])
                np.copyto(cols, view)
                for target in laid:
                    np.copyto(target, grad[example])
                np.matmul(shifted.reshape(last * o, -1), cols.reshape(rows, -1).T, out=product)
                parts[block] += product

    parallel.split(run, blocks, n * last * o * rows * (length + reach))
    total = parallel.added_in_order(parts)
    split = total.reshape(last, o, c, math.prod(lead))  # (k, O, C, K/k) → (O, C, K/k, k)
    return np.ascontiguousarray(split.transpose(1, 2, 3, 0)).reshape(shape)


def grad_input_usable(weight: np.ndarray, g: Geometry) -> bool:
    """Whether the input's gradient of this convolution comes here (``grad_input``): at stride
    1, ungrouped, onto few input channels (LeNet's 6), where the flipped correlation's GEMMs
    per tap have a handful of rows."""
    return g.groups == 1 and all(s == 1 for s in g.strides) and weight.shape[1] < MIN_CHANNELS \
        and math.prod(g.kernel) > 1


def grad_input(grad: np.ndarray, weight: np.ndarray, g: Geometry, in_shape: tuple[int, ...]) -> np.ndarray:
    """The input's gradient (``in_shape``) of a stride-1 convolution from the output's
    (N, O, *out): one GEMM for every tap at once, then each tap's products added onto the
    padded input's planes shifted by its offset. The output's gradient is laid on the padded
    grid (zeros beyond it), examples one after another and channels first, so a tap's
    products for every example are one contiguous run that lands where the tap read from.
    Measured on LeNet's second convolution (6 → 16 channels, 5×5, batch 64, one thread):
    the flipped correlation's GEMM per tap 1.9 ms, col2im's 1.5 ms, this 1.1 ms."""
    n, o, c = grad.shape[0], grad.shape[1], weight.shape[1]
    out_sizes = grad.shape[2:]
    padded = tuple(size + 2 * p for size, p in zip(in_shape[2:], g.padding, strict=True))
    area = math.prod(padded)
    offsets = _offsets(g, padded)
    taps = np.ascontiguousarray(weight.reshape(o, -1).T)  # (C·K, O)
    per_thread = min(n, -(-n // parallel.threads()))
    scratch = (o + c * (len(offsets) + 1), per_thread * area + offsets[-1])  # per thread
    budget.charge(parallel.threads() * budget.nbytes(scratch, grad.dtype),
                  "its taps' products on the padded planes")
    budget.charge(budget.nbytes(in_shape, grad.dtype), "its input's gradient")
    out = np.empty(in_shape, grad.dtype)
    fit = (slice(None), slice(None), *(slice(0, size) for size in out_sizes))
    inside = (slice(p, p + size) for p, size in zip(g.padding, in_shape[2:], strict=True))
    crop = (slice(None), slice(None), *inside)

    def run(b: slice) -> None:
        count = b.stop - b.start
        wide = np.zeros((o, count, *padded), grad.dtype)
        np.copyto(wide[fit], grad[b].swapaxes(0, 1))
        products = (taps @ wide.reshape(o, -1)).reshape(c, len(offsets), -1)  # (C, K, count·area)
        sums = np.zeros((c, count * area + offsets[-1]), grad.dtype)
        for tap, offset in enumerate(offsets):
            target = sums[:, offset:offset + count * area]
            np.add(target, products[:, tap], out=target)
        np.copyto(out[b], sums[:, :count * area].reshape(c, count, *padded)[crop].swapaxes(0, 1))

    parallel.split(run, n, n * area * o * c * len(offsets))
    return out


def _offsets(g: Geometry, padded: tuple[int, ...]) -> list[int]:
    """Each kernel tap's offset into a padded plane flattened in C order."""
    row_strides = [math.prod(padded[i + 1:]) for i in range(len(padded))]
    return [sum(j * d * s for j, d, s in zip(tap, g.dilation, row_strides, strict=True))
            for tap in np.ndindex(*g.kernel)]


def _layout(x: np.ndarray, g: Geometry, out_sizes: tuple[int, ...]
            ) -> tuple[tuple[int, ...], tuple[int, ...], list[int], int]:
    """(padded, grid, offsets, plane): the padded input's sizes; the padded grid the positions
    are computed on; each tap's offset into a plane flattened; the plane's length (the last
    tap reads up to its offset past the grid's end: zeros there too)."""
    padded = tuple(size + 2 * p for size, p in zip(x.shape[2:], g.padding, strict=True))
    grid = _grid(g, x.shape[2:], out_sizes)
    offsets = _offsets(g, padded)
    return padded, grid, offsets, max(math.prod(padded), offsets[-1] + math.prod(grid))


def _inside(g: Geometry, sizes: tuple[int, ...]) -> tuple[slice, ...]:
    """Where the input lies in its padded planes, per spatial axis."""
    return tuple(slice(p, p + size) for p, size in zip(g.padding, sizes, strict=True))
