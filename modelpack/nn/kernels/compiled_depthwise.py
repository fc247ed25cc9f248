"""A stride-1 depthwise convolution (one output channel per input channel: MobileNet's) of a
3×3 or 5×5 kernel, and its two gradients, compiled by numba on channel-first planes.

Per channel, a stack of examples' planes is copied one below the other into scratch planes
with a zero border (``padded``, zeroed once a call; the border is never written after), and
the output computed on their "wide" plane: rows as long as the padded planes', their last
(KW − 1)·dw values junk, as are the rows between examples. Output q of the wide plane reads
padded q + j·dh·width + i·dw for tap (j, i), so each tap is one contiguous run, and one
vectorised loop over the whole stack sums every tap in registers (``_nine_taps``,
``_twenty_five_taps``), in ``compiled``'s order (the bias, then the taps row-major): the
forward's bits are its loops'. The first OW values of each wide row are then the output's.

``compiled``'s phase-plane loops take any stride and group width, three taps a pass, storing
between passes; its channels-last loops (``depthwise_last_*``) pay two layout passes an example.
Measured on one thread, batch 8, medians of 30 (ms, forward / input's / weight's gradient,
channels last → here): 3×3 on 512×14×14 1.71 / 1.87 / 1.39 → 0.82 / 0.81 / 0.85, on 1024×7×7
0.95 / 1.05 / 0.87 → 0.61 / 0.62 / 0.73, 5×5 on 240×14×14 1.23 / 1.24 / 1.29 → 0.71 / 0.72 /
0.85; phase planes → here, 3×3 on 128×56×56 2.0 → 1.4 ms at 2 threads (``bench/layers.py``).
A pass per kernel row (three taps in registers) took 1.2–1.8× as long on 14×14 and 7×7 planes;
planes one at a time, unstacked, 1.15× on 7×7 (4 examples, 0.36 → 0.31 ms).

The input's gradient, at stride 1, is the forward of the output's gradient with the kernel
flipped, padded by d·(k − 1) − p (a gather: each value's sum in one fixed order, not the
numpy path's scatter order, so float rounding apart from it). The weight's gradient dots, per
channel and stack, the output's gradient on the wide plane (junk zeros: never written) with
each tap's run (``compiled.dots``: vector-wide partial sums). Every loop takes a slice of the
channels, ``[first, stop)``, and all the batch: a thread's stacks are as tall as they go, and
each channel's weight gradient is whole on one thread (no partial sums to add; the same bits
at any thread count). Arrays are (N, C, H, W) float32, C-contiguous; the loops release the GIL.

Where a 3×3 kernel's output is its input's size (2p = d·(k − 1): MobileNet's), the ``*_same``
loops read the planes where they are: a plane is one run, position p reading p + the tap's
offset, and a flag per tap and position (``masks``) says where that lands inside the plane;
where it does not, the tap adds w·0, as the zero padding would, so the forward and the input's
gradient keep the wide planes' bits. No padded copy, no copy out, no stacking. Measured, batch
8, medians of 200, ms, forward at 1 / 2 threads, wide planes → in place: 1024×7×7 0.65 / 0.47
→ 0.55 / 0.38, 512×14×14 0.75 / 0.64 → 0.58 / 0.50, 128×56×56 3.4 / 2.3 → 2.3 / 1.4; training
step (all three passes) 1024×7×7 3.4 / 2.2 → 3.2 / 2.0, 128×56×56 9.0 / 6.3 → 7.7 / 4.9. A
5×5 kernel stays on the wide planes (``SAME_SIDES``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from .compiled import dots

__all__ = ["SIDES", "SAME_SIDES", "scratch", "same_scratch", "forward", "grad_input", "grad_weight",
           "forward_same", "grad_input_same", "grad_weight_same"]

_jit = njit(nogil=True, cache=True)
# The sides of the square kernels whose taps a pass sums in registers (``_nine_taps``,
# ``_twenty_five_taps``).
SIDES = (3, 5)
# The sides the ``*_same`` loops take (the output the input's size: the planes read in place);
# they are written for nine taps, and refuse any other kernel. A 5×5 kernel's 25 taps and 24
# flags overflow the registers: on 240×14×14 its forward was 1.1× as long as ``forward``'s,
# and in two passes (15 taps, then 10) still as long.
SAME_SIDES = (3,)
# Small planes are stacked, several examples' one below the other, up to this many padded
# positions, so that a tap's run is long enough for the vectorised loop (a 7×7 plane padded to
# 9×9 gives runs of 61 values, most of them in the loop's scalar remainder); the rows between
# examples are junk, read and dropped as the junk columns are.
STACK_POSITIONS = 2048


def scratch(grad_input: bool, batch: int, in_sizes: tuple[int, ...], out_sizes: tuple[int, ...],
            kernel: tuple[int, ...], padding: tuple[int, ...], dilation: tuple[int, ...]
            ) -> tuple[tuple[int, int], int]:
    """(the padded planes' shape, the wide plane's length) one thread's loops need: the input's
    planes padded, or for the input's gradient the output's gradient's padded by d·(k − 1) − p,
    as many examples one below the other as ``STACK_POSITIONS`` says (at most the batch)."""
    if grad_input:
        border = [d * (k - 1) - p for k, p, d in zip(kernel, padding, dilation, strict=True)]
        plane = (out_sizes[0] + 2 * border[0], out_sizes[1] + 2 * border[1])
    else:
        plane = (in_sizes[0] + 2 * padding[0], in_sizes[1] + 2 * padding[1])
    stack = max(1, min(batch, STACK_POSITIONS // (plane[0] * plane[1])))
    return (stack * plane[0], plane[1]), stack * plane[0] * plane[1]


@_jit
def forward(x: Any, w: Any, bias: Any, out: Any, padded: Any, wide: Any, first: int, stop: int,
            ph: int, pw: int, dh: int, dw: int) -> None:
    """out[:, c] = bias[c] + Σ taps of x[:, c] ⋆ w[c] (C, 1, KH, KW), c in [first, stop)."""
    _correlate(x, w, bias, out, padded, wide, first, stop, ph, pw, dh, dw)


@_jit
def grad_input(grad: Any, w: Any, grad_x: Any, padded: Any, wide: Any, first: int, stop: int,
               ph: int, pw: int, dh: int, dw: int) -> None:
    """grad_x[:, c] for c in [first, stop): grad[:, c] padded by d·(k − 1) − p, correlated with
    the flipped kernel."""
    kh, kw = w.shape[2], w.shape[3]
    _correlate(grad, _flipped(w), np.zeros(w.shape[0], w.dtype), grad_x, padded, wide, first, stop,
               dh * (kh - 1) - ph, dw * (kw - 1) - pw, dh, dw)


@_jit
def _flipped(w: Any) -> Any:
    """Each channel's kernel turned half a turn (C, 1, KH, KW)."""
    kh, kw = w.shape[2], w.shape[3]
    flipped = np.empty_like(w)
    for c in range(w.shape[0]):
        for j in range(kh):
            for i in range(kw):
                flipped[c, 0, j, i] = w[c, 0, kh - 1 - j, kw - 1 - i]
    return flipped


@_jit
def forward_same(x: Any, w: Any, bias: Any, out: Any, edge: Any, masks: Any, first: int, stop: int,
                 ph: int, pw: int, dh: int, dw: int) -> None:
    """``forward`` where the output is the input's size (2p = d·(k − 1) on both axes), read in
    place: no padded copy, no copy out (``_correlate_same``)."""
    _correlate_same(x, w, bias, out, edge, masks, first, stop, ph, pw, dh, dw)


@_jit
def grad_input_same(grad: Any, w: Any, grad_x: Any, edge: Any, masks: Any, first: int, stop: int,
                    ph: int, pw: int, dh: int, dw: int) -> None:
    """``grad_input`` where the output is the input's size: the flipped kernel's forward, padded
    by d·(k − 1) − p = p, read in place."""
    _correlate_same(grad, _flipped(w), np.zeros(w.shape[0], w.dtype), grad_x, edge, masks, first, stop,
                    ph, pw, dh, dw)


@_jit
def grad_weight_same(grad: Any, x: Any, grad_w: Any, edge: Any, masks: Any, first: int, stop: int,
                     ph: int, pw: int, dh: int, dw: int) -> None:
    """``grad_weight`` where the output is the input's size, read in place: per channel and
    example, one masked pass of dot products of the output's gradient with each tap's run
    (``_nine_dots_masked``), the examples' sums added in order."""
    examples, channels, height, width = x.shape
    area = height * width
    offsets = _same_taps(masks, grad_w.shape[2], grad_w.shape[3], height, width, ph, pw, dh, dw)
    flat, outputs = x.reshape(examples * channels * area), grad.reshape(examples * channels * area)
    for c in range(first, stop):
        sums = grad_w[c, 0].reshape(grad_w.shape[2] * grad_w.shape[3])
        sums[:] = 0
        for n in range(examples):
            base = (n * channels + c) * area
            source, at = _plane_source(flat, edge, base, area, ph * width + pw)
            _nine_dots_masked(outputs[base:base + area], source[at:], masks, offsets, sums)


@_jit
def grad_weight(grad: Any, x: Any, grad_w: Any, padded: Any, wide: Any, first: int, stop: int,
                ph: int, pw: int, dh: int, dw: int) -> None:
    """grad_w[c] (C, 1, KH, KW) for c in [first, stop) = Σ over every example and output
    position of grad times the input its tap read: per stack of examples, one dot product a
    tap of the output's gradient on the wide plane (its junk zeros: never written) with the
    tap's run."""
    kh, kw = grad_w.shape[2], grad_w.shape[3]
    hp, width = x.shape[2] + 2 * ph, padded.shape[1]
    stack, oh = padded.shape[0] // hp, grad.shape[2]
    offsets = np.empty(kh * kw, np.int64)
    for j in range(kh):
        for i in range(kw):
            offsets[j * kw + i] = j * dh * width + i * dw
    padded[:] = 0
    wide[:] = 0
    flat = padded.reshape(padded.shape[0] * width)
    rows = wide.reshape(padded.shape[0], width)
    for c in range(first, stop):
        sums = grad_w[c, 0].reshape(kh * kw)
        sums[:] = 0
        for n in range(0, x.shape[0], stack):
            count = min(stack, x.shape[0] - n)
            for s in range(count):
                _lay(x[n + s, c], padded, s * hp + ph, pw)
                _lay(grad[n + s, c], rows, s * hp, 0)
            run = wide[:((count - 1) * hp + oh - 1) * width + grad.shape[3]]
            dots(run, flat, offsets, sums)


@_jit
def _lay(plane: Any, padded: Any, top: int, left: int) -> None:
    """padded[top + r, left + q] = plane[r, q] (row views: an index that could be negative is
    checked for wrapping around per element, and the loop is then not vectorised)."""
    for r in range(plane.shape[0]):
        _copy(plane[r], padded[top + r, left:], plane.shape[1])


@njit(nogil=True, cache=True, inline="always")
def _copy(row: Any, into: Any, count: int) -> None:
    """into[:count] = row[:count], four values a step: a row of a small plane is too short for
    a vectorised loop's set-up to pay (batch 8 at 2 threads, min of 3 medians of 41, ms, forward
    as a loop → so: 3×3 on 1024×7×7 0.49 → 0.41–0.42, on 512×14×14 0.52–0.56 → 0.43–0.45, 5×5
    on 240×14×14 0.51–0.53 → 0.44–0.46; the gradients alike)."""
    q = 0
    while q + 4 <= count:
        a, b, c, d = row[q], row[q + 1], row[q + 2], row[q + 3]
        into[q], into[q + 1], into[q + 2], into[q + 3] = a, b, c, d
        q += 4
    while q < count:
        into[q] = row[q]
        q += 1


@_jit
def _correlate(x: Any, w: Any, bias: Any, out: Any, padded: Any, wide: Any, first: int, stop: int,
               top: int, left: int, dh: int, dw: int) -> None:
    """out[:, c] = bias[c] + Σ w[c, 0, j, i]·(x[:, c] in ``padded`` at (top, left))[y + j·dh,
    q + i·dw] for c in [first, stop), a stack of examples at a time, computed on ``wide``; then
    out's rows from the wide plane's (``_copy``, inlined: a copy loop in a function of its own,
    not inlined, made the whole 15–20% slower on 14×14 and 7×7 planes). Output row y of the s-th
    example reads padded rows s·hp + y + j·dh: its own."""
    hp, width = x.shape[2] + 2 * top, padded.shape[1]
    stack, oh, ow = padded.shape[0] // hp, out.shape[2], out.shape[3]
    padded[:] = 0
    flat = padded.reshape(padded.shape[0] * width)
    for c in range(first, stop):
        taps, start = w[c, 0], bias[c]
        for n in range(0, x.shape[0], stack):
            count = min(stack, x.shape[0] - n)
            for s in range(count):
                _lay(x[n + s, c], padded, s * hp + top, left)
            run = wide[:((count - 1) * hp + oh - 1) * width + ow]
            if taps.shape[0] == 3:
                _nine_taps(run, flat, taps, start, dh * width, dw)
            else:
                _twenty_five_taps(run, flat, taps, start, dh * width, dw)
            for s in range(count):
                plane = out[n + s, c]
                for y in range(oh):
                    _copy(wide[(s * hp + y) * width:], plane[y], ow)


@_jit
def _nine_taps(run: Any, flat: Any, t: Any, start: Any, down: int, dw: int) -> None:
    """run[q] = start + Σ t[j, i]·flat[q + j·down + i·dw] for a 3×3 kernel, row-major, each sum
    in a register: one pass over the plane (a pass per kernel row took 1.4–1.8× as long on
    14×14 and 7×7 planes, whose runs are short)."""
    a0, a1, a2 = flat[0:], flat[dw:], flat[2 * dw:]
    b0, b1, b2 = flat[down:], flat[down + dw:], flat[down + 2 * dw:]
    c0, c1, c2 = flat[2 * down:], flat[2 * down + dw:], flat[2 * down + 2 * dw:]
    w00, w01, w02, w10, w11, w12 = t[0, 0], t[0, 1], t[0, 2], t[1, 0], t[1, 1], t[1, 2]
    w20, w21, w22 = t[2, 0], t[2, 1], t[2, 2]
    for q in range(run.shape[0]):
        v = start + w00 * a0[q]
        v = v + w01 * a1[q]
        v = v + w02 * a2[q]
        v = v + w10 * b0[q]
        v = v + w11 * b1[q]
        v = v + w12 * b2[q]
        v = v + w20 * c0[q]
        v = v + w21 * c1[q]
        run[q] = v + w22 * c2[q]


@_jit
def _twenty_five_taps(run: Any, flat: Any, t: Any, start: Any, down: int, dw: int) -> None:
    """``_nine_taps`` for a 5×5 kernel."""
    r0, r1, r2, r3, r4 = flat[0:], flat[down:], flat[2 * down:], flat[3 * down:], flat[4 * down:]
    s00, s01, s02, s03, s04 = r0[0:], r0[dw:], r0[2 * dw:], r0[3 * dw:], r0[4 * dw:]
    s10, s11, s12, s13, s14 = r1[0:], r1[dw:], r1[2 * dw:], r1[3 * dw:], r1[4 * dw:]
    s20, s21, s22, s23, s24 = r2[0:], r2[dw:], r2[2 * dw:], r2[3 * dw:], r2[4 * dw:]
    s30, s31, s32, s33, s34 = r3[0:], r3[dw:], r3[2 * dw:], r3[3 * dw:], r3[4 * dw:]
    s40, s41, s42, s43, s44 = r4[0:], r4[dw:], r4[2 * dw:], r4[3 * dw:], r4[4 * dw:]
    for q in range(run.shape[0]):
        v = start + t[0, 0] * s00[q]
        v = v + t[0, 1] * s01[q]
        v = v + t[0, 2] * s02[q]
        v = v + t[0, 3] * s03[q]
        v = v + t[0, 4] * s04[q]
        v = v + t[1, 0] * s10[q]
        v = v + t[1, 1] * s11[q]
        v = v + t[1, 2] * s12[q]
        v = v + t[1, 3] * s13[q]
        v = v + t[1, 4] * s14[q]
        v = v + t[2, 0] * s20[q]
        v = v + t[2, 1] * s21[q]
        v = v + t[2, 2] * s22[q]
        v = v + t[2, 3] * s23[q]
        v = v + t[2, 4] * s24[q]
        v = v + t[3, 0] * s30[q]
        v = v + t[3, 1] * s31[q]
        v = v + t[3, 2] * s32[q]
        v = v + t[3, 3] * s33[q]
        v = v + t[3, 4] * s34[q]
        v = v + t[4, 0] * s40[q]
        v = v + t[4, 1] * s41[q]
        v = v + t[4, 2] * s42[q]
        v = v + t[4, 3] * s43[q]
        run[q] = v + t[4, 4] * s44[q]


def same_scratch(sizes: tuple[int, ...], kernel: tuple[int, ...], padding: tuple[int, ...]
                 ) -> tuple[tuple[int], tuple[int, int]]:
    """(the edge plane's shape, the masks' shape) one thread's ``*_same`` loops need: a plane
    with room for ``p·W + p`` values either side, for the two planes at the ends of the array
    (a tap of theirs could read past it), and a flag per tap and position."""
    reach = padding[0] * sizes[1] + padding[1]
    return (sizes[0] * sizes[1] + 2 * reach,), (kernel[0] * kernel[1], sizes[0] * sizes[1])


@_jit
def _correlate_same(x: Any, w: Any, bias: Any, out: Any, edge: Any, masks: Any, first: int, stop: int,
                    ph: int, pw: int, dh: int, dw: int) -> None:
    """out[n, c] = bias[c] + Σ w[c, 0, j, i]·x[n, c] at (y + j·dh − ph, q + i·dw − pw) where
    that is inside the plane, for c in [first, stop), the output the input's size. Each plane is
    one run: position p reads p + (j·dh − ph)·W + (i·dw − pw), where ``masks`` says the tap lands
    inside (else it adds w·0, as the zero padding does: the same bits as ``_correlate``). A run
    reads as far as p·W + p either side of its plane, into its neighbours' (masked: never
    used, so never zeroed either); the array's first and last planes are read from ``edge``
    instead, so that no read falls outside an array."""
    examples, channels, height, width = x.shape
    area = height * width
    offsets = _same_taps(masks, w.shape[2], w.shape[3], height, width, ph, pw, dh, dw)
    flat, into = x.reshape(examples * channels * area), out.reshape(examples * channels * area)
    for n in range(examples):
        for c in range(first, stop):
            base = (n * channels + c) * area
            source, at = _plane_source(flat, edge, base, area, ph * width + pw)
            _nine_masked(into[base:base + area], source[at:], masks, offsets, w[c, 0], bias[c])


@_jit
def _same_taps(masks: Any, kh: int, kw: int, height: int, width: int, ph: int, pw: int, dh: int, dw: int
               ) -> Any:
    """Each tap's offset from a position, plus the reach p·W + p (so from the start of the
    reach before a plane), and in ``masks`` whether it lands inside the plane, per position."""
    if kh != 3 or kw != 3:  # (``SAME_SIDES``: the loops sum nine taps)
        raise ValueError("the in-place depthwise loops take a 3×3 kernel only")
    reach = ph * width + pw
    offsets = np.empty(kh * kw, np.int64)
    for j in range(kh):
        for i in range(kw):
            tap = j * kw + i
            offsets[tap] = reach + (j * dh - ph) * width + i * dw - pw
            for y in range(height):
                row = 0 <= y + j * dh - ph < height
                for q in range(width):
                    masks[tap, y * width + q] = row and 0 <= q + i * dw - pw < width
    return offsets


@_jit
def _plane_source(flat: Any, edge: Any, base: int, area: int, reach: int) -> tuple[Any, int]:
    """(an array, where in it the reach before the plane at ``base`` of ``flat`` starts): ``flat``
    itself, or the plane copied into ``edge`` where the reach either side would leave ``flat``."""
    if base < reach or base + area + reach > flat.shape[0]:
        edge[reach:reach + area] = flat[base:base + area]
        return edge, 0
    return flat, base - reach


@_jit
def _nine_masked(run: Any, source: Any, m: Any, o: Any, t: Any, start: Any) -> None:
    """run[p] = start + Σ t[j, i]·(source[p + o[tap]] where m[tap, p], else 0), 3×3, row-major,
    each sum in a register (the centre tap always lands inside). A flag per tap, not a row's
    and a column's: combined in the loop (``&``), the loop was not vectorised (3× slower)."""
    a0, a1, a2 = source[o[0]:], source[o[1]:], source[o[2]:]
    b0, b1, b2 = source[o[3]:], source[o[4]:], source[o[5]:]
    c0, c1, c2 = source[o[6]:], source[o[7]:], source[o[8]:]
    m0, m1, m2, m3, m5, m6, m7, m8 = m[0], m[1], m[2], m[3], m[5], m[6], m[7], m[8]
    w00, w01, w02, w10, w11, w12 = t[0, 0], t[0, 1], t[0, 2], t[1, 0], t[1, 1], t[1, 2]
    w20, w21, w22 = t[2, 0], t[2, 1], t[2, 2]
    zero = np.float32(0)
    for q in range(run.shape[0]):
        v = start + w00 * (a0[q] if m0[q] else zero)
        v = v + w01 * (a1[q] if m1[q] else zero)
        v = v + w02 * (a2[q] if m2[q] else zero)
        v = v + w10 * (b0[q] if m3[q] else zero)
        v = v + w11 * b1[q]
        v = v + w12 * (b2[q] if m5[q] else zero)
        v = v + w20 * (c0[q] if m6[q] else zero)
        v = v + w21 * (c1[q] if m7[q] else zero)
        run[q] = v + w22 * (c2[q] if m8[q] else zero)


@njit(nogil=True, cache=True, fastmath={"reassoc"})
def _nine_dots_masked(run: Any, source: Any, m: Any, o: Any, sums: Any) -> None:
    """sums[tap] += Σ_p run[p]·(source[p + o[tap]] where m[tap, p], else 0), 3×3, in
    vector-wide partial sums (``compiled.dots``'s reassociation: the order follows the CPU's
    vector width, never the threads)."""
    a0, a1, a2 = source[o[0]:], source[o[1]:], source[o[2]:]
    b0, b1, b2 = source[o[3]:], source[o[4]:], source[o[5]:]
    c0, c1, c2 = source[o[6]:], source[o[7]:], source[o[8]:]
    m0, m1, m2, m3, m5, m6, m7, m8 = m[0], m[1], m[2], m[3], m[5], m[6], m[7], m[8]
    zero = np.float32(0)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = s8 = zero
    for q in range(run.shape[0]):
        v = run[q]
        s0 += v * (a0[q] if m0[q] else zero)
        s1 += v * (a1[q] if m1[q] else zero)
        s2 += v * (a2[q] if m2[q] else zero)
        s3 += v * (b0[q] if m3[q] else zero)
        s4 += v * b1[q]
        s5 += v * (b2[q] if m5[q] else zero)
        s6 += v * (c0[q] if m6[q] else zero)
        s7 += v * (c1[q] if m7[q] else zero)
        s8 += v * (c2[q] if m8[q] else zero)
    sums[0] += s0
    sums[1] += s1
    sums[2] += s2
    sums[3] += s3
    sums[4] += s4
    sums[5] += s5
    sums[6] += s6
    sums[7] += s7
    sums[8] += s8
