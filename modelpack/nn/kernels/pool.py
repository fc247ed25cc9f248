"""Max and average pooling over a strided view of windows, forward and backward.

Both directions loop over the window's offsets (a pool's few positions, never its pixels):
the forward folds one spatial axis at a time, each offset along it a strided view folded into
a buffer in place (``np.maximum`` or ``np.add``), far faster than reducing the window axes of
the 2·D-axis view; the backward sends each output's gradient back through the window's
offsets. Where windows do not
overlap (stride ≥ pool size, the usual case) each offset writes its own input positions, so
the backward writes them directly instead of adding.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from . import parallel

__all__ = ["offsets", "fold_axes", "max_backward", "spread"]

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


def _disjoint(pool: Sizes, strides: Sizes) -> bool:
    return all(s >= k for k, s in zip(pool, strides, strict=True))


def fold_axes(padded: np.ndarray, pool: Sizes, strides: Sizes, out: Sizes, step: Any) -> np.ndarray:
    """Every window of a (padded) (N, C, *spatial) input folded by ``step`` (``np.maximum`` or
    ``np.add``): (N, C, *out). A window is a box, so it folds one spatial axis at a time, the
    first axis first: that axis's offsets are runs of whole rows, and each later axis folds an
    input already shrunk by the pools before it (a 2×2 pool reads two views of the input and two
    of half of it, not four of the input with a stride each). Measured at one thread against
    folding each of the window's offsets over the whole input: LeNet's 2×2 average pools
    0.24 → 0.15 ms (64×6×28×28) and 0.16 → 0.10 ms (64×16×10×10); a ResNet stem's 3×3/2 max
    pool of 32×64×32×32 3.2 → 2.9 ms. A maximum is the same value in any order; a sum adds
    along the first axis first, so it may differ in the last bit."""

    result = np.empty((*padded.shape[:2], *out), padded.dtype)
    last = len(pool) - 1

    def run(rows: slice) -> None:
        current = padded[rows]
        for axis, (k, s, o) in enumerate(zip(pool, strides, out, strict=True)):
            before = (slice(None),) * (axis + 2)
            views = [current[before + (slice(j, j + (o - 1) * s + 1, s),)] for j in range(k)]
            folded = result[rows] if axis == last else np.empty(views[0].shape, padded.dtype)
            if k == 1:
                np.copyto(folded, views[0])
            else:
                step(views[0], views[1], out=folded)
            for view in views[2:]:
                step(folded, view, out=folded)
            current = folded

    # (the first axis's fold, an input only its pool smaller, is charged by the caller)
    parallel.over_batch(run, padded.shape[0], padded.size, min_elements=parallel.ELEMENTWISE_MIN_ELEMENTS)
    return result


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
