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

from . import parallel

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


def _fold(win: np.ndarray, pool: Sizes, step: Any) -> np.ndarray:
    """One (N, C, *out) buffer: the first offset's view, then ``step(buffer, view)`` with each
    further offset's, in place; chunks of the batch in parallel."""
    first, *rest = offsets(pool)
    out = np.empty(win[_at(first)].shape, win.dtype)

    def run(rows: slice) -> None:
        part = win[rows]
        np.copyto(out[rows], part[_at(first)])
        for offset in rest:
            step(out[rows], part[_at(offset)], out=out[rows])

    parallel.over_batch(run, out.shape[0], out.size * len(rest))
    return out


def max_over(win: np.ndarray, pool: Sizes) -> np.ndarray:
    """The maximum of each window of a (N, C, *out, *pool) view (NaN propagates)."""
    return _fold(win, pool, np.maximum)


def sum_over(win: np.ndarray, pool: Sizes) -> np.ndarray:
    """The sum of each window of a (N, C, *out, *pool) view."""
    return _fold(win, pool, np.add)


def _disjoint(pool: Sizes, strides: Sizes) -> bool:
    return all(s >= k for k, s in zip(pool, strides, strict=True))


def max_backward(grad: np.ndarray, win: np.ndarray, out: np.ndarray, pool: Sizes, strides: Sizes,
                 full: tuple[int, ...]) -> np.ndarray:
    """The (padded, ``full``-shaped) input's gradient: each output's to the first position of
    its window that holds the maximum (ties to the first, as torch)."""
    result = np.zeros(full, grad.dtype)
    disjoint = _disjoint(pool, strides)

    def run(rows: slice) -> None:
        part, grad_part, out_part, result_part = win[rows], grad[rows], out[rows], result[rows]
        free = np.empty(out_part.shape, bool)  # outputs whose maximum is not placed yet
        hit = np.empty(out_part.shape, bool)
        every = offsets(pool)
        for k, offset in enumerate(every):
            np.equal(part[_at(offset)], out_part, out=hit)
            if k == 0:
                np.logical_not(hit, out=free)
            else:
                hit &= free
                if k < len(every) - 1:
                    free ^= hit
            target = result_part[_taps(offset, out.shape[2:], strides)]
            if disjoint:
                np.multiply(grad_part, hit, out=target)
            else:
                target += grad_part * hit

    parallel.over_batch(run, grad.shape[0], grad.size * len(offsets(pool)))
    return result


def spread(share: np.ndarray, pool: Sizes, strides: Sizes, full: tuple[int, ...]) -> np.ndarray:
    """The (padded, ``full``-shaped) input's gradient when every window position gets its
    output's ``share`` (average pooling)."""
    result = np.zeros(full, share.dtype)
    disjoint = _disjoint(pool, strides)

    def run(rows: slice) -> None:
        for offset in offsets(pool):
            target = result[rows][_taps(offset, share.shape[2:], strides)]
            if disjoint:
                np.copyto(target, share[rows])
            else:
                target += share[rows]

    parallel.over_batch(run, share.shape[0], share.size * len(offsets(pool)))
    return result
