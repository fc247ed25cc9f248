"""The VJPs of the spatial layers, in 1, 2 and 3 dimensions: convolution and its transpose,
max/average/global pooling, reflection padding (see ``rules`` for what a rule is).

Each scatters gradients back the way the forward gathered values: one strided slice per
kernel or window offset (a loop over a kernel's few positions, never over pixels).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from ..nn.activations import as_float, float_input
from ..nn.conv import _Conv, _ConvTranspose, windows
from ..nn.padding import ReflectionPad2D
from ..nn.pooling import _AvgPool, _GlobalAvgPool, _GlobalMaxPool, _MaxPool, _Pool
from .rules import Grads, LayerBackward, data, forward, rule, through_activation

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
    bias = data(block, "bias") if config["use_bias"] else None

    def backward(grad: np.ndarray, wants: frozenset[str]) -> tuple[Any, Grads]:
        array = as_float(x, weight.dtype)
        n, c, dims, groups = array.shape[0], array.shape[1], array.ndim - 2, config["groups"]
        kernel, strides = tuple(config["kernel_size"]), tuple(config["strides"])
        dilation = tuple(config["dilation"])

        def pre() -> Any:
            z = block._compute(array)
            return z if bias is None else z + bias.reshape(1, -1, *(1,) * dims)

        grad = through_activation(config["activation"], grad, out, pre)
        grads = {}
        if "bias" in wants:
            grads["bias"] = grad.sum(axis=(0, *range(2, 2 + dims)))
        # The forward adds every (input pixel, kernel tap) product into an uncropped output,
        # then crops the padding: put the gradient back there, and read it with the forward's
        # windows (a convolution of the gradient, the transpose's adjoint).
        full = tuple(o + 2 * p for o, p in zip(out.shape[2:], config["padding"], strict=True))
        padded = np.zeros((n, grad.shape[1], *full), dtype=grad.dtype)
        padded[_crop(tuple(config["padding"]), grad.shape[2:])] = grad
        in_sizes = (slice(None), slice(None), *(slice(i) for i in array.shape[2:]))
        win = windows(padded, kernel, strides, dilation)[in_sizes]
        cols = win.reshape(n, groups, -1, *win.shape[2:])  # (N, G, O/G, *in, *kernel)
        order = (0, 1, 2, *range(3 + dims, 3 + 2 * dims), *range(3, 3 + dims))
        cols = np.ascontiguousarray(cols.transpose(order)).reshape(n, groups, -1, math.prod(array.shape[2:]))
        weights = weight.reshape(groups, c // groups, -1)  # (G, C/G, O/G·K)
        if "weight" in wants:
            per_example = np.matmul(array.reshape(n, groups, c // groups, -1), np.swapaxes(cols, -1, -2))
            grads["weight"] = per_example.sum(axis=0).reshape(weight.shape)
        grad_x = np.matmul(weights[None], cols).reshape(array.shape) if "x" in wants else None
        return grad_x, grads

    return out, backward


@rule(_Conv)
def _conv(block: _Conv, x: Any) -> tuple[Any, LayerBackward]:
    out = forward(block, x)
    config = block.get_config()
    weight = data(block, "weight")  # (O, C/G, *kernel)
    bias = data(block, "bias") if config["use_bias"] else None

    def backward(grad: np.ndarray, wants: frozenset[str]) -> tuple[Any, Grads]:
        array = as_float(x, weight.dtype)
        n, c, dims, groups = array.shape[0], array.shape[1], array.ndim - 2, config["groups"]
        cols, out_sizes = block.columns(array)  # (N, G, C/G·K, P): the forward's im2col
        kernels = weight.reshape(1, groups, weight.shape[0] // groups, -1)

        def pre() -> Any:
            z = np.matmul(kernels, cols).reshape(out.shape)
            return z if bias is None else z + bias.reshape(1, -1, *(1,) * dims)

        grad = through_activation(config["activation"], grad, out, pre)
        per_group = grad.reshape(n, groups, -1, cols.shape[-1])  # (N, G, O/G, P)
        grads = {}
        if "weight" in wants:
            # One product per example, summed: BLAS reads the transposed columns in place, which
            # measured 3-5x faster than one big product over transposed copies.
            per_example = np.matmul(per_group, np.swapaxes(cols, -1, -2))
            grads["weight"] = per_example.sum(axis=0).reshape(weight.shape)
        if "bias" in wants:
            grads["bias"] = grad.sum(axis=(0, *range(2, 2 + dims)))
        grad_x = None
        if "x" in wants:  # col2im: each kernel offset's share goes back where it was read
            kernel, padding = tuple(config["kernel_size"]), tuple(config["padding"])
            shares = np.matmul(np.swapaxes(kernels, -1, -2), per_group).reshape(n, c, *kernel, *out_sizes)
            padded = np.zeros((n, c, *(s + 2 * p for s, p in zip(array.shape[2:], padding, strict=True))),
                              dtype=grad.dtype)
            for offset in _offsets(kernel):
                taps = _taps(offset, out_sizes, tuple(config["strides"]), tuple(config["dilation"]))
                target, source = _spatial(taps), _spatial(offset)
                padded[target] += shares[source]
            grad_x = padded[_crop(padding, array.shape[2:])].reshape(np.shape(x))
        return grad_x, grads

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
