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

from ...nn.ops.indexing import decode_index
from .emitter import Emit, Emitter, OpEmitter, Symbols, Value, onnx_dtype
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


def _getitem(
    em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value, symbols: Symbols
) -> str:
    """Basic indexing: one Slice over the indexed axes, a Squeeze of the integer ones, an
    Unsqueeze for each ``None``."""
    for item in attrs["index"]:
        if "array" in item or any(isinstance(v, str) for v in item.get("slice", [item.get("int")])):
            raise em.refuse(
                f"getitem with an index array or a dynamic bound ({item}) has no ONNX translation here"
            )
    items = list(decode_index(attrs["index"]))
    rank = values[0].ndim
    if Ellipsis in items:
        at = items.index(Ellipsis)
        fill = rank - sum(1 for i in items if i is not None and i is not Ellipsis)
        items[at : at + 1] = [slice(None)] * fill
    starts, ends, axes, steps, squeeze, new_axes = [], [], [], [], [], []
    axis = position = 0
    for item in items:
        if item is None:
            new_axes.append(position)
            position += 1
            continue
        if isinstance(item, int):
            start, end, step = item, item + 1 if item != -1 else _INT64_MAX, 1
            squeeze.append(axis)
        else:
            step = 1 if item.step is None else item.step
            start = item.start if item.start is not None else (0 if step > 0 else _INT64_MAX)
            end = item.stop if item.stop is not None else (_INT64_MAX if step > 0 else -_INT64_MAX - 1)
            position += 1
        if (start, end, step) != (0, _INT64_MAX, 1):
            starts.append(start)
            ends.append(end)
            axes.append(axis)
            steps.append(step)
        axis += 1
    y = xs[0]
    if axes:
        y = em.node("Slice", [y, em.ints(starts), em.ints(ends), em.ints(axes), em.ints(steps)], "slice")
    if squeeze:
        y = em.node("Squeeze", [y, em.ints(squeeze)], "index")
    if new_axes:
        y = em.node("Unsqueeze", [y, em.ints(new_axes)], "newaxis")
    return y if y != xs[0] else em.node("Identity", [y], "getitem")


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
}
_COMPARE = {
    "greater": "Greater",
    "greater_equal": "GreaterOrEqual",
    "less": "Less",
    "less_equal": "LessOrEqual",
    "equal": "Equal",
}
_REDUCE = {"sum": "ReduceSum", "mean": "ReduceMean", "max": "ReduceMax", "min": "ReduceMin"}

OPS: dict[str, OpEmitter] = {
    **{name: OpEmitter("result", _simple(op)) for name, op in {**_BINARY, **_UNARY}.items()},
    **{name: OpEmitter("common", _simple(op)) for name, op in _COMPARE.items()},
    **{
        name: OpEmitter("result", _act(name))
        for name in ("relu", "sigmoid", "tanh", "softrelu", "softsign", "gelu", "silu", "leaky_relu", "elu")
    },
    **{name: OpEmitter("result", _reduce(op)) for name, op in _REDUCE.items()},
    "not_equal": OpEmitter("common", _not_equal),
    "square": OpEmitter("result", _square),
    "where": OpEmitter("none", _where),
    "softmax": OpEmitter("result", _axis_op("Softmax")),
    "log_softmax": OpEmitter("result", _axis_op("LogSoftmax")),
    "concatenate": OpEmitter("result", _axis_op("Concat")),
    "stack": OpEmitter("result", _stack),
    "reshape": OpEmitter("none", _reshape),
    "transpose": OpEmitter("none", _transpose),
    "flatten": OpEmitter("none", _flatten),
    "squeeze": OpEmitter("none", _axes_op("Squeeze")),
    "expand_dims": OpEmitter("none", _axes_op("Unsqueeze")),
    "cast": OpEmitter("none", _cast),
    "getitem": OpEmitter("none", _getitem),
    **MATH_OPS,
    **LAYOUT_OPS,
    **INDEXING_OPS,
}
