"""numpy functions that are several ops: written as numpy code over the op set, once, here.

A composite is not an op (a graph never names it): it is numpy code that, run on a recorded
value (autograd's ``Variable``) or a tracing stand-in, calls only functions, ufuncs and
operators of the op table, so it is recorded as those ops and differentiated by their VJPs.
``COMPOSITES`` maps the numpy function to its composite, ``UFUNC_COMPOSITES`` the ufunc and
``METHOD_COMPOSITES`` the ``ndarray`` method (``x.ravel()``); ``Variable`` and ``Traced`` look
there before refusing a numpy function that is not an op (and route ``&``, ``|``, ``^``, ``~``
through numpy's bitwise ufuncs, whose composites take masks). On plain arrays numpy's own runs.

Each gives numpy's values, bit for bit where numpy's own is exact (the rearrangements, the
tests of values, ``trunc``; ``round`` does numpy's own steps) and follows the array's sizes
through slices, repeats and joins rather than baking the example's in, so a graph traced
on one batch size runs on others. What a composite cannot express is refused, naming why.

>>> with autograd.record(): n = np.linalg.norm(x)    # doctest: +SKIP  (sqrt(sum(x * x)))
"""

from __future__ import annotations

import itertools
import math
import operator
import string
from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import UsageError
from . import einsum_plan

__all__ = [
    "COMPOSITES", "UFUNC_COMPOSITES", "METHOD_COMPOSITES", "norm", "einsum", "tensordot", "inner", "outer",
    "ravel", "moveaxis", "diff", "tril", "triu", "flip", "flipud", "fliplr", "roll", "pad", "around", "trunc",
    "fix", "isnan", "isinf", "isfinite", "nan_to_num", "nansum", "nanmean", "ptp", "average", "logaddexp",
    "logaddexp2", "exp2", "hypot", "deg2rad", "rad2deg", "fabs", "float_power", "heaviside", "sort",
    "argsort", "fmax", "fmin", "positive", "any_", "all_", "count_nonzero", "isclose", "atleast_1d",
    "atleast_2d", "atleast_3d", "hstack", "vstack", "dstack", "column_stack", "median", "bitwise_and",
    "bitwise_or", "bitwise_xor", "invert", "copy", "conjugate", "array_split",
    "diagonal", "trace", "diag",
]


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
    axes = _axes(axis, ndim, "np.linalg.norm")
    if len(axes) == 1:
        return _vector_norm(x, ord, axes[0], keepdims)
    if len(axes) == 2 and axes[0] != axes[1]:
        return _matrix_norm(x, ord, axes, keepdims)
    raise UsageError(f"np.linalg.norm: axis {axis!r} must name one axis or two different axes")


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


def _axes(axis: Any, ndim: int, what: str) -> tuple[int, ...]:
    """``axis`` (an int, a sequence of them, or None for all) as non-negative axes."""
    listed = range(ndim) if axis is None else axis if isinstance(axis, (tuple, list)) else (axis,)
    axes = []
    for a in listed:
        try:
            index = operator.index(a)
        except TypeError:
            raise UsageError(f"{what}: an axis must be an int, got {a!r}") from None
        if not -ndim <= index < ndim:
            raise UsageError(f"{what}: axis {index} is out of bounds for a {ndim}-D array")
        axes.append(index % ndim)
    return tuple(axes)


def _integer(value: Any, what: str) -> int:
    """``value`` as an int (a count, an offset, a shift), or a UsageError naming ``what``."""
    try:
        return operator.index(value)
    except TypeError:
        raise UsageError(f"{what} must be an integer, got {value!r}") from None


def _along(ndim: int, axis: int, part: slice) -> tuple[slice, ...]:
    """The index taking ``part`` along ``axis`` and everything along the others."""
    return tuple(part if a == axis else slice(None) for a in range(ndim))


# -- einsum: sums, transposes, reshapes and batched matmuls ---------------------------------------


def einsum(*operands: Any, out: Any = None, dtype: Any = None, order: str = "K", casting: str = "safe",
           optimize: Any = False) -> Any:
    """``np.einsum`` with an equation (``einsum_plan``'s forms: explicit or implicit output,
    ``...``): one operand summed and transposed; two contracted by a batched matmul between
    transposes and reshapes; more, two at a time left to right. The sums are BLAS's, not
    numpy's einsum loops: equal to float rounding. A diagonal (an index twice in one operand),
    the sublist form and ``out``/``dtype`` are refused."""
    if not operands or not isinstance(operands[0], str):
        raise UsageError("np.einsum: give the equation as a string (the sublist form is not traced)")
    if out is not None or dtype is not None:
        raise UsageError("np.einsum: out= and dtype= are not traced")
    equation, arrays = operands[0], list(operands[1:])
    try:
        letters, output = einsum_plan.parse(equation, [len(a.shape) for a in arrays])
    except ValueError as exc:
        raise UsageError(f"np.einsum: {exc}") from None
    if len(arrays) == 1:
        summed, axes = einsum_plan.single(letters[0], output)
        result = np.sum(arrays[0], axis=summed) if summed else arrays[0]
        return np.transpose(result, axes) if axes != sorted(axes) else result
    result = arrays[0]
    for k, (left, right, kept) in enumerate(einsum_plan.chain(letters, output), start=1):
        result = _contracted(result, arrays[k], einsum_plan.pair(left, right, kept), equation)
    return result


def _contracted(x: Any, y: Any, plan: einsum_plan.Pair, equation: str) -> Any:
    """Two operands contracted as ``plan`` says: (batch, free, contracted) by (batch,
    contracted, free), each group merged, a batched matmul, split back and transposed."""
    if plan.sums[0]:
        x = np.sum(x, axis=plan.sums[0])
    if plan.sums[1]:
        y = np.sum(y, axis=plan.sums[1])
    size = {**dict(zip(plan.b, y.shape, strict=True)), **dict(zip(plan.a, x.shape, strict=True))}
    for index in plan.batch + plan.contracted:
        a_size, b_size = x.shape[plan.a.index(index)], y.shape[plan.b.index(index)]
        if a_size != b_size and (index in plan.contracted or 1 not in (a_size, b_size)):
            raise UsageError(f"np.einsum: {equation!r}: index sizes {a_size} and {b_size} do not match")
        size[index] = max(a_size, b_size)  # a batch of 1 broadcasts, as numpy's does

    def grouped(value: Any, order: list[int], shape: list[Any]) -> Any:
        if order != sorted(order):
            value = np.transpose(value, order)
        return value.reshape(shape)

    x_batch = [x.shape[plan.a.index(i)] for i in plan.batch]
    y_batch = [y.shape[plan.b.index(i)] for i in plan.batch]
    left = grouped(x, plan.order_a, [*x_batch, math.prod(size[i] for i in plan.free_a), -1])
    right = grouped(y, plan.order_b, [*y_batch, -1, math.prod(size[i] for i in plan.free_b)])
    product = np.matmul(left, right).reshape([size[i] for i in plan.laid])
    return np.transpose(product, plan.final) if plan.final != sorted(plan.final) else product


def tensordot(a: Any, b: Any, axes: Any = 2) -> Any:
    """``np.tensordot``: the einsum of a's axes ``axes[0]`` against b's ``axes[1]`` (or a's last
    ``axes`` against b's first), a's other axes then b's."""
    rank_a, rank_b = len(a.shape), len(b.shape)
    if isinstance(axes, (tuple, list)):
        if len(axes) != 2:
            raise UsageError(f"np.tensordot: axes {axes!r} must be a count or two lists of axes")
        first, second = _axes(axes[0], rank_a, "np.tensordot"), _axes(axes[1], rank_b, "np.tensordot")
    else:
        count = _integer(axes, "np.tensordot: axes")
        if not 0 <= count <= min(rank_a, rank_b):
            raise UsageError(f"np.tensordot: cannot contract {count} axes of {rank_a}-D and {rank_b}-D "
                             "arrays")
        first, second = tuple(range(rank_a - count, rank_a)), tuple(range(count))
    if len(first) != len(second) or len(set(first)) != len(first) or len(set(second)) != len(second):
        raise UsageError(f"np.tensordot: axes {axes!r} must pair each axis once")
    letters = iter(string.ascii_letters)
    left = [next(letters) for _ in range(rank_a)]
    right = [next(letters) for _ in range(rank_b)]
    for i, j in zip(first, second, strict=True):
        right[j] = left[i]
    output = [c for k, c in enumerate(left) if k not in first]
    output += [c for k, c in enumerate(right) if k not in second]
    return einsum(f"{''.join(left)},{''.join(right)}->{''.join(output)}", a, b)


def inner(a: Any, b: Any) -> Any:
    """``np.inner``: ``tensordot`` over both last axes (a scalar times an array: the product)."""
    if not a.shape or not b.shape:
        return a * b
    return tensordot(a, b, axes=([-1], [-1]))


def outer(a: Any, b: Any, out: Any = None) -> Any:
    """``np.outer``: a's values as a column times b's as a row, as numpy multiplies them."""
    if out is not None:
        raise UsageError("np.outer(..., out=...): in-place changes cannot be recorded")
    return ravel(a)[:, None] * ravel(b)[None, :]


# -- rearrangements: slices and joins -----------------------------------------------------------


def ravel(a: Any, order: str = "C") -> Any:
    """``np.ravel``: the values in row-major order, one axis."""
    if order not in ("C", "K", "A"):
        raise UsageError(f"np.ravel: order={order!r} is not traced; the values come in row-major order")
    return a.reshape(-1)


def moveaxis(a: Any, source: Any, destination: Any) -> Any:
    """``np.moveaxis``: the transpose that puts each ``source`` axis at its ``destination``."""
    ndim = len(a.shape)
    sources, targets = _axes(source, ndim, "np.moveaxis"), _axes(destination, ndim, "np.moveaxis")
    if len(sources) != len(targets) or len(set(sources)) != len(sources) or len(set(targets)) != len(targets):
        raise UsageError("np.moveaxis: source and destination must name as many axes, each once")
    order = [axis for axis in range(ndim) if axis not in sources]
    for target, axis in sorted(zip(targets, sources, strict=True)):
        order.insert(target, axis)
    return np.transpose(a, order) if order != sorted(order) else a


def diff(a: Any, n: int = 1, axis: int = -1, **kwargs: Any) -> Any:
    """``np.diff``: each value minus the one before it along ``axis``, ``n`` times (booleans:
    whether they differ, as numpy's); ``prepend``/``append`` are not traced."""
    if kwargs:
        raise UsageError(f"np.diff: {', '.join(sorted(kwargs))} are not traced; concatenate first")
    n = _integer(n, "np.diff: n")
    if n < 0:
        raise UsageError(f"np.diff: order n={n} must not be negative")
    (axis,) = _axes(axis, len(a.shape), "np.diff")
    ndim = len(a.shape)
    for _ in range(n):
        later, earlier = a[_along(ndim, axis, slice(1, None))], a[_along(ndim, axis, slice(None, -1))]
        a = later != earlier if a.dtype == np.bool_ else later - earlier
    return a


def tril(m: Any, k: int = 0) -> Any:
    """``np.tril``: the last two axes' values on and below diagonal ``k``, zeros above."""
    return _triangle(m, k, lower=True)


def triu(m: Any, k: int = 0) -> Any:
    """``np.triu``: the last two axes' values on and above diagonal ``k``, zeros below."""
    return _triangle(m, k, lower=False)


def _triangle(m: Any, k: int, *, lower: bool) -> Any:
    if len(m.shape) < 2:
        raise UsageError(f"np.{'tril' if lower else 'triu'}: the array must be at least 2-D")
    rows, cols = m.shape[-2:]
    k = _integer(k, f"np.{'tril' if lower else 'triu'}: k")
    kept = np.tri(rows, cols, k, dtype=bool) if lower else ~np.tri(rows, cols, k - 1, dtype=bool)
    return np.where(kept, m, np.zeros(1, m.dtype))


def array_split(ary: Any, indices_or_sections: Any, axis: int = 0) -> Any:
    """``np.array_split``: ``split`` at numpy's cuts, the first ``length % sections`` pieces one
    longer (cuts at the axis's length in the example: the trace check refuses it where that
    length follows the batch)."""
    if isinstance(indices_or_sections, (tuple, list)):
        return np.split(ary, list(indices_or_sections), axis=axis)
    sections = _integer(indices_or_sections, "np.array_split: indices_or_sections")
    if sections <= 0:
        raise UsageError(f"np.array_split: the number of sections must be larger than 0, got {sections}")
    (axis,) = _axes(axis, len(ary.shape), "np.array_split")
    each, extra = divmod(ary.shape[axis], sections)
    cuts = list(itertools.accumulate([each + 1] * extra + [each] * (sections - extra)))[:-1]
    return np.split(ary, cuts, axis=axis)


def diagonal(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    """``np.diagonal``: the values at (i, i + offset) of axes ``axis1`` and ``axis2``, as the
    last axis: the two axes moved last and indexed by two constant index arrays (their sizes
    are the example's: the trace check refuses a batch axis here)."""
    ndim = len(a.shape)
    first, second = _axes((axis1, axis2), ndim, "np.diagonal")
    if first == second:
        raise UsageError("np.diagonal: axis1 and axis2 must be different axes")
    offset = _integer(offset, "np.diagonal: offset")
    moved = moveaxis(a, (first, second), (-2, -1))
    rows, cols = moved.shape[-2:]
    count = max(0, min(rows + min(offset, 0), cols - max(offset, 0)))
    start = np.arange(count)
    return moved[..., start - min(offset, 0), start + max(offset, 0)]


def trace(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1, dtype: Any = None, out: Any = None) -> Any:
    """``np.trace``: the sum of ``diagonal``."""
    if dtype is not None or out is not None:
        raise UsageError("np.trace: dtype= and out= are not traced")
    return np.sum(diagonal(a, offset, axis1, axis2), axis=-1)


def diag(v: Any, k: int = 0) -> Any:
    """``np.diag``: of a matrix its ``diagonal``; of a vector the square matrix with it on
    diagonal ``k`` (the vector's values where a constant mask of that diagonal is true)."""
    if len(v.shape) == 2:
        return diagonal(v, k)
    if len(v.shape) != 1:
        raise UsageError("np.diag: the input must be 1-D or 2-D")
    k = _integer(k, "np.diag: k")
    size = v.shape[0] + abs(k)
    # k ≥ 0: a row whose column j holds v[j - k]; k < 0: a column whose row i holds v[i + k]
    line = pad(v[None, :], ((0, 0), (k, 0))) if k >= 0 else pad(v[:, None], ((-k, 0), (0, 0)))
    laid = np.broadcast_to(line, (size, size))
    return np.where(np.eye(size, k=k, dtype=bool), laid, np.zeros(1, v.dtype))


def flip(m: Any, axis: Any = None) -> Any:
    """``np.flip``: a slice of step -1 along each axis named (all for None)."""
    axes = _axes(axis, len(m.shape), "np.flip")
    return m[tuple(slice(None, None, -1) if a in axes else slice(None) for a in range(len(m.shape)))]


def flipud(m: Any) -> Any:
    """``np.flipud``: ``flip`` along the first axis."""
    if len(m.shape) < 1:
        raise UsageError("np.flipud: the array must be at least 1-D")
    return flip(m, 0)


def fliplr(m: Any) -> Any:
    """``np.fliplr``: ``flip`` along the second axis."""
    if len(m.shape) < 2:
        raise UsageError("np.fliplr: the array must be at least 2-D")
    return flip(m, 1)


def roll(a: Any, shift: Any, axis: Any = None) -> Any:
    """``np.roll``: each axis's last ``shift`` values (modulo its length) moved to its front,
    one join of two slices; for ``axis=None`` the flattened array, its shape restored."""
    if axis is None:
        return roll(a.reshape(-1), shift, 0).reshape(a.shape)
    shifts = shift if isinstance(shift, (tuple, list)) else (shift,)
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    if len(shifts) != len(axes) and len(shifts) != 1 and len(axes) != 1:
        raise UsageError(f"np.roll: shift {shift!r} and axis {axis!r} must have the same length")
    count = max(len(shifts), len(axes))
    shifts = (list(shifts) * count)[:count]
    axes = _axes((list(axes) * count)[:count], len(a.shape), "np.roll")
    result = a
    for step, ax in zip(shifts, axes, strict=True):
        size = a.shape[ax]
        moved = _integer(step, "np.roll: shift") % size if size else 0
        if moved:
            ndim = len(a.shape)
            result = np.concatenate([result[_along(ndim, ax, slice(-moved, None))],
                                     result[_along(ndim, ax, slice(None, -moved))]], axis=ax)
    return result


_PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")


def pad(array: Any, pad_width: Any, mode: str = "constant", **kwargs: Any) -> Any:
    """``np.pad`` in its modes made of the array's own values or a constant: ``constant``
    (``constant_values``), ``edge``, ``reflect`` and ``symmetric`` (``reflect_type='even'``)
    and ``wrap``, axis after axis as numpy does; each side a join of the array with a repeat
    of a one-wide slice, or with a (reversed) slice of it. Widths past what one reflection or
    wrap covers, and the modes that compute statistics or ramps, are refused."""
    ndim = len(array.shape)
    if not isinstance(mode, str) or mode not in _PAD_MODES:
        raise UsageError(f"np.pad: mode {mode!r} is not traced; use one of {', '.join(_PAD_MODES)}")
    allowed = {"constant": {"constant_values"}, "reflect": {"reflect_type"}, "symmetric": {"reflect_type"}}
    unknown = set(kwargs) - allowed.get(mode, set())
    if unknown:
        raise UsageError(f"np.pad: mode {mode!r} takes no {', '.join(sorted(unknown))}")
    if kwargs.get("reflect_type", "even") != "even":
        raise UsageError("np.pad: reflect_type='odd' is not traced; use the default 'even'")
    widths = _pairs(pad_width, ndim, "pad_width", whole=True)
    values = _pairs(kwargs.get("constant_values", 0), ndim, "constant_values", whole=False)
    result = array
    for axis, (before, after) in enumerate(widths):
        if before or after:
            result = _pad_axis(result, axis, before, after, mode, values[axis])
    return result


def _pairs(value: Any, ndim: int, what: str, *, whole: bool) -> list[tuple[Any, Any]]:
    """numpy's per-axis (before, after) pairs: a scalar, a pair, or a pair per axis."""
    try:
        pairs = np.broadcast_to(np.asarray(value, dtype=object), (ndim, 2))
    except ValueError:
        raise UsageError(f"np.pad: {what} {value!r} does not give a (before, after) pair per axis") from None
    result = []
    for before, after in pairs.tolist():
        if whole:
            try:
                before, after = operator.index(before), operator.index(after)
            except TypeError:
                raise UsageError(f"np.pad: {what} must be integers, got {value!r}") from None
            if before < 0 or after < 0:
                raise UsageError(f"np.pad: {what} must not be negative, got {value!r}")
        elif not isinstance(before, (bool, int, float)) or not isinstance(after, (bool, int, float)):
            raise UsageError(f"np.pad: {what} must be numbers, got {value!r}")
        result.append((before, after))
    return result


def _pad_axis(x: Any, axis: int, before: int, after: int, mode: str, value: tuple[Any, Any]) -> Any:
    ndim, size = len(x.shape), x.shape[axis]
    if size == 0:
        raise UsageError(f"np.pad: axis {axis} is empty; tracing pads with the array's own values or shape")
    reach = {"reflect": size - 1, "symmetric": size, "wrap": size}.get(mode)
    if reach is not None and max(before, after) > reach:
        raise UsageError(
            f"np.pad: mode {mode!r} pads axis {axis} (length {size}) by {max(before, after)}; "
            f"tracing pads by at most {reach} (one {'wrap' if mode == 'wrap' else 'reflection'})"
        )

    def take(part: slice) -> Any:
        return x[_along(ndim, axis, part)]

    def side(width: int, first: bool, fill: Any) -> Any:
        if mode in ("constant", "edge"):
            edge = take(slice(0, 1) if first else slice(-1, None))
            block = np.full_like(edge, fill) if mode == "constant" else edge
            return np.repeat(block, width, axis=axis)
        if mode == "wrap":
            return take(slice(-width, None) if first else slice(0, width))
        skip = 1 if mode == "reflect" else 0  # reflect leaves out the edge value, symmetric repeats it
        part = slice(skip, skip + width) if first else slice(size - skip - width, size - skip)
        return flip(take(part), axis)

    parts = ([side(before, True, value[0])] if before else []) + [x] + (
        [side(after, False, value[1])] if after else [])
    return np.concatenate(parts, axis=axis)


# -- rounding and tests of values --------------------------------------------------------------


def around(a: Any, decimals: int = 0, out: Any = None) -> Any:
    """``np.round`` / ``np.around``: numpy's own steps, so numpy's bits: ``rint`` of the value
    scaled by 10**decimals, scaled back (for negative ``decimals``, divided then multiplied);
    integers with ``decimals`` ≥ 0 come back as they are."""
    if out is not None:
        raise UsageError("np.round(..., out=...): in-place changes cannot be recorded")
    decimals = _integer(decimals, "np.round: decimals")
    if not np.issubdtype(a.dtype, np.inexact):
        if decimals >= 0:
            return _whole_as_numpy(np.round, a)
        raise UsageError("np.round of integers to negative decimals is not traced; round a float copy")
    if np.issubdtype(a.dtype, np.complexfloating):
        raise UsageError("np.round of complex values is not traced")
    if decimals == 0:
        return np.rint(a)
    factor = 10.0 ** abs(decimals)
    if decimals > 0:
        return np.rint(a * factor) / factor
    return np.rint(a / factor) * factor


def trunc(x: Any) -> Any:
    """``np.trunc`` (and ``np.fix``): ``ceil`` below zero, ``floor`` elsewhere (-0.0, NaN and
    infinities as numpy's); integers keep their values (``_whole_as_numpy``)."""
    if not np.issubdtype(x.dtype, np.inexact):
        return _whole_as_numpy(np.trunc, x)
    return np.where(x < 0, np.ceil(x), np.floor(x))


def fix(x: Any, out: Any = None) -> Any:
    """``np.fix``: ``trunc``."""
    if out is not None:
        raise UsageError("np.fix(..., out=...): in-place changes cannot be recorded")
    return trunc(x) if np.issubdtype(x.dtype, np.inexact) else _whole_as_numpy(np.fix, x)


def _whole_as_numpy(function: Callable[..., Any], x: Any) -> Any:
    """Integers or booleans rounded by ``function``: their own values, in the dtype this numpy
    gives them (its rule changed: numpy 2.0's trunc of int32 is float64, 2.4's int32; round of
    booleans is float16)."""
    wanted = function(np.zeros(1, x.dtype)).dtype
    if wanted != x.dtype:
        return x.astype(wanted)
    return x if x.dtype == np.bool_ else x + 0


def isnan(x: Any) -> Any:
    """``np.isnan``: NaN is the one value unequal to itself."""
    return x != x


def isinf(x: Any) -> Any:
    """``np.isinf``: larger in magnitude than the dtype's largest finite value."""
    if not np.issubdtype(x.dtype, np.inexact):
        return x != x
    return np.abs(x) > float(np.finfo(x.dtype).max)


def isfinite(x: Any) -> Any:
    """``np.isfinite``: within the dtype's largest finite magnitude (NaN compares false)."""
    if not np.issubdtype(x.dtype, np.inexact):
        return x == x
    return np.abs(x) <= float(np.finfo(x.dtype).max)


def nan_to_num(x: Any, copy: bool = True, nan: float = 0.0, posinf: float | None = None,
               neginf: float | None = None) -> Any:
    """``np.nan_to_num``: NaN, +inf and -inf replaced (by default 0 and the dtype's largest and
    smallest finite values); integers come back as they are."""
    if not np.issubdtype(x.dtype, np.floating):
        if np.issubdtype(x.dtype, np.complexfloating):
            raise UsageError("np.nan_to_num of complex values is not traced")
        return x + 0 if x.dtype != np.bool_ else x
    largest = float(np.finfo(x.dtype).max)
    high = largest if posinf is None else posinf
    low = -largest if neginf is None else neginf
    infinite = isinf(x)
    result = np.where(isnan(x), nan, x)
    result = np.where(np.logical_and(infinite, x < 0), low, result)
    return np.where(np.logical_and(infinite, x > 0), high, result)


def nansum(a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False) -> Any:
    """``np.nansum``: NaN counted as 0, as numpy replaces it before summing."""
    if dtype is not None or out is not None:
        raise UsageError("np.nansum: dtype= and out= are not traced")
    return np.sum(_zero_nan(a), axis=axis, keepdims=keepdims)


def nanmean(a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False) -> Any:
    """``np.nanmean``: the sum with NaN as 0 over the count of values that are not NaN."""
    if dtype is not None or out is not None:
        raise UsageError("np.nanmean: dtype= and out= are not traced")
    if not np.issubdtype(a.dtype, np.inexact):
        return np.mean(a, axis=axis, keepdims=keepdims)
    counted = np.sum(np.logical_not(isnan(a)).astype(np.intp), axis=axis, keepdims=keepdims)
    total = np.sum(_zero_nan(a), axis=axis, keepdims=keepdims)
    return (total.astype(np.float64) / counted).astype(a.dtype)  # numpy's: divided in float64, cast back


def _zero_nan(a: Any) -> Any:
    return np.where(isnan(a), np.zeros(1, a.dtype), a) if np.issubdtype(a.dtype, np.inexact) else a


def ptp(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
    """``np.ptp``: the largest value minus the smallest."""
    if out is not None:
        raise UsageError("np.ptp(..., out=...): in-place changes cannot be recorded")
    return np.max(a, axis=axis, keepdims=keepdims) - np.min(a, axis=axis, keepdims=keepdims)


def average(a: Any, axis: Any = None, weights: Any = None, returned: bool = False, *,
            keepdims: bool = False) -> Any:
    """``np.average``: the mean, or with ``weights`` (a's shape, or 1-D along one ``axis``)
    Σ a·w / Σ w in their common float dtype, as numpy computes it; ``returned`` adds Σ w."""
    if weights is None:
        mean = np.mean(a, axis=axis, keepdims=keepdims)
        if not returned:
            return mean
        return mean, np.full_like(mean, math.prod(a.shape) // max(1, math.prod(mean.shape)))
    result_type = np.result_type(a.dtype, weights.dtype, np.float16 if a.dtype.kind == "f" else np.float64)
    if tuple(a.shape) != tuple(weights.shape):
        if axis is None or isinstance(axis, (tuple, list)) or len(weights.shape) != 1:
            raise UsageError("np.average: weights of another shape than a's must be 1-D, along one axis")
        (axis,) = _axes(axis, len(a.shape), "np.average")
        if weights.shape[0] != a.shape[axis]:
            raise UsageError("np.average: the weights' length differs from the axis's")
        weights = weights.reshape([-1 if k == axis else 1 for k in range(len(a.shape))])
    scale = np.sum(weights.astype(result_type), axis=axis, keepdims=keepdims)
    total = np.sum(a.astype(result_type) * weights.astype(result_type), axis=axis, keepdims=keepdims)
    mean = total / scale
    if not returned:
        return mean
    return mean, scale if scale.shape == mean.shape else np.broadcast_to(scale, mean.shape)


# -- elementwise functions numpy computes from these ops -------------------------------------------


def logaddexp(x: Any, y: Any) -> Any:
    """``np.logaddexp``: log(eˣ + eʸ) as numpy computes it, the larger plus log1p(e^-|x - y|);
    ``x + ln 2`` where they are equal (infinities of one sign). Numpy's loops call libm's exp
    and log1p, the ops numpy's own (vectorised) ones: equal to float rounding."""
    step = x - y
    larger = np.where(step > 0, x, y)
    spread = larger + np.log1p(np.exp(-np.abs(step)))
    return np.where(x == y, x + math.log(2), np.where(isnan(step), step, spread))


def logaddexp2(x: Any, y: Any) -> Any:
    """``np.logaddexp2``: log₂(2ˣ + 2ʸ), the larger plus log₂(1 + 2^-|x - y|); ``x + 1`` where
    they are equal."""
    step = x - y
    larger = np.where(step > 0, x, y)
    spread = larger + np.log1p(np.power(2.0, -np.abs(step))) * (1 / math.log(2))
    return np.where(x == y, x + 1, np.where(isnan(step), step, spread))


def exp2(x: Any) -> Any:
    """``np.exp2``: 2 ** x."""
    return np.power(2.0 if not np.issubdtype(x.dtype, np.inexact) else np.asarray(2.0, x.dtype), x)


def hypot(x: Any, y: Any) -> Any:
    """``np.hypot``: the larger magnitude times sqrt(1 + r²), r the smaller over it (no overflow
    on the squares); 0 where both are 0, an infinity wherever either is one (NaN or not)."""
    big, small = np.maximum(np.abs(x), np.abs(y)), np.minimum(np.abs(x), np.abs(y))
    ratio = small / np.where(big == 0, 1, big)
    length = big * np.sqrt(1 + ratio * ratio)
    return np.where(isinf(x), np.abs(x), np.where(isinf(y), np.abs(y), length))


def deg2rad(x: Any) -> Any:
    """``np.deg2rad`` / ``np.radians``: x · (π / 180), as numpy multiplies."""
    return x * (math.pi / 180)


def rad2deg(x: Any) -> Any:
    """``np.rad2deg`` / ``np.degrees``: x · (180 / π), as numpy multiplies."""
    return x * (180 / math.pi)


def fabs(x: Any) -> Any:
    """``np.fabs``: the magnitude, integers as float64 (numpy's fabs takes floats only)."""
    return np.abs(x if np.issubdtype(x.dtype, np.inexact) else x.astype(np.float64))


def float_power(x: Any, y: Any) -> Any:
    """``np.float_power``: ``power`` in float64."""
    def wide(v: Any) -> Any:
        return v.astype(np.float64) if hasattr(v, "astype") else float(v)

    return np.power(wide(x), wide(y))


def heaviside(x: Any, h0: Any) -> Any:
    """``np.heaviside``: 0 below zero, 1 above, ``h0`` at zero, NaN for NaN."""
    return np.where(x < 0, 0, np.where(x > 0, 1, np.where(x == 0, h0, x)))


def fmax(x: Any, y: Any) -> Any:
    """``np.fmax``: the larger, a NaN losing to a number (``maximum`` where neither is NaN)."""
    return np.where(isnan(x), y, np.where(isnan(y), x, np.maximum(x, y)))


def fmin(x: Any, y: Any) -> Any:
    """``np.fmin``: the smaller, a NaN losing to a number."""
    return np.where(isnan(x), y, np.where(isnan(y), x, np.minimum(x, y)))


def positive(x: Any) -> Any:
    """``np.positive``: the value itself."""
    return x


def copy(a: Any, order: str = "K", **kwargs: Any) -> Any:
    """``x.copy()`` / ``np.copy``: the value itself (recorded values are never changed in place)."""
    return a


def conjugate(x: Any) -> Any:
    """``x.conj()`` of real values: themselves (complex values have no ops)."""
    if np.issubdtype(x.dtype, np.complexfloating):
        raise UsageError("the conjugate of complex values is not traced")
    return x


def bitwise_and(x: Any, y: Any) -> Any:
    """``&`` of booleans (``np.bitwise_and``): ``logical_and``; of integers: refused (no op)."""
    return np.logical_and(*_booleans("&", x, y))


def bitwise_or(x: Any, y: Any) -> Any:
    """``|`` of booleans: ``logical_or``."""
    return np.logical_or(*_booleans("|", x, y))


def bitwise_xor(x: Any, y: Any) -> Any:
    """``^`` of booleans: ``logical_xor``."""
    return np.logical_xor(*_booleans("^", x, y))


def invert(x: Any) -> Any:
    """``~`` of booleans (``np.invert``): ``logical_not``."""
    return np.logical_not(*_booleans("~", x))


def _booleans(operator_name: str, *values: Any) -> tuple[Any, ...]:
    """The operands, if all are booleans (masks); integers' bits have no op."""
    for value in values:
        dtype = getattr(value, "dtype", None)
        if not (isinstance(value, bool) or (dtype is not None and dtype == np.bool_)):
            kind = dtype if dtype is not None else type(value).__name__
            raise UsageError(f"{operator_name} of {kind} values: only masks (booleans) have an op "
                             "(logical_and, logical_or, logical_xor, logical_not)")
    return values


# -- tests over an axis ---------------------------------------------------------------------------


def any_(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False, *, where: Any = None) -> Any:
    """``np.any``: the largest of ``a != 0`` (booleans) along ``axis``."""
    if out is not None or where is not None:
        raise UsageError("np.any: out= and where= are not traced")
    return np.max(a != 0, axis=axis, keepdims=keepdims)


def all_(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False, *, where: Any = None) -> Any:
    """``np.all``: the smallest of ``a != 0`` (booleans) along ``axis``."""
    if out is not None or where is not None:
        raise UsageError("np.all: out= and where= are not traced")
    return np.min(a != 0, axis=axis, keepdims=keepdims)


def count_nonzero(a: Any, axis: Any = None, *, keepdims: bool = False) -> Any:
    """``np.count_nonzero``: the sum of ``a != 0`` as integers (numpy's intp)."""
    return np.sum((a != 0).astype(np.intp), axis=axis, keepdims=keepdims)


def isclose(a: Any, b: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> Any:
    """``np.isclose``: |a − b| ≤ atol + rtol·|b| (infinities equal only to themselves, NaN to
    NaN with ``equal_nan``), numpy's test."""
    finite = np.logical_and(isfinite(a), isfinite(b))
    near = np.abs(a - b) <= atol + rtol * np.abs(b)
    result = np.where(finite, near, a == b)
    return np.logical_or(result, np.logical_and(isnan(a), isnan(b))) if equal_nan else result


# -- joins of several arrays ---------------------------------------------------------------------


def atleast_1d(*arys: Any) -> Any:
    """``np.atleast_1d``: a scalar array as one value."""
    shaped = [a.reshape(1) if not a.shape else a for a in arys]
    return shaped[0] if len(shaped) == 1 else tuple(shaped)


def atleast_2d(*arys: Any) -> Any:
    """``np.atleast_2d``: a scalar as 1×1, a vector as one row."""
    shaped = [a.reshape(1, 1) if not a.shape else a[None, :] if len(a.shape) == 1 else a for a in arys]
    return shaped[0] if len(shaped) == 1 else tuple(shaped)


def atleast_3d(*arys: Any) -> Any:
    """``np.atleast_3d``: a scalar as 1×1×1, a vector as 1×N×1, a matrix as M×N×1."""
    def shaped(a: Any) -> Any:
        ndim = len(a.shape)
        return (a.reshape(1, 1, 1) if ndim == 0 else a[None, :, None] if ndim == 1
                else a[:, :, None] if ndim == 2 else a)

    out = [shaped(a) for a in arys]
    return out[0] if len(out) == 1 else tuple(out)


def hstack(tup: Any, *, dtype: Any = None, casting: str = "same_kind") -> Any:
    """``np.hstack``: joined along the columns (the first axis for vectors)."""
    if dtype is not None:
        raise UsageError("np.hstack: dtype= is not traced")
    arrays = [atleast_1d(a) for a in tup]
    return np.concatenate(arrays, axis=0 if arrays and len(arrays[0].shape) == 1 else 1)


def vstack(tup: Any, *, dtype: Any = None, casting: str = "same_kind") -> Any:
    """``np.vstack``: vectors as rows, joined along the first axis."""
    if dtype is not None:
        raise UsageError("np.vstack: dtype= is not traced")
    return np.concatenate([atleast_2d(a) for a in tup], axis=0)


def dstack(tup: Any) -> Any:
    """``np.dstack``: joined along the third axis (``atleast_3d`` first)."""
    return np.concatenate([atleast_3d(a) for a in tup], axis=2)


def column_stack(tup: Any) -> Any:
    """``np.column_stack``: vectors as columns, joined along the second axis."""
    return np.concatenate([a[:, None] if len(a.shape) == 1 else atleast_2d(a) for a in tup], axis=1)


def median(a: Any, axis: Any = None, out: Any = None, overwrite_input: bool = False,
           keepdims: bool = False) -> Any:
    """``np.median``: the middle of ``sort`` along one axis (the mean of the two middle values
    for an even length), NaN wherever the axis holds one, as numpy's."""
    if out is not None:
        raise UsageError("np.median(..., out=...): in-place changes cannot be recorded")
    rank, whole = len(a.shape), axis is None
    if whole:
        a, axis = a.reshape(-1), 0
    else:
        (axis,) = _axes(axis, rank, "np.median")
    ordered = sort(a, axis=axis)
    ndim, size = len(ordered.shape), ordered.shape[axis]
    middle = ordered[_along(ndim, axis, slice((size - 1) // 2, size // 2 + 1))]
    result = np.mean(middle, axis=axis, keepdims=True)
    if np.issubdtype(a.dtype, np.inexact):  # NaN sorts last: the axis's last value tells
        last = ordered[_along(ndim, axis, slice(-1, None))]
        result = np.where(isnan(last), last, result)
    if keepdims:
        return result.reshape((1,) * rank) if whole else result
    return result.reshape(()) if whole else np.squeeze(result, axis=axis)


# -- sorting: npx.topk over the whole axis ------------------------------------------------------


def sort(a: Any, axis: Any = -1, kind: Any = None, order: Any = None, *, stable: Any = None) -> Any:
    """``np.sort``: ``topk`` ascending over the whole axis (NaN last, as numpy's);
    ``axis=None`` sorts the flattened array."""
    return _sorted(a, axis, order, "value", "np.sort")


def argsort(a: Any, axis: Any = -1, kind: Any = None, order: Any = None, *, stable: Any = None) -> Any:
    """``np.argsort``: ``topk``'s indices ascending over the whole axis, as int64; equal values
    keep their order (a stable sort, as ``kind='stable'``)."""
    return _sorted(a, axis, order, "indices", "np.argsort")


def _sorted(a: Any, axis: Any, order: Any, returns: str, what: str) -> Any:
    from .. import functional  # (the layers' functions, which record ops on any input)

    if order is not None:
        raise UsageError(f"{what}: order= (structured arrays) is not traced")
    if axis is None:
        a, axis = a.reshape(-1), 0
    (axis,) = _axes(axis, len(a.shape), what)
    if a.shape[axis] == 0:
        raise UsageError(f"{what}: axis {axis} is empty")
    topk: Callable[..., Any] = functional.topk
    return topk(a, axis=axis, k=a.shape[axis], ret_typ=returns, is_ascend=True, dtype="int64")


# numpy function -> its composite.
COMPOSITES: dict[Callable[..., Any], Callable[..., Any]] = {
    np.linalg.norm: norm, np.einsum: einsum, np.flip: flip, np.flipud: flipud, np.fliplr: fliplr,
    np.roll: roll, np.pad: pad, np.round: around, np.around: around, np.fix: fix, np.sort: sort,
    np.argsort: argsort, np.ravel: ravel, np.moveaxis: moveaxis, np.diff: diff, np.tril: tril, np.triu: triu,
    np.tensordot: tensordot, np.inner: inner, np.outer: outer, np.nan_to_num: nan_to_num, np.nansum: nansum,
    np.nanmean: nanmean, np.ptp: ptp, np.average: average, np.any: any_, np.all: all_,
    np.count_nonzero: count_nonzero, np.isclose: isclose, np.atleast_1d: atleast_1d,
    np.atleast_2d: atleast_2d, np.atleast_3d: atleast_3d, np.hstack: hstack, np.vstack: vstack,
    np.dstack: dstack,
    np.column_stack: column_stack, np.median: median, np.copy: copy, np.array_split: array_split,
    np.diagonal: diagonal, np.trace: trace, np.diag: diag,
}
# numpy ufunc -> its composite (plain calls, no keywords).
UFUNC_COMPOSITES: dict[Any, Callable[..., Any]] = {
    np.trunc: trunc, np.isnan: isnan, np.isinf: isinf, np.isfinite: isfinite, np.logaddexp: logaddexp,
    np.logaddexp2: logaddexp2, np.exp2: exp2, np.hypot: hypot, np.deg2rad: deg2rad, np.radians: deg2rad,
    np.rad2deg: rad2deg, np.degrees: rad2deg, np.fabs: fabs, np.float_power: float_power,
    np.heaviside: heaviside, np.fmax: fmax, np.fmin: fmin, np.positive: positive,
    np.bitwise_and: bitwise_and, np.bitwise_or: bitwise_or, np.bitwise_xor: bitwise_xor, np.invert: invert,
    np.conjugate: conjugate,
}
# ndarray method -> its composite (``x.ravel()``, ``x.round(2)``, ``x.argsort()``), self first.
METHOD_COMPOSITES: dict[str, Callable[..., Any]] = {
    "ravel": ravel, "round": around, "argsort": argsort, "copy": copy, "any": any_, "all": all_,
    "conj": conjugate, "conjugate": conjugate, "diagonal": diagonal, "trace": trace,
}
