"""A 3-D k×3×3 convolution at stride 1 on ``winograd``'s F(4×4, 3×3), the depth taps summed
in the GEMMs' reduction.

At output depth z, a k×3×3 correlation is the sum over its depth taps t of the 2-D 3×3
correlations of input slice z + t. Each (H, W) slice is transformed once into its tiles'
values V (``winograd``'s Bᵀ d B, 36 a tile and channel), laid channels last with the slices
outside the channels: each tile's (slice, channel) values are one run, and the k slices that
output depth z reads are k·C consecutive values of it. So z is 36 GEMMs (O, k·C) by
(k·C, tiles), their second operand read in place, with the weight transformed tap by tap,
(36, O, k·C); Aᵀ M A turns the sums into 4×4 blocks of the output. A quarter of direct
convolution's multiplications, in GEMMs k times deeper than the 2-D ones.

Training: the input's gradient is this forward of the flipped kernel (``conv._full_correlation``);
the weight's is its transpose (``weight_grad``): the output gradient's tiles taken back through
the output transform (A dY Aᵀ), multiplied with the input's transformed tiles over every
(tile, slice) (one GEMM per depth tap, (C, tiles·slices) by (tiles·slices, O)), then Gᵀ · G.

The work goes in items of a few examples and a run of output depths (``_tiling``), chosen
from the shapes alone: the same GEMMs whatever the thread count, so the same bits. The float32
error is ``winograd``'s (its transforms'): about 1e-5 of the largest output where im2col's is
1e-6 (measured 7e-6 on 32 → 32 channels, forward and both gradients).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import budget
from . import blas, derived, parallel, winograd
from .winograd import SPAN, TILE

if TYPE_CHECKING:
    from .columns import Geometry

__all__ = ["usable", "forward", "weight_grad"]

# Measured at 2 threads, 3×3×3 padded by 1, in one process alternating, medians of 11 on a busy
# machine (ms, the paths before → here): 32 → 32 on 4×8×28×28 inference 21.7 → 12.4, input
# gradient 15.5 → 9.6, weight gradient 13.4 → 10.9, the whole training step 43.3 → 31.5; 16 → 16
# even to a little ahead (on 4×8×28×28 the step 14.8 → 14.3, on 8×8×14×14 11.0 → 10.4).
MIN_CHANNELS = 16
# An item's transformed tiles hold at most about this many values (36 a tile, channel and
# slice), so its tiles, transforms and products stay near the cache.
BLOCK_VALUES = 1 << 20
# Items at least, where the batch and depth allow: both threads get work.
MIN_ITEMS = 4
TILES_CHARGE = "its Winograd tiles, a block a thread"


def usable(x: np.ndarray, weight: np.ndarray, g: Geometry) -> bool:
    """Whether this convolution is a 3-D k×3×3 one at stride 1, undilated and ungrouped, with
    at least ``MIN_CHANNELS`` input and output channels."""
    return (
        x.ndim == 5 and g.kernel[1:] == (3, 3) and g.strides == (1, 1, 1) and g.dilation == (1, 1, 1)
        and g.groups == 1 and min(x.shape[1], weight.shape[0]) >= MIN_CHANNELS
        and x.dtype in (np.float32, np.float64)
    )


@dataclass(frozen=True)
class _Tiling:
    """Where the tiles lie and how the work is cut: tiles per (H, W) axis; a padded slice's
    sizes; where the input goes in it and what it reads; the depth padding and taps; each
    item's (first example, examples, first output depth, output depths)."""

    rows: int
    cols: int
    plane: tuple[int, int]
    into: tuple[slice, slice]
    reads: tuple[slice, slice]
    pad_depth: int
    taps: int
    per: int  # examples an item, at most
    chunk: int  # output depths an item, at most
    items: list[tuple[int, int, int, int]]

    @property
    def tiles(self) -> int:
        return self.rows * self.cols

    @property
    def slices(self) -> int:
        """Input slices an item reads, at most."""
        return self.chunk + self.taps - 1


def _tiling(x_shape: tuple[int, ...], out_sizes: tuple[int, ...], g: Geometry, channels: int) -> _Tiling:
    """The tiles and items of a convolution of input ``x_shape`` with ``channels`` the wider
    side: one item per example and depth run while an example's tiles exceed
    ``BLOCK_VALUES`` (or the batch has fewer than ``MIN_ITEMS`` examples), else whole
    examples, a few an item."""
    n, height, width = x_shape[0], x_shape[3], x_shape[4]
    depth, taps = out_sizes[0], g.kernel[0]
    rows, cols = -(-out_sizes[1] // TILE), -(-out_sizes[2] // TILE)
    plane = (rows * TILE + 2, cols * TILE + 2)
    into = tuple(slice(max(0, p), min(size + p, limit)) for p, size, limit in
                 zip(g.padding[1:], (height, width), plane, strict=True))
    reads = tuple(slice(s.start - p, s.stop - p) for s, p in zip(into, g.padding[1:], strict=True))
    slice_values = SPAN * SPAN * channels * rows * cols
    runs = max(-(-MIN_ITEMS // n), -(-slice_values * (depth + taps - 1) // BLOCK_VALUES))
    chunk = -(-depth // min(depth, runs))
    whole = BLOCK_VALUES // (slice_values * (depth + taps - 1))  # examples an item's values allow
    per = 1 if chunk < depth else max(1, min(-(-n // MIN_ITEMS), whole))
    items = [(first, min(per, n - first), z, min(chunk, depth - z))
             for first in range(0, n, per) for z in range(0, depth, chunk)]
    return _Tiling(rows, cols, plane, (into[0], into[1]), (reads[0], reads[1]), g.padding[0], taps,
                   per, chunk, items)


def _fill(planes: np.ndarray, x: np.ndarray, t: _Tiling, item: tuple[int, int, int, int]) -> None:
    """Copy an item's input slices into ``planes`` (examples, *plane, slices, C), channels
    last: depth slices outside the input zeroed, the (H, W) padding left zero as allocated."""
    first, count, z, depths = item
    used = depths + t.taps - 1
    low = z - t.pad_depth  # the input slice read by slice 0 of the planes
    start, stop = min(max(0, -low), used), max(0, min(used, x.shape[2] - low))
    if stop <= start:
        planes[:count, :, :, :used] = 0
        return
    planes[:count, :, :, :start] = 0
    planes[:count, :, :, stop:used] = 0
    source = x[first:first + count, :, low + start:low + stop, t.reads[0], t.reads[1]]
    np.copyto(planes[:count, t.into[0], t.into[1], start:stop], source.transpose(0, 3, 4, 2, 1))


def _transformed(planes: np.ndarray, t: _Tiling, count: int, used: int, room: np.ndarray) -> np.ndarray:
    """Bᵀ d B of every tile of ``planes``' first ``count`` examples and ``used`` slices, as
    (36, count·tiles, used, C): each tile's slices and channels one contiguous run, so the
    gather copies runs of slices·C values (where channels-first tiles copied runs of 6, at a
    tenth of the speed) and both transforms are GEMMs over them."""
    st = planes.strides  # (examples, H, W, slices, C)
    run = used * planes.shape[4]
    view = as_strided(planes, (SPAN, SPAN, count, t.rows, t.cols, run),
                      (st[2], st[1], st[0], st[1] * TILE, st[2] * TILE, st[4]), writeable=False)
    size = view.size
    gathered = room[:size].reshape(view.shape)  # (j, i, count, rows, cols, slices·C)
    np.copyto(gathered, view)
    bt = winograd.BT.astype(planes.dtype)
    # Bᵀ along the columns (j → v), then along the rows (i → u): (v, u, count·tiles, slices·C)
    columns = np.matmul(bt, gathered.reshape(SPAN, -1), out=room[size:2 * size].reshape(SPAN, -1))
    v = np.matmul(bt, columns.reshape(SPAN, SPAN, -1), out=room[:size].reshape(SPAN, SPAN, -1))
    return v.reshape(SPAN * SPAN, count * t.tiles, used, planes.shape[4])


def _weight_by_tap(weight: np.ndarray) -> np.ndarray:
    """G w Gᵀ of every (output, input, depth tap) kernel as (36, O, k·C), the taps outer and
    the 36 in ``_transformed``'s (v, u) order (the kernel's axes swapped for it)."""
    o, c, k = weight.shape[:3]
    by_tap = np.ascontiguousarray(weight.transpose(0, 2, 1, 4, 3)).reshape(o, k * c, 3, 3)
    return winograd.transformed_weight(by_tap)


def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, g: Geometry,
            out_sizes: tuple[int, ...], *, keep_transform: bool = False) -> np.ndarray:
    """x (N, C, D, H, W) correlated with weight (O, C, k, 3, 3), plus bias: (N, O, *out_sizes),
    for a stride-1 convolution (any padding). Each item's slices are copied into zero-padded
    channels-last planes, transformed, multiplied (one matmul call: 36 × depths GEMMs reading
    overlapping runs of the transformed slices), transformed back and written with the bias;
    the items run on ``parallel``'s threads, their GEMMs on one BLAS thread each.
    ``keep_transform`` as ``winograd.forward``'s (the weight's transform kept, ``derived``)."""
    n, c = x.shape[:2]
    o, taps, dtype = weight.shape[0], weight.shape[2], x.dtype
    t = _tiling(x.shape, out_sizes, g, max(c, o))
    u = derived.derived(weight, f"winograd3d {dtype}",
                        lambda kernel: _weight_by_tap(kernel.astype(dtype, copy=False)), keep=keep_transform)
    u = u[:, None]  # (36, 1, O, k·C)
    at = winograd.AT.astype(dtype)
    full = (t.rows * TILE, t.cols * TILE)
    exact = full == tuple(out_sizes[1:])
    inputs = SPAN * SPAN * t.per * t.tiles * t.slices * c  # an item's tiles, at most
    outputs = t.chunk * o * t.per * t.tiles
    scratch = t.per * math.prod(t.plane) * t.slices * c + 2 * inputs + SPAN * SPAN * outputs \
        + TILE * (SPAN + TILE) * outputs + (0 if exact else t.per * o * t.chunk * math.prod(full))
    budget.charge(parallel.threads() * budget.nbytes((scratch,), dtype), TILES_CHARGE)
    budget.charge(budget.nbytes((n, o, *out_sizes), dtype), "its output")
    out = np.empty((n, o, *out_sizes), dtype)
    shift = None if bias is None else bias.astype(dtype, copy=False).reshape(1, 1, o, 1, 1, 1, 1)

    def run(chunk: slice) -> None:
        planes = np.zeros((t.per, *t.plane, t.slices, c), dtype)  # the (H, W) padding stays zero
        room = np.empty(2 * inputs, dtype)
        sums = np.empty(SPAN * SPAN * outputs, dtype)
        left = np.empty(TILE * SPAN * outputs, dtype)
        whole = None if exact else np.empty((t.per, o, t.chunk, *full), dtype)
        for item in t.items[chunk]:
            first, count, z, depths = item
            _fill(planes, x, t, item)
            v = _transformed(planes, t, count, depths + taps - 1, room)  # (36, T, slices, C)
            width, s = count * t.tiles, v.strides
            # output depth z reads slices z … z + k − 1: k·C consecutive values of each tile
            reads = as_strided(v, (SPAN * SPAN, depths, taps * c, width), (s[0], s[2], s[3], s[1]),
                               writeable=False)
            m = sums[:SPAN * SPAN * depths * o * width].reshape(SPAN * SPAN, depths, o, width)
            np.matmul(u, reads, out=m)
            # Aᵀ along u (→ p) for each v, then along v (→ q), q last: ((p, depths·O·T), q)
            done = left[:TILE * m.size // SPAN].reshape(SPAN, TILE, -1)
            np.matmul(at, m.reshape(SPAN, SPAN, -1), out=done)
            y = np.matmul(done.reshape(SPAN, -1).T, at.T)
            y = y.reshape(TILE, depths, o, count, t.rows, t.cols, TILE)
            target = out[first:first + count, :, z:z + depths] if whole is None else whole[:count, :, :depths]
            laid = target.reshape(count, o, depths, t.rows, TILE, t.cols, TILE).transpose(4, 2, 1, 0, 3, 5, 6)
            if shift is None:
                np.copyto(laid, y)
            else:
                np.add(y, shift, out=laid)
            if whole is not None:
                cut = target[..., :out_sizes[1], :out_sizes[2]]
                np.copyto(out[first:first + count, :, z:z + depths], cut)

    parallel.split(run, len(t.items), n * math.prod(out_sizes) * o * c * taps * SPAN * SPAN // (TILE * TILE))
    return out


def weight_grad(grad: np.ndarray, x: np.ndarray, g: Geometry, shape: tuple[int, ...]) -> np.ndarray:
    """The weight's gradient (``shape``: O, C, k, 3, 3) of a convolution ``forward`` computed,
    from its input x and the output's gradient (N, O, *out): per item, the transformed input
    tiles transposed times the gradient's tiles through A dY Aᵀ (``_output_gradient``), one
    GEMM per depth tap with K = tiles·slices; the items summed in ``parallel.REDUCTION_CHUNKS``
    runs added in order (the same bits at any thread count); then Gᵀ dU G."""
    n, c = x.shape[:2]
    o, taps, dtype = shape[0], shape[2], x.dtype
    out_sizes = grad.shape[2:]
    t = _tiling(x.shape, out_sizes, g, max(c, o))
    full = (t.rows * TILE, t.cols * TILE)
    at = winograd.AT.astype(dtype)
    inputs = SPAN * SPAN * t.per * t.tiles * t.slices * c
    outputs = t.per * t.tiles * t.slices * o  # the gradient's tiles on the slices' grid
    # the gradient's planes, its tiles and their two transforms' products
    gradients = t.per * math.prod(full) * t.slices * o + (TILE + SPAN) ** 2 * outputs + taps * o
    scratch = t.per * math.prod(t.plane) * t.slices * c + 2 * inputs + gradients + SPAN * SPAN * o * taps * c
    budget.charge(parallel.threads() * budget.nbytes((scratch,), dtype), TILES_CHARGE)
    runs = min(parallel.REDUCTION_CHUNKS, len(t.items))
    bounds = [len(t.items) * i // runs for i in range(runs + 1)]
    budget.charge(budget.nbytes((runs, SPAN * SPAN, c, taps, o), dtype), "its runs' weight-gradient products")
    parts = np.zeros((runs, SPAN * SPAN, c, taps, o), dtype)

    def run(chunk: slice) -> None:
        planes = np.zeros((t.per, *t.plane, t.slices, c), dtype)
        room = np.empty(2 * inputs, dtype)
        laid = np.zeros((t.per, *full, t.slices, o), dtype)  # zeros before the output and past it
        scratch = np.empty(TILE * (TILE + SPAN) * outputs, dtype)
        sums = np.zeros(SPAN * SPAN * outputs + taps * o, dtype)  # (the last tap reads past the end: zeros)
        product = np.empty((SPAN * SPAN, c, taps, o), dtype)
        for part in range(chunk.start, chunk.stop):
            for item in t.items[bounds[part]:bounds[part + 1]]:
                first, count, z, depths = item
                used = depths + taps - 1
                _fill(planes, x, t, item)
                v = _transformed(planes, t, count, used, room)  # (36, T, slices, C)
                length = count * t.tiles * used
                dm = _output_gradient(grad, laid, scratch, sums, item, t, at)  # (36, T, slices, O)
                columns = v.reshape(SPAN * SPAN, length, c).transpose(0, 2, 1)
                for tap in range(taps):
                    shifted = as_strided(dm[(taps - 1 - tap) * o:], (SPAN * SPAN, length, o),
                                         (length * o * dm.itemsize, o * dm.itemsize, dm.itemsize),
                                         writeable=False)
                    np.matmul(columns, shifted, out=product[:, :, tap])
                parts[part] += product

    parallel.split(run, runs, n * math.prod(out_sizes) * o * c * taps * SPAN * SPAN // (TILE * TILE))
    total = parallel.added_in_order(parts)
    kron = winograd.G_KRON_G.astype(dtype)  # (36, 9): (v, u) by (b, a) in this order
    with blas.for_product(9, o * taps * c, SPAN * SPAN):  # (threaded, BLAS's workers spin on our cores)
        flat = kron.T @ total.reshape(SPAN * SPAN, -1)  # (9, C·k·O)
    return np.ascontiguousarray(flat.reshape(3, 3, c, taps, o).transpose(4, 2, 3, 1, 0))


def _output_gradient(grad: np.ndarray, laid: np.ndarray, scratch: np.ndarray, sums: np.ndarray,
                     item: tuple[int, int, int, int], t: _Tiling, at: np.ndarray) -> np.ndarray:
    """A dY Aᵀ of an item's output-gradient tiles, flat over (36, count·tiles, slices, O) (in
    ``sums``): the transpose of the forward's output transform. The gradient is laid channels
    last (``laid``, so its tiles gather as runs of slices·O values), output depth z at slice
    z + k − 1 and zeros at the first k − 1 slices, as past the output. The product for depth
    tap j then reads it from k − 1 − j slices on: slice s of a tile holds output depth s − j,
    and where that is outside the item, the zeros of this tile or the next (or the tail's)."""
    first, count, z, depths = item
    o, used = grad.shape[1], depths + t.taps - 1
    inner = laid[:count, :grad.shape[3], :grad.shape[4], t.taps - 1:used]
    np.copyto(inner, grad[first:first + count, :, z:z + depths].transpose(0, 3, 4, 2, 1))
    st = laid.strides  # (examples, H, W, slices, O)
    view = as_strided(laid, (TILE, TILE, count, t.rows, t.cols, used * o),
                      (st[2], st[1], st[0], st[1] * TILE, st[2] * TILE, st[4]), writeable=False)
    size = view.size
    tiles = scratch[:size].reshape(view.shape)  # (q, p, count, rows, cols, slices·O)
    np.copyto(tiles, view)
    # Σ over q (→ v), then over p (→ u), v outer: (v, u, count·tiles·slices·O)
    columns = scratch[size:size + SPAN * size // TILE].reshape(SPAN, -1)
    np.matmul(at.T, tiles.reshape(TILE, -1), out=columns)
    out = sums[:SPAN * SPAN * size // (TILE * TILE)]
    np.matmul(at.T, columns.reshape(SPAN, TILE, -1), out=out.reshape(SPAN, SPAN, -1))
    sums[out.size:out.size + (t.taps - 1) * o] = 0
    return sums[:out.size + (t.taps - 1) * o]
