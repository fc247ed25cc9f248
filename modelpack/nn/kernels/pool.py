"""Max and average pooling over a strided view of windows, forward and backward.

Both directions loop over the window's offsets (a pool's few positions, never its pixels):
the forward folds one strided (N, C, *out) view per offset into one buffer in place
(``np.maximum`` or ``+=``), far faster than reducing the window axes of the 2·D-axis view;
the backward sends each output's gradient back through the same offsets. Where windows do not
overlap (stride ≥ pool size, the usual case) each offset writes its own input positions, so
the backward writes them directly instead of adding.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

__all__ = ["offsets", "max_over", "sum_over", "max_backward", "spread"]

Sizes = tuple[int, ...]


def offsets(pool: Sizes) -> list[Sizes]:
    return list(itertools.product(*(range(k) for k in pool)))


def _at(offset: Sizes) -> tuple[Any, ...]:
    """Index of one window offset in a (N, C, *out, *window) view."""
    return (Ellipsis, *offset)


def _taps(offset: Sizes, out: Sizes, strides: Sizes) -> tuple[Any, ...]:
    """Where window offset ``offset`` reads for every output position, on (N, C, *spatial)."""
    axes = zip(offset, out, strides, strict=True)
    return (slice(None), slice(None), *(slice(j, j + (o - 1) * s + 1, s) for j, o, s in axes))


def max_over(win: np.ndarray, pool: Sizes) -> np.ndarray:
    """The maximum of each window of a (N, C, *out, *pool) view (NaN propagates)."""
    first, *rest = offsets(pool)
    out = np.array(win[_at(first)])
    for offset in rest:
        np.maximum(out, win[_at(offset)], out=out)
    return out


def sum_over(win: np.ndarray, pool: Sizes) -> np.ndarray:
    """The sum of each window of a (N, C, *out, *pool) view."""
    first, *rest = offsets(pool)
    out = np.array(win[_at(first)])
    for offset in rest:
        out += win[_at(offset)]
    return out


def _disjoint(pool: Sizes, strides: Sizes) -> bool:
    return all(s >= k for k, s in zip(pool, strides, strict=True))


def max_backward(grad: np.ndarray, win: np.ndarray, out: np.ndarray, pool: Sizes, strides: Sizes,
                 full: tuple[int, ...]) -> np.ndarray:
    """The (padded, ``full``-shaped) input's gradient: each output's to the first position of
    its window that holds the maximum (ties to the first, as torch)."""
    result = np.zeros(full, grad.dtype)
    free = np.ones(out.shape, bool)  # outputs whose maximum is not placed yet
    hit = np.empty(out.shape, bool)
    disjoint = _disjoint(pool, strides)
    for offset in offsets(pool):
        np.equal(win[_at(offset)], out, out=hit)
        hit &= free
        free ^= hit
        target = result[_taps(offset, out.shape[2:], strides)]
        if disjoint:
            np.multiply(grad, hit, out=target)
        else:
            target += grad * hit
    return result


def spread(share: np.ndarray, pool: Sizes, strides: Sizes, full: tuple[int, ...]) -> np.ndarray:
    """The (padded, ``full``-shaped) input's gradient when every window position gets its
    output's ``share`` (average pooling)."""
    result = np.zeros(full, share.dtype)
    disjoint = _disjoint(pool, strides)
    for offset in offsets(pool):
        target = result[_taps(offset, share.shape[2:], strides)]
        if disjoint:
            target[...] = share
        else:
            target += share
    return result
