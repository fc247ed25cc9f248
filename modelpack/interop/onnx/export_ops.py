"""Each op of the op table (``nn/ops.py``) as ONNX nodes: one entry per op, in ``OPS``.

numpy decides a result's dtype (int / int is float64, a Python scalar takes the array's
dtype); ONNX wants its inputs alike. So every entry says how its inputs are cast: to the
result's dtype (``"result"``: arithmetic, reductions), to their common dtype (``"common"``:
comparisons), or not at all (``"none"``: shape ops) — the result dtype comes from running
the op on the samples. A reshape target naming a dynamic size reads it from the graph input
that binds it (``Shape``), so no dynamic size is ever written as a number.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .emitter import Emit, Emitter, OpEmitter, Symbols, Value, cast_as, onnx_dtype
from .export_layers import activation
from .export_ops_indexing import INDEXING_OPS
from .export_ops_layout import LAYOUT_OPS
from .export_ops_math import MATH_OPS

__all__ = ["OpEmitter", "OPS"]

_INT64_MAX = 2**63 - 1


def _simple(op_type: str) -> Emit:
    return lambda em, xs, attrs, values, out, symbols: em.node(op_type, xs, op_type.lower())


def _act(name: str) -> Emit:
    return lambda em, xs, attrs, values, out, symbols: activation(em, name, xs[0], out.dtype, **attrs)


def _axis_op(op_type: str) -> Emit:
    return lambda em, xs, attrs, values, out, symbols: em.node(
        op_type, xs, op_type.lower(), axis=attrs["axis"]
    )


def _reduce(op_type: str) -> Emit:
    def emit(
        em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value, symbols: Symbols
    ) -> str:
        axis = attrs.get("axis")
        axes = None if axis is None else [axis] if isinstance(axis, int) else list(axis)
        keep = int(bool(attrs.get("keepdims", False)))
        if axes is None:
            return em.node(op_type, xs, op_type.lower(), keepdims=keep)
        if op_type == "ReduceSum":  # axes is an input from opset 13, an attribute for the others until 18
            return em.node(op_type, [xs[0], em.ints(axes)], "sum", keepdims=keep)
        return em.node(op_type, xs, op_type.lower(), keepdims=keep, axes=axes)

    return emit


def _reshape(
    em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value, symbols: Symbols
) -> str:
    shape = em.shape(attrs["shape"], symbols)
    # numpy's 0 is a size of zero, ONNX's (by default) "copy the input's size"
    zero = any(d == 0 for d in attrs["shape"] if not isinstance(d, str))
    return em.node("Reshape", [xs[0], shape], "reshape", allowzero=int(zero))


def _transpose(
    em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value, symbols: Symbols
) -> str:
    axes = attrs.get("axes")
    perm = list(range(values[0].ndim))[::-1] if axes is None else [a % values[0].ndim for a in axes]
    return em.node("Transpose", xs, "transpose", perm=perm)


def _flatten(
    em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value, symbols: Symbols
) -> str:
    if values[0].ndim == 0:
        return em.node("Reshape", [xs[0], em.ints([1, 1])], "flatten")
    return em.node("Flatten", xs, "flatten", axis=1)


def _axes_op(op_type: str) -> Emit:
    def emit(
        em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value, symbols: Symbols
    ) -> str:
        axis = attrs.get("axis")
        if axis is None:
            return em.node(op_type, xs, op_type.lower())
        return em.node(
            op_type, [xs[0], em.ints([axis] if isinstance(axis, int) else list(axis))], op_type.lower()
        )

    return emit


def _stack(
    em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value, symbols: Symbols
) -> str:
    axis = attrs.get("axis", 0) % out.ndim
    expanded = [em.node("Unsqueeze", [x, em.ints([axis])]) for x in xs]
    return em.node("Concat", expanded, "stack", axis=axis)


def _cast(
    em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value, symbols: Symbols
) -> str:
    return em.node("Cast", xs, "cast", to=onnx_dtype(attrs["dtype"]))


def _where(
    em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value, symbols: Symbols
) -> str:
    condition = em.as_dtype(values[0], np.dtype(bool))
    return em.node(
        "Where", [condition, em.as_dtype(values[1], out.dtype), em.as_dtype(values[2], out.dtype)], "where"
    )


def _index_items(em: Emitter, index: list[dict[str, Any]], rank: int) -> list[tuple[str, Any]]:
    """The stored index as (kind, value) items, the ellipsis expanded into full slices."""
    items: list[tuple[str, Any]] = []
    for item in index:
        if "int" in item:
            if isinstance(item["int"], str):
                raise em.refuse(
                    f"getitem at a dynamic position ({item['int']!r}) has no ONNX translation here"
                )
            items.append(("int", item["int"]))
        elif "slice" in item:
            items.append(("slice", list(item["slice"])))
        elif "newaxis" in item:
            items.append(("newaxis", None))
        elif "array" in item:
            items.append(("array", item["array"]))
        else:
            items.append(("ellipsis", None))
    if ("ellipsis", None) in items:
        at = items.index(("ellipsis", None))
        fill = rank - sum(1 for kind, _ in items if kind in ("int", "slice", "array"))
        items[at : at + 1] = [("slice", [None, None, None])] * fill
    return items


def _slices(em: Emitter, x: str, items: list[tuple[str, Any]], symbols: Symbols) -> str:
    """One Slice for the slice items' bounds (which may be size expressions), axes kept."""
    starts: list[int | str] = []
    ends: list[int | str] = []
    axes, steps = [], []
    axis = 0
    for kind, value in items:
        if kind == "newaxis":
            continue
        if kind == "slice":
            start, stop, step = value
            step = 1 if step is None else step
            start = start if start is not None else (0 if step > 0 else _INT64_MAX)
            stop = stop if stop is not None else (_INT64_MAX if step > 0 else -_INT64_MAX - 1)
            if (start, stop, step) != (0, _INT64_MAX, 1):
                starts.append(start)
                ends.append(stop)
                axes.append(axis)
                steps.append(step)
        axis += 1
    if not axes:
        return x
    bounds = [em.shape(starts, symbols), em.shape(ends, symbols)]
    return em.node("Slice", [x, *bounds, em.ints(axes), em.ints(steps)], "slice")


def _getitem(
    em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value, symbols: Symbols
) -> str:
    """numpy indexing. Basic: one Slice (bounds may follow dynamic sizes), a Squeeze of the
    integer axes, an Unsqueeze for each ``None``. With index arrays (``x[rows, labels]``): the
    slices first, then one GatherND over the indexed axes, which must be adjacent (numpy moves
    the result's axes to the front otherwise)."""
    rank = values[0].ndim
    items = _index_items(em, attrs["index"], rank)
    if any(kind == "array" for kind, _ in items):
        return _advanced(em, xs, items, values, out, symbols)
    ints = [(kind, [v, v + 1 if v != -1 else _INT64_MAX, 1] if kind == "int" else v) for kind, v in items]
    y = _slices(em, xs[0], [("slice", v) if kind == "int" else (kind, v) for kind, v in ints], symbols)
    squeeze, new_axes = [], []
    axis = position = 0
    for kind, _ in items:
        if kind == "newaxis":
            new_axes.append(position)
            position += 1
            continue
        if kind == "int":
            squeeze.append(axis)
        else:
            position += 1
        axis += 1
    if squeeze:
        y = em.node("Squeeze", [y, em.ints(squeeze)], "index")
    if new_axes:
        y = em.node("Unsqueeze", [y, em.ints(new_axes)], "newaxis")
    return y if y != xs[0] else em.node("Identity", [y], "getitem")


def _advanced(
    em: Emitter,
    xs: list[str],
    items: list[tuple[str, Any]],
    values: list[Value],
    out: Value,
    symbols: Symbols,
) -> str:
    if any(kind == "newaxis" for kind, _ in items):
        raise em.refuse("getitem mixing index arrays and None has no ONNX translation here")
    rank = values[0].ndim
    indexed = [axis for axis, (kind, _) in enumerate(items) if kind in ("array", "int")]
    first = indexed[0]
    if indexed != list(range(first, first + len(indexed))):
        raise em.refuse(
            f"getitem with index arrays on axes {indexed}, not adjacent (numpy then moves the result's "
            "axes first), has no ONNX translation here"
        )
    int64 = np.dtype(np.int64)
    x = _slices(em, xs[0], items, symbols)
    others = [axis for axis in range(rank) if axis not in indexed]
    if first:  # the indexed axes first, as GatherND wants them
        x = em.node("Transpose", [x], perm=indexed + others)
    indices = [
        em.as_dtype(values[1 + value], int64) if kind == "array" else em.constant(value, int64)
        for kind, value in items if kind in ("array", "int")
    ]
    if len(indices) > 1:  # broadcast together, as numpy's index arrays
        total = indices[0]
        for index in indices[1:]:
            total = em.node("Add", [total, index])
        shape = em.node("Shape", [total])
        indices = [em.node("Expand", [index, shape]) for index in indices]
    stacked = em.node("Concat", [em.node("Unsqueeze", [i, em.ints([-1])]) for i in indices], axis=-1)
    y = em.node("GatherND", [x, stacked], "getitem")
    batch = out.ndim - len(others)  # the index arrays' broadcast rank
    if first:  # the result's indexed dims back where the indexed axes were
        perm = [batch + i for i in range(first)] + list(range(batch)) + [
            batch + first + i for i in range(len(others) - first)
        ]
        y = em.node("Transpose", [y], "getitem", perm=perm)
    return y


def _not_equal(
    em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value, symbols: Symbols
) -> str:
    return em.node("Not", [em.node("Equal", xs)], "not_equal")


def _square(
    em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value, symbols: Symbols
) -> str:
    return em.node("Mul", [xs[0], xs[0]], "square")


_BINARY = {
    "add": "Add",
    "subtract": "Sub",
    "multiply": "Mul",
    "divide": "Div",
    "power": "Pow",
    "maximum": "Max",
    "minimum": "Min",
    "matmul": "MatMul",
}
_UNARY = {
    "negative": "Neg",
    "abs": "Abs",
    "exp": "Exp",
    "log": "Log",
    "sqrt": "Sqrt",
    "sin": "Sin",
    "cos": "Cos",
    "tan": "Tan",
    "arcsin": "Asin",
    "arccos": "Acos",
    "arctan": "Atan",
    "sinh": "Sinh",
    "cosh": "Cosh",
    "arcsinh": "Asinh",
    "arccosh": "Acosh",
    "arctanh": "Atanh",
    "erf": "Erf",
    "rint": "Round",
}
_COMPARE = {
    "greater": "Greater",
    "greater_equal": "GreaterOrEqual",
    "less": "Less",
    "less_equal": "LessOrEqual",
    "equal": "Equal",
}
_REDUCE = {"sum": "ReduceSum", "mean": "ReduceMean", "max": "ReduceMax", "min": "ReduceMin"}

_ACTIVATIONS = ("relu", "sigmoid", "tanh", "softrelu", "softsign", "gelu", "silu", "leaky_relu", "elu")

OPS: dict[str, OpEmitter] = {
    **cast_as("result", {
        **{name: _simple(op) for name, op in {**_BINARY, **_UNARY}.items()},
        **{name: _act(name) for name in _ACTIVATIONS},
        **{name: _reduce(op) for name, op in _REDUCE.items()},
        "square": _square,
        "softmax": _axis_op("Softmax"),
        "log_softmax": _axis_op("LogSoftmax"),
        "concatenate": _axis_op("Concat"),
        "stack": _stack,
    }),
    **cast_as("common", {**{name: _simple(op) for name, op in _COMPARE.items()}, "not_equal": _not_equal}),
    **cast_as("none", {
        "where": _where,
        "reshape": _reshape,
        "transpose": _transpose,
        "flatten": _flatten,
        "squeeze": _axes_op("Squeeze"),
        "expand_dims": _axes_op("Unsqueeze"),
        "cast": _cast,
        "getitem": _getitem,
    }),
    **MATH_OPS,
    **LAYOUT_OPS,
    **INDEXING_OPS,
}
