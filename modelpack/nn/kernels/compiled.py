"""Direct convolution loops compiled by numba (the ``accel`` extra), for the shapes where
im2col and a GEMM waste their effort: depthwise and narrow grouped convolutions, whose GEMMs
have a handful of rows while their columns copy the input nine times over.

Each loop takes a slice of the batch, ``[first, stop)``, and per example and group copies the
group's input channels into zero-padded scratch planes split by phase: padded position (r, c)
goes to phase plane (r mod sh, c mod sw), at (r // sh, c // sw), every phase plane ``hq × wq``
(``scratch``). Output position (y, x) reads padded (sh·y + dh·j, sw·x + dw·i) for tap (j, i):
phase plane (dh·j mod sh, dw·i mod sw) at (y + dh·j // sh, x + dw·i // sw). So on the flat
"wide" plane of the output, rows ``wq`` long (the last ``wq − OW`` positions junk), output q
reads phase-plane position q + a tap's offset: each tap is one contiguous run, at any stride,
and a pass sums a few taps (``_sum_taps``) into one long vectorised loop instead of a short
one per row. (Strided runs over unsplit planes, the loops before, were a gather at stride 2,
and their wide rows twice as long as the output's: 3×3/2 lost to numpy's banded GEMMs.) The
junk columns are dropped when the wide plane is copied out (or are zeros, going backwards).

The input's gradient is the same pass turned around: each phase plane gathers, from the wide
plane of the output's gradient (zeros before it and in its junk columns), the taps that read
it, so every scratch value is written once per output channel and nothing is scattered.

Small planes are stacked, several examples one below the other as one tall plane
(``stacked``), so that a tap's run is long enough for the vectorised loops; and a group's
channels are taken four at a time (``OUT_BLOCK``), so that each value loaded serves four sums.
Neither changes the order of any output's or input gradient's sum.

A depthwise forward on small planes of many channels runs channels last instead
(``depthwise_last_forward``): there a plane's runs are a few dozen values, the channels' hundreds.

``direct`` allocates the scratch and runs the slices on ``parallel``'s threads (the loops
release the GIL): every output comes from one slice in one fixed order, so the bits do not
depend on the thread count. The weight's gradient sums over the batch: each slice returns its
partial sums, ``parallel.REDUCTION_CHUNKS`` of them whatever the thread count; within a slice
each example's dot products are vectorised (the order of their partial sums follows the CPU's
vector width, as numpy's own sums do, and never the thread count). Arrays are 2-D
channel-first float32 (N, C, H, W); a 1-D convolution comes as H = 1. Only this module (and
BatchNorm's ``compiled_norm``) imports numba.
A first run compiles the loops (about 10 s), later ones load them from ``__pycache__``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

__all__ = ["scratch", "stacked", "dots", "conv_forward", "conv_grad_input", "conv_grad_weight",
           "depthwise_last_forward", "depthwise_last_grad_input", "depthwise_last_grad_weight"]

# nogil: the loops run on parallel's threads; cache: compiled once per machine, not per process.
_jit = njit(nogil=True, cache=True)
# Taps summed per pass over a plane, at most: each pass loads and stores its target once (a
# plane in cache either way: one thread, half of 8×128×56×56 and of 8×64×112×112, 1 and 3 a
# pass measured even, 0.9–1.5 ms each way on a busy machine; 3 makes a third of the passes).
TAPS_PER_PASS = 3
# Small planes are stacked, several examples' one below the other, up to this many positions
# (``stacked``): a 7×7 plane padded to 9×9 gives runs of 61 values a tap, too short for the
# vectorised loops; eight of them 637. The junk rows between examples are read and dropped
# as the junk columns are. Measured at 2 threads, medians of 25, ms, forward / input's /
# weight's gradient, one example at a time → stacked: 3×3 on 8×1024×7×7 2.02 / 2.14 / 1.41 →
# 1.34 / 1.39 / 1.22, 8×512×14×14 1.23 / 1.27 / 0.92 → 1.08 / 0.91 / 0.89, at stride 2
# 1.17 / 1.62 / 0.90 → 0.85 / 0.95 / 0.82; 5×5 on 8×240×14×14 0.94 / 0.99 / 0.68 → 0.80 /
# 0.80 / 0.75; 3×3 on 32×32×16×16 0.37 / 0.38 / 0.31 → 0.30 / 0.30 / 0.30 (1024 to 8192 alike).
STACK_POSITIONS = 2048
# The loops take this many of a group's channels together: the forward and the weight's
# gradient output channels, the input's gradient output channels (their taps one sum, output
# after output) and input channels. Each value loaded then serves all of them
# (``_sum_taps_block``, ``_dots_block``) and fewer passes load and store their targets. The
# forward and the input's gradient keep each sum's order, so its bits; the weight's gradient's
# partial sums follow the vector width, as ``dots``'s, never the threads. Measured at 2
# threads, medians of 25, ms, one at a time → together, forward / input's / weight's
# gradient: 3×3/2 g32 on 8×256×28×28 1.78 / 2.2 / 1.6 → 1.4 / 1.4 / 1.35; 3×3 g32 on
# 16×128×28×28 2.40 / 2.33 / 2.0 → 1.8 / 1.7 / 1.65. (Four: the block loops name their four
# targets, t0 … t3.)
OUT_BLOCK = 4


def scratch(per_group: int, in_sizes: tuple[int, int], kernel: tuple[int, int], strides: tuple[int, int],
            padding: tuple[int, int], dilation: tuple[int, int], stack: int = 1, outs: int = 1
            ) -> tuple[tuple[int, int, int, int], int]:
    """(the padded phase planes' shape (C/G, sh·sw, stack·hq, wq), the wide buffer's length):
    the scratch one thread's loops need, which ``direct`` charges and allocates; ``stack``
    examples' planes one below the other (``stacked``), ``outs`` output channels a group. The
    wide buffer holds the widest tap offset's zeros before the output's wide plane and a phase
    plane's length from there, so the input's gradient gathers every phase position from it;
    then, for groups of at least OUT_BLOCK outputs, the blocks' wide planes (``_blocks``)."""
    (h, w), (sh, sw), (ph, pw) = in_sizes, strides, padding
    hq, wq = -(-(h + 2 * ph) // sh), -(-(w + 2 * pw) // sw)
    plane = stack * hq * wq
    wide = _margin(kernel, strides, dilation, wq) + (1 + _block_planes(outs)) * plane
    return (per_group, sh * sw, stack * hq, wq), wide


@_jit
def _block_planes(outs: int) -> int:
    """The wide planes the blocks need after the one wide plane, for ``outs`` outputs a group:
    OUT_BLOCK where they make one block or more (a depthwise convolution makes none)."""
    return OUT_BLOCK if outs >= OUT_BLOCK else 0


def stacked(in_sizes: tuple[int, int], strides: tuple[int, int], padding: tuple[int, int], batch: int) -> int:
    """How many examples' phase planes the loops stack one below the other, as one tall plane
    (``STACK_POSITIONS``); at most the batch."""
    (h, w), (sh, sw), (ph, pw) = in_sizes, strides, padding
    example = -(-(h + 2 * ph) // sh) * -(-(w + 2 * pw) // sw)
    return max(1, min(batch, STACK_POSITIONS // example))


def _margin(kernel: tuple[int, int], strides: tuple[int, int], dilation: tuple[int, int], wq: int) -> int:
    """The largest offset of a tap into its phase plane."""
    return (dilation[0] * (kernel[0] - 1) // strides[0]) * wq + dilation[1] * (kernel[1] - 1) // strides[1]


@_jit
def _layout(height: int, width: int, padded: Any, sh: int, sw: int, ph: int, pw: int) -> tuple[Any, Any, Any]:
    """(at, first, count) of ``_deal``: where row h's phase-b values start in a channel's flat
    phase planes (H, sw), the first input column of each column phase b, and how many. Worked
    out once per call: per row and plane, the divisions by runtime strides cost more than the
    copies (half of 8×128×56×56 loaded in 1.4 ms against 0.08 with constant strides)."""
    plane_size, wq = padded.shape[2] * padded.shape[3], padded.shape[3]
    first = np.empty(sw, np.int64)
    count = np.empty(sw, np.int64)
    at = np.empty((height, sw), np.int64)
    for b in range(sw):
        first[b] = (b - pw) % sw
        count[b] = (width - first[b] + sw - 1) // sw
    for h in range(height):
        r = h + ph
        for b in range(sw):
            at[h, b] = ((r % sh) * sw + b) * plane_size + (r // sh) * wq + (first[b] + pw) // sw
    return at, first, count


@_jit
def _deal(x: Any, n: int, first_channel: int, padded: Any, at: Any, first: Any, count: Any, shift: int,
          back: bool) -> None:
    """padded[ci]'s phase planes, where ``_layout`` says and ``shift`` further on (a stacked
    example's place), = x[n, first_channel + ci] (``back``: x from the planes; the planes'
    border stays as it is). Indexed with unsigned integers (a
    signed index is checked for wrapping around per element: half of 8×128×56×56 copied in
    0.75 ms against 0.13); at stride 2 each pair of columns goes to both phases in one loop
    (a loop per phase read at a stride of 2: 2–4× slower)."""
    sw, width = first.shape[0], x.shape[3]
    for ci in range(padded.shape[0]):
        flat = padded[ci].reshape(padded.shape[1] * padded.shape[2] * padded.shape[3])
        plane = x[n, first_channel + ci].reshape(x.shape[2] * width)
        for h in range(x.shape[2]):
            row = np.uint64(h * width)
            if sw == 1:
                into = np.uint64(at[h, 0] + shift)
                for t in range(np.uint64(width)):
                    if back:
                        plane[row + t] = flat[into + t]
                    else:
                        flat[into + t] = plane[row + t]
            elif sw == 2:
                even = 0 if first[0] == 0 else 1  # the phase of the even input columns
                into, odd = np.uint64(at[h, even] + shift), np.uint64(at[h, 1 - even] + shift)
                one, two = np.uint64(1), np.uint64(2)
                for t in range(np.uint64(width // 2)):
                    if back:
                        plane[row + two * t] = flat[into + t]
                        plane[row + two * t + one] = flat[odd + t]
                    else:
                        flat[into + t] = plane[row + two * t]
                        flat[odd + t] = plane[row + two * t + one]
                if width % 2:
                    last = np.uint64(width // 2)
                    if back:
                        plane[row + two * last] = flat[into + last]
                    else:
                        flat[into + last] = plane[row + two * last]
            else:
                for b in range(sw):
                    into, start, step = np.uint64(at[h, b] + shift), row + np.uint64(first[b]), np.uint64(sw)
                    for t in range(np.uint64(count[b])):
                        if back:
                            plane[start + step * t] = flat[into + t]
                        else:
                            flat[into + t] = plane[start + step * t]


@_jit
def _sum_taps(target: Any, source: Any, offsets: Any, weights: Any, fresh: bool) -> None:
    """target[q] (0 if ``fresh``) + Σ_k weights[k]·source[offsets[k] + q] for every q of the
    target, the taps added one after another (the order of a pass per tap), ``TAPS_PER_PASS``
    of them a pass."""
    count = target.shape[0]
    k = 0
    while k < offsets.shape[0]:
        taps = min(TAPS_PER_PASS, offsets.shape[0] - k)
        a = source[offsets[k]:offsets[k] + count]
        wa = weights[k]
        if taps == 1:
            if fresh:
                for q in range(count):
                    target[q] = wa * a[q]
            else:
                for q in range(count):
                    target[q] = target[q] + wa * a[q]
        else:
            b = source[offsets[k + 1]:offsets[k + 1] + count]
            wb = weights[k + 1]
            if taps == 2:
                if fresh:
                    for q in range(count):
                        target[q] = wa * a[q] + wb * b[q]
                else:
                    for q in range(count):
                        target[q] = target[q] + wa * a[q] + wb * b[q]
            else:
                c = source[offsets[k + 2]:offsets[k + 2] + count]
                wc = weights[k + 2]
                if fresh:
                    for q in range(count):
                        target[q] = wa * a[q] + wb * b[q] + wc * c[q]
                else:
                    for q in range(count):
                        target[q] = target[q] + wa * a[q] + wb * b[q] + wc * c[q]
        fresh = False
        k += taps


@_jit
def _pass_runs(source: Any, offsets: Any, k: int, count: int) -> tuple[int, Any, Any, Any]:
    """(taps, a, b, c) of the block loops' pass from tap k: how many taps it takes (up to
    ``TAPS_PER_PASS``) and their runs of ``count`` source values (in a pass of fewer taps, b
    and c stand for the runs it does not read)."""
    taps = min(TAPS_PER_PASS, offsets.shape[0] - k)
    a = source[offsets[k]:offsets[k] + count]
    b = source[offsets[k + 1]:offsets[k + 1] + count] if taps > 1 else a
    c = source[offsets[k + 2]:offsets[k + 2] + count] if taps > 2 else a
    return taps, a, b, c


@_jit
def _sum_taps_block(t0: Any, t1: Any, t2: Any, t3: Any, source: Any, offsets: Any, w0: Any, w1: Any, w2: Any,
                    w3: Any, fresh: bool) -> None:
    """``_sum_taps`` into OUT_BLOCK targets at once, ``w0`` … ``w3`` their weights: each pass
    loads its taps' source runs once for all of them. Every target's sum keeps
    ``_sum_taps``'s order, so its bits (a fresh pass too: no 0 + added first)."""
    k = 0
    while k < offsets.shape[0]:
        taps, a, b, c = _pass_runs(source, offsets, k, t0.shape[0])
        if taps == 3:
            _three_taps(t0, t1, t2, t3, a, b, c, w0, w1, w2, w3, k, fresh)
        elif taps == 2:
            _two_taps(t0, t1, t2, t3, a, b, w0, w1, w2, w3, k, fresh)
        else:
            _one_tap(t0, t1, t2, t3, a, w0, w1, w2, w3, k, fresh)
        fresh = False
        k += taps


@_jit
def _three_taps(t0: Any, t1: Any, t2: Any, t3: Any, a: Any, b: Any, c: Any, w0: Any, w1: Any, w2: Any,
                w3: Any, k: int, fresh: bool) -> None:
    """One pass of ``_sum_taps_block``: taps k, k + 1, k + 2."""
    a0, b0, c0, a1, b1, c1 = w0[k], w0[k + 1], w0[k + 2], w1[k], w1[k + 1], w1[k + 2]
    a2, b2, c2, a3, b3, c3 = w2[k], w2[k + 1], w2[k + 2], w3[k], w3[k + 1], w3[k + 2]
    if fresh:
        for q in range(t0.shape[0]):
            sa, sb, sc = a[q], b[q], c[q]
            t0[q] = a0 * sa + b0 * sb + c0 * sc
            t1[q] = a1 * sa + b1 * sb + c1 * sc
            t2[q] = a2 * sa + b2 * sb + c2 * sc
            t3[q] = a3 * sa + b3 * sb + c3 * sc
    else:
        for q in range(t0.shape[0]):
            sa, sb, sc = a[q], b[q], c[q]
            t0[q] = t0[q] + a0 * sa + b0 * sb + c0 * sc
            t1[q] = t1[q] + a1 * sa + b1 * sb + c1 * sc
            t2[q] = t2[q] + a2 * sa + b2 * sb + c2 * sc
            t3[q] = t3[q] + a3 * sa + b3 * sb + c3 * sc


@_jit
def _two_taps(t0: Any, t1: Any, t2: Any, t3: Any, a: Any, b: Any, w0: Any, w1: Any, w2: Any, w3: Any, k: int,
              fresh: bool) -> None:
    """One pass of ``_sum_taps_block``: taps k, k + 1."""
    a0, b0, a1, b1, a2, b2, a3, b3 = w0[k], w0[k + 1], w1[k], w1[k + 1], w2[k], w2[k + 1], w3[k], w3[k + 1]
    if fresh:
        for q in range(t0.shape[0]):
            sa, sb = a[q], b[q]
            t0[q], t1[q] = a0 * sa + b0 * sb, a1 * sa + b1 * sb
            t2[q], t3[q] = a2 * sa + b2 * sb, a3 * sa + b3 * sb
    else:
        for q in range(t0.shape[0]):
            sa, sb = a[q], b[q]
            t0[q] = t0[q] + a0 * sa + b0 * sb
            t1[q] = t1[q] + a1 * sa + b1 * sb
            t2[q] = t2[q] + a2 * sa + b2 * sb
            t3[q] = t3[q] + a3 * sa + b3 * sb


@_jit
def _one_tap(t0: Any, t1: Any, t2: Any, t3: Any, a: Any, w0: Any, w1: Any, w2: Any, w3: Any, k: int,
             fresh: bool) -> None:
    """One pass of ``_sum_taps_block``: tap k."""
    a0, a1, a2, a3 = w0[k], w1[k], w2[k], w3[k]
    if fresh:
        for q in range(t0.shape[0]):
            sa = a[q]
            t0[q], t1[q], t2[q], t3[q] = a0 * sa, a1 * sa, a2 * sa, a3 * sa
    else:
        for q in range(t0.shape[0]):
            sa = a[q]
            t0[q] = t0[q] + a0 * sa
            t1[q] = t1[q] + a1 * sa
            t2[q] = t2[q] + a2 * sa
            t3[q] = t3[q] + a3 * sa


@njit(nogil=True, cache=True, fastmath={"reassoc"})
def dots(wide: Any, source: Any, offsets: Any, into: Any) -> None:
    """into[k] += Σ_q wide[q]·source[offsets[k] + q], ``TAPS_PER_PASS`` taps a pass, in
    vector-wide partial sums (reassociation lets the compiler vectorise them: the order then
    follows the CPU's vector width, never the threads)."""
    count = wide.shape[0]
    k = 0
    while k < offsets.shape[0]:
        taps = min(TAPS_PER_PASS, offsets.shape[0] - k)
        a = source[offsets[k]:offsets[k] + count]
        if taps == 1:
            ta = np.float32(0)
            for q in range(count):
                ta += wide[q] * a[q]
            into[k] += ta
        else:
            b = source[offsets[k + 1]:offsets[k + 1] + count]
            if taps == 2:
                ta = tb = np.float32(0)
                for q in range(count):
                    ta += wide[q] * a[q]
                    tb += wide[q] * b[q]
                into[k] += ta
                into[k + 1] += tb
            else:
                c = source[offsets[k + 2]:offsets[k + 2] + count]
                ta = tb = tc = np.float32(0)
                for q in range(count):
                    ta += wide[q] * a[q]
                    tb += wide[q] * b[q]
                    tc += wide[q] * c[q]
                into[k] += ta
                into[k + 1] += tb
                into[k + 2] += tc
        k += taps


@njit(nogil=True, cache=True, fastmath={"reassoc"})
def _dots_block(x0: Any, x1: Any, x2: Any, x3: Any, source: Any, offsets: Any, into: Any) -> None:
    """``dots`` for OUT_BLOCK wide planes at once, into[b, k] for ``x0`` … ``x3``: each pass
    loads its taps' source runs once for the four."""
    count = x0.shape[0]
    k = 0
    while k < offsets.shape[0]:
        taps, a, b, c = _pass_runs(source, offsets, k, count)
        if taps == 3:
            a0 = b0 = c0 = a1 = b1 = c1 = a2 = b2 = c2 = a3 = b3 = c3 = np.float32(0)
            for q in range(count):
                sa, sb, sc, y0, y1, y2, y3 = a[q], b[q], c[q], x0[q], x1[q], x2[q], x3[q]
                a0 += y0 * sa
                b0 += y0 * sb
                c0 += y0 * sc
                a1 += y1 * sa
                b1 += y1 * sb
                c1 += y1 * sc
                a2 += y2 * sa
                b2 += y2 * sb
                c2 += y2 * sc
                a3 += y3 * sa
                b3 += y3 * sb
                c3 += y3 * sc
            into[0, k] += a0
            into[0, k + 1] += b0
            into[0, k + 2] += c0
            into[1, k] += a1
            into[1, k + 1] += b1
            into[1, k + 2] += c1
            into[2, k] += a2
            into[2, k + 1] += b2
            into[2, k + 2] += c2
            into[3, k] += a3
            into[3, k + 1] += b3
            into[3, k + 2] += c3
        else:
            for t in range(taps):
                run = a if t == 0 else b
                a0 = a1 = a2 = a3 = np.float32(0)
                for q in range(count):
                    value = run[q]
                    a0 += x0[q] * value
                    a1 += x1[q] * value
                    a2 += x2[q] * value
                    a3 += x3[q] * value
                into[0, k + t] += a0
                into[1, k + t] += a1
                into[2, k + t] += a2
                into[3, k + t] += a3
        k += taps


@_jit
def _offsets(kh_count: int, kw_count: int, sh: int, sw: int, dh: int, dw: int, hq: int, wq: int
             ) -> tuple[Any, Any]:
    """(phase, offset) of each tap (j, i), row-major: its phase plane, and where output
    position 0 reads in it."""
    phase = np.empty(kh_count * kw_count, np.int64)
    offset = np.empty(kh_count * kw_count, np.int64)
    for j in range(kh_count):
        for i in range(kw_count):
            k = j * kw_count + i
            phase[k] = (dh * j % sh) * sw + dw * i % sw
            offset[k] = (dh * j // sh) * wq + dw * i // sw
    return phase, offset


@_jit
def _stacked_rows(wide: Any, rows: Any, n: int, o: int, shifts: Any, wq: int, out: bool) -> None:
    """rows[n + s, o] (OH, OW) for each stacked example s = the first OW columns of each wq-long
    row of ``wide`` from ``shifts[s]`` on (``out``), or the other way (``wide``'s junk
    columns and rows are not written)."""
    size = rows.shape[2] * rows.shape[3]
    for s in range(shifts.shape[0]):
        _rows_from(wide[shifts[s]:], rows[n + s, o].reshape(size), wq, rows.shape[3], out)


@_jit
def _rows_from(wide: Any, plane: Any, wq: int, ow: int, out: bool) -> None:
    """plane (OH·OW, flat) = the first OW columns of each wq-long row of ``wide`` (``out``), or
    the other way (unsigned indices, as ``_deal``'s)."""
    for oh in range(plane.shape[0] // ow):
        row, at = np.uint64(oh * ow), np.uint64(oh * wq)
        for j in range(np.uint64(ow)):
            if out:
                plane[row + j] = wide[at + j]
            else:
                wide[at + j] = plane[row + j]


# The three passes pair the same things (each output position with each tap's input position)
# and differ in what they write: the output, the input's gradient or the weight's gradient.
FORWARD, GRAD_INPUT, GRAD_WEIGHT = 0, 1, 2


@_jit
def _sweep(mode: int, planes: Any, rows: Any, w: Any, bias: Any, padded: Any, buffer: Any, first: int,
           stop: int, sh: int, sw: int, ph: int, pw: int, dh: int, dw: int, groups: int) -> None:
    """Every (example in [first, stop), output channel, input channel of its group, tap):
    ``planes`` is the input side (N, C, H, W), ``rows`` the output side (N, O, OH, OW), ``w`` the
    weight (O, C/G, KH, KW), ``padded`` and ``buffer`` the scratch (``scratch``, zeroed, its
    planes as many examples tall as ``stacked`` says); ``mode`` says which one of the three
    is written. Stacked examples are one tall plane: output row y of the s-th reads phase-plane
    rows s·hq + y + …, which stay within its own rows (the rows below its outputs are junk, as
    the columns right of them are), and its input positions gather only from its own."""
    o_count, per_group, kh_count, kw_count = w.shape
    oh_count, ow_count = rows.shape[2], rows.shape[3]
    phases, wq = padded.shape[1], padded.shape[3]
    hq = (planes.shape[2] + 2 * ph + sh - 1) // sh  # one example's phase-plane rows
    stack = padded.shape[2] // hq
    example_size, plane_size = hq * wq, padded.shape[2] * wq
    outs = o_count // groups
    margin = buffer.shape[0] - (1 + _block_planes(outs)) * plane_size
    phase, offset = _offsets(kh_count, kw_count, sh, sw, dh, dw, hq, wq)
    taps = kh_count * kw_count
    at, first_column, count = _layout(planes.shape[2], planes.shape[3], padded, sh, sw, ph, pw)
    tap_row, tap_column = np.empty(taps, np.int64), np.empty(taps, np.int64)
    for k in range(taps):
        tap_row[k], tap_column[k] = k // kw_count, k % kw_count
    # Forward and weight's gradient: each tap's run in a channel's flat phase planes.
    reads = phase * plane_size + offset
    # Input's gradient: per phase plane, its taps' runs in the buffer, ``margin`` before wide.
    order = np.argsort(phase, kind="mergesort")
    starts = np.zeros(phases + 1, np.int64)
    for k in range(taps):
        starts[phase[k] + 1] += 1
    for a in range(phases):
        starts[a + 1] += starts[a]
    gathers = margin - offset[order]
    # ... and for the output channels taken together, from their wide planes (``_blocks``)
    one_base, block_bases = np.zeros(1, np.int64), (1 + np.arange(OUT_BLOCK)) * plane_size
    weights = np.empty(taps, w.dtype)
    sums = np.empty(taps, w.dtype)
    if mode == GRAD_WEIGHT:
        w[:] = 0
    for n in range(first, stop, stack):
        examples = min(stack, stop - n)
        shifts = np.arange(examples) * example_size  # where each stacked example's rows start
        span = ((examples - 1) * hq + oh_count - 1) * wq + ow_count
        wide = buffer[margin:margin + span]  # the outputs' wide plane, zeros before it and after
        for g in range(groups):
            if mode != GRAD_INPUT:
                for s in range(examples):
                    _deal(planes, n + s, g * per_group, padded, at, first_column, count, shifts[s], False)
            blocked = g * outs
            if mode != GRAD_INPUT:
                blocked = _output_blocks(mode, rows, w, bias, padded, buffer, margin, g * outs,
                                         (g + 1) * outs, n, span, shifts, reads, tap_row, tap_column, wq)
            elif outs >= OUT_BLOCK:
                wides = _blocks(buffer, margin, plane_size)
                while blocked + OUT_BLOCK <= (g + 1) * outs:
                    for b in range(OUT_BLOCK):
                        _stacked_rows(wides[b], rows, n, blocked + b, shifts, wq, False)
                    _grad_input_from(padded, w, blocked, block_bases, blocked == g * outs,
                                     examples * example_size, buffer, gathers, starts, order, tap_row,
                                     tap_column)
                    blocked += OUT_BLOCK
            for o in range(blocked, (g + 1) * outs):
                if mode == FORWARD:
                    wide[:] = bias[o]
                else:
                    _stacked_rows(wide, rows, n, o, shifts, wq, False)
                if mode == GRAD_INPUT:
                    _grad_input_from(padded, w, o, one_base, o == g * outs, examples * example_size, buffer,
                                     gathers, starts, order, tap_row, tap_column)
                    continue
                for ci in range(per_group):
                    flat = padded[ci].reshape(phases * plane_size)
                    if mode == FORWARD:
                        for k in range(taps):
                            weights[k] = w[o, ci, tap_row[k], tap_column[k]]
                        _sum_taps(wide, flat, reads, weights, False)
                    else:
                        sums[:] = 0
                        dots(wide, flat, reads, sums)
                        for k in range(taps):
                            w[o, ci, tap_row[k], tap_column[k]] += sums[k]
                if mode == FORWARD:
                    _stacked_rows(wide, rows, n, o, shifts, wq, True)
            if mode == GRAD_INPUT:
                for s in range(examples):
                    _deal(planes, n + s, g * per_group, padded, at, first_column, count, shifts[s], True)


@_jit
def _output_blocks(mode: int, rows: Any, w: Any, bias: Any, padded: Any, buffer: Any, margin: int,
                   first_out: int, stop_out: int, n: int, span: int, shifts: Any, reads: Any, tap_row: Any,
                   tap_column: Any, wq: int) -> int:
    """``_sweep``'s forward or weight's gradient (``mode``) for output channels [first_out,
    stop_out) of one group, OUT_BLOCK at a time while that many are left (``_sum_taps_block``,
    ``_dots_block``: each input run loaded serves four outputs); returns the first one left."""
    if stop_out - first_out < OUT_BLOCK:
        return first_out  # (no room for blocks was made: ``_block_planes``)
    per_group, taps = w.shape[1], reads.shape[0]
    phases, plane_size = padded.shape[1], padded.shape[2] * padded.shape[3]
    wides = _blocks(buffer, margin, plane_size)
    terms = np.empty((OUT_BLOCK, taps), w.dtype)  # the forward's weights, the gradient's sums
    o = first_out
    while o + OUT_BLOCK <= stop_out:
        for b in range(OUT_BLOCK):
            if mode == FORWARD:
                wides[b, :span] = bias[o + b]
            else:
                _stacked_rows(wides[b], rows, n, o + b, shifts, wq, False)
        for ci in range(per_group):
            flat = padded[ci].reshape(phases * plane_size)
            if mode == FORWARD:
                for b in range(OUT_BLOCK):
                    for k in range(taps):
                        terms[b, k] = w[o + b, ci, tap_row[k], tap_column[k]]
                _sum_taps_block(wides[0, :span], wides[1, :span], wides[2, :span], wides[3, :span], flat,
                                reads, terms[0], terms[1], terms[2], terms[3], False)
            else:
                terms[:] = 0
                _dots_block(wides[0, :span], wides[1, :span], wides[2, :span], wides[3, :span], flat, reads,
                            terms)
                for b in range(OUT_BLOCK):
                    for k in range(taps):
                        w[o + b, ci, tap_row[k], tap_column[k]] += terms[b, k]
        if mode == FORWARD:
            for b in range(OUT_BLOCK):
                _stacked_rows(wides[b], rows, n, o + b, shifts, wq, True)
        o += OUT_BLOCK
    return o


@_jit
def _blocks(buffer: Any, margin: int, plane_size: int) -> Any:
    """The OUT_BLOCK wide planes (rows of ``plane_size``) after the one wide plane in ``buffer``:
    their junk positions, never written, stay zero, as the weight's gradient needs; each
    example's rows at the same place in every stack."""
    start = margin + plane_size
    return buffer[start:start + OUT_BLOCK * plane_size].reshape(OUT_BLOCK, plane_size)


@_jit
def _grad_input_from(padded: Any, w: Any, first_out: int, bases: Any, fresh: bool, length: int, buffer: Any,
                     gathers: Any, starts: Any, order: Any, tap_row: Any, tap_column: Any) -> None:
    """``_sweep``'s input gradient from output channels first_out, first_out + 1, … (one per
    base: the place of its wide plane in ``buffer``, after ``gathers``') into every input channel
    of their group: per phase plane one sum of every output's taps, output after output, so
    each value keeps the order of one output at a time, so its bits; ``OUT_BLOCK`` input
    channels at a time (``_sum_taps_block``) while that many are left."""
    per_group, phases, plane_size = w.shape[1], padded.shape[1], padded.shape[2] * padded.shape[3]
    outputs = bases.shape[0]
    reads = np.empty(outputs * gathers.shape[0], np.int64)
    weights = np.empty((OUT_BLOCK, reads.shape[0]), w.dtype)
    for a in range(phases):
        lo, hi = starts[a], starts[a + 1]
        taps, at = hi - lo, a * plane_size
        terms = outputs * taps
        for j in range(outputs):
            for t in range(taps):
                reads[j * taps + t] = gathers[lo + t] + bases[j]
        ci = 0
        while ci < per_group:
            block = OUT_BLOCK if ci + OUT_BLOCK <= per_group else 1
            for b in range(block):
                for j in range(outputs):
                    for t in range(taps):
                        k = order[lo + t]
                        weights[b, j * taps + t] = w[first_out + j, ci + b, tap_row[k], tap_column[k]]
            if terms == 0:
                if fresh:  # no tap reads this phase
                    for b in range(block):
                        padded[ci + b].reshape(phases * plane_size)[at:at + length] = 0
            elif block == OUT_BLOCK:
                flat = padded[ci:ci + OUT_BLOCK].reshape(OUT_BLOCK, phases * plane_size)
                _sum_taps_block(flat[0, at:at + length], flat[1, at:at + length], flat[2, at:at + length],
                                flat[3, at:at + length], buffer, reads[:terms], weights[0, :terms],
                                weights[1, :terms], weights[2, :terms], weights[3, :terms], fresh)
            else:
                target = padded[ci].reshape(phases * plane_size)[at:at + length]
                _sum_taps(target, buffer, reads[:terms], weights[0, :terms], fresh)
            ci += block


@_jit
def conv_forward(x: Any, w: Any, bias: Any, out: Any, padded: Any, buffer: Any, first: int, stop: int,
                 sh: int, sw: int, ph: int, pw: int, dh: int, dw: int, groups: int) -> None:
    """out[n] = bias + Σ taps of x[n] (N, C, H, W) ⋆ w (O, C/G, KH, KW), n in [first, stop)."""
    _sweep(FORWARD, x, out, w, bias, padded, buffer, first, stop, sh, sw, ph, pw, dh, dw, groups)


# The kernels whose depthwise forward run channels last keeps each channel's sum in a register
# across all its taps (``_nine_taps``, ``_twenty_five_taps``; ``direct`` runs them channels last
# on larger planes than others).
_REGISTER_SIDES = (3, 5)  # (one a side of a square kernel; ``_sum_in_registers`` has a loop each)
REGISTER_KERNELS = tuple((side, side) for side in _REGISTER_SIDES)
# Channels per block when ``_lay`` turns a channels-last example back into planes: each block's
# positions are read a cache line at a time and written to that many planes, all in L1. Written
# channel by channel at every position (stores a plane apart, 4 KB for 1,024 channels of 7×7),
# it took 0.46 ms for 8 examples of 1,024×7×7, in blocks of 8–64 0.20–0.22 (one thread).
_LAY_BLOCK = 32


@_jit
def _lay(planes: Any, n: int, laid: Any, ph: int, pw: int, back: bool) -> None:
    """laid[ph + r, pw + q, c] = planes[n, c, r, q]: example n channels last, at an offset
    (``back``: planes from laid, the layout turned around, in blocks of ``_LAY_BLOCK`` channels)."""
    if back:
        for c0 in range(0, planes.shape[1], _LAY_BLOCK):
            c1 = min(planes.shape[1], c0 + _LAY_BLOCK)
            for r in range(planes.shape[2]):
                for q in range(planes.shape[3]):
                    row = laid[r + ph, q + pw]
                    for c in range(c0, c1):
                        planes[n, c, r, q] = row[c]
        return
    for r in range(planes.shape[2]):
        for q in range(planes.shape[3]):
            row = laid[r + ph, q + pw]
            for c in range(planes.shape[1]):
                row[c] = planes[n, c, r, q]


@_jit
def _taps_last(w: Any) -> Any:
    """A depthwise weight (C, 1, KH, KW) as (KH, KW, C): each tap's values over the channels."""
    taps = np.empty((w.shape[2], w.shape[3], w.shape[0]), w.dtype)
    for c in range(w.shape[0]):
        for j in range(w.shape[2]):
            for i in range(w.shape[3]):
                taps[j, i, c] = w[c, 0, j, i]
    return taps


@_jit
def depthwise_last_forward(x: Any, w: Any, bias: Any, out: Any, padded: Any, acc: Any, first: int, stop: int,
                           sh: int, sw: int, ph: int, pw: int, dh: int, dw: int) -> None:
    """out[n] = bias + Σ taps of x[n] (N, C, H, W) ⋆ w (C, 1, KH, KW), one output channel per
    input channel, n in [first, stop), computed channels last: each example is laid out in
    ``padded`` (H + 2·ph, W + 2·pw, C; its border zeros, never written), and each output
    position's C sums in ``acc`` (OH, OW, C) take the taps one after another, each a
    vectorised pass over the channels (the order, and so the bits, of ``conv_forward``'s
    passes). On small planes of many channels the planes' own runs are a few dozen values:
    too short for their loops (``direct.CHANNELS_LAST_MAX_TAP_POSITIONS``)."""
    taps = _taps_last(w)
    in_registers = _register_sums(taps)
    for n in range(first, stop):
        _lay(x, n, padded, ph, pw, False)
        for y in range(out.shape[2]):
            for q in range(out.shape[3]):
                row = acc[y, q]
                if in_registers:
                    _sum_in_registers(row, bias, taps, padded, y * sh, q * sw, dh, dw)
                    continue
                row[:] = bias
                for j in range(taps.shape[0]):
                    for i in range(taps.shape[1]):
                        source, tap = padded[y * sh + j * dh, q * sw + i * dw], taps[j, i]
                        for c in range(row.shape[0]):
                            row[c] = row[c] + tap[c] * source[c]
        _lay(out, n, acc, 0, 0, True)


@_jit
def _register_sums(taps: Any) -> bool:
    """Whether a kernel's taps (KH, KW, C) are one of ``REGISTER_KERNELS``."""
    return taps.shape[0] == taps.shape[1] and taps.shape[0] in _REGISTER_SIDES


@_jit
def _sum_in_registers(row: Any, bias: Any, taps: Any, padded: Any, y: int, q: int, dh: int, dw: int) -> None:
    """``_nine_taps`` or ``_twenty_five_taps``, as the kernel's size says (``_register_sums``)."""
    if taps.shape[0] == 3:
        _nine_taps(row, bias, taps, padded, y, q, dh, dw)
    else:
        _twenty_five_taps(row, bias, taps, padded, y, q, dh, dw)


@_jit
def _nine_taps(row: Any, bias: Any, taps: Any, padded: Any, y: int, q: int, dh: int, dw: int) -> None:
    """row = bias + Σ of a 3×3 kernel's taps (``taps``: (3, 3, C)) times what each reads from
    ``padded`` for the position at (y, q), in ``depthwise_last_forward``'s order (the same
    bits), each channel's sum kept in a register: 1.7× faster than a pass over the row per tap
    (8 examples of 1,024×7×7, one thread, 0.43 → 0.25 ms)."""
    a0, a1, a2 = padded[y, q], padded[y, q + dw], padded[y, q + 2 * dw]
    b0, b1, b2 = padded[y + dh, q], padded[y + dh, q + dw], padded[y + dh, q + 2 * dw]
    c0, c1, c2 = padded[y + 2 * dh, q], padded[y + 2 * dh, q + dw], padded[y + 2 * dh, q + 2 * dw]
    for c in range(row.shape[0]):
        v = bias[c] + taps[0, 0, c] * a0[c]
        v = v + taps[0, 1, c] * a1[c]
        v = v + taps[0, 2, c] * a2[c]
        v = v + taps[1, 0, c] * b0[c]
        v = v + taps[1, 1, c] * b1[c]
        v = v + taps[1, 2, c] * b2[c]
        v = v + taps[2, 0, c] * c0[c]
        v = v + taps[2, 1, c] * c1[c]
        row[c] = v + taps[2, 2, c] * c2[c]


@_jit
def _twenty_five_taps(row: Any, bias: Any, taps: Any, padded: Any, y: int, q: int, dh: int, dw: int) -> None:
    """``_nine_taps`` for a 5×5 kernel (``taps``: (5, 5, C)), the taps row by row in one statement
    sequence (numba keeps a sum in a register only so): 2.0× faster than a pass over the row per
    tap (8 examples of 240×14×14, one thread, 1.00 → 0.50 ms), the same bits."""
    p0 = padded[y]
    s00, s01, s02, s03, s04 = p0[q], p0[q + dw], p0[q + 2 * dw], p0[q + 3 * dw], p0[q + 4 * dw]
    p1 = padded[y + dh]
    s10, s11, s12, s13, s14 = p1[q], p1[q + dw], p1[q + 2 * dw], p1[q + 3 * dw], p1[q + 4 * dw]
    p2 = padded[y + 2 * dh]
    s20, s21, s22, s23, s24 = p2[q], p2[q + dw], p2[q + 2 * dw], p2[q + 3 * dw], p2[q + 4 * dw]
    p3 = padded[y + 3 * dh]
    s30, s31, s32, s33, s34 = p3[q], p3[q + dw], p3[q + 2 * dw], p3[q + 3 * dw], p3[q + 4 * dw]
    p4 = padded[y + 4 * dh]
    s40, s41, s42, s43, s44 = p4[q], p4[q + dw], p4[q + 2 * dw], p4[q + 3 * dw], p4[q + 4 * dw]
    for c in range(row.shape[0]):
        v = bias[c] + taps[0, 0, c] * s00[c]
        v = v + taps[0, 1, c] * s01[c]
        v = v + taps[0, 2, c] * s02[c]
        v = v + taps[0, 3, c] * s03[c]
        v = v + taps[0, 4, c] * s04[c]
        v = v + taps[1, 0, c] * s10[c]
        v = v + taps[1, 1, c] * s11[c]
        v = v + taps[1, 2, c] * s12[c]
        v = v + taps[1, 3, c] * s13[c]
        v = v + taps[1, 4, c] * s14[c]
        v = v + taps[2, 0, c] * s20[c]
        v = v + taps[2, 1, c] * s21[c]
        v = v + taps[2, 2, c] * s22[c]
        v = v + taps[2, 3, c] * s23[c]
        v = v + taps[2, 4, c] * s24[c]
        v = v + taps[3, 0, c] * s30[c]
        v = v + taps[3, 1, c] * s31[c]
        v = v + taps[3, 2, c] * s32[c]
        v = v + taps[3, 3, c] * s33[c]
        v = v + taps[3, 4, c] * s34[c]
        v = v + taps[4, 0, c] * s40[c]
        v = v + taps[4, 1, c] * s41[c]
        v = v + taps[4, 2, c] * s42[c]
        v = v + taps[4, 3, c] * s43[c]
        row[c] = v + taps[4, 4, c] * s44[c]


@_jit
def depthwise_last_grad_input(grad: Any, w: Any, grad_x: Any, padded: Any, acc: Any, first: int, stop: int,
                              sh: int, sw: int, ph: int, pw: int, dh: int, dw: int) -> None:
    """grad_x[n] for n in [first, stop): each output position's gradient (laid channels last in
    ``acc``) times each tap's weights, added where that tap read in ``padded`` (zeroed per
    example), a vectorised pass over the channels each, in a fixed order. At stride 1 with
    'same' padding (2·p = d·(k − 1)) a kernel of ``REGISTER_KERNELS`` gathers instead: the
    gradient laid in ``padded`` at the padding's offset (its border zero), correlated with the
    flipped kernel into ``acc`` by the forward's register sums (another order than the scatter's:
    float rounding apart). Batch 8 at 2 threads, medians of 21 (ms, scatter → gather): 3×3 on
    1024×7×7 0.65 → 0.59, on 512×14×14 1.00 → 0.86; 5×5 on 240×14×14 0.84 → 0.69."""
    taps = _taps_last(w)
    if (sh == 1 and sw == 1 and 2 * ph == dh * (taps.shape[0] - 1) and 2 * pw == dw * (taps.shape[1] - 1)
            and _register_sums(taps)):
        flipped = np.ascontiguousarray(taps[::-1, ::-1])
        zero = np.zeros(taps.shape[2], taps.dtype)
        for n in range(first, stop):
            _lay(grad, n, padded, ph, pw, False)
            for y in range(grad_x.shape[2]):
                for q in range(grad_x.shape[3]):
                    _sum_in_registers(acc[y, q], zero, flipped, padded, y, q, dh, dw)
            _lay(grad_x, n, acc, 0, 0, True)
        return
    for n in range(first, stop):
        _lay(grad, n, acc, 0, 0, False)
        padded[:] = 0
        for y in range(grad.shape[2]):
            for q in range(grad.shape[3]):
                row = acc[y, q]
                for j in range(taps.shape[0]):
                    for i in range(taps.shape[1]):
                        target, tap = padded[y * sh + j * dh, q * sw + i * dw], taps[j, i]
                        for c in range(row.shape[0]):
                            target[c] = target[c] + tap[c] * row[c]
        _lay(grad_x, n, padded, ph, pw, True)


@_jit
def depthwise_last_grad_weight(grad: Any, x: Any, grad_w: Any, padded: Any, acc: Any, first: int, stop: int,
                               sh: int, sw: int, ph: int, pw: int, dh: int, dw: int) -> None:
    """grad_w (C, 1, KH, KW) = Σ over n in [first, stop) and every output position of grad
    times the input its tap read, channels last: per tap, a vectorised pass over the
    channels adds each position's products, in a fixed order."""
    kh_count, kw_count = grad_w.shape[2], grad_w.shape[3]
    sums = np.zeros((kh_count, kw_count, x.shape[1]), grad_w.dtype)
    for n in range(first, stop):
        _lay(x, n, padded, ph, pw, False)
        _lay(grad, n, acc, 0, 0, False)
        for y in range(grad.shape[2]):
            for q in range(grad.shape[3]):
                row = acc[y, q]
                for j in range(kh_count):
                    for i in range(kw_count):
                        source, total = padded[y * sh + j * dh, q * sw + i * dw], sums[j, i]
                        for c in range(row.shape[0]):
                            total[c] = total[c] + row[c] * source[c]
    for c in range(x.shape[1]):
        for j in range(kh_count):
            for i in range(kw_count):
                grad_w[c, 0, j, i] = sums[j, i, c]


@_jit
def conv_grad_input(grad: Any, w: Any, grad_x: Any, padded: Any, buffer: Any, first: int, stop: int,
                    sh: int, sw: int, ph: int, pw: int, dh: int, dw: int, groups: int) -> None:
    """grad_x[n] = the convolution's adjoint applied to grad[n] (N, O, OH, OW): each output's
    gradient times each tap's weight, added where that tap read. Also a transposed convolution."""
    _sweep(GRAD_INPUT, grad_x, grad, w, grad[0, :, 0, 0], padded, buffer, first, stop, sh, sw, ph, pw, dh, dw,
           groups)


@_jit
def conv_grad_weight(grad: Any, x: Any, grad_w: Any, padded: Any, buffer: Any, first: int, stop: int,
                     sh: int, sw: int, ph: int, pw: int, dh: int, dw: int, groups: int) -> None:
    """grad_w (O, C/G, KH, KW) = Σ over n in [first, stop) and every output position of grad
    times the input its tap read: per example, one dot product per tap."""
    _sweep(GRAD_WEIGHT, x, grad, grad_w, grad[0, :, 0, 0], padded, buffer, first, stop, sh, sw, ph, pw, dh,
           dw, groups)
