"""The VJPs of the spatial layers, in 1, 2 and 3 dimensions: convolution and its transpose,
max/average/global pooling, reflection padding (see ``rules`` for what a rule is).

Each scatters gradients back the way the forward gathered values: one strided slice per
kernel or window offset (a loop over a kernel's few positions, never over pixels).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ..nn.activations import as_float, float_input
from ..nn.conv import _Conv, _ConvTranspose
from ..nn.kernels import conv as conv_kernels
from ..nn.padding import ReflectionPad2D
from ..nn.pooling import _AvgPool, _GlobalAvgPool, _GlobalMaxPool, _MaxPool, _Pool
from .rules import Grads, LayerBackward, data, forward, forward_saving, rule, through_activation

__all__: list[str] = []

Sizes = tuple[int, ...]


def _offsets(kernel: Sizes) -> list[Sizes]:
    return list(itertools.product(*(range(k) for k in kernel)))


def _taps(offset: Sizes, out: Sizes, strides: Sizes, dilation: Sizes) -> tuple[slice, ...]:
    """Where kernel offset ``offset`` reads for every output position: one strided slice per axis."""
    axes = zip(offset, out, strides, dilation, strict=True)
    return tuple(slice(j * d, j * d + (o - 1) * s + 1, s) for j, o, s, d in axes)


def _at(offset: Sizes) -> tuple[Any, ...]:
    """Index of one window offset in a (N, C, *out, *window) view."""
    return (Ellipsis, *offset)


def _spatial(index: tuple[Any, ...]) -> tuple[Any, ...]:
    """``index`` on the spatial axes, every example and channel."""
    return (slice(None), slice(None), *index)


def _crop(padding: Sizes, sizes: Sizes) -> tuple[Any, ...]:
    return _spatial(tuple(slice(p, p + n) for p, n in zip(padding, sizes, strict=True)))


@rule(_ConvTranspose)
def _conv_transpose(block: _ConvTranspose, x: Any) -> tuple[Any, LayerBackward]:
    out = forward(block, x)
    config = block.get_config()
    weight = data(block, "weight")  # (C, O/G, *kernel)

    def backward(grad: np.ndarray, wants: frozenset[str]) -> tuple[Any, Grads]:
        array = as_float(x, weight.dtype)
        grad = through_activation(config["activation"], grad, out, lambda: block._compute(array)[0])
        grads = {}
        if "bias" in wants:
            grads["bias"] = conv_kernels.bias_grad(grad)
        grad_x, grad_w = conv_kernels.transpose_backward(
            grad, array, weight, block._geometry(), need_x="x" in wants, need_weight="weight" in wants)
        if grad_w is not None:
            grads["weight"] = grad_w
        return (None if grad_x is None else grad_x.reshape(np.shape(x))), grads

    return out, backward


@rule(_Conv)
def _conv(block: _Conv, x: Any) -> tuple[Any, LayerBackward]:
    out, saved = forward_saving(block, x)  # the forward's im2col columns, reused here
    config = block.get_config()
    weight = data(block, "weight")  # (O, C/G, *kernel)

    def backward(grad: np.ndarray, wants: frozenset[str]) -> tuple[Any, Grads]:
        array = as_float(x, weight.dtype)
        grad = through_activation(config["activation"], grad, out, lambda: block._compute(array)[0])
        grads = {}
        if "bias" in wants:
            grads["bias"] = conv_kernels.bias_grad(grad)
        grad_x, grad_w = conv_kernels.backward(
            grad, saved, weight, block._geometry(), need_x="x" in wants, need_weight="weight" in wants)
        if grad_w is not None:
            grads["weight"] = grad_w
        return (None if grad_x is None else grad_x.reshape(np.shape(x))), grads

    return out, backward


def _pool_grad(block: _Pool, array: np.ndarray, out: Sizes, shares: list[Any]) -> np.ndarray:
    """The input's gradient from each window offset's (N, C, *out) share, padding cropped."""
    config = block.get_config()
    pool, strides, padding = tuple(config["pool_size"]), tuple(config["strides"]), tuple(config["padding"])
    full = tuple(max(n + 2 * p, (o - 1) * s + k)  # the forward pads ceil_mode's last window too
                 for n, p, o, s, k in zip(array.shape[2:], padding, out, strides, pool, strict=True))
    grad = np.zeros((*array.shape[:2], *full), dtype=np.result_type(*shares))
    for offset, share in zip(_offsets(pool), shares, strict=True):
        target = _spatial(_taps(offset, out, strides, (1,) * len(pool)))
        grad[target] += share
    return grad[_crop(padding, array.shape[2:])]


@rule(_MaxPool)
def _max_pool(block: _MaxPool, x: Any) -> tuple[Any, LayerBackward]:
    result = forward(block, x)

    def backward(grad: np.ndarray, wants: frozenset[str]) -> tuple[Any, Grads]:
        array = float_input(x)
        win, out = block._padded_windows(array, -np.inf)  # (N, C, *out, *pool)
        offsets = _offsets(tuple(block.get_config()["pool_size"]))
        best, first = win[_at(offsets[0])], np.zeros(grad.shape, dtype=np.intp)
        for k, offset in enumerate(offsets[1:], start=1):
            later = win[_at(offset)] > best  # strictly: a tie goes to the first, as in torch
            best, first = np.where(later, win[_at(offset)], best), np.where(later, k, first)
        shares = [np.where(first == k, grad, 0) for k in range(len(offsets))]
        return _pool_grad(block, array, out, shares), {}

    return result, backward


@rule(_AvgPool)
def _avg_pool(block: _AvgPool, x: Any) -> tuple[Any, LayerBackward]:
    result = forward(block, x)

    def backward(grad: np.ndarray, wants: frozenset[str]) -> tuple[Any, Grads]:
        array = float_input(x)
        out = grad.shape[2:]
        counts = np.ones((), dtype=np.int64)
        for axis, (n, o) in enumerate(zip(array.shape[2:], out, strict=True)):  # as the forward divides
            shape = [1] * len(out)
            shape[axis] = o
            counts = counts * block._counts(n, o, axis).reshape(shape)
        share = grad / counts.astype(grad.dtype)  # each window element gets 1/count of its window's
        windows_per_output = len(_offsets(tuple(block.get_config()["pool_size"])))
        return _pool_grad(block, array, out, [share] * windows_per_output), {}

    return result, backward


@rule(_GlobalAvgPool, _GlobalMaxPool)
def _global_pool(block: _GlobalAvgPool | _GlobalMaxPool, x: Any) -> tuple[Any, LayerBackward]:
    result = forward(block, x)

    def backward(grad: np.ndarray, wants: frozenset[str]) -> tuple[Any, Grads]:
        array = float_input(x)
        flat = array.reshape(*array.shape[:2], -1)
        if isinstance(block, _GlobalAvgPool):
            return np.broadcast_to(grad / grad.dtype.type(flat.shape[-1]), array.shape), {}
        hits = np.arange(flat.shape[-1]) == flat.argmax(axis=-1)[..., np.newaxis]  # ties: the first
        return np.where(hits, grad.reshape(*grad.shape[:2], 1), 0).astype(grad.dtype).reshape(array.shape), {}

    return result, backward


@rule(ReflectionPad2D)
def _reflection_pad(block: ReflectionPad2D, x: Any) -> tuple[Any, LayerBackward]:
    result = forward(block, x)
    padding = block.get_config()["padding"]

    def backward(grad: np.ndarray, wants: frozenset[str]) -> tuple[Any, Grads]:
        for axis in range(grad.ndim):  # fold each mirrored border back onto what it mirrors
            before, after = padding[2 * axis : 2 * axis + 2]
            size = grad.shape[axis] - before - after
            moved = np.moveaxis(grad, axis, 0)
            inner = moved[before : before + size].copy()
            if before:
                inner[1 : before + 1] += moved[:before][::-1]
            if after:
                inner[size - 1 - after : size - 1] += moved[before + size :][::-1]
            grad = np.moveaxis(inner, 0, axis)
        return grad, {}

    return result, backward
