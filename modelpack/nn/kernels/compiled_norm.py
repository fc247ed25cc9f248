"""BatchNorm's passes as loops compiled by numba (the ``accel`` extra), each one sweep over the
data where numpy needs a ufunc per step: the statistics (mean, then the centred values and
their squares, per channel while it is in cache), the scale and shift, the gradient's two sums,
and the input's gradient. ``norm`` runs them on rows ``[first, stop)`` of (outer, C, inner)
arrays, over the same chunks as its numpy passes, and combines the chunks' sums the same way.

Sums accumulate in float64 in vector-wide partial sums (reassociation lets the compiler
vectorise them: the order then follows the CPU's vector width, never the thread count).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

__all__ = ["statistics", "scale_shift", "grad_sums", "grad_input"]

_jit = njit(nogil=True, cache=True, fastmath={"reassoc"})


@_jit
def statistics(x: Any, out: Any, first: int, stop: int) -> Any:
    """Per channel of rows [first, stop) of float32 x: the mean (rounded to float32) and the sum of squares
    of x − that mean, which is written to ``out``."""
    channels, inner = x.shape[1], x.shape[2]
    means, squares = np.empty(channels), np.empty(channels)
    count = (stop - first) * inner
    for c in range(channels):
        total = 0.0
        for i in range(first, stop):
            for k in range(inner):
                total += x[i, c, k]
        mean = np.float32(total / count)
        square = 0.0
        for i in range(first, stop):
            for k in range(inner):
                centred = x[i, c, k] - mean
                out[i, c, k] = centred
                square += np.float64(centred) * centred
        means[c], squares[c] = mean, square
    return means, squares


@_jit
def scale_shift(out: Any, scale: Any, shift: Any, first: int, stop: int) -> None:
    """out ← out·scale + shift per channel, in place, on rows [first, stop)."""
    for i in range(first, stop):
        for c in range(out.shape[1]):
            a, b = scale[c], shift[c]
            for k in range(out.shape[2]):
                out[i, c, k] = out[i, c, k] * a + b


@_jit
def grad_sums(g: Any, x: Any, mean: Any, first: int, stop: int) -> Any:
    """Per channel of rows [first, stop): Σ g and Σ g·(x − mean)."""
    channels, inner = g.shape[1], g.shape[2]
    sums, dots = np.zeros(channels), np.zeros(channels)
    for c in range(channels):
        m = mean[c]
        total, dot = 0.0, 0.0
        for i in range(first, stop):
            for k in range(inner):
                value = np.float64(g[i, c, k])
                total += value
                dot += value * (x[i, c, k] - m)
        sums[c], dots[c] = total, dot
    return sums, dots


@_jit
def grad_input(g: Any, x: Any, out: Any, scale: Any, slope: Any, offset: Any, first: int, stop: int) -> None:
    """out ← scale·(g + slope·x + offset) per channel, on rows [first, stop)."""
    for i in range(first, stop):
        for c in range(g.shape[1]):
            a, k, b = scale[c], slope[c], offset[c]
            for j in range(g.shape[2]):
                out[i, c, j] = a * (g[i, c, j] + k * x[i, c, j] + b)
