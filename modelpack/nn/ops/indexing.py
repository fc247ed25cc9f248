"""Indexing ops: numpy indexing (basic, and advanced with index arrays that may be traced),
``take``, and MXNet's ``pick``, ``one_hot`` and ``topk``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from ..sizes import Size
from . import Attrs, check_elements, json_value, register_op

# -- numpy indexing ------------------------------------------------------------------------------


class IndexInt(Attrs):
    int: Annotated[Size, Field(alias="int")]


class IndexSlice(Attrs):
    slice: list[Size | None] = Field(min_length=3, max_length=3)


class IndexNewAxis(Attrs):
    newaxis: Literal[True]


class IndexEllipsis(Attrs):
    ellipsis: Literal[True]


class IndexArray(Attrs):
    # The k-th index array: the op's input k + 1 (advanced, integer indexing).
    array: int = Field(ge=0, lt=64)


IndexItem = IndexInt | IndexSlice | IndexNewAxis | IndexEllipsis | IndexArray


class GetItemAttrs(Attrs):
    index: list[IndexItem] = Field(max_length=64)


def encode_index(index: Any) -> tuple[list[dict[str, Any]], list[Any]]:
    """A Python index as JSON-able items plus the index arrays it uses (inputs after ``x``).

    ``TypeError`` for what the op cannot express: non-integer slice bounds, float or
    traced boolean index arrays (a traced mask's result has a data-dependent shape).
    """
    items = index if isinstance(index, tuple) else (index,)
    encoded: list[dict[str, Any]] = []
    arrays: list[Any] = []
    for item in items:
        if isinstance(item, (bool, np.bool_)):
            raise TypeError("a boolean scalar index is not supported")
        if isinstance(item, (int, np.integer)):
            encoded.append({"int": int(item)})
        elif isinstance(item, slice):
            parts = [item.start, item.stop, item.step]
            if not all(
                p is None or (isinstance(p, (int, np.integer)) and not isinstance(p, bool)) for p in parts
            ):
                raise TypeError(f"slice {item!r} must have integer (or no) bounds")
            encoded.append({"slice": [None if p is None else int(p) for p in parts]})
        elif item is None:
            encoded.append({"newaxis": True})
        elif item is Ellipsis:
            encoded.append({"ellipsis": True})
        else:
            for array in _index_arrays(item):
                encoded.append({"array": len(arrays)})
                arrays.append(array)
    return encoded, arrays


def _index_arrays(item: Any) -> list[Any]:
    """One advanced index item as integer index arrays (a constant boolean mask becomes the
    integer arrays of its true positions, which is what numpy does with it)."""
    if isinstance(item, list):
        item = np.asarray(item)
    dtype = getattr(item, "dtype", None)
    if dtype is None:
        raise TypeError(f"index {item!r} must be an int, a slice, None, ... or an integer array")
    kind = np.dtype(dtype).kind
    if kind == "b":
        if isinstance(item, np.ndarray):
            return list(np.nonzero(item))
        raise TypeError(
            "indexing with a traced boolean mask gives a shape that depends on the data; "
            "use np.where(mask, x, other) instead"
        )
    if kind not in "iu":
        raise TypeError(f"index arrays must hold integers, not {np.dtype(dtype).name}")
    return [item]


def decode_index(items: list[Any], arrays: tuple[Any, ...] = ()) -> tuple[Any, ...]:
    """The inverse of ``encode_index`` (accepts dicts or validated item models)."""
    decoded: list[Any] = []
    for item in items:
        data = item if isinstance(item, dict) else item.model_dump(by_alias=True)
        if "int" in data:
            decoded.append(data["int"])
        elif "slice" in data:
            decoded.append(slice(*data["slice"]))
        elif "newaxis" in data:
            decoded.append(None)
        elif "array" in data:
            if data["array"] >= len(arrays):
                raise ValueError(f"index array {data['array']} is not among the op's inputs")
            decoded.append(np.asarray(arrays[data["array"]]))
        else:
            decoded.append(Ellipsis)
    return tuple(decoded)


def _getitem_call(x: Any, index: Any) -> tuple[list[Any], dict[str, Any]]:
    encoded, arrays = encode_index(index)
    return [x, *arrays], {"index": encoded}


@register_op("getitem", attrs=GetItemAttrs, call=_getitem_call, sizes=("index",))
def getitem(x: np.ndarray, *arrays: np.ndarray, index: list[Any]) -> np.ndarray:
    """numpy indexing: ints, slices, None, ... and integer index arrays (``x[:, :4]``,
    ``x[0]``, ``x[..., None]``, ``x[rows, labels]``)."""
    return np.asarray(np.asarray(x)[decode_index(index, arrays)])


class TakeAttrs(Attrs):
    axis: int | None = None
    mode: Literal["raise", "wrap", "clip"] = "raise"


def _take_call(
    a: Any, indices: Any, axis: Any = None, out: Any = None, mode: str = "raise"
) -> tuple[list[Any], dict[str, Any]]:
    if out is not None:
        raise TypeError("take(): out= is not supported")
    return [a, indices], {"axis": json_value(axis), "mode": mode}


@register_op("take", attrs=TakeAttrs, numpy=(np.take,), methods=("take",), call=_take_call)
def take(x: np.ndarray, indices: np.ndarray, axis: int | None = None, mode: str = "raise") -> np.ndarray:
    """Elements at integer ``indices`` along ``axis``, as ``np.take``."""
    return np.asarray(np.take(x, np.asarray(indices).astype(np.int64), axis=axis, mode=mode))  # type: ignore[call-overload]


# -- MXNet's indexing ops (npx) ----------------------------------------------------------------


def _whole(index: np.ndarray) -> np.ndarray:
    """MXNet takes float indices; they are truncated to integers as MXNet does."""
    return np.asarray(index).astype(np.int64)


class PickAttrs(Attrs):
    axis: int | None = -1
    mode: Literal["clip", "wrap"] = "clip"
    keepdims: bool = False


@register_op("pick", attrs=PickAttrs)
def pick(
    data: np.ndarray, index: np.ndarray, axis: int | None = -1, mode: str = "clip", keepdims: bool = False
) -> np.ndarray:
    """``npx.pick``: the element at ``index`` along ``axis`` of each position of the other axes
    (``y_hat[range(n), y]`` for a batch); out-of-range indices are clipped or wrapped."""
    data = np.asarray(data)
    if axis is None:
        data, axis = data.reshape(-1), 0
    axis %= data.ndim
    size = data.shape[axis]
    idx = _whole(index)
    idx = np.clip(idx, 0, size - 1) if mode == "clip" else np.mod(idx, size)
    if idx.ndim == data.ndim - 1:
        idx = np.expand_dims(idx, axis)
    out = np.take_along_axis(
        data, np.broadcast_to(idx, data.shape[:axis] + (1,) + data.shape[axis + 1 :]), axis
    )
    return out if keepdims else np.squeeze(out, axis=axis)


class OneHotAttrs(Attrs):
    depth: int = Field(ge=0, le=1 << 24)
    on_value: float = 1.0
    off_value: float = 0.0
    dtype: Literal["float16", "float32", "float64", "int32", "int64", "uint8", "int8", "bool"] = "float32"


@register_op("one_hot", attrs=OneHotAttrs)
def one_hot(
    indices: np.ndarray, depth: int, on_value: float = 1.0, off_value: float = 0.0, dtype: str = "float32"
) -> np.ndarray:
    """``npx.one_hot``: a new last axis of length ``depth``, ``on_value`` at each index and
    ``off_value`` elsewhere (an index outside [0, depth) gives a row of ``off_value``)."""
    idx = _whole(indices)
    check_elements("one_hot", int(idx.size) * depth)
    hit = idx[..., None] == np.arange(depth)
    return np.where(hit, on_value, off_value).astype(dtype)


class TopkAttrs(Attrs):
    axis: int | None = -1
    k: int = Field(default=1, ge=1)
    ret_typ: Literal["value", "indices", "mask", "both"] = "indices"
    is_ascend: bool = False
    dtype: Literal["float16", "float32", "float64", "int32", "int64", "uint8"] = "float32"


@register_op("topk", attrs=TopkAttrs, outputs=lambda attrs: 2 if attrs.get("ret_typ") == "both" else None)
def topk(
    data: np.ndarray,
    axis: int | None = -1,
    k: int = 1,
    ret_typ: str = "indices",
    is_ascend: bool = False,
    dtype: str = "float32",
) -> Any:
    """``npx.topk``: the ``k`` largest (or smallest) along ``axis``; indices come in ``dtype``
    (float32 by default, as MXNet gives them); ``both`` gives [values, indices]. Ties keep the
    lower index first."""
    data = np.asarray(data)
    if axis is None:
        data, axis = data.reshape(-1), 0
    axis %= data.ndim
    if k > data.shape[axis]:
        raise ValueError(f"topk: k={k} exceeds the axis length {data.shape[axis]}")
    key = data.astype(np.float64) if data.dtype.kind in "ub" else data  # negatable
    order = np.argsort(key if is_ascend else -key, axis=axis, kind="stable")
    chosen = np.take(order, np.arange(k), axis=axis)
    values = np.take_along_axis(data, chosen, axis=axis)
    if ret_typ == "value":
        return values
    if ret_typ == "mask":
        mask = np.zeros_like(data)
        np.put_along_axis(mask, chosen, 1, axis=axis)
        return mask
    indices = chosen.astype(dtype)
    return [values, indices] if ret_typ == "both" else indices
