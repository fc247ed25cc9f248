"""Shape and layout ops: joining and splitting, reshaping, axis moves, repeats, casts, and
arrays made from sizes (``full``, ``arange``, ``*_like``).

Attributes declared as sizes (``sizes=``) may hold size expressions (``nn.sizes``), so that a
reshape to batch × heads or ``np.zeros((x.shape[0], h))`` follows a dynamic batch.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ...io.npy import SUPPORTED_DTYPES
from ..sizes import Size
from . import Attrs, as_axis, check_elements, json_value, register_op

Dtype = Literal[SUPPORTED_DTYPES]  # type: ignore[valid-type]


def _ints(value: Any, what: str) -> list[int]:
    """A shape-like argument as a list of Python ints (a lone int is a list of one)."""
    items = value if isinstance(value, (tuple, list)) else (value,)
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_)) for d in items):
        raise TypeError(f"{what}: {value!r} must be made of Python ints")
    return [int(d) for d in items]


class ConcatAttrs(Attrs):
    axis: int = 0


def _join_call(arrays: Any, axis: int = 0) -> tuple[list[Any], dict[str, Any]]:
    return list(arrays), {"axis": json_value(axis)}


@register_op("concatenate", attrs=ConcatAttrs, numpy=(np.concatenate,), call=_join_call)
def concatenate(*arrays: np.ndarray, axis: int = 0) -> np.ndarray:
    """Join arrays along an existing axis."""
    return np.concatenate(arrays, axis=axis)


@register_op("stack", attrs=ConcatAttrs, numpy=(np.stack,), call=_join_call)
def stack(*arrays: np.ndarray, axis: int = 0) -> np.ndarray:
    """Join arrays along a new axis."""
    return np.stack(arrays, axis=axis)


class SplitAttrs(Attrs):
    # Either a number of equal pieces, or the positions to cut at (sizes).
    sections: int | None = Field(default=None, ge=1, le=100_000)
    indices: list[Size] | None = Field(default=None, max_length=100_000)
    axis: int = 0


def _split_call(a: Any, indices_or_sections: Any, axis: int = 0) -> tuple[list[Any], dict[str, Any]]:
    if isinstance(indices_or_sections, (tuple, list)):
        return [a], {"sections": None, "indices": _ints(indices_or_sections, "split()"), "axis": int(axis)}
    return [a], {"sections": _ints(indices_or_sections, "split()")[0], "indices": None, "axis": int(axis)}


def _split_count(attrs: dict[str, Any]) -> int:
    if attrs.get("sections") is not None:
        return int(attrs["sections"])
    return len(attrs.get("indices") or []) + 1


@register_op(
    "split", attrs=SplitAttrs, numpy=(np.split,), call=_split_call, sizes=("indices",), outputs=_split_count
)
def split(
    x: np.ndarray, sections: int | None = None, indices: list[int] | None = None, axis: int = 0
) -> list[np.ndarray]:
    """Cut into ``sections`` equal pieces or at ``indices`` along ``axis`` (several outputs)."""
    if (sections is None) == (indices is None):
        raise ValueError("split needs exactly one of sections and indices")
    cuts: Any = sections if indices is None else indices
    return [np.asarray(piece) for piece in np.split(x, cuts, axis=axis)]


class ReshapeAttrs(Attrs):
    shape: list[Size]


def _reshape_call(a: Any, shape: Any = None, /, **kwargs: Any) -> tuple[list[Any], dict[str, Any]]:
    target = kwargs.pop("newshape", kwargs.pop("shape", shape))
    if kwargs:
        raise TypeError(f"reshape(): order= and other options are not supported ({sorted(kwargs)})")
    return [a], {"shape": _ints(target, "reshape(): the target shape")}


@register_op("reshape", attrs=ReshapeAttrs, numpy=(np.reshape,), call=_reshape_call, sizes=("shape",))
def reshape(x: np.ndarray, shape: list[int]) -> np.ndarray:
    """Reshape; ``-1`` infers one dimension (size expressions are resolved by the graph first)."""
    return np.reshape(x, tuple(int(d) for d in shape))


class TransposeAttrs(Attrs):
    axes: list[int] | None = None


@register_op("transpose", attrs=TransposeAttrs, numpy=(np.transpose,))
def transpose(x: np.ndarray, axes: list[int] | None = None) -> np.ndarray:
    """Permute axes (reverse them when ``axes`` is None)."""
    return np.transpose(x, axes)


class SwapAttrs(Attrs):
    axis1: int
    axis2: int


@register_op("swapaxes", attrs=SwapAttrs, numpy=(np.swapaxes,), methods=("swapaxes",))
def swapaxes(x: np.ndarray, axis1: int, axis2: int) -> np.ndarray:
    """Exchange two axes."""
    return np.swapaxes(x, axis1, axis2)


@register_op("flatten")
def flatten(x: np.ndarray) -> np.ndarray:
    """Gluon's flatten (``npx.batch_flatten``): (N, a, b, ...) → (N, a·b·...)."""
    return np.reshape(x, (x.shape[0], -1)) if x.ndim else np.reshape(x, (1, 1))


class AxesAttrs(Attrs):
    axis: int | list[int] | None = None


@register_op("squeeze", attrs=AxesAttrs, numpy=(np.squeeze,), methods=("squeeze",))
def squeeze(x: np.ndarray, axis: int | list[int] | None = None) -> np.ndarray:
    """Drop axes of length one."""
    return np.squeeze(x, axis=as_axis(axis))


class ExpandAttrs(Attrs):
    axis: int | list[int]


@register_op("expand_dims", attrs=ExpandAttrs, numpy=(np.expand_dims,))
def expand_dims(x: np.ndarray, axis: int | list[int]) -> np.ndarray:
    """Insert axes of length one."""
    return np.expand_dims(x, as_axis(axis))  # type: ignore[arg-type]


class CastAttrs(Attrs):
    dtype: Dtype


@register_op("cast", attrs=CastAttrs)
def cast(x: np.ndarray, dtype: str) -> np.ndarray:
    """Convert to another numeric dtype (``ndarray.astype``)."""
    return np.asarray(x).astype(dtype)


class RepeatAttrs(Attrs):
    repeats: Size
    axis: int | None = None


def _repeat_call(a: Any, repeats: Any, axis: Any = None) -> tuple[list[Any], dict[str, Any]]:
    if isinstance(repeats, (tuple, list)) or hasattr(repeats, "shape"):
        raise TypeError("repeat(): per-element repeat counts are not supported; give one count")
    return [a], {"repeats": _ints(repeats, "repeat(): repeats")[0], "axis": json_value(axis)}


@register_op(
    "repeat",
    attrs=RepeatAttrs,
    numpy=(np.repeat,),
    methods=("repeat",),
    call=_repeat_call,
    sizes=("repeats",),
)
def repeat(x: np.ndarray, repeats: int, axis: int | None = None) -> np.ndarray:
    """Repeat each element ``repeats`` times along ``axis`` (of the flattened array for None)."""
    check_elements("repeat", int(np.size(x)) * max(int(repeats), 0))
    return np.repeat(x, repeats, axis=axis)


class TileAttrs(Attrs):
    reps: list[Size]


def _tile_call(a: Any, reps: Any) -> tuple[list[Any], dict[str, Any]]:
    return [a], {"reps": _ints(reps, "tile(): reps")}


@register_op("tile", attrs=TileAttrs, numpy=(np.tile,), call=_tile_call, sizes=("reps",))
def tile(x: np.ndarray, reps: list[int]) -> np.ndarray:
    """Repeat the whole array ``reps`` times per axis."""
    check_elements("tile", int(np.size(x)) * math.prod(max(int(r), 0) for r in reps))
    return np.tile(x, tuple(reps))


class BroadcastAttrs(Attrs):
    shape: list[Size]


def _broadcast_call(a: Any, shape: Any) -> tuple[list[Any], dict[str, Any]]:
    return [a], {"shape": _ints(shape, "broadcast_to(): shape")}


@register_op(
    "broadcast_to", attrs=BroadcastAttrs, numpy=(np.broadcast_to,), call=_broadcast_call, sizes=("shape",)
)
def broadcast_to(x: np.ndarray, shape: list[int]) -> np.ndarray:
    """Broadcast to ``shape`` (a copy, never a read-only view)."""
    check_elements("broadcast_to", math.prod(max(int(d), 0) for d in shape))
    return np.array(np.broadcast_to(x, tuple(shape)))


# -- arrays made from sizes --------------------------------------------------------------------


class FullAttrs(Attrs):
    shape: list[Size]
    value: bool | int | float
    dtype: Dtype


# Tracing writes these from ``np.zeros((x.shape[0], h))`` and the like (see tracing.symbols):
# numpy's constructors never see a stand-in, so the constant they make is recognised instead.
@register_op("full", attrs=FullAttrs, sizes=("shape",))
def full(shape: list[int], value: bool | int | float, dtype: str) -> np.ndarray:
    """An array of ``shape`` filled with ``value`` (``np.zeros``, ``np.ones``, ``np.full``)."""
    check_elements("full", math.prod(max(int(d), 0) for d in shape))
    return np.full(tuple(shape), value, dtype=dtype)


class ArangeAttrs(Attrs):
    start: int | float = 0
    stop: Size | float
    step: int | float = 1
    dtype: Dtype


@register_op("arange", attrs=ArangeAttrs, sizes=("stop",))
def arange(stop: int | float, dtype: str, start: int | float = 0, step: int | float = 1) -> np.ndarray:
    """``np.arange(start, stop, step, dtype)``."""
    span = (stop - start) / step if step else math.inf
    if not math.isfinite(span):
        raise ValueError(f"arange({start}, {stop}, {step}) has no finite length")
    check_elements("arange", max(math.ceil(span), 0))
    return np.arange(start, stop, step, dtype=dtype)


class LikeAttrs(Attrs):
    dtype: Dtype | None = None


class FullLikeAttrs(LikeAttrs):
    value: bool | int | float


def _like_call(a: Any, dtype: Any = None, **kwargs: Any) -> tuple[list[Any], dict[str, Any]]:
    if kwargs.get("shape") is not None or kwargs.get("order", "K") != "K":
        raise TypeError("*_like(): shape= and order= are not supported")
    return [a], {"dtype": None if dtype is None else np.dtype(dtype).name}


def _full_like_call(
    a: Any, fill_value: Any, dtype: Any = None, **kwargs: Any
) -> tuple[list[Any], dict[str, Any]]:
    inputs, attrs = _like_call(a, dtype, **kwargs)
    if not isinstance(fill_value, (bool, int, float, np.generic)):
        raise TypeError("full_like(): the fill value must be a number")
    return inputs, {**attrs, "value": json_value(fill_value)}


@register_op("zeros_like", attrs=LikeAttrs, numpy=(np.zeros_like,), call=_like_call)
def zeros_like(x: np.ndarray, dtype: str | None = None) -> np.ndarray:
    """Zeros of ``x``'s shape (and dtype unless given)."""
    return np.zeros_like(x, dtype=dtype)


@register_op("ones_like", attrs=LikeAttrs, numpy=(np.ones_like,), call=_like_call)
def ones_like(x: np.ndarray, dtype: str | None = None) -> np.ndarray:
    """Ones of ``x``'s shape (and dtype unless given)."""
    return np.ones_like(x, dtype=dtype)


@register_op("full_like", attrs=FullLikeAttrs, numpy=(np.full_like,), call=_full_like_call)
def full_like(x: np.ndarray, value: bool | int | float, dtype: str | None = None) -> np.ndarray:
    """``value`` everywhere, in ``x``'s shape (and dtype unless given)."""
    return np.full_like(x, value, dtype=dtype)
