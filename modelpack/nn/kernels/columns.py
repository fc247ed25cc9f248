"""im2col: where each output position of a convolution reads, and the two layouts of the
column matrix that gathers those reads for one GEMM (see ``conv``): the padded input, the
windows as a strided view, the columns channels last (N·P, G, K·C/G) or channels first
(N, G, C/G·K, P), the weight in the columns' order, and the output's gradient as the GEMMs
read it. Each gathering pass is returned with ``fill(chunk)``, so the caller can run it over
chunks of the batch on its own threads (``parallel.split``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from ...errors import InputError
from .. import budget
from . import parallel

__all__ = ["Sizes", "Geometry", "windows", "channels_last", "pad", "to_last", "columns_last", "columns_first",
           "weight_last", "per_group", "rows_of", "Where", "phase_offsets", "phase_reads",
           "fill_phase"]

Sizes = tuple[int, ...]


@dataclass(frozen=True)
class Geometry:
    """Where a convolution reads: kernel, strides, padding and dilation per axis, and groups."""

    kernel: Sizes
    strides: Sizes
    padding: Sizes
    dilation: Sizes
    groups: int = 1

    @property
    def span(self) -> Sizes:
        """The dilated kernel's extent per axis."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation, strict=True))

    def out_sizes(self, in_sizes: Sizes) -> Sizes:
        """Output positions per axis; an input smaller than the kernel's extent is refused. (One
        loop: every layer call asks, 2–3 times; as generator expressions it took ~3 µs a time.)"""
        sizes = []
        axes = zip(in_sizes, self.padding, self.kernel, self.dilation, self.strides, strict=True)
        for n, p, k, d, s in axes:
            padded, span = n + 2 * p, d * (k - 1) + 1
            if padded < span:
                every = tuple(n + 2 * p for n, p in zip(in_sizes, self.padding, strict=True))
                raise InputError(
                    f"input of spatial size {every} (after padding) is smaller than the "
                    f"kernel's extent {self.span}"
                )
            sizes.append((padded - span) // s + 1)
        return tuple(sizes)

    def taps(self, offset: Sizes, out_sizes: Sizes) -> tuple[slice, ...]:
        """Where kernel tap ``offset`` reads for every output position: a strided slice per axis."""
        axes = zip(offset, out_sizes, self.strides, self.dilation, strict=True)
        return tuple(slice(j * d, j * d + (o - 1) * s + 1, s) for j, o, s, d in axes)

    def offsets(self) -> list[Sizes]:
        return list(itertools.product(*(range(k) for k in self.kernel)))


Where = tuple[slice, ...]  # an index along the spatial axes


def phase_offsets(steps: Sizes) -> list[Sizes]:
    """The phases of an input taken every ``steps`` positions along each axis, in row-major
    order: each a tuple of offsets p < step."""
    return list(itertools.product(*(range(step) for step in steps)))


def phase_reads(steps: Sizes, padding: Sizes, in_sizes: Sizes, phase_sizes: Sizes
                ) -> list[tuple[Where, Where]]:
    """Per phase (``phase_offsets`` order): (where in the phase, where in x) along the spatial axes,
    for the phase's first ``phase_sizes`` positions that fall inside x. Phase p's position t
    is the padded input's s·t + p, that is x's s·t + p − padding; positions on the padding or
    past x are left out (a dilated convolution's phases, ``dilated``, and a strided one's,
    ``space_to_depth``)."""
    reads = []
    for phase in phase_offsets(steps):
        into, read = [], []
        for p, step, pad, size, length in zip(phase, steps, padding, in_sizes, phase_sizes, strict=True):
            first = max(0, -(-(pad - p) // step))
            stop = max(first, min(length, (size - 1 - p + pad) // step + 1))
            start = step * first + p - pad
            into.append(slice(first, stop))
            last = start + step * (stop - first - 1)
            read.append(slice(start, last + 1, step) if stop > first else slice(0, 0))
        reads.append((tuple(into), tuple(read)))
    return reads


def fill_phase(phase: np.ndarray, x: np.ndarray, into: Where, read: Where) -> None:
    """``phase`` (N, C, *its sizes) ← x (N, C, *spatial) where ``phase_reads`` says (``into`` ←
    ``read``), zeros elsewhere: only what the phase reads of the padding is zeroed, without a
    pass over the whole (``np.zeros`` first is one more, on one thread)."""
    whole = (slice(None), slice(None))
    for axis, part in enumerate(into):
        within = whole + into[:axis]
        phase[within + (slice(0, part.start),)] = 0
        phase[within + (slice(part.stop, None),)] = 0
    phase[whole + into] = x[whole + read]


def windows(padded: np.ndarray, kernel: Sizes, strides: Sizes, dilation: Sizes | None = None) -> np.ndarray:
    """View of shape (N, C, *out, *kernel): every (dilated, strided) window, no copy."""
    dims = len(kernel)
    geometry = Geometry(kernel, strides, (0,) * dims, dilation or (1,) * dims)
    geometry.out_sizes(padded.shape[2:])  # refuses an input smaller than the kernel
    view = sliding_window_view(padded, geometry.span, axis=tuple(range(2, 2 + dims)))
    index = (slice(None), slice(None), *(slice(None, None, s) for s in strides),
             *(slice(None, None, d) for d in geometry.dilation))
    return view[index]


# From this many output positions an example on, fewer than 16 channels a group take channels
# first in training too. Forward and backward (input's and weight's gradients) at 2 threads, ms,
# last → first: a 7×7/2 stem on 8×3×224×224 96 → 55 (first layer: 52 → 31); 3×3×3 3 → 32 on
# 4×8×56×56 30 → 22; 3×3 8 → 32 on 32×64×64 30 → 25; 5×5/2 4 → 16 on 16×128×128 20 → 15.5.
FEW_CHANNELS_MIN_POSITIONS = 4096
# A grouped convolution with this many input channels a group or fewer takes channels first in
# training too, whatever its map (its GEMMs per example and group then read runs of output
# positions, against channels-last's runs of kw·C/G). Forward and backward at 2 threads, ms,
# last → first: 3×3 g32 on 8×256×28×28 31.6 → 24.5, its 3×3/2 on 8×256×28×28 10.0 → 8.8 and
# on 8×256×56×56 42.9 → 40.7; 3×3 g8 on 16×64×32×32 28.2 → 15.6, 3×3/2 8.4 → 5.0. (With 16
# a group, 3×3 g32 on 8×512×14×14, channels last won: 14.3 against 19.4.)
GROUPED_FIRST_MAX_CHANNELS = 8


def channels_last(channels_per_group: int, kernel: Sizes, positions: int, *, backward: bool = True,
                  groups: int = 1, strides: Sizes | None = None) -> bool:
    """The layout of the columns, as measured on d2l's shapes (one thread, CPU time): channels
    first for a 1×1 kernel (its columns are the input, subsampled), for few channels per group
    (runs of ow values are then longer than channels-last's kw·C/G; on large maps for fewer
    than 16 whatever the kernel: ``FEW_CHANNELS_MIN_POSITIONS``), and, when no backward
    will reuse the columns, for many output positions per example (a GEMM per example then
    writes the channel-first output directly). Otherwise channels last: its single GEMM and
    tap-by-tap col2im made the backward up to 2× faster. (At 256 positions channels last won
    at 2 threads, batch 32: ResNet's 3×3/2 16 → 32 on 32×32 1.40 → 1.26 ms, 32 → 64 3×3 on
    16×16, batch 64, 4.65 → 4.41.) Grouped convolutions take channels first at inference (one
    GEMM per example and group over its positions; 2 threads, ms, last → first: ResNeXt's 3×3/2
    g32 on 8×256×28×28 4.05 → 2.72, 3×3/2 g8 on 16×64×32×32 3.45 → 1.36, 3×3 g32 on
    8×512×14×14 5.86 → 4.40) and with few channels a group (``GROUPED_FIRST_MAX_CHANNELS``) in
    training too; so does an inference call whose windows lie side by side (kernel = strides,
    a ViT's patch embedding: 16×16/16 3 → 128 on 8×3×224×224 3.07 → 2.36, 3 → 512 on
    32×3×96×96 6.93 → 6.21; in training channels last stays faster there, 7.7 against 11.5)."""
    if math.prod(kernel) == 1 or channels_per_group * kernel[-1] < 16:
        return False
    if channels_per_group < 16 and positions >= FEW_CHANNELS_MIN_POSITIONS:
        return False
    if groups > 1 and (channels_per_group <= GROUPED_FIRST_MAX_CHANNELS or not backward):
        return False
    if not backward and strides is not None and tuple(strides) == tuple(kernel):
        return False  # windows side by side (a ViT's patches): the columns are the input reordered
    return backward or positions <= 256


def pad(array: np.ndarray, padding: Sizes) -> tuple[np.ndarray, Callable[[slice], None]]:
    """(N, C, *S) with zeros around the spatial axes, and ``fill(chunk)`` that copies the
    input's rows ``chunk`` inside (np.pad measured 1.3–1.6× slower on ResNet-18-style shapes,
    most of it Python per call). No padding: the array itself, nothing to fill."""
    if not any(padding):
        return array, lambda b: None
    n, c = array.shape[:2]
    shape = (n, c, *(size + 2 * p for size, p in zip(array.shape[2:], padding, strict=True)))
    budget.charge(budget.nbytes(shape, array.dtype), f"padding the input by {padding}")
    buffer = np.zeros(shape, array.dtype)
    where = (slice(None), slice(None), *(slice(p, p + size) for p, size in zip(padding, array.shape[2:],
                                                                                   strict=True)))
    inner = buffer[where]
    return buffer, lambda b: parallel.copy(inner[b], array[b])


def to_last(array: np.ndarray, padding: Sizes) -> tuple[np.ndarray, Callable[[slice], None]]:
    """(N, C, *S) → (N, *(S + 2·padding), C), padded with zeros and transposed in one copy:
    (the buffer, ``fill(chunk)`` that copies rows ``chunk`` of the batch into it)."""
    n, c = array.shape[:2]
    shape = (n, *(size + 2 * p for size, p in zip(array.shape[2:], padding, strict=True)), c)
    what = f"padding the input by {padding}" if any(padding) else "laying its input out channels-last"
    budget.charge(budget.nbytes(shape, array.dtype), what)
    buffer = np.zeros(shape, array.dtype) if any(padding) else np.empty(shape, array.dtype)
    where = (slice(None), *(slice(p, p + size) for p, size in zip(padding, array.shape[2:], strict=True)))
    inner = buffer[where]
    source = np.moveaxis(array, 1, -1)
    return buffer, lambda b: parallel.copy(inner[b], source[b])


def columns_last(buffer: np.ndarray, g: Geometry, out_sizes: Sizes
                  ) -> tuple[np.ndarray, Callable[[slice], None]]:
    """(N·P, G, K·C/G): each output position's receptive field, channels last, per group, and
    ``fill(chunk)`` that gathers rows ``chunk`` of the batch from ``buffer``."""
    n, c, dims, groups = buffer.shape[0], buffer.shape[-1], len(g.kernel), g.groups
    s = buffer.strides
    shape = (n, *out_sizes, groups, *g.kernel, c // groups)
    strides = (s[0], *(s[1 + i] * g.strides[i] for i in range(dims)), s[-1] * (c // groups),
               *(s[1 + i] * g.dilation[i] for i in range(dims)), s[-1])
    view = as_strided(buffer, shape, strides, writeable=False)
    budget.charge(budget.nbytes(shape, buffer.dtype), "gathering its windows (im2col)")
    cols = np.empty(shape, buffer.dtype)
    return cols.reshape(n * math.prod(out_sizes), groups, -1), lambda b: parallel.copy(cols[b], view[b])


def weight_last(weight: np.ndarray, groups: int) -> np.ndarray:
    """(O, C/G, *K) → (G, O/G, K·C/G): the columns' order, taps before channels."""
    o, cg = weight.shape[:2]
    flat = weight.reshape(groups, o // groups, cg, -1)
    return np.ascontiguousarray(flat.transpose(0, 1, 3, 2)).reshape(groups, o // groups, -1)


def per_group(cols: np.ndarray) -> np.ndarray:
    """(N·P, G, X) → (G, N·P, X) as a view (BLAS reads each group's rows with a stride)."""
    return cols.transpose(1, 0, 2)


def columns_first(x: np.ndarray, g: Geometry, out_sizes: Sizes
                            ) -> tuple[np.ndarray, np.ndarray, Callable[[slice], None]]:
    """(columns (N, G, C/G, *K, *out), their source view, ``pad(chunk)``): im2col's layout
    for channels first, to be filled chunk by chunk (the view reads the padded input)."""
    n, c, dims, groups = x.shape[0], x.shape[1], len(g.kernel), g.groups
    padded, fill = pad(x, g.padding)
    win = windows(padded, g.kernel, g.strides, g.dilation)  # (N, C, *out, *K)
    budget.charge(budget.nbytes((n, c, *g.kernel, *out_sizes), x.dtype), "gathering its windows (im2col)")
    split = win.reshape(n, groups, c // groups, *out_sizes, *g.kernel)
    source = split.transpose((0, 1, 2, *range(3 + dims, 3 + 2 * dims), *range(3, 3 + dims)))
    return np.empty(source.shape, x.dtype), source, fill


def rows_of(grad: np.ndarray, groups: int) -> np.ndarray:
    """(N, O, *out) → (G, N·P, O/G): the output's gradient as the GEMMs read it."""
    n, o, dims = grad.shape[0], grad.shape[1], grad.ndim - 2
    split = grad.reshape(n, groups, o // groups, *grad.shape[2:])
    source = split.transpose(0, *range(3, 3 + dims), 1, 2)  # (N, *out, G, O/G)
    rows = np.empty(source.shape, grad.dtype)
    parallel.copy(rows, source)
    if groups == 1:
        return rows.reshape(1, -1, o)
    return np.ascontiguousarray(np.moveaxis(rows, -2, 0)).reshape(groups, -1, o // groups)
