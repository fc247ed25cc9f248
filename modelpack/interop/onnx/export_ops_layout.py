"""Shape and layout ops as ONNX nodes (``LAYOUT_OPS``, merged into ``OPS``): arrays made from
sizes (``full``, ``arange``, ``*_like``), broadcasting, ``tile``, ``repeat``, ``swapaxes`` and
``split``.

A size attribute naming a dynamic size is computed from the graph inputs' shapes
(``Emitter.shape``); an array made only of fixed sizes is written as a constant.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import numpy_helper

from .emitter import Emitter, OpEmitter, Symbols, Value, cast_as, onnx_dtype

__all__ = ["LAYOUT_OPS"]

_INT64_MAX = 2**63 - 1
_RANGE_DTYPES = {"float32", "float64", "int16", "int32", "int64"}  # ONNX Range's types


def _fill(value: Any, dtype: np.dtype) -> Any:
    return numpy_helper.from_array(np.asarray([value]).astype(dtype), "value")


def _is_dynamic(attr: Any) -> bool:
    return isinstance(attr, str) or (isinstance(attr, list) and any(isinstance(d, str) for d in attr))


def _full(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
          symbols: Symbols) -> str:
    if not _is_dynamic(attrs["shape"]):
        return em.node("Identity", [em.constant(out.sample)], "full")
    return em.node("ConstantOfShape", [em.shape(attrs["shape"], symbols)], "full",
                   value=_fill(attrs["value"], out.dtype))


def _like(value: Any) -> Any:
    def emit(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
             symbols: Symbols) -> str:
        fill = attrs.get("value") if value is None else value
        return em.node("ConstantOfShape", [em.node("Shape", xs)], "like", value=_fill(fill, out.dtype))

    return emit


def _arange(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
            symbols: Symbols) -> str:
    if not _is_dynamic(attrs["stop"]):
        return em.node("Identity", [em.constant(out.sample)], "arange")
    dtype = out.dtype if out.dtype.name in _RANGE_DTYPES else np.dtype(
        np.float64 if out.dtype.kind == "f" else np.int64
    )
    limit = em.node("Squeeze", [em.size(attrs["stop"], symbols), em.ints([0])])
    limit = em.node("Cast", [limit], to=onnx_dtype(dtype))
    start = em.constant(attrs.get("start", 0), dtype)
    step = em.constant(attrs.get("step", 1), dtype)
    result = em.node("Range", [start, limit, step], "arange")
    return result if dtype == out.dtype else em.node("Cast", [result], "arange", to=onnx_dtype(out.dtype))


def _broadcast_to(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
                  symbols: Symbols) -> str:
    return em.node("Expand", [xs[0], em.shape(attrs["shape"], symbols)], "broadcast_to")


def _tile(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
          symbols: Symbols) -> str:
    reps, rank, x = list(attrs["reps"]), values[0].ndim, xs[0]
    if len(reps) > rank:  # numpy: new leading axes on the input
        x = em.node("Unsqueeze", [x, em.ints(list(range(len(reps) - rank)))])
    reps = [1] * (rank - len(reps)) + reps  # numpy: missing leading reps are 1
    return em.node("Tile", [x, em.shape(reps, symbols)], "tile")


def _repeat(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
            symbols: Symbols) -> str:
    """Each element ``repeats`` times: a new axis after ``axis`` tiled, then merged into it."""
    axis, x, rank = attrs.get("axis"), xs[0], values[0].ndim
    if axis is None:
        x, axis, rank = em.node("Reshape", [x, em.ints([-1])]), 0, 1
    axis %= rank
    count = attrs["repeats"]
    grown = em.node("Unsqueeze", [x, em.ints([axis + 1])])
    tiled = em.node("Tile", [grown, em.shape([1] * (axis + 1) + [count] + [1] * (rank - axis - 1), symbols)])
    scale = em.shape([1] * axis + [count] + [1] * (rank - axis - 1), symbols)
    target = em.node("Mul", [em.node("Shape", [x]), scale])
    return em.node("Reshape", [tiled, target], "repeat")


def _swapaxes(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
              symbols: Symbols) -> str:
    perm = list(range(values[0].ndim))
    a, b = attrs["axis1"] % len(perm), attrs["axis2"] % len(perm)
    perm[a], perm[b] = perm[b], perm[a]
    return em.node("Transpose", xs, "swapaxes", perm=perm)


def _split(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Any,
           symbols: Symbols) -> list[str]:
    """``np.split``: one Slice per piece (numpy's cut points, clamped as Python slices are)."""
    axis = attrs.get("axis", 0) % values[0].ndim
    cuts: list[int | str]
    if attrs.get("sections") is not None:
        length = values[0].static_dims()[axis]
        if length is None:
            raise em.refuse(f"split into sections along the dynamic axis {axis} has no ONNX translation here")
        step = length // attrs["sections"]
        cuts = [step * i for i in range(1, attrs["sections"])]
    else:
        cuts = list(attrs["indices"])
    bounds: list[int | str] = [0, *cuts, _INT64_MAX]
    return [
        em.node("Slice", [xs[0], em.size(start, symbols), em.size(end, symbols), em.ints([axis])], "split")
        for start, end in zip(bounds[:-1], bounds[1:], strict=True)
    ]


LAYOUT_OPS: dict[str, OpEmitter] = {
    **cast_as("none", {
        "full": _full,
        "zeros_like": _like(0),
        "ones_like": _like(1),
        "full_like": _like(None),
        "arange": _arange,
        "swapaxes": _swapaxes,
        "split": _split,
    }),
    **cast_as("result", {"broadcast_to": _broadcast_to, "tile": _tile, "repeat": _repeat}),
}
