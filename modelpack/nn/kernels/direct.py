"""Direct convolution on the compiled loops (``compiled``, numba), where they beat im2col: when
``usable`` says so, ``conv`` sends a forward or a backward here instead of to its GEMMs.

Here the arrays are sized, reshaped to 2-D (a 1-D convolution gets a unit height) and split
over the batch on ``parallel``'s threads; the weight's gradient is summed from
``parallel.REDUCTION_CHUNKS`` partial sums in order, so trained bits do not depend on the
thread count.

The loops on phase planes, at 2 threads (ms, forward / input's / weight's gradient), against
the loops before them (one tap a pass over unsplit planes, strided at stride 2): 3×3/1 on
8×128×56×56 2.6 / 3.1 / 3.3 → 2.0 / 2.0 / 2.0, 3×3/2 on 8×64×112×112 7.1 / 8.9 / 10.3 →
1.7 / 1.8 / 2.5; against torch (``bench/layers.py --kernels numba``), forward and training:
3×3/1 1.39× and 1.31× → 0.74× and 0.77×, 3×3/2 2.45× and 2.59× → 0.66× and 0.66×.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .. import budget
from . import backend, parallel

if TYPE_CHECKING:
    from .conv import Geometry

__all__ = ["usable", "forward", "grad_input", "grad_weight"]

# The widest group (input channels × output channels per group) the loops take. Measured with
# 32 channels, batch 32, 3×3 kernels, one thread (ms, numpy → loops): depthwise on 32×32
# forward 4.4 → 1.7, backward 6.3 → 3.4; 4 × 4 per group 6.7 → 3.9 and 16.4 → 7.2; 8 × 8 per
# group 7.5 → 5.7 and 34 → 12 (on 16×16 maps the forward is even, 1.8 → 1.9); 16 × 16 per
# group loses (forward 9.9 → 10.5, on 16×16 maps 2.2 → 3.5): there BLAS's GEMMs are wide enough.
# Re-measured on the phase planes (one thread, ms, numpy → loops): 16 × 16 per group on 32×32
# forward 7.6 → 7.0, training 34.9 → 20.0, but on 16×16 maps 2.2 → 3.9 and 7.6 → 10.7: still out.
MAX_GROUP_WIDTH = 64


# An ungrouped convolution as narrow as this (input × output channels) or narrower takes the
# loops where it has many taps a plane (below): LeNet's layers (1 → 6 and 6 → 16, 5×5) have
# too few outputs for im2col's GEMM to pay for its 25 copies of the input. Measured at 2
# threads, min of 5 alternating rounds, ms, im2col → loops, inference / forward and both
# gradients: 1 → 6 5×5 on 64×28×28 0.41 → 0.22 / 1.25 → 0.73, on 32×16×16 0.17 → 0.12 / 0.40
# → 0.31; 3 → 8 3×3 on 32×32×32 0.32 → 0.20 / 0.90 → 0.64; 2 → 12 5×5 on 64×28×28 0.83 → 0.69
# / 3.1 → 2.0; 3 → 8 7×7/2 on 16×64×64 0.74 → 0.41 / 4.8 → 1.2. Since the loops take four
# outputs at a time (``compiled.OUT_BLOCK``), up to 128 (medians of 15, inference / the
# layer's training step): 3 → 16 3×3 on 32×32×32 0.77 → 0.56 / 4.44 → 1.78, 6 → 16 5×5 on
# 64×14×14 1.09 → 1.07 / 3.89 → 3.27, 8 → 16 3×3 on 16×28×28 0.58 → 0.47 / 2.17 → 1.38, 8 → 8 on
# 32×32×32 1.01 → 0.68 / 4.21 → 1.98 (bench/compute.py's LeNet training step 2.01× → 1.89×
# torch's). Wider was mixed: 16 → 16 on 8×32×32 0.89 → 1.05 / 2.73 → 1.77, and with it the
# ResNet-18-style forward 2.47× → 2.67×; 3 → 32 on 32×32×32 0.97 → 1.01 / 2.95 → 3.07.
UNGROUPED_MAX_WIDTH = 128
# ... and with at least this many taps times output positions an example: on 8×8 planes the
# loops lost (3 → 16 3×3 on 32×8×8 0.12 → 0.17 / 0.31 → 0.49; 1 → 8 on 64×8×8 0.10 → 0.15),
# 3×3 on 16×16 (2,304) won (3 → 8 on 32×16×16 0.19 → 0.19 / 1.17 → 0.58).
UNGROUPED_MIN_TAP_POSITIONS = 2048


def usable(x: np.ndarray, weight: np.ndarray, g: Geometry) -> bool:
    """Whether the compiled loops are in use and take this convolution (or the transposed one
    of the same weight): 1-D or 2-D, float32, and several narrow groups (``MAX_GROUP_WIDTH``)
    or one narrow group with many taps a plane (``UNGROUPED_MAX_WIDTH``). Elsewhere an
    ungrouped convolution stays on im2col: one GEMM over every example measured as fast or
    faster. The positions counted are the input's over the strides' product (a transposed
    call's input is the convolution's output: it is counted low, on the safe side)."""
    if len(g.kernel) > 2 or x.dtype != np.float32 or weight.dtype != x.dtype:
        return False  # float32 only halves the compile time
    if backend.compiled() is None:
        return False
    width = weight.shape[1] * (weight.shape[0] // g.groups)
    if g.groups > 1:
        return width <= MAX_GROUP_WIDTH
    positions = math.prod(x.shape[2:]) // math.prod(g.strides)
    return width <= UNGROUPED_MAX_WIDTH and positions * math.prod(g.kernel) >= UNGROUPED_MIN_TAP_POSITIONS


# A depthwise convolution (one output per input channel) of at least ``CHANNELS_LAST_MIN_CHANNELS``
# channels, with at most ``CHANNELS_LAST_MAX_TAP_POSITIONS`` output positions a plane times kernel
# taps, runs channels last (``compiled.depthwise_last_*``), forward and backward: the planes' runs
# are too short for the loops above, the channels' runs long. Measured at 2 threads, medians of
# 25 alternating calls (ms, forward / input's / weight's gradient, the planes' loops → channels
# last): 3×3 on 8×1024×7×7 2.02 / 1.77 / 1.74 → 1.06 / 0.68 / 1.02, 32×512×7×7 3.80 / 3.59 /
# 2.88 → 1.54 / 1.28 / 1.24, 8×128×7×7 0.37 / 0.35 / 0.37 → 0.23 / 0.21 / 0.17; 3×3 on 14×14,
# 512 channels 1.46 / 1.36 / 1.36 → 1.35 / 1.20 / 1.29, 256 0.89 / 0.80 / 0.78 → 0.82 / 0.69 /
# 0.70, 128 even. 5×5 on 14×14 lost (672 channels 3.26 / 4.20 / 3.11 → 3.70 / 4.95 / 3.55; 240
# even), as did 3×3 on 28×28 (256 channels, the forward on one thread 3.31 → 4.19).
CHANNELS_LAST_MAX_TAP_POSITIONS = 14 * 14 * 9
CHANNELS_LAST_MIN_CHANNELS = 128
# ... except a kernel whose forward sums ``compiled`` keeps in registers
# (``compiled.REGISTER_KERNELS``), which runs channels last up to this many output positions
# whatever its taps. Measured for 5×5 on 14×14 once it did, batch 8, 2 threads, medians of 15
# (ms, as above): 240 channels 0.85 / 0.85 / 0.85 → 0.68 / 0.78 / 0.72, 480 1.57 / 1.63 / 1.50
# → 1.40 / 1.59 / 1.47, 672 2.05 / 2.22 / 2.01 → 1.72 / 2.12 / 2.08; on 28×28 it still lost
# (240 channels 1.89 / 1.81 / 2.07 → 2.30 / 2.85 / 2.89). (For 3×3 the two limits agree.)
CHANNELS_LAST_MAX_POSITIONS = 14 * 14
# The loops' passes go to the threads from ``parallel.SPLIT_MIN_WORK`` multiply-adds on, each
# output plane counted as ``PLANE_WORK`` more (its runs' set-up: ``compiled_depthwise``'s 3×3
# forward took ~40 ns a plane and ~66 µs per million multiply-adds, one thread). Handing a
# slice to a thread and waiting for it costs ~0.1 ms here; below this the pass is not much
# longer. Measured forward, ms, one thread / two (weighted work). Depthwise 3×3: 8×32×16×16
# 0.064 / 0.179 (0.8 M), 32×32×16×16 0.196 / 0.232 (3.0 M), 8×128×16×16 0.196 / 0.201 (3.0 M),
# 8×32×32×32 0.153 / 0.178 (2.5 M); 4×1024×7×7 0.292 / 0.244 (4.3 M), 8×1024×7×7 0.563 / 0.380
# (8.5 M). The phase planes: 3×3 g16 64 → 64 on 4×16×16 0.255 / 0.330 (2.5 M), g8 32 → 32 on
# 8×16×16 0.268 / 0.251 (2.5 M), 8 on 16×16 /2 depthwise 0.170 / 0.235 (0.3 M), 1 → 16 5×5 on
# 2×14×14 0.115 / 0.210 (1.0 M); 4.7 M of them 0.38–0.47 / 0.33–0.37. The weight's gradient
# summed over the batch keeps its chunks (``parallel.REDUCTION_CHUNKS``, its bits) as before.
PLANE_WORK = 600


def _depthwise(channels: int, weight_shape: tuple[int, ...], g: Geometry) -> bool:
    """Whether a convolution of ``channels`` inputs is depthwise: one output a channel."""
    return g.groups == channels == weight_shape[0] and weight_shape[1] == 1


def _channels_last(channels: int, weight_shape: tuple[int, ...], g: Geometry, out_sizes: tuple[int, ...]
                   ) -> bool:
    """Whether a convolution of ``channels`` inputs to ``out_sizes`` runs channels last
    (``CHANNELS_LAST_MAX_TAP_POSITIONS``, ``CHANNELS_LAST_MAX_POSITIONS``), once
    ``_in_registers`` has declined it (the numbers above predate those loops, which now take
    the stride-1 3×3 and 5×5 ones first)."""
    if not (_depthwise(channels, weight_shape, g) and channels >= CHANNELS_LAST_MIN_CHANNELS):
        return False
    positions = math.prod(out_sizes)
    loops = backend.compiled()
    if loops is not None and tuple(g.kernel) in loops.REGISTER_KERNELS:
        return positions <= CHANNELS_LAST_MAX_POSITIONS
    return positions * math.prod(g.kernel) <= CHANNELS_LAST_MAX_TAP_POSITIONS


def _in_registers(name: str, channels: int, weight_shape: tuple[int, ...], g: Geometry,
                  sides: tuple[int, ...]) -> bool:
    """Whether pass ``name`` of this convolution runs on ``compiled_depthwise``'s planes, every
    tap's sum in a register: 2-D, depthwise, at stride 1, a square kernel of ``sides``
    (``compiled_depthwise.SIDES``); the input's gradient also needs a padding no wider than
    d·(k − 1) (a flipped kernel's forward, which cannot crop). Forward and backward, it beats
    the channels-last loops and the phase planes wherever measured (its numbers there)."""
    if len(g.kernel) != 2 or not _depthwise(channels, weight_shape, g) or any(s != 1 for s in g.strides):
        return False
    if g.kernel[0] != g.kernel[1] or g.kernel[0] not in sides:
        return False
    return name != "grad_input" or all(p <= d * (k - 1) for k, p, d in zip(g.kernel, g.padding, g.dilation,
                                                                          strict=True))


def _same_size(g: Geometry) -> bool:
    """Whether the output is the input's size at stride 1: 2p = d·(k − 1) on every axis
    (MobileNet's), so ``compiled_depthwise``'s ``*_same`` loops read the planes in place."""
    return all(2 * p == d * (k - 1) for k, p, d in zip(g.kernel, g.padding, g.dilation, strict=True))


def _two_d(array: np.ndarray, dims: int) -> np.ndarray:
    """(N, C, W) → (N, C, 1, W) for a 1-D convolution; (N, C, H, W) as it is."""
    return array if dims == 2 else array[:, :, np.newaxis, :]


def _arguments(g: Geometry, last: bool = False) -> tuple[int, ...]:
    """(sh, sw, ph, pw, dh, dw, groups), a 1-D geometry as 2-D with a unit height; channels
    ``last``, without the groups (one a channel)."""
    sizes = (*_two_d_sizes(g.strides, 1), *_two_d_sizes(g.padding, 0), *_two_d_sizes(g.dilation, 1))
    return sizes if last else (*sizes, g.groups)


def _two_d_sizes(sizes: tuple[int, ...], unit: int) -> tuple[int, int]:
    """A geometry's sizes per axis as 2-D: a 1-D convolution's height axis gets ``unit``."""
    return (unit, sizes[0]) if len(sizes) == 1 else (sizes[0], sizes[1])


def _per_thread(shapes: tuple[tuple[int, ...], ...], dtype: np.dtype | tuple[np.dtype, ...], what: str,
                zeroed: tuple[bool, ...]) -> Callable[[], tuple[np.ndarray, ...]]:
    """A loop's scratch arrays (``shapes``, of ``dtype`` or each of its own), counted against the
    budget for every thread before any runs; returns what allocates one thread's (zeros where
    ``zeroed`` says: a border or junk the loop never writes)."""
    dtypes = dtype if isinstance(dtype, tuple) else (dtype,) * len(shapes)
    budget.charge(parallel.threads() * sum(budget.nbytes(shape, dtype)
                                           for shape, dtype in zip(shapes, dtypes, strict=True)), what)
    return lambda: tuple((np.zeros if zero else np.empty)(shape, dtype)
                         for shape, dtype, zero in zip(shapes, dtypes, zeroed, strict=True))


def _scratch(loops: ModuleType, in_shape: tuple[int, ...], weight_shape: tuple[int, ...], g: Geometry,
             dtype: np.dtype) -> Callable[[], tuple[np.ndarray, ...]]:
    """The phase-plane loops' scratch (``compiled.scratch``: one group's padded phase planes, as
    many examples tall as ``compiled.stacked`` says, and the wide buffer, zeroed)."""
    sizes, strides = _two_d_sizes(in_shape[2:], 1), _two_d_sizes(g.strides, 1)
    padding = _two_d_sizes(g.padding, 0)
    stack = loops.stacked(sizes, strides, padding, in_shape[0])
    planes, wide = loops.scratch(weight_shape[1], sizes, _two_d_sizes(g.kernel, 1), strides, padding,
                                 _two_d_sizes(g.dilation, 1), stack, weight_shape[0] // g.groups)
    return _per_thread((planes, (wide,)), dtype, f"padding the input by {g.padding}", (True, True))


# Each pass's loop on the phase planes, and channels last (``_channels_last``).
_LOOPS = {"forward": ("conv_forward", "depthwise_last_forward"),
          "grad_input": ("conv_grad_input", "depthwise_last_grad_input"),
          "grad_weight": ("conv_grad_weight", "depthwise_last_grad_weight")}


class _Loop(NamedTuple):
    """A pass's compiled loop: ``run(..., first, stop, *arguments)`` on a slice of the batch, or
    of the channels where ``over_channels`` (each channel's results whole on one thread);
    ``scratch()`` allocates one thread's scratch (charged for every thread already)."""

    run: Callable[..., None]
    scratch: Callable[[], tuple[np.ndarray, ...]]
    arguments: tuple[int, ...]
    over_channels: bool = False


def _chosen(loops: ModuleType, name: str, in_shape: tuple[int, ...], weight_shape: tuple[int, ...],
            out_sizes: tuple[int, ...], g: Geometry, dtype: np.dtype) -> _Loop:
    """The loop of pass ``name`` for this convolution, the first that takes it: ``compiled_depthwise``'s
    in-place loops where the output is the input's size (``_same_size``, ``SAME_SIDES``); its
    stacked planes where ``_in_registers`` says (for both, a slice of the channels a thread:
    no partial sums for the weight's gradient); channels last where ``_channels_last`` says;
    else the phase planes."""
    from . import compiled_depthwise  # (numba is in use here)

    on_planes, on_channels = _LOOPS[name]
    if _same_size(g) and _in_registers(name, in_shape[1], weight_shape, g, compiled_depthwise.SAME_SIDES):
        edge, masks = compiled_depthwise.same_scratch(in_shape[2:], g.kernel, g.padding)
        scratch = _per_thread((edge, masks), (dtype, np.dtype(np.bool_)), "a plane and its taps' masks",
                              (False, False))  # (the loops fill them)
        return _Loop(getattr(compiled_depthwise, f"{name}_same"), scratch, (*g.padding, *g.dilation), True)
    if _in_registers(name, in_shape[1], weight_shape, g, compiled_depthwise.SIDES):
        planes, wide = compiled_depthwise.scratch(name == "grad_input", in_shape[0], in_shape[2:], out_sizes,
                                                  g.kernel, g.padding, g.dilation)
        scratch = _per_thread((planes, (wide,)), dtype, f"padding the input by {g.padding}",
                              (False, False))  # (the loops zero it)
        return _Loop(getattr(compiled_depthwise, name), scratch, (*g.padding, *g.dilation), True)
    if _channels_last(in_shape[1], weight_shape, g, out_sizes):
        return _Loop(getattr(loops, on_channels), _last_scratch(in_shape, out_sizes, g),
                     _arguments(g, last=True))
    return _Loop(getattr(loops, on_planes), _scratch(loops, in_shape, weight_shape, g, dtype), _arguments(g))


def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, g: Geometry,
            activation: Callable[[np.ndarray], object] | None = None) -> np.ndarray:
    """Cross-correlation of x (N, C, *S) with weight (O, C/G, *K), plus bias: (N, O, *out);
    ``activation`` (``activations.in_place``) then overwrites each chunk on its thread, in cache
    (LeNet's first convolution and its sigmoid at 2 threads, 64×1×28×28, medians of 101
    alternating: 0.74–0.76 ms with the sigmoid after the loops → 0.66–0.69)."""
    loops = backend.compiled()
    assert loops is not None  # usable() said so
    dims, n, o = len(g.kernel), x.shape[0], weight.shape[0]
    out_sizes = g.out_sizes(x.shape[2:])
    loop = _chosen(loops, "forward", x.shape, weight.shape, out_sizes, g, x.dtype)
    budget.charge(budget.nbytes((n, o, *out_sizes), x.dtype), "its output")
    out = np.empty((n, o, *out_sizes), x.dtype)
    x4, out4 = _two_d(_loop_operand(x), dims), _two_d(out, dims)
    w4 = _two_d(_loop_operand(weight), dims)
    offsets = np.zeros(o, x.dtype) if bias is None else _loop_operand(bias, x.dtype)
    work = out.size * weight.shape[1] * math.prod(g.kernel)

    def chunk(b: slice) -> None:
        loop.run(x4, w4, offsets, out4, *loop.scratch(), b.start, b.stop, *loop.arguments)
        if activation is not None:
            activation(out[:, b] if loop.over_channels else out[b])

    parallel.over_batch(chunk, o if loop.over_channels else n, **_split_work(work, n * o))
    return out


def _split_work(work: int, planes: int) -> dict[str, int]:
    """``parallel.over_batch``'s ``elements`` and ``min_elements`` for a pass of ``work``
    multiply-adds over ``planes`` output planes: each plane counted ``PLANE_WORK`` more, against
    ``parallel.SPLIT_MIN_WORK``."""
    return {"elements": work + PLANE_WORK * planes, "min_elements": parallel.SPLIT_MIN_WORK}


def _loop_operand(array: np.ndarray, dtype: np.dtype | None = None) -> np.ndarray:
    """``array`` as the loops take it: C-contiguous, and writable (a read-only one copied). numba
    compiles each loop for its arguments' types, a read-only array being a type of its own, and
    types every branch: a loop that writes an argument in another mode fails to compile for a
    read-only one (a parameter of ``load(..., mmap=True)``, an input from ``np.frombuffer``)."""
    flags = array.flags
    if flags.c_contiguous and flags.writeable and (dtype is None or array.dtype == dtype):
        return array  # (as most are: ``np.require`` takes ~2 µs to say so)
    return np.require(array, dtype, ["C_CONTIGUOUS", "WRITEABLE"])


def _last_scratch(shape: tuple[int, ...], out_sizes: tuple[int, ...], g: Geometry
                  ) -> Callable[[], tuple[np.ndarray, ...]]:
    """``compiled.depthwise_last_*``'s scratch (an example's padded input and its output, or
    their gradients, channels last; the padded input's border zeros)."""
    c, sizes = shape[1], _two_d_sizes(shape[2:], 1)
    (ph, pw), (oh, ow) = _two_d_sizes(g.padding, 0), _two_d_sizes(out_sizes, 1)
    return _per_thread(((sizes[0] + 2 * ph, sizes[1] + 2 * pw, c), (oh, ow, c)), np.dtype(np.float32),
                       f"padding the input by {g.padding}, channels last", (True, False))


def grad_input(grad: np.ndarray, weight: np.ndarray, g: Geometry, in_shape: tuple[int, ...]) -> np.ndarray:
    """The input's gradient (``in_shape``) from the output's (N, O, *out): the convolution's
    adjoint, which is also the transposed convolution of ``grad``."""
    loops = backend.compiled()
    assert loops is not None
    dims = len(g.kernel)
    loop = _chosen(loops, "grad_input", in_shape, weight.shape, grad.shape[2:], g, grad.dtype)
    budget.charge(budget.nbytes(in_shape, grad.dtype), "its input's gradient")
    grad_x = np.empty(in_shape, grad.dtype)
    grad4, x4 = _two_d(_loop_operand(grad), dims), _two_d(grad_x, dims)
    w4 = _two_d(_loop_operand(weight), dims)
    work = grad.size * weight.shape[1] * math.prod(g.kernel)
    parallel.over_batch(lambda b: loop.run(grad4, w4, x4, *loop.scratch(), b.start, b.stop, *loop.arguments),
                        in_shape[1] if loop.over_channels else in_shape[0],
                        **_split_work(work, in_shape[0] * in_shape[1]))
    return grad_x


def grad_weight(grad: np.ndarray, x: np.ndarray, g: Geometry, shape: tuple[int, ...]) -> np.ndarray:
    """The weight's gradient (``shape``: (O, C/G, *K)) from the output's and the input: partial
    sums over ``parallel.REDUCTION_CHUNKS`` slices of the batch, added in order (the same bits
    at any thread count), or a loop's slices of the channels, each channel's sum whole."""
    loops = backend.compiled()
    assert loops is not None
    dims = len(g.kernel)
    loop = _chosen(loops, "grad_weight", x.shape, shape, grad.shape[2:], g, x.dtype)
    grad4, x4 = _two_d(_loop_operand(grad), dims), _two_d(_loop_operand(x), dims)
    shape4 = (*shape[:2], 1, shape[2]) if dims == 1 else shape
    work = grad.size * shape[1] * math.prod(g.kernel)
    if loop.over_channels:
        grad_w = np.empty(shape4, grad.dtype)
        parallel.over_batch(lambda c: loop.run(grad4, x4, grad_w, *loop.scratch(), c.start, c.stop,
                                               *loop.arguments), shape[0],
                            **_split_work(work, grad.shape[0] * shape[0]))
        return grad_w.reshape(shape)

    def part(b: slice) -> np.ndarray:
        grad_w = np.empty(shape4, grad.dtype)
        loop.run(grad4, x4, grad_w, *loop.scratch(), b.start, b.stop, *loop.arguments)
        return grad_w

    parts = parallel.over_batch(part, grad.shape[0], work, chunks=parallel.REDUCTION_CHUNKS)
    return sum(parts[1:], parts[0]).reshape(shape)
