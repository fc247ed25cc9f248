"""col2im by phases: the sum of a strided convolution's taps' products placed back where the
taps read, one GEMM and one add per block shift instead of per tap — or, where the stride
divides the kernel, one GEMM of each block's window of inputs and no adds (``by_windows``).
It is a transposed convolution's forward (``transposed``) and a strided convolution's input
gradient (``conv``), both of which once placed their products tap by tap
(``conv._col2im_last``, still used at stride 1 and with dilation, where a tap is already a
whole shifted plane).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from .. import budget
from . import backend, blas, parallel
from .columns import Geometry, Sizes

__all__ = ["usable", "by_phases", "windows_usable", "by_windows"]


def usable(g: Geometry) -> bool:
    """Whether ``by_phases`` takes this geometry: a stride above 1, no dilation."""
    return max(g.strides) > 1 and max(g.dilation) == 1


# The products of a block of examples are about this large at most (one example's may be more).
_BLOCK_BYTES = 256 << 10


def by_phases(rows: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, g: Geometry,
              in_sizes: Sizes, full: Sizes, sizes: Sizes, what: str) -> np.ndarray:
    """``conv._col2im_last`` for strides above 1 (undilated), by phases rather than tap by tap:
    Σ over kernel taps of rows (G, N·P, O/G) times that tap's weights, each added where the tap
    read, the padding cropped, ``bias`` added: (N, C, *sizes). ``rows`` may also be a view
    (G, N, P, O/G) of a channel-first array, not copied: each example's rows are then a
    transposed matrix, which BLAS reads in place.

    Along an axis of stride s, tap t = q·s + r lands on output position i·s + t, that is at
    offset r of block i + q: for one shift q, the s taps r = 0…s-1 fill disjoint offsets of
    the blocks, so one GEMM gives all their products and one add places them. That is
    ⌈k/s⌉ steps per axis instead of k (d2l's FCN upsampling, 64×64 at stride 32: 4 steps for
    4,096 taps; 103 → 29 ms at 2 threads, torch 27), the same multiplications. Each output
    position still receives its taps' products in the taps' order (q ascending), as before.
    A few examples at a time on each thread: their sums are placed in a buffer of their own,
    zeroed per block, and laid out channel-first (bias added) while in cache. Where the stride
    divides the kernel, ``by_windows`` does it instead."""
    if windows_usable(g):
        return by_windows(rows, weight, bias, g, in_sizes, full, sizes, what)
    dims, groups, cg = len(g.kernel), g.groups, weight.shape[1]
    n = _examples(rows, in_sizes)
    strides, channels, positions = g.strides, groups * cg, math.prod(in_sizes)
    shifts = tuple(-(-k // s) for k, s in zip(g.kernel, strides, strict=True))  # ⌈k/s⌉
    blocks = tuple(-(-f // s) for f, s in zip(full, strides, strict=True))  # ⌈full/s⌉ ≥ in + shifts - 1
    phases = math.prod(strides)
    budget.charge(budget.nbytes(weight.shape, weight.dtype), "its weights by phase")
    budget.charge(budget.nbytes((n, channels, *sizes), rows.dtype), what)
    # A block's products and sums, on each thread.
    per = max(1, min(n, _BLOCK_BYTES // max(1, positions * phases * channels * rows.itemsize)))
    threads = min(parallel.threads(), n)
    budget.charge(budget.nbytes((threads * per * positions, phases, channels), rows.dtype), "its products")
    budget.charge(budget.nbytes((threads * per, *blocks, phases, channels), rows.dtype),
                  "the sums it adds into")
    # Per shift q, the taps q·s + r as a (G, C/G, r1·r2·…·O/G) matrix whose columns go
    # (r1, r2, …, o), r up to the kernel's end (fewer than s where s does not divide k).
    by_shift = {}
    for shift in itertools.product(*(range(q) for q in shifts)):
        reach = tuple(min(s, k - q * s) for q, s, k in zip(shift, strides, g.kernel, strict=True))
        window = tuple(slice(q * s, q * s + r) for q, s, r in zip(shift, strides, reach, strict=True))
        index = (slice(None), slice(None), *window)
        taps = np.ascontiguousarray(np.moveaxis(weight[index], 1, -1))
        by_shift[shift] = reach, taps.reshape(groups, -1, math.prod(reach) * cg)
    taps_4d = {shift: (reach, taps[:, np.newaxis]) for shift, (reach, taps) in by_shift.items()}
    crop = (slice(None), *(slice(p, p + size) for p, size in zip(g.padding, sizes, strict=True)))
    out = np.empty((n, channels, *sizes), rows.dtype)
    offset = None if bias is None else bias.reshape(1, -1, *(1,) * dims)  # the bias, per channel
    # The products' axes (G, n, i1, i2, …, r1, r2, …, o) in the sums' order (n, i1, r1, i2, r2, …, G, o).
    order = (1, *itertools.chain.from_iterable((2 + a, 2 + dims + a) for a in range(dims)), 0, 2 + 2 * dims)

    def run(b: slice) -> None:
        count = min(per, b.stop - b.start)
        product = np.empty(groups * count * positions * phases * cg, rows.dtype)
        # Channels last, each axis as (block, offset): (n, b1, s1, b2, s2, …, G, O/G).
        axes = itertools.chain.from_iterable(zip(blocks, strides, strict=True))
        sums = np.empty((count, *axes, groups, cg), rows.dtype)
        spread = sums.reshape(count, *(b * s for b, s in zip(blocks, strides, strict=True)), channels)
        inner = np.moveaxis(spread[crop], -1, 1)  # (n, C, *sizes), the padding cropped
        for start in range(b.start, b.stop, per):
            block = slice(start, min(start + per, b.stop))
            count = block.stop - block.start
            if rows.ndim == 4:  # a view, each example's (P, R) a transposed matrix: a GEMM each
                mine, stacked = rows[:, block], taps_4d
            else:
                mine, stacked = rows[:, start * positions:block.stop * positions], by_shift
            sums[:count] = 0
            for shift, (reach, taps) in stacked.items():
                width = taps.shape[-1]
                made = product[:groups * count * positions * width].reshape(*mine.shape[:-1], width)
                np.matmul(mine, taps, out=made)
                placed = made.reshape(groups, count, *in_sizes, *reach, cg).transpose(order)
                where = (slice(0, count), *itertools.chain.from_iterable(
                    (slice(q, q + i), slice(0, r)) for q, i, r in zip(shift, in_sizes, reach, strict=True)))
                target = sums[where]
                np.add(target, placed, out=target)
            if offset is None:
                np.copyto(out[block], inner[:count])
            else:
                np.add(inner[:count], offset, out=out[block])

    parallel.split(run, n, n * positions * math.prod(g.kernel) * channels * rows.shape[-1])
    return out


def _examples(rows: np.ndarray, in_sizes: Sizes) -> int:
    """The examples in ``rows``: (G, N·P, R), or a view (G, N, P, R) of the channel-first input."""
    return rows.shape[1] if rows.ndim == 4 else rows.shape[1] // math.prod(in_sizes)


def windows_usable(g: Geometry) -> bool:
    """Whether ``by_windows`` takes this geometry: ``usable``, 2-D or 3-D (in 1-D, two shifts'
    adds cost less than the windows' copy: DCGAN's 4/2 on 16×64×256, forward 1.15–1.28 →
    1.25–1.31 ms, training 3.57–3.65 → 3.71–3.80), few phases, each stride dividing its kernel
    size (elsewhere its windows' GEMM would multiply zero taps: 3×3/2, 1.8× the work), and
    windows of more than one input (where the kernel is the stride, ``by_phases`` makes one
    GEMM and one add, and the windows' copy lost: 2×2/2 input gradient on 32×64×16×16, 2.1–2.2
    → 2.4 ms)."""
    pairs = list(zip(g.kernel, g.strides, strict=True))
    return (usable(g) and len(pairs) > 1 and math.prod(g.strides) <= _WINDOW_MAX_PHASES
            and all(k % s == 0 for k, s in pairs) and any(k > s for k, s in pairs))


# The columns and products of a block of examples are about this large at most: larger GEMMs
# beat cache here (DCGAN's 4×4/2 on 32×128×8×8, ms at 256 KB / 1 / 4 / 16 MB: 6.1 / 5.1 / 3.95 /
# 3.87; on 32×64×16×16: 7.7 / 6.8 / 5.3 / 5.3). With a GEMM per phase (one phase's products,
# a last-axis phase's columns), at one thread, CPU ms, median of 35 alternating with 4 / 2 / 1 /
# 0.5 MB: 8×128×16×16 8.3 / 8.0 / 8.6 / 8.5, 16×128×8×8 4.1 / 4.0 / 4.3 / 4.7, 16×64×16×16 4.4 /
# 4.2 / 4.5 / 5.1.
_WINDOW_BLOCK_BYTES = 2 << 20
# Up to this many phases (the strides' product): each is one placing call per block, and
# d2l's FCN upsampling (stride 32: 1,024 phases) lost by windows, 21.6 → 24-25 ms.
_WINDOW_MAX_PHASES = 16


def by_windows(rows: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, g: Geometry,
               in_sizes: Sizes, full: Sizes, sizes: Sizes, what: str) -> np.ndarray:
    """``by_phases`` where each stride s divides its kernel size k, as one GEMM per block of
    examples and no adds: output block i (positions i·s … i·s + s - 1 of the uncropped grid)
    receives, through taps q·s + r, the inputs i - q for q < k/s and nothing else. So a
    block's outputs, all s phases of them, are the window of k/s inputs before it (zeros
    beyond the edges) times one weight matrix (k/s·C/G by s·O/G per axis), and the GEMM
    writes every product once, where ``by_phases`` adds k/s partial sums per output. A GEMM
    per phase: along the last axis each phase has its own columns (its blocks only), along the
    first the examples come after the blocks, so a phase's blocks are a run of the rows; no
    edge block's products are wasted there (one GEMM of every phase computed whole blocks: on
    8×8 inputs 9×9 of them, 27% more multiply-adds), only along a 3-D convolution's middle
    axis. Its price: the windows are copied (the inputs k/s times per axis, once per last-axis
    phase). One thread, CPU ms, median of 35 alternating, one GEMM → a GEMM per phase: DCGAN's
    4×4/2 on 8×128×16×16 8.4 → 8.0, 16×128×8×8 4.9 → 4.0, 16×64×16×16 4.7 → 4.2. Before that,
    measured at 2 threads, in one process,
    min of 3 alternating rounds (ms, by phases → by windows): DCGAN's 4×4/2 forward on
    32×128×8×8 → 64 4.1–4.4 → 3.8–3.9; 32×64×16×16 → 32 6.0–6.1 → 4.9–5.1; 16×128×16×16 →
    64 8.0–8.4 → 7.0–7.2; a 4×4/2 convolution's training step on 16×64×32×32 → 128 20.1–21.0
    → 19.4–19.6. With the compiled kernels, a 2-D one runs as ``compiled_col2im``'s loop
    instead: one GEMM of every phase per block, and no interpreter between its passes."""
    dims, groups, cg = len(g.kernel), g.groups, weight.shape[1]
    n, r = _examples(rows, in_sizes), rows.shape[-1]
    strides, channels = g.strides, groups * cg
    reach = tuple(k // s for k, s in zip(g.kernel, strides, strict=True))  # inputs per window, per axis
    blocks = tuple(-(-f // s) for f, s in zip(full, strides, strict=True))  # ⌈full/s⌉
    window, phases = math.prod(reach), math.prod(strides)
    # The weights as (G, window·R, phases·O/G): rows (w1, w2, …, c), columns (r1, r2, …, o); the
    # window's w-th input along an axis is input i - (k/s - 1 - w) of block i, read by tap
    # (k/s - 1 - w)·s + r.
    budget.charge(budget.nbytes((groups * window * r, phases * cg), weight.dtype), "its weights by phase")
    split = weight.reshape(groups, r, cg, *(x for q, s in zip(reach, strides, strict=True) for x in (q, s)))
    backwards = (slice(None, None, -1), slice(None))  # along each axis: the shifts reversed
    flipped = split[(slice(None),) * 3 + backwards * dims]
    order = (0, *(3 + 2 * a for a in range(dims)), 1, *(4 + 2 * a for a in range(dims)), 2)
    matrix = np.ascontiguousarray(flipped.transpose(order)).reshape(groups, window * r, phases * cg)
    # The inputs channels last, with k/s - 1 zeros before each axis and enough after for every
    # block, and each block's window of them as a view: (G, N, *blocks, *reach, R).
    padded_sizes = tuple(b + q - 1 for b, q in zip(blocks, reach, strict=True))
    budget.charge(budget.nbytes((groups, n, *padded_sizes, r), rows.dtype), "its input padded for windows")
    padded = np.zeros((groups, n, *padded_sizes, r), rows.dtype)
    inner = tuple(slice(q - 1, q - 1 + i) for q, i in zip(reach, in_sizes, strict=True))
    unpadded = rows.reshape(groups, n, *in_sizes, r)
    st = padded.strides
    windows = np.lib.stride_tricks.as_strided(
        padded, (groups, n, *blocks, *reach, r), (*st[:2 + dims], *st[2:2 + dims], st[-1]), writeable=False)
    positions = math.prod(blocks)
    threads = min(parallel.threads(), n)
    loops = backend.gemm_loops("compiled_col2im", dims, rows, weight)
    # A block position's columns, and its products: one phase's, or with the compiled loops every phase's
    width = window * r + (cg if loops is None else phases * cg)
    per = max(1, min(n, _WINDOW_BLOCK_BYTES // max(1, positions * width * rows.itemsize)))
    budget.charge(budget.nbytes((threads * per * positions, width), rows.dtype), "its products")
    budget.charge(budget.nbytes((n, channels, *sizes), rows.dtype), what)
    out = np.empty((n, channels, *sizes), rows.dtype)
    # Per phase along each axis: the first output position it holds, its first block, how many
    # (output y is position y + padding of the uncropped grid: block (y + p) // s, phase (y + p) % s).
    axes = [[((ph - p) % s, ((ph - p) % s + p) // s, len(range((ph - p) % s, size, s))) for ph in range(s)]
            for s, p, size in zip(strides, g.padding, sizes, strict=True)]
    if loops is not None:
        gemm = blas.sgemm()
        shift = backend.loop_bias(bias)
        first_rows, first_columns = (np.array(axis, np.int64) for axis in axes)

        def compiled_run(b: slice) -> None:
            np.copyto(padded[(slice(None), b) + inner], unpadded[:, b])
            columns, products = (np.empty(per * positions * w, rows.dtype) for w in (window * r, phases * cg))
            loops.windows_2d(gemm, padded, matrix, shift, out, columns, products, first_rows, first_columns,
                             *blocks, *reach, b.start, b.stop, per)

        parallel.split(compiled_run, n, n * positions * window * r * phases * cg)
        return out

    # Per phase along the last axis, its own columns: that axis's blocks exactly the phase's,
    # the first axis's blocks first (then the examples), so each phase along the first axis is
    # a contiguous run of the rows: each phase's GEMM computes only its own outputs.
    phase_of = {phase: i for i, phase in enumerate(itertools.product(*(range(s) for s in strides)))}

    def run(b: slice) -> None:
        columns = np.empty(per * positions * window * r, rows.dtype)
        products = np.empty(per * positions * cg, rows.dtype)
        # Each thread pads its own examples (transposed to channels last) as it starts: done
        # whole before the split, it was a serial pass (0.47 ms of DCGAN's 16×128×16×16 at one thread).
        np.copyto(padded[(slice(None), b) + inner], unpadded[:, b])
        for start in range(b.start, b.stop, per):
            block = slice(start, min(start + per, b.stop))
            count = block.stop - block.start
            for group in range(groups):
                channels_of = slice(group * cg, (group + 1) * cg)
                for last, (_, j0, m_last) in enumerate(axes[-1]):
                    if m_last == 0:
                        continue
                    # (first axis's blocks, examples, middle axes' blocks, the phase's last-axis
                    # blocks, *reach, R)
                    shape = (blocks[0], count, *blocks[1:-1], m_last, *reach, r)
                    cols = columns[:math.prod(shape)].reshape(shape)
                    mine: tuple[int | slice, ...] = (group, block, *(slice(None),) * (dims - 1),
                                                     slice(j0, j0 + m_last))
                    np.copyto(cols, np.moveaxis(windows[mine], 1, 0))
                    flat = cols.reshape(-1, window * r)
                    per_row = math.prod(shape[1:-1 - dims])  # rows a block of the first axis
                    for others in itertools.product(*(range(s) for s in strides[:-1])):
                        phase = (*others, last)
                        at = [axis[ph] for axis, ph in zip(axes, phase, strict=True)]
                        if any(m == 0 for _, _, m in at[:-1]):
                            continue
                        (_, i0, m0), middle = at[0], at[1:-1]
                        index = phase_of[phase]
                        made = products[:m0 * per_row * cg].reshape(m0 * per_row, cg)
                        taps = matrix[group][:, index * cg:(index + 1) * cg]
                        np.matmul(flat[i0 * per_row:(i0 + m0) * per_row], taps, out=made)
                        grid = made.reshape(m0, count, *shape[2:-1 - dims], cg)
                        read = (slice(None), slice(None), *(slice(i, i + m) for _, i, m in middle))
                        # (examples, C/G, *sizes) of this phase
                        source = grid[read].transpose(1, dims + 1, 0, *range(2, dims + 1))
                        every_s = (slice(y0, None, s) for (y0, _, _), s in zip(at, strides, strict=True))
                        written: tuple[slice, ...] = (block, channels_of, *every_s)
                        target = out[written]
                        if bias is None:
                            np.copyto(target, source)
                        else:
                            np.add(source, bias[channels_of].reshape(-1, *(1,) * dims), out=target)

    parallel.split(run, n, n * positions * window * r * phases * cg)
    return out
