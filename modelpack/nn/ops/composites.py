"""numpy functions that are several ops: written as numpy code over the op set, once, here.

A composite is not an op (a graph never names it): it is numpy code that, run on a recorded
value (autograd's ``Variable``) or a tracing stand-in, calls only functions, ufuncs and
operators of the op table, so it is recorded as those ops and differentiated by their VJPs.
``COMPOSITES`` maps the numpy function to its composite; ``Variable`` and ``Traced`` look
there before refusing a numpy function that is not an op. On plain arrays numpy's own runs.

>>> with autograd.record(): n = np.linalg.norm(x)    # doctest: +SKIP  (sqrt(sum(x * x)))
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import UsageError

__all__ = ["COMPOSITES", "norm"]


def norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A002
    """``np.linalg.norm``: the vector norms (any ``ord``) and the matrix norms made of sums
    and extrema (``'fro'``, 1, -1, inf, -inf), numpy's axis and dtype rules. The 2-norms and
    the nuclear norm of a matrix need singular values, which no op computes: refused."""
    if not np.issubdtype(x.dtype, np.inexact):
        x = x.astype(np.float64)  # as numpy: integers and booleans are normed as float64
    ndim = len(x.shape)
    if axis is None:
        if ord is None:  # the 2-norm of the flattened array, whatever its rank
            result = np.sqrt(np.sum(x * x))
            return result.reshape((1,) * ndim) if keepdims else result
        if ndim not in (1, 2):
            raise UsageError(
                f"np.linalg.norm with ord={ord!r} and no axis needs a 1-D or 2-D array, got {ndim}-D"
            )
        axis = tuple(range(ndim))
    axes = tuple(_axis(a, ndim) for a in (axis if isinstance(axis, (tuple, list)) else (axis,)))
    if len(axes) == 1:
        return _vector_norm(x, ord, axes[0], keepdims)
    if len(axes) == 2 and axes[0] != axes[1]:
        return _matrix_norm(x, ord, axes, keepdims)
    raise UsageError(f"np.linalg.norm: axis {axis!r} must name one axis or two different axes")


def _axis(axis: Any, ndim: int) -> int:
    try:
        index = operator.index(axis)
    except TypeError:
        raise UsageError(f"np.linalg.norm: an axis must be an int, got {axis!r}") from None
    if not -ndim <= index < ndim:
        raise UsageError(f"np.linalg.norm: axis {index} is out of bounds for a {ndim}-D array")
    return index % ndim


def _vector_norm(x: Any, ord: Any, axis: int, keepdims: bool) -> Any:  # noqa: A002
    if ord is None or ord == 2:
        return np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims))
    if isinstance(ord, str):
        raise UsageError(f"np.linalg.norm: ord={ord!r} is a matrix norm; a vector norm takes a number")
    if ord == np.inf:
        return np.max(np.abs(x), axis=axis, keepdims=keepdims)
    if ord == -np.inf:
        return np.min(np.abs(x), axis=axis, keepdims=keepdims)
    if ord == 0:  # the count of non-zeros, in x's dtype (no gradient flows through a count)
        return np.sum((x != 0).astype(x.dtype), axis=axis, keepdims=keepdims)
    if ord == 1:
        return np.sum(np.abs(x), axis=axis, keepdims=keepdims)
    return np.sum(np.abs(x) ** ord, axis=axis, keepdims=keepdims) ** (1.0 / ord)


def _matrix_norm(x: Any, ord: Any, axes: tuple[int, int], keepdims: bool) -> Any:  # noqa: A002
    row, col = axes
    if ord is None or ord == "fro":
        result = np.sqrt(np.sum(x * x, axis=axes))
    elif ord in (1, -1, np.inf, -np.inf):
        summed, other = (row, col) if ord in (1, -1) else (col, row)  # 1: largest column sum
        sums = np.sum(np.abs(x), axis=summed)
        pick = np.max if ord > 0 else np.min
        result = pick(sums, axis=other - 1 if other > summed else other)
    else:
        raise UsageError(
            f"np.linalg.norm: the matrix norm ord={ord!r} needs singular values, which no op "
            "computes; use ord='fro', 1, -1, inf or -inf, or compute it on x.detach()"
        )
    if keepdims:
        shape = list(x.shape)
        shape[row] = shape[col] = 1
        result = result.reshape(tuple(shape))
    return result


# numpy function -> its composite.
COMPOSITES: dict[Callable[..., Any], Callable[..., Any]] = {np.linalg.norm: norm}
