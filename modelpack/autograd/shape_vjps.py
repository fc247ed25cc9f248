"""The VJPs of the op table's shape and layout ops and reductions (see ``vjps`` for the form)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..nn.ops.indexing import decode_index
from .vjps import _floating, _vjp, reduce_to

__all__: list[str] = []


# -- shape and layout --------------------------------------------------------------------------


@_vjp("concatenate")
def _concatenate(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    axis = attrs.get("axis", 0)
    bounds = np.cumsum([np.shape(x)[axis] for x in inputs])[:-1]
    pieces = np.split(g, bounds, axis=axis)
    return [piece if _floating(x) else None for piece, x in zip(pieces, inputs, strict=True)]


@_vjp("stack")
def _stack(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    axis = attrs.get("axis", 0)
    return [np.take(g, i, axis=axis) if _floating(x) else None for i, x in enumerate(inputs)]


@_vjp("reshape", "flatten", "squeeze", "expand_dims")
def _reshape(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    (x,) = inputs
    return [g.reshape(np.shape(x)) if _floating(x) else None]


@_vjp("transpose")
def _transpose(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    axes = attrs.get("axes")
    return [np.transpose(g) if axes is None else np.transpose(g, np.argsort(axes))]


@_vjp("cast")
def _cast(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    (x,) = inputs
    return [g.astype(x.dtype) if _floating(x) else None]


@_vjp("getitem")
def _getitem(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x, *arrays = inputs
    none = [None] * len(arrays)  # index arrays have no gradient
    if not _floating(x):
        return [None, *none]
    grad = np.zeros_like(x)
    np.add.at(grad, decode_index(attrs["index"], tuple(arrays)), g)  # an element picked twice gets both
    return [grad, *none]


# -- reductions ----------------------------------------------------------------------------------


def _kept(g: np.ndarray, x: np.ndarray, attrs: dict[str, Any]) -> tuple[np.ndarray, tuple[int, ...]]:
    """The output gradient with the reduced axes restored (length 1), and those axes."""
    axis = attrs.get("axis")
    axes = tuple(range(x.ndim)) if axis is None else tuple(
        a % x.ndim for a in (axis if isinstance(axis, (list, tuple)) else [axis])
    )
    return (g if attrs.get("keepdims") else np.expand_dims(g, axes)), axes


@_vjp("sum")
def _sum(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    (x,) = inputs
    kept, _ = _kept(g, x, attrs)
    return [np.broadcast_to(kept, x.shape)]


@_vjp("mean")
def _mean(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    (x,) = inputs
    kept, axes = _kept(g, x, attrs)
    count = math.prod(x.shape[a] for a in axes)
    return [np.broadcast_to(kept / x.dtype.type(count), x.shape)]


@_vjp("max", "min")
def _extreme(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    (x,) = inputs
    kept, axes = _kept(g, x, attrs)
    extreme, _ = _kept(np.asarray(out), x, attrs)
    hits = x == extreme
    return [np.where(hits, kept / hits.sum(axis=axes, keepdims=True).astype(x.dtype), 0).astype(x.dtype)]


@_vjp("swapaxes")
def _swapaxes(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    return [np.swapaxes(g, attrs["axis1"], attrs["axis2"]) if _floating(inputs[0]) else None]


@_vjp("split")
def _split(g: Any, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    return [np.concatenate(g, axis=attrs.get("axis", 0)) if _floating(inputs[0]) else None]  # one per piece


@_vjp("broadcast_to")
def _broadcast_to(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    return [reduce_to(g, inputs[0])]


@_vjp("repeat")
def _repeat(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    (x,) = inputs
    if not _floating(x):
        return [None]
    axis, repeats = attrs.get("axis"), int(attrs["repeats"])
    if axis is None:  # of the flattened array: each element's copies are adjacent
        return [g.reshape(-1, repeats).sum(axis=1).reshape(x.shape)]
    axis %= x.ndim
    split = g.reshape(*x.shape[:axis], x.shape[axis], repeats, *x.shape[axis + 1 :])
    return [split.sum(axis=axis + 1)]


@_vjp("tile")
def _tile(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    (x,) = inputs
    if not _floating(x):
        return [None]
    reps = [int(r) for r in attrs["reps"]]
    shape = (1,) * (len(reps) - x.ndim) + x.shape  # np.tile promotes x to len(reps) axes first
    reps = [1] * (len(shape) - len(reps)) + reps
    interleaved = [n for pair in zip(reps, shape, strict=True) for n in pair]  # (r0, s0, r1, s1, ...)
    summed = g.reshape(interleaved).sum(axis=tuple(range(0, 2 * len(shape), 2)))
    return [summed.reshape(x.shape)]


@_vjp("prod")
def _prod(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    (x,) = inputs
    if not _floating(x):
        return [None]
    kept, axes = _kept(g, x, attrs)
    # d/dx_i of a product is the product of the others; computed without dividing, so zeros
    # are right: prefix and suffix products along the reduced axes, flattened into one axis.
    moved = np.moveaxis(x, axes, tuple(range(x.ndim - len(axes), x.ndim)))
    flat = moved.reshape(*moved.shape[: x.ndim - len(axes)], -1)
    ones = np.ones_like(flat[..., :1])
    before = np.cumprod(np.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
    after = np.flip(np.cumprod(np.concatenate([ones, np.flip(flat, -1)[..., :-1]], axis=-1), axis=-1), -1)
    reduced = tuple(range(x.ndim - len(axes), x.ndim))
    others = np.moveaxis((before * after).reshape(moved.shape), reduced, axes)
    return [kept * others]


def _variance_grad(g: np.ndarray, x: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    kept, axes = _kept(g, x, attrs)
    count = math.prod(x.shape[a] for a in axes) - attrs.get("ddof", 0)
    return kept * 2 * (x - x.mean(axis=axes, keepdims=True)) / x.dtype.type(count)


@_vjp("var")
def _var(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    (x,) = inputs
    return [_variance_grad(g, x, attrs) if _floating(x) else None]


@_vjp("std")
def _std(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    (x,) = inputs  # d std = d var / (2 std)
    return [_variance_grad(g / (2 * np.asarray(out)), x, attrs) if _floating(x) else None]


@_vjp("cumsum")
def _cumsum(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    (x,) = inputs
    if not _floating(x):
        return [None]
    axis = attrs.get("axis")
    if axis is None:  # of the flattened array
        return [np.flip(np.cumsum(np.flip(g.reshape(-1)))).reshape(x.shape)]
    return [np.flip(np.cumsum(np.flip(g, axis), axis=axis), axis)]  # each input feeds every later sum

