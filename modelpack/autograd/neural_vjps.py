"""The VJPs of the op table's neural and indexing ops: products, ``fully_connected``, the
sequence ops, ``layer_norm``, ``lrn``, ``dropout``, ``embedding``, ``smooth_l1``, ``take``, ``pick``,
``one_hot`` and ``topk`` (see ``vjps`` for the form)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import random
from ..nn.mode import is_training
from ..nn.ops.indexing import topk
from ..nn.ops.neural import dropout_mask, lrn_window, sequence_reverse, window_sum
from .vjps import CAPTURE, VJPS, _floating, _vjp

__all__: list[str] = []


@_vjp("dot")
def _dot(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    a, b = inputs
    if np.ndim(a) == 0 or np.ndim(b) == 0:  # a scalar: np.dot multiplies
        return VJPS["multiply"](g, out, inputs, attrs)
    if a.ndim <= 2 and b.ndim <= 2:  # the matrix (or vector) product
        return VJPS["matmul"](g, out, inputs, attrs)
    if b.ndim == 1:  # sum over the last axis of a and b's only axis
        grad_a = np.multiply.outer(g, b)
        grad_b = np.tensordot(a, g, axes=(list(range(a.ndim - 1)), list(range(g.ndim))))
    else:  # out[i..., j..., m] = Σ_k a[i..., k]·b[j..., k, m]
        b_rest = [i for i in range(b.ndim) if i != b.ndim - 2]
        grad_a = np.tensordot(g, b, axes=(list(range(a.ndim - 1, g.ndim)), b_rest))
        grad_b = np.moveaxis(np.tensordot(a, g, axes=(list(range(a.ndim - 1)), list(range(a.ndim - 1)))),
                             0, b.ndim - 2)
    return [grad_a if _floating(a) else None, grad_b if _floating(b) else None]


@_vjp("batch_dot")
def _batch_dot(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    a, b = inputs
    left = np.swapaxes(a, -1, -2) if attrs.get("transpose_a") else a
    right = np.swapaxes(b, -1, -2) if attrs.get("transpose_b") else b
    grad_left, grad_right = VJPS["matmul"](g, out, [left, right], {})
    if grad_left is not None and attrs.get("transpose_a"):
        grad_left = np.swapaxes(grad_left, -1, -2)
    if grad_right is not None and attrs.get("transpose_b"):
        grad_right = np.swapaxes(grad_right, -1, -2)
    return [grad_left, grad_right]


@_vjp("fully_connected")
def _fully_connected(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x, weight, *bias = inputs
    rows = np.asarray(x)
    rows = rows.reshape(rows.shape[0], -1) if attrs.get("flatten", True) else rows
    rows, grad = rows.reshape(-1, weight.shape[1]), g.reshape(-1, weight.shape[0])
    grad_x = (grad @ weight).reshape(np.shape(x)) if _floating(x) else None
    return [grad_x, grad.T @ rows, *([grad.sum(axis=0)] if bias else [])]


def _steps_kept(data: np.ndarray, lengths: np.ndarray, axis: int) -> np.ndarray:
    steps = np.arange(data.shape[axis])
    keep = steps[:, None] < lengths[None, :] if axis == 0 else lengths[:, None] > steps[None, :]
    return keep.reshape(keep.shape + (1,) * (data.ndim - 2))


def _lengths(data: np.ndarray, inputs: list[Any], attrs: dict[str, Any]) -> np.ndarray:
    axis = attrs.get("axis", 0)
    if not attrs.get("use_sequence_length"):
        return np.full(data.shape[1 - axis], data.shape[axis], dtype=np.int64)
    return np.asarray(inputs[1]).astype(np.int64)


@_vjp("sequence_mask")
def _sequence_mask(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    data = inputs[0]
    keep = _steps_kept(data, _lengths(data, inputs, attrs), attrs.get("axis", 0))
    return [np.where(keep, g, 0).astype(g.dtype), *([None] * (len(inputs) - 1))]


@_vjp("sequence_last")
def _sequence_last(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    data, axis = inputs[0], attrs.get("axis", 0)
    last = np.clip(_lengths(data, inputs, attrs) - 1, 0, data.shape[axis] - 1)
    batch = np.arange(data.shape[1 - axis])
    grad = np.zeros_like(data)
    grad[(last, batch) if axis == 0 else (batch, last)] = g  # one step per element
    return [grad, *([None] * (len(inputs) - 1))]


@_vjp("sequence_reverse")
def _sequence_reverse(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    # sequence_reverse is its own inverse: reverse the gradient back
    grad = sequence_reverse(g, *inputs[1:], use_sequence_length=bool(attrs.get("use_sequence_length")),
                            axis=attrs.get("axis", 0))
    return [grad, *([None] * (len(inputs) - 1))]


@_vjp("layer_norm")
def _layer_norm(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    data, gamma, beta = (np.asarray(v) for v in inputs)
    axis = attrs.get("axis", -1) % data.ndim
    shape = [1] * data.ndim
    shape[axis] = data.shape[axis]
    others = tuple(i for i in range(data.ndim) if i != axis)
    mean = data.mean(axis=axis, keepdims=True, dtype=data.dtype)
    var = data.var(axis=axis, keepdims=True, dtype=data.dtype)
    inv_std = 1 / np.sqrt(var + data.dtype.type(attrs.get("eps", 1e-5)))
    x_hat = (data - mean) * inv_std
    grad_hat = g * gamma.reshape(shape)
    grad_x = inv_std * (grad_hat - grad_hat.mean(axis=axis, keepdims=True)
                        - x_hat * (grad_hat * x_hat).mean(axis=axis, keepdims=True))
    return [grad_x, (g * x_hat).sum(axis=others), g.sum(axis=others)]


def _dropout_draw(attrs: dict[str, Any]) -> dict[str, Any]:
    """Before the forward: the stream's state, so that the gradient redraws the same mask."""
    if not is_training() or attrs.get("p", 0.5) == 0.0:
        return {}
    return {"rng_state": random.generator("dropout").bit_generator.state}


CAPTURE["dropout"] = _dropout_draw


@_vjp("dropout")
def _dropout(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    state = attrs.get("rng_state")
    if state is None:  # inference, or p = 0: the identity
        return [g]
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = state
    return [g * dropout_mask(g.shape, attrs.get("p", 0.5), attrs.get("axes"), g.dtype, rng)]


@_vjp("embedding")
def _embedding(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    data, weight = inputs
    table = np.zeros_like(weight)
    np.add.at(table, np.asarray(data).astype(np.int64), g)  # a row looked up twice gets both
    return [None, table]


@_vjp("smooth_l1")
def _smooth_l1(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    (x,) = inputs
    sigma2 = x.dtype.type(attrs.get("scalar", 1.0) ** 2)
    return [g * np.where(np.abs(x) < 1 / sigma2, sigma2 * x, np.sign(x))]


@_vjp("lrn")
def _lrn(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    """y_c = x_c · s_c^−β with s_c = bias + α/n · Σ_window(c) x²: x_c's own term, and through
    every s_j whose window holds c (the window turned around) 2α/n · x_c · (−β) · g_j·x_j·s_j^−β−1."""
    (x,) = inputs
    size, dtype = attrs["size"], x.dtype.type
    alpha, beta = dtype(attrs.get("alpha", 1e-4) / size), dtype(attrs.get("beta", 0.75))
    before, after = lrn_window(size)
    scale = window_sum(x * x, before, after) * alpha + dtype(attrs.get("bias", 1.0))
    shrink = np.power(scale, -beta)
    spread = window_sum(g * x * shrink / scale, after, before)  # Σ over the j whose window holds c
    return [g * shrink - 2 * alpha * beta * x * spread]


@_vjp("take")
def _take(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x, indices = inputs
    if not _floating(x):
        return [None, None]
    idx = np.asarray(indices).astype(np.int64)
    axis, mode = attrs.get("axis"), attrs.get("mode", "raise")
    flat = x.reshape(-1) if axis is None else x
    axis = 0 if axis is None else axis % x.ndim
    size = flat.shape[axis]
    idx = np.clip(idx, 0, size - 1) if mode == "clip" else np.mod(idx, size)  # raise: already in range
    grad = np.zeros_like(flat)
    moved = np.moveaxis(grad, axis, 0)
    g_moved = np.moveaxis(g, tuple(range(axis, axis + idx.ndim)), tuple(range(idx.ndim)))
    np.add.at(moved, idx, g_moved)  # an index taken twice gets both
    return [grad.reshape(x.shape), None]


@_vjp("pick")
def _pick(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    data, index = inputs
    if not _floating(data):
        return [None, None]
    axis = attrs.get("axis", -1)
    flat = data.reshape(-1) if axis is None else data
    axis = 0 if axis is None else axis % flat.ndim
    size = flat.shape[axis]
    idx = np.asarray(index).astype(np.int64)
    idx = np.clip(idx, 0, size - 1) if attrs.get("mode", "clip") == "clip" else np.mod(idx, size)
    if idx.ndim == flat.ndim - 1:
        idx = np.expand_dims(idx, axis)
    target = flat.shape[:axis] + (1,) + flat.shape[axis + 1 :]
    grad = np.zeros_like(flat)
    kept = g if attrs.get("keepdims") else np.expand_dims(g, axis)
    np.put_along_axis(grad, np.broadcast_to(idx, target), np.broadcast_to(kept, target), axis)
    return [grad.reshape(data.shape), None]


@_vjp("one_hot")
def _one_hot(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    return [None]  # indices have no gradient


@_vjp("topk")
def _topk(g: Any, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    (data,) = inputs
    kind = attrs.get("ret_typ", "indices")
    if kind in ("indices", "mask") or not _floating(data):
        return [None]  # positions and masks are piecewise constant
    values_grad = g[0] if kind == "both" else g
    # the chosen positions, as the forward chose them
    chosen = np.asarray(topk(data, axis=attrs.get("axis", -1), k=attrs.get("k", 1), ret_typ="indices",
                             is_ascend=bool(attrs.get("is_ascend")), dtype="int64"))
    flat = data.reshape(-1) if attrs.get("axis", -1) is None else data
    axis = 0 if attrs.get("axis", -1) is None else attrs.get("axis", -1) % flat.ndim
    grad = np.zeros_like(flat)
    np.put_along_axis(grad, chosen, values_grad, axis)  # k distinct positions: no sums needed
    return [grad.reshape(data.shape)]
