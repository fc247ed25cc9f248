"""Indexing and sequence ops as ONNX nodes (``INDEXING_OPS``, merged into ``OPS``): ``take``,
MXNet's ``pick``, ``one_hot`` and ``topk``, and the ``sequence_*`` ops.

MXNet's index inputs may be floats: they are truncated to int64 (``Cast``), as the ops do.
``one_hot`` compares with a range instead of using ONNX ``OneHot``, which counts negative
indices from the end where modelpack gives a row of ``off_value``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import helper, numpy_helper

from .emitter import Emitter, OpEmitter, Symbols, Value, cast_as, onnx_dtype

__all__ = ["INDEXING_OPS"]

_INT64 = np.dtype(np.int64)


def _flat(em: Emitter, x: str) -> str:
    return em.node("Reshape", [x, em.ints([-1])], "flat")


def _bounded(em: Emitter, index: str, data: str, axis: int, mode: str) -> str:
    """Indices clipped into, or wrapped around, ``[0, size)`` of ``data``'s ``axis``."""
    size = em.node("Squeeze", [em.dim(data, axis), em.ints([0])])
    if mode == "wrap":
        return em.node("Mod", [index, size], fmod=0)  # the divisor's sign: always in [0, size)
    if mode == "clip":
        return em.node("Min", [em.node("Max", [index, em.constant(0, np.int64)]),
                               em.node("Sub", [size, em.constant(1, np.int64)])])
    return index


def _take(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
          symbols: Symbols) -> str:
    data, axis = xs[0], attrs.get("axis")
    if axis is None:
        data, axis = _flat(em, data), 0
    index = _bounded(em, em.as_dtype(values[1], _INT64), data, axis, attrs.get("mode", "raise"))
    return em.node("Gather", [data, index], "take", axis=axis)


def _pick(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
          symbols: Symbols) -> str:
    data, axis, rank = xs[0], attrs.get("axis", -1), values[0].ndim
    if axis is None:
        data, axis, rank = _flat(em, data), 0, 1
    axis %= rank
    index = _bounded(em, em.as_dtype(values[1], _INT64), data, axis, attrs.get("mode", "clip"))
    if values[1].ndim == rank - 1:
        index = em.node("Unsqueeze", [index, em.ints([axis])])
    # the index broadcast over data's other axes (size 1 along axis), as take_along_axis wants
    pieces = [em.node("Shape", [data], end=axis)] if axis else []
    pieces.append(em.ints([1]))
    if axis + 1 < rank:
        pieces.append(em.node("Shape", [data], start=axis + 1))
    index = em.node("Expand", [index, em.node("Concat", pieces, axis=0) if len(pieces) > 1 else pieces[0]])
    picked = em.node("GatherElements", [data, index], axis=axis)
    if attrs.get("keepdims", False):
        return em.node("Identity", [picked], "pick")
    return em.node("Squeeze", [picked, em.ints([axis])], "pick")


def _one_hot(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
             symbols: Symbols) -> str:
    index = em.node("Unsqueeze", [em.as_dtype(values[0], _INT64), em.ints([-1])])
    hit = em.node("Equal", [index, em.constant(np.arange(attrs["depth"], dtype=np.int64))])
    on = em.constant(np.asarray(attrs.get("on_value", 1.0)).astype(out.dtype))
    off = em.constant(np.asarray(attrs.get("off_value", 0.0)).astype(out.dtype))
    return em.node("Where", [hit, on, off], "one_hot")


def _topk(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Any,
          symbols: Symbols) -> str | list[str]:
    data, axis = xs[0], attrs.get("axis", -1)
    if axis is None:
        data, axis = _flat(em, data), 0
    k = attrs.get("k", 1)
    ret = attrs.get("ret_typ", "indices")
    found, index = em.fresh("topk_values"), em.fresh("topk_indices")
    em.nodes.append(_topk_node(em, data, k, axis, bool(attrs.get("is_ascend", False)), found, index))
    if ret == "value":
        return em.node("Identity", [found], "topk")
    if ret == "mask":
        zeros = em.node("ConstantOfShape", [em.node("Shape", [data])], value=_scalar(0, values[0].dtype))
        ones = em.node("ConstantOfShape", [em.node("Shape", [index])], value=_scalar(1, values[0].dtype))
        return em.node("ScatterElements", [zeros, index, ones], "topk", axis=axis)
    indices = em.node("Cast", [index], "topk", to=onnx_dtype(attrs.get("dtype", "float32")))
    return [em.node("Identity", [found], "topk"), indices] if ret == "both" else indices


def _topk_node(em: Emitter, data: str, k: int, axis: int, ascend: bool, values: str, index: str) -> Any:
    # sorted=1 and ONNX's rule for ties (the lower index first) are npx.topk's
    return helper.make_node("TopK", [data, em.ints([k])], [values, index], name=em.fresh("/topk/TopK"),
                            axis=axis, largest=int(not ascend), sorted=1)


def _scalar(value: Any, dtype: np.dtype) -> Any:
    return numpy_helper.from_array(np.asarray([value]).astype(dtype), "value")


# -- sequences: time along ``axis`` (0 or 1), batch along the other of the first two axes ----------


def _steps_valid(em: Emitter, data: str, lengths: Value, axis: int, rank: int) -> str:
    """A boolean mask, broadcastable to ``data``: the position along ``axis`` is below the length."""
    count = em.node("Squeeze", [em.dim(data, axis), em.ints([0])])
    steps = em.node("Range", [em.constant(0, np.int64), count, em.constant(1, np.int64)])
    length = em.as_dtype(lengths, _INT64)
    if axis == 0:  # (T, 1) < (1, N)
        keep = em.node("Less", [em.node("Unsqueeze", [steps, em.ints([1])]),
                                em.node("Unsqueeze", [length, em.ints([0])])])
    else:  # (1, T) < (N, 1)
        keep = em.node("Less", [em.node("Unsqueeze", [steps, em.ints([0])]),
                                em.node("Unsqueeze", [length, em.ints([1])])])
    if rank > 2:
        keep = em.node("Unsqueeze", [keep, em.ints(list(range(2, rank)))])
    return keep


def _sequence_mask(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
                   symbols: Symbols) -> str:
    if not attrs.get("use_sequence_length", False):
        return em.node("Identity", [xs[0]], "sequence_mask")
    keep = _steps_valid(em, xs[0], values[1], attrs.get("axis", 0), values[0].ndim)
    fill = em.constant(np.asarray(attrs.get("value", 0.0)).astype(out.dtype))
    return em.node("Where", [keep, xs[0], fill], "sequence_mask")


def _sequence_last(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
                   symbols: Symbols) -> str:
    axis, data = attrs.get("axis", 0), xs[0]
    if not attrs.get("use_sequence_length", False):
        return em.node("Gather", [data, em.constant(-1, np.int64)], "sequence_last", axis=axis)
    if axis == 0:  # batch first, then each element's step
        perm = list(range(values[0].ndim))
        perm[0], perm[1] = 1, 0
        data = em.node("Transpose", [data], perm=perm)
    count = em.node("Squeeze", [em.dim(data, 1), em.ints([0])])
    last = em.node("Sub", [em.as_dtype(values[1], _INT64), em.constant(1, np.int64)])
    last = em.node("Min", [em.node("Max", [last, em.constant(0, np.int64)]),
                           em.node("Sub", [count, em.constant(1, np.int64)])])
    index = em.node("Unsqueeze", [last, em.ints([1])])  # (N, 1)
    return em.node("GatherND", [data, index], "sequence_last", batch_dims=1)


def _sequence_reverse(em: Emitter, xs: list[str], attrs: dict[str, Any], values: list[Value], out: Value,
                      symbols: Symbols) -> str:
    axis = attrs.get("axis", 0)
    if not attrs.get("use_sequence_length", False):
        return em.node("Slice", [xs[0], em.ints([-1]), em.ints([-(2**63)]), em.ints([axis]), em.ints([-1])],
                       "sequence_reverse")
    return em.node("ReverseSequence", [xs[0], em.as_dtype(values[1], _INT64)], "sequence_reverse",
                   batch_axis=1 - axis, time_axis=axis)


INDEXING_OPS: dict[str, OpEmitter] = cast_as("none", {
    "take": _take,
    "pick": _pick,
    "one_hot": _one_hot,
    "topk": _topk,
    "sequence_mask": _sequence_mask,
    "sequence_last": _sequence_last,
    "sequence_reverse": _sequence_reverse,
})
