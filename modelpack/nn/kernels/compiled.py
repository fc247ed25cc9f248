"""Direct convolution loops compiled by numba (the ``accel`` extra), for the shapes where
im2col and a GEMM waste their effort: depthwise and narrow grouped convolutions, whose GEMMs
have a handful of rows while their columns copy the input nine times over.

Each loop takes a slice of the batch, ``[first, stop)``, and per example and group copies the
group's input channels into a zero-padded scratch plane, flattened. An output row is then
``Wp`` (the padded width) long, the last ``Wp − OW`` positions junk: with equal strides ``s``
on both axes, output position q of the flat "wide" plane reads input position s·q + offset
for every kernel tap, so each tap is one long vectorised loop instead of a short one per row
(rows of 16 or 32 values are too short to vectorise well). The junk columns are dropped when
the wide plane is copied out (or are zeros, going backwards).

``direct`` runs the slices on ``parallel``'s threads (the loops release the GIL): every output
comes from one slice in one fixed order, so the bits do not depend on the thread count. The
weight's gradient sums over the batch: each slice returns its partial sums,
``parallel.REDUCTION_CHUNKS`` of them whatever the thread count; within a slice each
example's dot products are vectorised (the order of their partial sums follows the CPU's
vector width, as numpy's own sums do, and never the thread count). Arrays are 2-D channel-first
float32 (N, C, H, W); a 1-D convolution comes as H = 1. Only this module (and BatchNorm's
``compiled_norm``) imports numba.
A first run compiles the loops (about 8 s), later ones load them from ``__pycache__``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

__all__ = ["conv_forward", "conv_grad_input", "conv_grad_weight"]

# nogil: the loops run on parallel's threads; cache: compiled once per machine, not per process.
_jit = njit(nogil=True, cache=True)


@_jit
def _load(x: Any, n: int, first_channel: int, padded: Any, ph: int, pw: int) -> None:
    """The channels [first_channel, + len(padded)) of x[n] into the interior of ``padded``
    (C/G, ≥ Hp·Wp), whose border stays zero."""
    height, width = x.shape[2], x.shape[3]
    wp = width + 2 * pw
    for ci in range(padded.shape[0]):
        plane = padded[ci]
        for h in range(height):
            start = (h + ph) * wp + pw
            source = x[n, first_channel + ci, h]
            for j in range(width):
                plane[start + j] = source[j]


@_jit
def _wide_from(grad: Any, n: int, o: int, wide: Any, wp: int) -> None:
    """grad[n, o] (OH, OW) into the first OW columns of each Wp-long row of ``wide``."""
    for oh in range(grad.shape[2]):
        source = grad[n, o, oh]
        for j in range(grad.shape[3]):
            wide[oh * wp + j] = source[j]


@_jit
def _taps(plane: Any, offset: int, s: int, count: int) -> Any:
    """The ``count`` input positions offset + s·q of a flat plane, as a view of exactly that
    length (contiguous at stride 1: the loops over it then vectorise)."""
    return plane[offset:offset + s * (count - 1) + 1:s]


@_jit
def _axpy(target: Any, weight: Any, source: Any) -> None:
    """target += weight · source, two views of one length."""
    for q in range(target.shape[0]):
        target[q] += weight * source[q]


@njit(nogil=True, cache=True, fastmath={"reassoc"})
def _dot(a: Any, b: Any) -> Any:
    """Σ a·b over two views of one length, in vector-wide partial sums (reassociation lets the
    compiler vectorise it: the order then follows the CPU's vector width, never the threads)."""
    total = a[0] * b[0]
    for q in range(1, a.shape[0]):
        total += a[q] * b[q]
    return total


# The three passes pair the same things (each output position with each tap's input position)
# and differ in what they write: the output, the input's gradient or the weight's gradient.
FORWARD, GRAD_INPUT, GRAD_WEIGHT = 0, 1, 2


@_jit
def _tap(mode: int, wide: Any, taps: Any, w: Any, o: int, ci: int, kh: int, kw: int) -> None:
    """One kernel tap over a whole wide plane: ``taps`` is the input it reads, a view as long."""
    if mode == FORWARD:
        _axpy(wide, w[o, ci, kh, kw], taps)
    elif mode == GRAD_INPUT:
        _axpy(taps, w[o, ci, kh, kw], wide)
    else:
        w[o, ci, kh, kw] += _dot(wide, taps)


@_jit
def _sweep(mode: int, planes: Any, rows: Any, w: Any, bias: Any, first: int, stop: int, s: int, ph: int,
           pw: int, dh: int, dw: int, groups: int) -> None:
    """Every (example in [first, stop), output channel, input channel of its group, tap):
    ``planes`` is the input side (N, C, H, W), ``rows`` the output side (N, O, OH, OW), ``w`` the
    weight (O, C/G, KH, KW); ``mode`` says which one is written."""
    height, width = planes.shape[2], planes.shape[3]
    o_count, per_group, kh_count, kw_count = w.shape
    oh_count, ow_count = rows.shape[2], rows.shape[3]
    wp = width + 2 * pw
    span = (oh_count - 1) * wp + ow_count
    outs = o_count // groups
    padded = np.zeros((per_group, (height + 2 * ph) * wp), planes.dtype)
    wide = np.zeros(span, rows.dtype)  # going backwards, the junk columns stay zero
    if mode == GRAD_WEIGHT:
        w[:] = 0
    for n in range(first, stop):
        for g in range(groups):
            if mode == GRAD_INPUT:
                padded[:] = 0
            else:
                _load(planes, n, g * per_group, padded, ph, pw)
            for o in range(g * outs, (g + 1) * outs):
                if mode == FORWARD:
                    wide[:] = bias[o]
                else:
                    _wide_from(rows, n, o, wide, wp)
                for ci in range(per_group):
                    plane = padded[ci]
                    for kh in range(kh_count):
                        for kw in range(kw_count):
                            offset = kh * dh * wp + kw * dw
                            if s == 1:  # a contiguous view: the loops over it vectorise
                                _tap(mode, wide, plane[offset:offset + span], w, o, ci, kh, kw)
                            else:
                                _tap(mode, wide, _taps(plane, offset, s, span), w, o, ci, kh, kw)
                if mode == FORWARD:
                    for oh in range(oh_count):
                        rows[n, o, oh] = wide[oh * wp:oh * wp + ow_count]
            if mode == GRAD_INPUT:
                for ci in range(per_group):
                    for h in range(height):
                        start = (h + ph) * wp + pw
                        planes[n, g * per_group + ci, h] = padded[ci, start:start + width]


@_jit
def conv_forward(x: Any, w: Any, bias: Any, out: Any, first: int, stop: int, s: int, ph: int, pw: int,
                 dh: int, dw: int, groups: int) -> None:
    """out[n] = bias + Σ taps of x[n] (N, C, H, W) ⋆ w (O, C/G, KH, KW), n in [first, stop)."""
    _sweep(FORWARD, x, out, w, bias, first, stop, s, ph, pw, dh, dw, groups)


@_jit
def conv_grad_input(grad: Any, w: Any, grad_x: Any, first: int, stop: int, s: int, ph: int, pw: int,
                    dh: int, dw: int, groups: int) -> None:
    """grad_x[n] = the convolution's adjoint applied to grad[n] (N, O, OH, OW): each output's
    gradient times each tap's weight, added where that tap read. Also a transposed convolution."""
    _sweep(GRAD_INPUT, grad_x, grad, w, grad[0, :, 0, 0], first, stop, s, ph, pw, dh, dw, groups)


@_jit
def conv_grad_weight(grad: Any, x: Any, grad_w: Any, first: int, stop: int, s: int, ph: int, pw: int,
                     dh: int, dw: int, groups: int) -> None:
    """grad_w (O, C/G, KH, KW) = Σ over n in [first, stop) and every output position of grad
    times the input its tap read: per example, one dot product per tap."""
    _sweep(GRAD_WEIGHT, x, grad, grad_w, grad[0, :, 0, 0], first, stop, s, ph, pw, dh, dw, groups)
