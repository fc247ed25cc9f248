"""Arithmetic, reductions and the neural ops as ONNX nodes (``MATH_OPS``, merged into ``OPS``).

Where ONNX and numpy round or sign differently the numpy rule is written out: ``floor_divide``
and ``mod`` follow numpy's divmod (the remainder takes the divisor's sign; ONNX's integer
``Div`` truncates and its float ``Mod`` needs ``fmod=1``), ``var``/``std`` divide by
n − ddof with n read from the shapes at run time, ``argmax`` of the flattened array flattens.
``expm1``/``log1p`` are ``Exp − 1``/``Log(1 + x)`` (opset 17 has neither): exact to float32's
absolute rounding, ~6e-8, not relatively near 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .emitter import Emit, Emitter, OpEmitter, Symbols, Value, cast_as, onnx_dtype

__all__ = ["MATH_OPS"]


def _axes(axis: Any) -> list[int] | None:
    return None if axis is None else [axis] if isinstance(axis, int) else list(axis)


def _simple(op_type: str) -> Emit:
    return lambda em, xs, attrs, values, out, symbols: em.node(op_type, xs, op_type.lower())


def _reciprocal(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
                symbols: Symbols) -> str:
    if out.dtype.kind == "f":
        return em.node("Reciprocal", xs, "reciprocal")
    return em.node("Div", [em.constant(1, out.dtype), xs[0]], "reciprocal")  # numpy: integer 1 / x


def _expm1(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
           symbols: Symbols) -> str:
    return em.node("Sub", [em.node("Exp", xs), em.constant(1, out.dtype)], "expm1")


def _log1p(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
           symbols: Symbols) -> str:
    return em.node("Log", [em.node("Add", [xs[0], em.constant(1, out.dtype)])], "log1p")


def _wrong_sign(em: Emitter, remainder: str, divisor: str, zero: str) -> str:
    """True where a nonzero remainder's sign differs from the divisor's (numpy then adjusts)."""
    nonzero = em.node("Not", [em.node("Equal", [remainder, zero])])
    differ = em.node("Xor", [em.node("Less", [remainder, zero]), em.node("Less", [divisor, zero])])
    return em.node("And", [nonzero, differ])


def _mod(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
         symbols: Symbols) -> str:
    a, b = xs
    if out.dtype.kind != "f":
        return em.node("Mod", [a, b], "mod", fmod=0)  # integers: the divisor's sign, as numpy
    zero = em.constant(0, out.dtype)
    r = em.node("Mod", [a, b], fmod=1)
    return em.node("Where", [_wrong_sign(em, r, b, zero), em.node("Add", [r, b]), r], "mod")


def _fmod(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
          symbols: Symbols) -> str:
    a, b = xs
    if out.dtype.kind == "f":
        return em.node("Mod", [a, b], "fmod", fmod=1)  # C's fmod: x by 0 is NaN
    # numpy: an integer by 0 gives 0; ONNX leaves it undefined (a runtime may trap), so the
    # zero divisors are made 1 first
    zero, one = em.constant(0, out.dtype), em.constant(1, out.dtype)
    by_zero = em.node("Equal", [b, zero])
    r = em.node("Mod", [a, em.node("Where", [by_zero, one, b])], fmod=1)
    return em.node("Where", [by_zero, zero, r], "fmod")


def _floor_divide(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
                  symbols: Symbols) -> str:
    a, b = xs
    if out.dtype.kind != "f":  # exact: (a - a mod b) / b, with numpy's mod
        return em.node("Div", [em.node("Sub", [a, em.node("Mod", [a, b], fmod=0)]), b], "floor_divide")
    # numpy's float floor division: div = (a - fmod(a, b)) / b, one less where the remainder's
    # sign is wrong, then rounded to the nearest whole number
    zero, one, half = (em.constant(v, out.dtype) for v in (0, 1, 0.5))
    r = em.node("Mod", [a, b], fmod=1)
    div = em.node("Div", [em.node("Sub", [a, r]), b])
    div = em.node("Where", [_wrong_sign(em, r, b, zero), em.node("Sub", [div, one]), div])
    floor = em.node("Floor", [div])
    up = em.node("Greater", [em.node("Sub", [div, floor]), half])
    result = em.node("Where", [up, em.node("Add", [floor, one]), floor])
    # b == 0: numpy gives a / b (inf or nan)
    return em.node("Where", [em.node("Equal", [b, zero]), em.node("Div", [a, b]), result], "floor_divide")


def _clip(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
          symbols: Symbols) -> str:
    low, high = attrs.get("a_min"), attrs.get("a_max")
    bounds = ["" if v is None else em.constant(np.asarray(v).astype(out.dtype)) for v in (low, high)]
    if not bounds[1]:
        bounds = bounds[:1]
    return em.node("Clip", [xs[0], *bounds], "clip")


def _flat(em: Emitter, x: str) -> str:
    return em.node("Reshape", [x, em.ints([-1])], "flat")


def _cumsum(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
            symbols: Symbols) -> str:
    axis = attrs.get("axis")
    x = _flat(em, xs[0]) if axis is None else xs[0]
    return em.node("CumSum", [x, em.constant(0 if axis is None else axis, np.int64)], "cumsum")


def _prod(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
          symbols: Symbols) -> str:
    axes, keep = _axes(attrs.get("axis")), int(bool(attrs.get("keepdims", False)))
    if axes is None:
        return em.node("ReduceProd", xs, "prod", keepdims=keep)
    return em.node("ReduceProd", xs, "prod", axes=axes, keepdims=keep)


def _moment(root: bool) -> Emit:
    def emit(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
             symbols: Symbols) -> str:
        axes = _axes(attrs.get("axis")) or list(range(values[0].ndim))  # all, named: a 0-d result
        keep = int(bool(attrs.get("keepdims", False)))
        mean = em.node("ReduceMean", xs, "mean", keepdims=1, axes=axes)
        deviation = em.node("Sub", [xs[0], mean])
        squares = em.node("Mul", [deviation, deviation])
        total = em.node("ReduceSum", [squares, em.ints(axes)], keepdims=keep)
        # n: the elements per reduced position, read from the shapes (they may be dynamic)
        count = em.node("Div", [em.node("Size", xs), em.node("Size", [mean])])
        count = em.node("Sub", [count, em.constant(int(attrs.get("ddof", 0)), np.int64)])
        var = em.node("Div", [total, em.node("Cast", [count], to=onnx_dtype(out.dtype))], "var")
        return em.node("Sqrt", [var], "std") if root else var

    return emit


def _arg(op_type: str) -> Emit:
    def emit(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
             symbols: Symbols) -> str:
        axis, keep = attrs.get("axis"), bool(attrs.get("keepdims", False))
        if axis is not None:
            return em.node(op_type, xs, op_type.lower(), axis=axis, keepdims=int(keep))
        index = em.node(op_type, [_flat(em, xs[0])], axis=0, keepdims=0)
        if keep:  # numpy: as many axes of length 1 as the input had
            return em.node("Reshape", [index, em.ints([1] * values[0].ndim)], op_type.lower())
        return em.node("Identity", [index], op_type.lower())

    return emit


def _smooth_l1(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
               symbols: Symbols) -> str:
    dtype = out.dtype
    sigma2 = dtype.type(float(attrs.get("scalar", 1.0)) ** 2)
    x = xs[0]
    magnitude = em.node("Abs", [x])
    small = em.node("Less", [magnitude, em.constant(1 / sigma2, dtype)])
    square = em.node("Mul", [em.node("Mul", [x, em.constant(0.5 * sigma2, dtype)]), x])
    linear = em.node("Sub", [magnitude, em.constant(0.5 / sigma2, dtype)])
    return em.node("Where", [small, square, linear], "smooth_l1")


# -- products and the neural ops -------------------------------------------------------------


def _dot(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
         symbols: Symbols) -> str:
    a, b = xs
    ra, rb = values[0].ndim, values[1].ndim
    if ra == 0 or rb == 0:
        return em.node("Mul", [a, b], "dot")
    if rb <= 2:  # matmul's rule, and numpy's dot agrees for these ranks
        return em.node("MatMul", [a, b], "dot")
    # a's last axis with b's second-to-last: b as (k, rest) then back to the result's shape
    perm = [rb - 2, *range(rb - 2), rb - 1]
    columns = em.node("Reshape", [em.node("Transpose", [b], perm=perm), em.ints([0, -1])])
    product = em.node("MatMul", [a, columns])
    shape = em.node("Concat", [
        em.node("Shape", [a], start=0, end=-1),
        em.node("Shape", [b], start=0, end=-2),
        em.node("Shape", [b], start=-1),
    ], axis=0)
    return em.node("Reshape", [product, shape], "dot")


def _swap_last(em: Emitter, x: str, rank: int) -> str:
    perm = list(range(rank))
    perm[-1], perm[-2] = perm[-2], perm[-1]
    return em.node("Transpose", [x], perm=perm)


def _batch_dot(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
               symbols: Symbols) -> str:
    a, b = xs
    if attrs.get("transpose_a"):
        a = _swap_last(em, a, values[0].ndim)
    if attrs.get("transpose_b"):
        b = _swap_last(em, b, values[1].ndim)
    return em.node("MatMul", [a, b], "batch_dot")


def _fully_connected(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
                     symbols: Symbols) -> str:
    x, weight, bias = xs[0], xs[1], xs[2:3]
    rank = values[0].ndim
    if attrs.get("flatten", True):
        x = em.node("Reshape", [x, em.ints([1, 1])]) if rank == 0 else em.node("Flatten", [x], axis=1)
        rank = 2
    if rank == 2:
        return em.node("Gemm", [x, weight, *bias], "fully_connected", transB=1)
    y = em.node("MatMul", [x, em.node("Transpose", [weight], perm=[1, 0])])
    return em.node("Add" if bias else "Identity", [y, *bias], "fully_connected")


def _layer_norm(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
                symbols: Symbols) -> str:
    x, gamma, beta = xs
    rank = values[0].ndim
    axis = attrs.get("axis", -1) % rank
    mean = em.node("ReduceMean", [x], axes=[axis], keepdims=1)
    deviation = em.node("Sub", [x, mean])
    var = em.node("ReduceMean", [em.node("Mul", [deviation, deviation])], axes=[axis], keepdims=1)
    eps = em.constant(float(attrs.get("eps", 1e-5)), out.dtype)
    normed = em.node("Div", [deviation, em.node("Sqrt", [em.node("Add", [var, eps])])])
    channel = em.ints([-1] + [1] * (rank - axis - 1))
    scaled = em.node("Mul", [normed, em.node("Reshape", [gamma, channel])])
    return em.node("Add", [scaled, em.node("Reshape", [beta, channel])], "layer_norm")


def _lrn(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
         symbols: Symbols) -> str:
    """ONNX's LRN, the same window; onnxruntime runs it on 4-D inputs, so another rank is laid
    out as (N, C, rest, 1) around it."""
    options: dict[str, Any] = {"size": int(attrs["size"]), "alpha": float(attrs.get("alpha", 1e-4)),
                               "beta": float(attrs.get("beta", 0.75)), "bias": float(attrs.get("bias", 1.0))}
    x = xs[0]
    if values[0].ndim == 4:
        return em.node("LRN", [x], "lrn", **options)
    normed = em.node("LRN", [em.node("Reshape", [x, em.ints([0, 0, -1, 1])])], **options)
    return em.node("Reshape", [normed, em.node("Shape", [x])], "lrn")


def _embedding(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
               symbols: Symbols) -> str:
    indices = em.as_dtype(values[0], np.dtype(np.int64))
    return em.node("Gather", [em.as_dtype(values[1], out.dtype), indices], "embedding", axis=0)


MATH_OPS: dict[str, OpEmitter] = {
    **cast_as("result", {
        "ceil": _simple("Ceil"),
        "floor": _simple("Floor"),
        "sign": _simple("Sign"),
        "reciprocal": _reciprocal,
        "expm1": _expm1,
        "log1p": _log1p,
        "mod": _mod,
        "floor_divide": _floor_divide,
        "logical_and": _simple("And"),
        "logical_or": _simple("Or"),
        "logical_not": _simple("Not"),
        "logical_xor": _simple("Xor"),
        "fmod": _fmod,
        "clip": _clip,
        "cumsum": _cumsum,
        "prod": _prod,
        "var": _moment(root=False),
        "std": _moment(root=True),
        "smooth_l1": _smooth_l1,
        "dot": _dot,
        "batch_dot": _batch_dot,
        "fully_connected": _fully_connected,
        "layer_norm": _layer_norm,
        "lrn": _lrn,
    }),
    **cast_as("none", {
        "argmax": _arg("ArgMax"),
        "argmin": _arg("ArgMin"),
        "embedding": _embedding,
        # at inference (what ONNX runs) dropout is the identity
        "dropout": lambda em, xs, attrs, values, out, sym: em.node("Identity", xs, "dropout"),
    }),
}
