"""A 2-D 3×3 convolution at stride 1 by Winograd's minimal filtering F(4×4, 3×3).

Each 6×6 tile of the padded input (tiles 4 apart) and each 3×3 kernel are transformed to 6×6
(``V = Bᵀ d B``, ``U = G g Gᵀ``); their elementwise products summed over the input channels
are 36 GEMMs, (O, C) by (C, tiles), one per tile position; the output transform ``Aᵀ M A``
turns each 6×6 sum into a 4×4 block of the output. The GEMMs do 36 multiply-adds per 16
outputs and channel pair against direct convolution's 144: a quarter of the arithmetic. The
transforms are GEMMs too (``Bᵀ`` on one axis, then the other; ``Aᵀ`` likewise), so every
pass but the tiles' gather and the output's scatter runs on BLAS. With the compiled kernels
(the accel extra) float32's transforms run on ``compiled_winograd``'s loops instead, three
times faster: then 16 channels take it too, and a training forward (``trains``), and the
backward of a forward that kept its input (``gradients``, the forward's transpose: the output
gradient's tiles A dY Aᵀ once, against the input's tiles for the weight's gradient, then Gᵀ dU
G; through the transformed weight and back through the input transform, B dV Bᵀ, for the
input's), on 16 channels too: its error there reaches only the update, not BatchNorm's
statistics as a forward's would.

Its float32 error is about ten times im2col's: over 1,152-term sums (128 channels) of unit
inputs and Xavier-scaled weights, 3e-5 against 3e-6 of the largest output (the transforms'
coefficients up to 8 and their 1/24 rounding). The transforms' extra passes cost as much as
the saved arithmetic where the channels are few (16), so ``usable`` asks for ``MIN_CHANNELS``;
the weight's transform outweighs it where they are many or the tiles few (``MAX_CHANNELS``,
``MIN_TILES``). The transform is kept between calls while the weight's bits stay the same
(``derived``): a loaded model's inference pays it once (128 channels on 4×4, batch 32, 2
threads: 1.59 → 1.04 ms a call); the limits were measured with it paid at every call.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import budget
from . import backend, blas, derived, parallel

if TYPE_CHECKING:
    from .columns import Geometry

__all__ = ["TILE", "SPAN", "BT", "G", "G_KRON_G", "AT", "compiled", "usable", "trains", "forward",
           "transformed_weight", "gradients_usable", "gradients"]

TILE = 4  # output positions along each axis per tile
SPAN = TILE + 2  # the input positions a tile reads along each axis
BT = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
               [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64)
G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64)
G_KRON_G = np.kron(G, G)  # (36, 9): G w Gᵀ of a 3×3 kernel w, flattened, as one product
AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
              np.float64)

# Measured at 2 threads, batch 32, 3×3 padded by 1, in one process alternating, min of 15 on a
# shared machine (ms, im2col or ``shifted`` → here): inference 32 channels on 16×16 2.21 → 2.01,
# 64 on 8×8 1.79 → 1.30, 128 on 4×4 1.63 → 1.15; input gradients 2.36 → 2.08, 1.75 → 1.30, 1.97
# (col2im) → 1.29. It lost on 16 channels of 32×32: 1.70 → 2.53, the gradient 1.43 → 2.31.
MIN_CHANNELS = 32
# With the compiled transforms (``compiled_winograd``: float32, the accel extra) the transforms
# cost a third of numpy's, and 16 channels win too. Measured at 2 threads, batch 32, 16 → 16 on
# 32×32 (ms): ``shifted`` 1.83–2.15, Winograd on numpy's transforms 2.50, on the compiled ones 1.44.
MIN_CHANNELS_COMPILED = 16
# It also lost where the weight's transform, 324 multiply-adds per (output, input) channel pair
# at every call on a K=9 GEMM that runs at a fraction of BLAS's speed, outweighs what the tiles
# save (108 per tile and pair), and where im2col's one GEMM over 9·C runs near BLAS's peak.
# Measured at 2 threads (ms, Winograd / im2col or ``shifted``): 512 channels on 7×7, batch 1, 4
# and 8: 8.2/3.7, 22.1/10.8, 26.8/14.3 (the transform alone 5.1); 256 on 14×14 3.3/1.8,
# 9.4/7.0, 18.2/12.8; 256 on 7×7, batch 32, 16.9/13.1; 128 on 4×4, one tile, 0.57/0.44;
# against 128 on 28×28, batch 4 and 8, 5.4/6.5 and 8.8/12.5, and 64 on 8×8, batch 32 (128
# tiles), 1.34/2.10. So it takes at most ``MAX_CHANNELS`` channels, at least ``MIN_TILES`` tiles
# in the batch, and at least an example per thread (with fewer, its blocks ran on one core
# while the other paths' GEMMs took every core: 64 channels on 56×56, batch 1, 2.47/1.91).
# (At 32 tiles, 128 channels on 4×4, it measured 1.59/1.36 for the forward, but its input
# gradient had gained more against col2im; ResNet-18-style training steps alternating with and
# without it were within noise, so that shape keeps it.)
MAX_CHANNELS = 128
MIN_TILES = 32
# A block of a thread's examples holds at most this many tile values (36 a tile and channel), so
# its tiles, transforms and products stay near the cache (and the scratch stays bounded).
BLOCK_VALUES = 1 << 20


def usable(x: np.ndarray, weight: np.ndarray, g: Geometry) -> bool:
    """Whether this convolution is a 2-D 3×3 one at stride 1, undilated and ungrouped, with
    ``MIN_CHANNELS`` to ``MAX_CHANNELS`` input and output channels, and enough tiles and
    examples for it to win (see ``MAX_CHANNELS``)."""
    if not (x.ndim == 4 and g.kernel == (3, 3) and g.strides == (1, 1) and g.dilation == (1, 1)
            and g.groups == 1 and x.dtype in (np.float32, np.float64)):
        return False
    channels = (x.shape[1], weight.shape[0])
    least = MIN_CHANNELS_COMPILED if compiled(x.dtype) else MIN_CHANNELS
    if min(channels) < least or max(channels) > MAX_CHANNELS:
        return False
    rows, cols = (-(-size // TILE) for size in g.out_sizes(x.shape[2:]))
    return x.shape[0] * rows * cols >= MIN_TILES and x.shape[0] >= parallel.threads()


def trains(x: np.ndarray, weight: np.ndarray, g: Geometry) -> bool:
    """Whether a training forward takes it: ``usable`` on the compiled transforms (with numpy's,
    im2col's forward and the columns it keeps for the weight's gradient cost less), from
    ``MIN_CHANNELS`` channels. (On 16, its rounding, ten times im2col's, left ResNet-18-style's
    stem weights after one SGD step 1.9 times ``bench/compute.py``'s tolerance from torch's,
    against 0.002 times with those forwards on ``shifted``: BatchNorm on the batch's statistics
    magnifies it where a channel's values spread little.)"""
    return compiled(x.dtype) and min(x.shape[1], weight.shape[0]) >= MIN_CHANNELS and usable(x, weight, g)


def gradients_usable(x: np.ndarray, weight: np.ndarray, g: Geometry) -> bool:
    """Whether a deferred forward's gradients (its input x kept, no columns) take
    ``gradients``: the compiled transforms in use, a 2-D 3×3 float32 convolution at stride 1,
    undilated and ungrouped, ``MIN_CHANNELS_COMPILED`` to ``MAX_CHANNELS`` channels and at
    least ``MIN_TILES`` tiles in the batch. The thread count plays no part (the bits would)."""
    if not (x.ndim == 4 and g.kernel == (3, 3) and g.strides == (1, 1) and g.dilation == (1, 1)
            and g.groups == 1 and compiled(x.dtype)):
        return False
    channels = (x.shape[1], weight.shape[0])
    if min(channels) < MIN_CHANNELS_COMPILED or max(channels) > MAX_CHANNELS:
        return False
    rows, cols = (-(-size // TILE) for size in g.out_sizes(x.shape[2:]))
    return x.shape[0] * rows * cols >= MIN_TILES


def transformed_weight(weight: np.ndarray) -> np.ndarray:
    """``G w Gᵀ`` of every (output, input) kernel as (36, O, C): one GEMM with G ⊗ G."""
    o, c = weight.shape[:2]
    kron = G_KRON_G.astype(weight.dtype)
    budget.charge(budget.nbytes((SPAN * SPAN, o, c), weight.dtype), "its transformed weight")
    with blas.for_product(SPAN * SPAN, o * c, 9):  # (threaded, BLAS's workers spin on our cores)
        return (kron @ weight.reshape(o * c, 9).T).reshape(SPAN * SPAN, o, c)


def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, g: Geometry,
            out_sizes: tuple[int, ...], *, keep_transform: bool = False) -> np.ndarray:
    """x (N, C, H, W) correlated with weight (O, C, 3, 3), plus bias: (N, O, *out_sizes), for
    a 3×3 stride-1 convolution (any padding); ``keep_transform`` where the weight is a layer's,
    likely called again with the same bits (inference, or a training forward whose backward
    uses it: ``gradients``; not a gradient's flipped copy). The
    batch is split over ``parallel``'s threads, each running its examples' blocks (at most
    ``BLOCK_VALUES`` tile values) through the gather, the transforms and the GEMMs on one BLAS
    thread: run whole, the GEMMs' threaded BLAS left its workers spinning on the cores the
    next passes need."""
    n, c, height, width = x.shape
    o, dtype = weight.shape[0], x.dtype
    rows, cols = -(-out_sizes[0] // TILE), -(-out_sizes[1] // TILE)
    tiles = rows * cols
    share = -(-n // min(n, parallel.threads()))  # a thread's examples
    per = max(1, min(share, BLOCK_VALUES // (SPAN * SPAN * max(c, o) * tiles)))
    def transform(kernel: np.ndarray) -> np.ndarray:
        return transformed_weight(kernel.astype(dtype, copy=False))

    u = derived.derived(weight, f"winograd {dtype}", transform, keep=keep_transform)
    if compiled(dtype):
        return _forward_compiled(x, u, bias, g, out_sizes, per)
    bt, at = BT.astype(dtype), AT.astype(dtype)
    full = (rows * TILE, cols * TILE)
    exact = full == tuple(out_sizes)
    padded = (full[0] + 2, full[1] + 2)
    # the input's rows and columns inside the padded planes (padding past the tiles dropped)
    into = tuple(slice(max(0, p), min(size + p, limit)) for p, size, limit in
                 zip(g.padding, (height, width), padded, strict=True))
    reads = tuple(slice(s.start - p, s.stop - p) for s, p in zip(into, g.padding, strict=True))
    values = per * tiles * SPAN * SPAN
    # the padded planes; the tiles, both transforms' and the GEMMs' products; the output's two
    scratch = c * per * math.prod(padded) + 4 * values * max(c, o) + TILE * (SPAN + TILE) * o * per * tiles
    if not exact:
        scratch += per * o * math.prod(full)
    budget.charge(parallel.threads() * budget.nbytes((scratch,), dtype),
                  "its Winograd tiles, a block a thread")
    budget.charge(budget.nbytes((n, o, *out_sizes), dtype), "its output")
    out = np.empty((n, o, *out_sizes), dtype)
    shift = None if bias is None else bias.astype(dtype, copy=False).reshape(1, o, 1, 1, 1, 1)

    def run(chunk: slice) -> None:
        planes = np.zeros((c, per, *padded), dtype)  # the padding stays zero
        st = planes.strides
        room = np.empty(values * c, dtype)
        whole = None if exact else np.empty((per, o, *full), dtype)
        for first in range(chunk.start, chunk.stop, per):
            count = min(per, chunk.stop - first)
            block = slice(first, first + count)
            np.copyto(planes[:, :count, into[0], into[1]], x[block, :, reads[0], reads[1]].swapaxes(0, 1))
            view = as_strided(planes, (SPAN, c, count, rows, cols, SPAN),
                              (st[2], st[0], st[1], st[2] * TILE, st[3] * TILE, st[3]), writeable=False)
            gathered = room[:view.size].reshape(SPAN, c * count * tiles, SPAN)
            np.copyto(gathered.reshape(view.shape), view)  # (i, C, count, rows, cols, j)
            # Bᵀ along the columns (j → v), then along the rows (i → u): (u, v, C, count·tiles)
            columns = np.matmul(bt, gathered.transpose(0, 2, 1))
            v = np.matmul(bt, columns.reshape(SPAN, -1)).reshape(SPAN * SPAN, c, count * tiles)
            m = np.matmul(u, v)  # (36, O, count·tiles)
            # Aᵀ along the rows (u → p), then the columns (v → q), q last: (p, O·count·tiles, q)
            left_done = np.matmul(at, m.reshape(SPAN, -1)).reshape(TILE, SPAN, -1)
            y = np.matmul(left_done.transpose(0, 2, 1), at.T).reshape(TILE, o, count, rows, cols, TILE)
            target = out[block] if whole is None else whole[:count]
            laid = target.reshape(count, o, rows, TILE, cols, TILE).transpose(3, 1, 0, 2, 4, 5)
            if shift is None:
                np.copyto(laid, y)
            else:
                np.add(y, shift, out=laid)
            if whole is not None:
                np.copyto(out[block], target[:, :, :out_sizes[0], :out_sizes[1]])

    parallel.split(run, n, n * tiles * SPAN * SPAN * c * o)
    return out


def compiled(dtype: np.dtype) -> bool:
    """Whether the transforms run on ``compiled_winograd``'s loops (compiled kernels, float32)."""
    return backend.compiled() is not None and dtype == np.float32


def _forward_compiled(x: np.ndarray, u: np.ndarray, bias: np.ndarray | None, g: Geometry,
                      out_sizes: tuple[int, ...], per: int) -> np.ndarray:
    """``forward`` with the transforms on ``compiled_winograd``'s loops (float32): each block's
    tiles transformed straight from x, its GEMMs, and its output written with the bias."""
    from . import compiled_winograd

    n, c = x.shape[:2]
    o = u.shape[1]
    rows, cols = -(-out_sizes[0] // TILE), -(-out_sizes[1] // TILE)
    tiles = rows * cols
    x = np.ascontiguousarray(x)
    shift = backend.loop_bias(bias)
    # the block's transformed tiles and their GEMMs' sums, and what the loops hold meanwhile
    scratch = SPAN * SPAN * per * tiles * (c + o) + compiled_winograd.scratch_values(per, rows, cols)
    budget.charge(parallel.threads() * budget.nbytes((scratch,), x.dtype),
                  "its Winograd tiles, a block a thread")
    budget.charge(budget.nbytes((n, o, *out_sizes), x.dtype), "its output")
    out = np.empty((n, o, *out_sizes), x.dtype)
    top, left = g.padding

    def run(chunk: slice) -> None:
        v = np.empty((SPAN * SPAN, c, per * tiles), x.dtype)
        m = np.empty((SPAN * SPAN, o, per * tiles), x.dtype)
        for first in range(chunk.start, chunk.stop, per):
            count = min(per, chunk.stop - first)
            block_v, block_m = v[:, :, :count * tiles], m[:, :, :count * tiles]
            compiled_winograd.input_tiles(x, first, count, top, left, rows, cols, block_v)
            np.matmul(u, block_v, out=block_m)
            compiled_winograd.output_tiles(block_m, shift, first, count, rows, cols, out)

    parallel.split(run, n, n * tiles * SPAN * SPAN * c * o)
    return out


# ``gradients``'s tiles per run of examples at least (fewer runs then; with fewer than two,
# blocks split over the threads by examples and tile positions): each run's GEMMs sum over its
# tiles, and on small planes (a tile or four an example) runs of a quarter of the batch each
# on its thread made them too shallow (128 → 128 on 32×4×4 at 2 threads: 3.55 ms against
# 1.74). Between 64 and 512 it hardly mattered. Measured at 2 threads, medians of 25
# alternating (ms, 64 / 128 / 512, then im2col's blocks, ``conv_grads.weight_deferred``), for
# the weight's gradient alone: 128 → 128 on 32×4×4 1.67 / 1.63 / 1.63, 1.99; on 64×4×4 2.13 /
# 2.03 / 2.08, 2.99; on 32×8×8 3.93 / 3.94 / 3.94, 4.33; on 8×14×14 3.34 / 3.34 / 3.28, 3.23;
# 64 → 64 on 32×8×8 1.43 / 1.42 / 1.42, 1.68; 32 → 32 on 32×16×16 1.25 / 1.20 / 1.21, 2.33;
# 16 → 32 on 32×16×16 0.86 / 0.83 / 0.84, 1.46; 64 → 64 on 4×28×28 2.09 / 2.11 / 2.11, 2.30.
MIN_TILES_PER_RUN = 128


def gradients(grad: np.ndarray, x: np.ndarray, weight: np.ndarray, g: Geometry, *, need_x: bool = True
              ) -> tuple[np.ndarray | None, np.ndarray]:
    """The input's gradient (if ``need_x``) and the weight's of a 3×3 stride-1 convolution on
    the compiled transforms (float32, ``gradients_usable``), from its input x, its weight and
    the output's gradient (N, O, *out): the forward's transpose, in Winograd's domain.

    The output's gradient goes back through the output transform (A dY Aᵀ,
    ``compiled_winograd.gradient_tiles``) once, for both: against the input's tiles (Bᵀ d B,
    as the forward) its products summed over the tiles are the weight's, 36 GEMMs (O, tiles)
    by (tiles, C), then Gᵀ dU G; through the transformed weight's transpose (36 GEMMs (C, O)
    by (O, tiles)) and back through the input transform (B dV Bᵀ, the tiles' overlaps added,
    ``compiled_winograd.input_gradient``) the input's. A quarter of im2col's multiply-adds, no
    columns nine times the input, and neither the flipped kernel's transform nor the gradient's
    6×6 tiles that a flipped Winograd forward would take.

    The batch goes in runs of examples, ``parallel.REDUCTION_CHUNKS`` of them where each has
    ``MIN_TILES_PER_RUN`` tiles, each run's blocks on one thread and the runs' weight sums
    added in order (``_in_runs``); with too few tiles for two, in blocks whose transforms are
    split over the threads by examples and whose GEMMs by tile position (``_in_blocks``). Both
    are sized from the shapes alone: the same bits at any thread count."""
    n = x.shape[0]
    tiles = _tiling(grad)[2]
    runs = min(parallel.REDUCTION_CHUNKS, n, n * tiles // MIN_TILES_PER_RUN)
    x, grad = np.ascontiguousarray(x), np.ascontiguousarray(grad)
    u = _training_transform(weight) if need_x else None
    grad_x = None
    if need_x:
        budget.charge(budget.nbytes(x.shape, x.dtype), "its input's gradient")
        grad_x = np.empty(x.shape, x.dtype)
    if runs > 1:
        total = _in_runs(grad, x, g, weight.shape[0], runs, u, grad_x)
    else:
        total = _in_blocks(grad, x, g, weight.shape[0], u, grad_x)
    kron = G_KRON_G.astype(x.dtype)  # (36, 9)
    o, c = total.shape[1:]
    with blas.for_product(9, o * c, SPAN * SPAN):  # (threaded, BLAS's workers spin on our cores)
        # (O·C, 9): the weight's layout, no transposed copy (128 channels: 0.58 → 0.45 ms)
        flat = total.reshape(SPAN * SPAN, o * c).T @ kron
    return grad_x, flat.reshape(weight.shape)


def _training_transform(weight: np.ndarray) -> np.ndarray:
    """The weight's transform (36, O, C) for a training step's forward and its backward: kept
    (``derived``) from the forward's call to the backward's while the weight's bits stay."""
    def transform(kernel: np.ndarray) -> np.ndarray:
        return transformed_weight(kernel.astype(np.float32, copy=False))

    return derived.derived(weight, f"winograd {np.dtype(np.float32)}", transform)


def _tiling(grad: np.ndarray) -> tuple[int, int, int]:
    """(rows, cols, tiles) of the output's (its gradient's) 4×4 tiles."""
    rows, cols = -(-grad.shape[2] // TILE), -(-grad.shape[3] // TILE)
    return rows, cols, rows * cols


def _in_runs(grad: np.ndarray, x: np.ndarray, g: Geometry, o: int, runs: int, u: np.ndarray | None,
             grad_x: np.ndarray | None) -> np.ndarray:
    """``gradients``'s dU (36, O, C) summed in ``runs`` runs of the batch, a thread taking
    whole runs, each run's blocks transformed and multiplied on it, the runs' sums added in
    order; each block's input gradient written into ``grad_x`` (through ``u``) on the way."""
    from . import compiled_winograd

    n, c = x.shape[:2]
    rows, cols, tiles = _tiling(grad)
    bounds = [n * i // runs for i in range(runs + 1)]
    per = max(1, min(-(-n // runs), BLOCK_VALUES // (SPAN * SPAN * (c + o) * tiles)))
    # a block's tiles of both, a run's product, and what the loops hold meanwhile
    scratch = (SPAN * SPAN * (per * tiles * (c + o) + o * c)
               + compiled_winograd.scratch_values(per, rows, cols))
    budget.charge(parallel.threads() * budget.nbytes((scratch,), x.dtype),
                  "its Winograd tiles, a block a thread")
    budget.charge(budget.nbytes((runs, SPAN * SPAN, o, c), x.dtype), "its runs' weight-gradient products")
    parts = np.empty((runs, SPAN * SPAN, o, c), x.dtype)
    top, left = g.padding

    def run(chunk: slice) -> None:
        v = np.empty((SPAN * SPAN, c, per * tiles), x.dtype)
        dm = np.empty((SPAN * SPAN, o, per * tiles), x.dtype)
        product = np.empty((SPAN * SPAN, o, c), x.dtype)
        for part in range(chunk.start, chunk.stop):
            for first in range(bounds[part], bounds[part + 1], per):
                count = min(per, bounds[part + 1] - first)
                block_v, block_m = v[:, :, :count * tiles], dm[:, :, :count * tiles]
                compiled_winograd.input_tiles(x, first, count, top, left, rows, cols, block_v)
                compiled_winograd.gradient_tiles(grad, first, count, rows, cols, block_m)
                into = parts[part] if first == bounds[part] else product
                np.matmul(block_m, block_v.transpose(0, 2, 1), out=into)
                if first != bounds[part]:
                    parts[part] += product
                if grad_x is not None and u is not None:  # the input's tiles' gradient, in their place
                    np.matmul(u.transpose(0, 2, 1), block_m, out=block_v)
                    compiled_winograd.input_gradient(block_v, first, count, top, left, rows, cols, grad_x)

    parallel.split(run, runs, n * tiles * SPAN * SPAN * c * o * (1 if grad_x is None else 2))
    return parallel.added_in_order(parts)


def _in_blocks(grad: np.ndarray, x: np.ndarray, g: Geometry, o: int, u: np.ndarray | None,
               grad_x: np.ndarray | None) -> np.ndarray:
    """``gradients``'s dU (36, O, C) for a batch of few tiles: blocks of examples, each
    block's transforms split over the threads by examples, its 36 GEMMs by tile position
    (each whole on one thread: with a run per thread they were a few tiles deep), the blocks'
    sums added in order; each block's input gradient (through ``u``) into ``grad_x``."""
    from . import compiled_winograd

    n, c = x.shape[:2]
    rows, cols, tiles = _tiling(grad)
    per = max(1, min(n, BLOCK_VALUES // (SPAN * SPAN * (c + o) * tiles)))
    scratch = SPAN * SPAN * (per * tiles * (c + o) + 2 * o * c)
    budget.charge(budget.nbytes((scratch,), x.dtype) + parallel.threads() * budget.nbytes(
        (compiled_winograd.scratch_values(per, rows, cols),), x.dtype), "its Winograd tiles")
    top, left = g.padding
    v = np.empty((SPAN * SPAN, c, per * tiles), x.dtype)
    dm = np.empty((SPAN * SPAN, o, per * tiles), x.dtype)
    total = np.empty((SPAN * SPAN, o, c), x.dtype)
    product = np.empty_like(total) if per < n else total
    for first in range(0, n, per):
        count = min(per, n - first)
        block_v, block_m = v[:, :, :count * tiles], dm[:, :, :count * tiles]
        into = total if first == 0 else product

        def transform(b: slice, first: int = first, block_v: np.ndarray = block_v,
                      block_m: np.ndarray = block_m) -> None:
            at = slice(b.start * tiles, b.stop * tiles)
            compiled_winograd.input_tiles(x, first + b.start, b.stop - b.start, top, left, rows, cols,
                                          block_v[:, :, at])
            compiled_winograd.gradient_tiles(grad, first + b.start, b.stop - b.start, rows, cols,
                                             block_m[:, :, at])

        def multiply(p: slice, block_v: np.ndarray = block_v, block_m: np.ndarray = block_m,
                     into: np.ndarray = into) -> None:
            np.matmul(block_m[p], block_v[p].transpose(0, 2, 1), out=into[p])
            if u is not None:  # the input's tiles' gradient, in their place
                np.matmul(u[p].transpose(0, 2, 1), block_m[p], out=block_v[p])

        def back(b: slice, first: int = first, block_v: np.ndarray = block_v) -> None:
            at = slice(b.start * tiles, b.stop * tiles)
            compiled_winograd.input_gradient(block_v[:, :, at], first + b.start, b.stop - b.start, top, left,
                                             rows, cols, grad_x)

        parallel.split(transform, count, count * tiles * SPAN * SPAN * (c + o) * 8)
        parallel.split(multiply, SPAN * SPAN, count * tiles * SPAN * SPAN * c * o * (1 if u is None else 2))
        if grad_x is not None:
            parallel.split(back, count, count * tiles * SPAN * SPAN * c * 8)
        if first:
            total += product
    return total
