"""A strided 2-D convolution as a stride-1 one on the input's phases stacked as channels
(space to depth), where Winograd's 3×3 transforms then take it.

With stride s along an axis, output i reads padded-input positions s·i + a, a < k. Writing
a = s·q + p (p < s, q < ⌈k/s⌉), that is position i + q of phase p, the input's every s-th
padded position from p. So the convolution is an unpadded stride-1 one with ⌈k/s⌉ taps a side
over the phases stacked as channels (C·s₁·s₂, channel-major), its kernel zero-padded to
s·⌈k/s⌉ taps and cut the same way; each output position stays where it is. The backward is
the inner convolution's: the weight's gradient cut back to its k taps, the input's gradient
laid back from the phases (which do not overlap: a copy, no sums), nothing where a phase read
the padding.

AlexNet's 11×11/4 on 3 channels becomes a 3×3 on 48, 5×5/2 on 16 channels a 3×3 on 64: the
padded kernel does (12/11)² and (6/5)² the multiply-adds, Winograd a quarter of them.
Measured at 2 threads, medians of 15 (ms, im2col or strips → here, torch): 11×11/4 3 → 96 on
8×224×224, inference on the compiled transforms 14.7 → 6.1 (5.5), on numpy's 16.7 → 12.2;
padded by 1 25.6 → 7.0 (7.8); 5×5/2 pad 2, 16 → 64 on 8×56×56 4.7 → 1.9 (1.4), numpy 5.3 →
3.2. In ``bench/layers.py`` (AlexNet's layer, padded by 1, forward / training step) 3.12 /
2.06× torch's time → 1.17 / 1.20× on the compiled transforms, inference 2.84 → 2.23× on
numpy's. Taken (``usable``) only where the inner convolution is one Winograd takes (for a training
forward, ``winograd.trains``: compiled transforms) and the padded kernel adds at most
``MAX_ADDED_TAPS`` of the multiply-adds.
"""

from __future__ import annotations

import math

import numpy as np

from .. import budget
from . import derived, parallel, winograd
from .columns import Geometry, Sizes, Where, fill_phase, phase_offsets, phase_reads

__all__ = ["MAX_ADDED_TAPS", "usable", "inner", "split", "inner_weight", "outer_weight", "join_input"]

# At most this multiple of the kernel's taps once padded to s·⌈k/s⌉ (11/4: 1.19, 5/2: 1.44; a
# 7×7/3 would do 1.65× the multiply-adds before Winograd's saving).
MAX_ADDED_TAPS = 1.5
_INNER_KERNEL = (3, 3)  # what Winograd's transforms take


def _taps(g: Geometry) -> Sizes:
    """The inner convolution's taps per axis, ⌈k/s⌉."""
    return tuple(-(-k // s) for k, s in zip(g.kernel, g.strides, strict=True))


def inner(g: Geometry) -> Geometry:
    """The unpadded stride-1 convolution over the stacked phases."""
    return Geometry(_taps(g), (1, 1), (0, 0), (1, 1), 1)


def _phase_sizes(g: Geometry, out_sizes: Sizes) -> Sizes:
    return tuple(o + q - 1 for o, q in zip(out_sizes, _taps(g), strict=True))


def usable(x: np.ndarray, weight: np.ndarray, g: Geometry, out_sizes: Sizes, *, backward: bool) -> bool:
    """Whether this convolution runs on its stacked phases: 2-D, strided, undilated and
    ungrouped, its inner kernel 3×3 with at most ``MAX_ADDED_TAPS`` the taps, and that inner
    convolution one Winograd's transforms take (a training forward's: ``winograd.trains``)."""
    if x.ndim != 4 or g.groups != 1 or max(g.dilation) > 1 or max(g.strides) == 1:
        return False
    taps = _taps(g)
    if taps != _INNER_KERNEL:
        return False
    padded = math.prod(q * s for q, s in zip(taps, g.strides, strict=True))
    if padded > MAX_ADDED_TAPS * math.prod(g.kernel):
        return False
    shape = (x.shape[0], x.shape[1] * math.prod(g.strides), *_phase_sizes(g, out_sizes))
    stacked = np.broadcast_to(np.zeros((), x.dtype), shape)  # (the stacked phases' shape, no data)
    cut = np.broadcast_to(np.zeros((), weight.dtype), (weight.shape[0], shape[1], *taps))  # (likewise)
    if backward:
        return winograd.trains(stacked, cut, inner(g))
    return winograd.usable(stacked, cut, inner(g))


def split(x: np.ndarray, g: Geometry, out_sizes: Sizes) -> np.ndarray:
    """The input's phases stacked as channels (N, C·s₁·s₂, *phase sizes), channel-major, zeros
    where a phase reads the padding or runs past x. Each phase reads x at the stride, ~1 ns a
    value, so chunks of the batch go on ``parallel``'s threads, and only the borders are
    zeroed (AlexNet's 8×3×224×224: 1.15 → 0.78 ms at 2 threads)."""
    n, c = x.shape[:2]
    sizes = _phase_sizes(g, out_sizes)
    budget.charge(budget.nbytes((n, c * math.prod(g.strides), *sizes), x.dtype), "its input's phases")
    stacked = np.empty((n, c, len(phase_offsets(g.strides)), *sizes), x.dtype)
    reads = phase_reads(g.strides, g.padding, x.shape[2:], sizes)

    def fill(b: slice) -> None:
        mine, source = stacked[b], x[b]
        for index, (into, read) in enumerate(reads):
            fill_phase(mine[:, :, index], source, into, read)

    parallel.over_batch(fill, n, stacked.size, min_elements=parallel.ELEMENTWISE_MIN_ELEMENTS)
    return stacked.reshape(n, -1, *sizes)


def _at(phase: int | None, spatial: Where) -> tuple[int | slice, ...]:
    """Every example and channel, ``phase`` (of the stacked axis, or none), ``spatial``."""
    whole: tuple[int | slice, ...] = (slice(None), slice(None))
    return whole + spatial if phase is None else (*whole, phase, *spatial)


def inner_weight(weight: np.ndarray, g: Geometry) -> np.ndarray:
    """The kernel (O, C, k₁, k₂) zero-padded to s·⌈k/s⌉ taps and cut into the phases' channels:
    (O, C·s₁·s₂, ⌈k₁/s₁⌉, ⌈k₂/s₂⌉), kept between calls while the weight's bits stay the same
    (``derived``: then Winograd's transform of it is kept too)."""
    return derived.derived(weight, f"space_to_depth {g.strides}", lambda w: _cut(w, g))


def _cut(weight: np.ndarray, g: Geometry) -> np.ndarray:
    o, c = weight.shape[:2]
    (q1, q2), (s1, s2) = _taps(g), g.strides
    budget.charge(budget.nbytes((o, c * s1 * s2, q1, q2), weight.dtype), "its kernel cut into phases")
    padded = np.zeros((o, c, q1 * s1, q2 * s2), weight.dtype)
    padded[:, :, : g.kernel[0], : g.kernel[1]] = weight
    cut = padded.reshape(o, c, q1, s1, q2, s2).transpose(0, 1, 3, 5, 2, 4)
    return np.ascontiguousarray(cut).reshape(o, c * s1 * s2, q1, q2)


def outer_weight(grad: np.ndarray, g: Geometry, kernel_shape: tuple[int, ...]) -> np.ndarray:
    """``inner_weight``'s transpose: the inner kernel's gradient (O, C·s₁·s₂, q₁, q₂) laid back
    as (O, C, k₁, k₂), the padded taps' dropped."""
    o, c = kernel_shape[:2]
    (q1, q2), (s1, s2) = _taps(g), g.strides
    laid = grad.reshape(o, c, s1, s2, q1, q2).transpose(0, 1, 4, 2, 5, 3).reshape(o, c, q1 * s1, q2 * s2)
    return np.ascontiguousarray(laid[:, :, : g.kernel[0], : g.kernel[1]])


def join_input(grad: np.ndarray, g: Geometry, in_shape: tuple[int, ...]) -> np.ndarray:
    """The input's gradient (``in_shape``) from its stacked phases' (N, C·s₁·s₂, *phase sizes),
    ``split``'s transpose: each phase's positions inside x copied back, what fell on the
    padding dropped; positions no phase reads keep a zero gradient."""
    n, c = in_shape[:2]
    budget.charge(budget.nbytes(in_shape, grad.dtype), "its input's gradient")
    result = np.zeros(in_shape, grad.dtype)
    laid = grad.reshape(n, c, len(phase_offsets(g.strides)), *grad.shape[2:])
    reads = phase_reads(g.strides, g.padding, in_shape[2:], grad.shape[2:])

    def fill(b: slice) -> None:
        mine, source = result[b], laid[b]
        for index, (into, read) in enumerate(reads):
            mine[_at(None, read)] = source[_at(index, into)]

    parallel.over_batch(fill, n, result.size, min_elements=parallel.ELEMENTWISE_MIN_ELEMENTS)
    return result
