"""A dilated convolution at stride 1 as an undilated one on the input's phases (space to batch).

With dilation d along an axis, output position d·q + p reads padded-input positions d·(q + j)
+ p only: the outputs of phase p are an undilated, unpadded convolution of the input's phase
p (every d-th padded position from p), with the same kernel. So the d₁·d₂·… phases of the
input, stacked as a batch of d₁·d₂·…·N examples, go through the undilated convolution's
fastest path (3×3 on the compiled Winograd transforms, which take no dilation), and the
output's phases are laid back in place. The backward is the same map transposed: the output
gradient's phases through the undilated backward, the input gradient's phases laid back
(phases do not overlap: a copy, no sums). The weight's gradient sums over the whole phase batch.

Phases shorter than the longest (an output size that d does not divide) are padded with
zeros to its length, and what those positions compute is dropped; their gradient is zero.

Taken (``usable``) only where the phase batch's convolution runs on Winograd's compiled
transforms, whose gain pays for the copies. Measured at 2 threads, medians of 21, 3×3 dilated
by 2 (ms, dilated im2col → phases, inference / forward and backward): 64 → 64 on 8×28×28 3.21 /
9.73 → 2.88 / 7.41, 128 → 128 9.28 / 29.4 → 6.77 / 23.7, 64 → 64 on 4×56×56 4.95 / 14.9 →
3.92 / 11.2, on 16×16×16 2.14 / 6.93 → 1.66 / 4.50; by 4, 128 → 128 on 4×64×64 22.2 / 68.0 →
16.8 / 52.9; by 3 on 8×28×28 (phases of 10) even. By 4 on 28×28 (phases of 7) it lost, 9.3 →
11.4 for the training step: the phases need ``MIN_PHASE_SIZE`` outputs a side. numpy's paths
lost throughout (their stride-1 forward is no faster than the dilated one): it stays off there.
"""

from __future__ import annotations

import math

import numpy as np

from .. import budget
from . import parallel, winograd
from .columns import Geometry, Sizes, Where, fill_phase, phase_offsets, phase_reads

__all__ = ["MIN_PHASE_SIZE", "usable", "inner", "split", "join", "split_output", "join_input"]

# The fewest output positions along each axis of a phase (a 7×7 phase of a 28×28 map dilated
# by 4 lost: each then holds four Winograd tiles, a quarter of them padding).
MIN_PHASE_SIZE = 8


def _lengths(g: Geometry, out_sizes: Sizes) -> Sizes:
    """Output positions of the longest phase along each axis."""
    return tuple(-(-o // d) for o, d in zip(out_sizes, g.dilation, strict=True))


def inner(g: Geometry) -> Geometry:
    """The undilated, unpadded stride-1 convolution each phase goes through."""
    dims = len(g.kernel)
    return Geometry(g.kernel, (1,) * dims, (0,) * dims, (1,) * dims, g.groups)


def usable(x: np.ndarray, weight: np.ndarray, g: Geometry, out_sizes: Sizes, *, backward: bool) -> bool:
    """Whether this convolution runs on its phases: dilated, at stride 1, each phase at least
    ``MIN_PHASE_SIZE`` outputs a side, and the phase batch's convolution one that Winograd's
    compiled transforms take (for a training forward, ``winograd.trains``)."""
    if max(g.dilation) == 1 or max(g.strides) > 1:
        return False
    lengths = _lengths(g, out_sizes)
    if min(lengths) < MIN_PHASE_SIZE:
        return False
    shape = (x.shape[0] * math.prod(g.dilation), x.shape[1],
             *(q + k - 1 for q, k in zip(lengths, g.kernel, strict=True)))
    phases = np.broadcast_to(np.zeros((), x.dtype), shape)  # (the phase batch's shape, no data)
    if backward:
        return winograd.trains(phases, weight, inner(g))
    return winograd.compiled(x.dtype) and winograd.usable(phases, weight, inner(g))


_X = (slice(None),)  # x's, the output's and their gradients' batch axis: whole


def _at(lead: tuple[int | slice, ...], spatial: Where) -> tuple[int | slice, ...]:
    """``lead`` (the batch axis, or a phase's index and the batch axis), all channels, ``spatial``."""
    return (*lead, slice(None), *spatial)


def _input_reads(g: Geometry, in_sizes: Sizes, lengths: Sizes) -> list[tuple[Where, Where]]:
    """Per phase: (where in the phase's input, where in x), for the phase's q + k − 1 positions."""
    sizes = tuple(q + k - 1 for q, k in zip(lengths, g.kernel, strict=True))
    return phase_reads(g.dilation, g.padding, in_sizes, sizes)


def _output_places(g: Geometry, out_sizes: Sizes) -> list[tuple[Where, Where]]:
    """Per phase: (its first positions along the lengths, its positions in the output)."""
    places = []
    for phase in phase_offsets(g.dilation):
        axes = list(zip(phase, g.dilation, out_sizes, strict=True))
        places.append((tuple(slice(0, len(range(p, size, d))) for p, d, size in axes),
                       tuple(slice(p, None, d) for p, d, _ in axes)))
    return places


def split(x: np.ndarray, g: Geometry, out_sizes: Sizes) -> np.ndarray:
    """The input's phases as a batch (phases·N, C, *phase sizes), phase-major, zeros where a
    phase reads the padding or runs past x."""
    n, c = x.shape[:2]
    lengths = _lengths(g, out_sizes)
    sizes = tuple(q + k - 1 for q, k in zip(lengths, g.kernel, strict=True))
    count = math.prod(g.dilation)
    budget.charge(budget.nbytes((count * n, c, *sizes), x.dtype), "its input's phases")
    phases = np.empty((count, n, c, *sizes), x.dtype)
    reads = _input_reads(g, x.shape[2:], lengths)

    def fill(b: slice) -> None:  # (chunks of the batch on parallel's threads, as space_to_depth's)
        for index, (into, read) in enumerate(reads):
            fill_phase(phases[index, b], x[b], into, read)

    parallel.over_batch(fill, n, phases.size, min_elements=parallel.ELEMENTWISE_MIN_ELEMENTS)
    return phases.reshape(count * n, c, *sizes)


def join(out: np.ndarray, g: Geometry, n: int, out_sizes: Sizes) -> np.ndarray:
    """The output (N, O, *out_sizes) from its phases' (phases·N, O, *lengths): phase p's
    position q is output d·q + p."""
    o = out.shape[1]
    budget.charge(budget.nbytes((n, o, *out_sizes), out.dtype), "its output")
    result = np.empty((n, o, *out_sizes), out.dtype)
    laid = out.reshape(math.prod(g.dilation), n, o, *out.shape[2:])
    for index, (first, place) in enumerate(_output_places(g, out_sizes)):
        result[_at(_X, place)] = laid[_at((index, slice(None)), first)]
    return result


def split_output(grad: np.ndarray, g: Geometry, out_sizes: Sizes) -> np.ndarray:
    """The output gradient's phases (phases·N, O, *lengths), ``join``'s transpose: zeros where
    a shorter phase was padded."""
    n, o = grad.shape[:2]
    lengths = _lengths(g, out_sizes)
    count = math.prod(g.dilation)
    budget.charge(budget.nbytes((count * n, o, *lengths), grad.dtype), "its output gradient's phases")
    phases = np.zeros((count, n, o, *lengths), grad.dtype)
    for index, (first, place) in enumerate(_output_places(g, out_sizes)):
        phases[_at((index, slice(None)), first)] = grad[_at(_X, place)]
    return phases.reshape(count * n, o, *lengths)


def join_input(grad: np.ndarray, g: Geometry, in_shape: tuple[int, ...], out_sizes: Sizes) -> np.ndarray:
    """The input's gradient (``in_shape``) from its phases' (phases·N, C, *phase sizes),
    ``split``'s transpose: each phase's positions inside x copied back (phases do not overlap;
    what fell on the padding is dropped)."""
    n, c = in_shape[:2]
    budget.charge(budget.nbytes(in_shape, grad.dtype), "its input's gradient")
    result = np.zeros(in_shape, grad.dtype)  # (positions no phase reads keep a zero gradient)
    laid = grad.reshape(math.prod(g.dilation), n, c, *grad.shape[2:])
    for index, (into, read) in enumerate(_input_reads(g, in_shape[2:], _lengths(g, out_sizes))):
        result[_at(_X, read)] = laid[_at((index, slice(None)), into)]
    return result
