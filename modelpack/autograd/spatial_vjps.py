"""The VJPs of the spatial layers, in 1, 2 and 3 dimensions: convolution and its transpose,
max/average/global pooling, reflection padding (see ``rules`` for what a rule is).

Convolution and pooling run their backward in ``nn.kernels`` (beside the forward they
invert, reusing what it saved); the rules here route the arrays and the parameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..nn.activations import as_float, float_input
from ..nn.conv import _Conv, _ConvTranspose
from ..nn.kernels import conv as conv_kernels
from ..nn.kernels import conv_grads, transposed
from ..nn.kernels import pool as pool_kernels
from ..nn.padding import ReflectionPad2D
from ..nn.pooling import _AvgPool, _GlobalAvgPool, _GlobalMaxPool, _MaxPool
from .rules import Grads, LayerBackward, data, forward, forward_saving, rule, through_activation

__all__: list[str] = []


@rule(_Conv)
def _conv(block: _Conv, x: Any) -> tuple[Any, LayerBackward]:
    """Convolution and its transpose (a subclass): a convolution's backward reuses the
    forward's im2col columns; a transposed one's runs the convolution it is the transpose of."""
    out, saved = forward_saving(block, x)
    activation = block._activation  # (its config's field, without building the whole config each call)
    weight = data(block, "weight")  # (O, C/G, *kernel); a transpose's (C, O/G, *kernel)

    def backward(grad: np.ndarray, wants: frozenset[str]) -> tuple[Any, Grads]:
        array = as_float(x, weight.dtype)
        grad = through_activation(activation, grad, out, lambda: block._compute(array)[0])
        grads = {}
        if "bias" in wants:
            grads["bias"] = conv_grads.bias(grad)
        needs = {"need_x": "x" in wants, "need_weight": "weight" in wants}
        if isinstance(block, _ConvTranspose):
            grad_x, grad_w = transposed.transpose_backward(grad, array, weight, block._geometry(), **needs)
        else:
            grad_x, grad_w = conv_kernels.backward(grad, saved, weight, block._geometry(), **needs)
        if grad_w is not None:
            grads["weight"] = grad_w
        return (None if grad_x is None else grad_x.reshape(np.shape(x))), grads

    return out, backward


@rule(_MaxPool, _AvgPool)
def _pool(block: _MaxPool | _AvgPool, x: Any) -> tuple[Any, LayerBackward]:
    """Max pooling sends each output's gradient to its window's maximum, average pooling a
    share to every position; padding takes none."""
    result = forward(block, x)

    def backward(grad: np.ndarray, wants: frozenset[str]) -> tuple[Any, Grads]:
        array = float_input(x)
        config = block.get_config()
        pool, strides, padding = (tuple(config[key]) for key in ("pool_size", "strides", "padding"))
        if isinstance(block, _MaxPool):
            return pool_kernels.max_backward(grad, array, result, pool, strides, padding), {}
        share = grad / block._divisors(array.shape[2:], grad.shape[2:], grad.dtype)  # 1/count of its window's
        return pool_kernels.spread(share, pool, strides, padding, array.shape[2:]), {}

    return result, backward


@rule(_GlobalAvgPool, _GlobalMaxPool)
def _global_pool(block: _GlobalAvgPool | _GlobalMaxPool, x: Any) -> tuple[Any, LayerBackward]:
    result = forward(block, x)

    def backward(grad: np.ndarray, wants: frozenset[str]) -> tuple[Any, Grads]:
        array = float_input(x)
        flat = array.reshape(*array.shape[:2], -1)
        if isinstance(block, _GlobalAvgPool):
            return np.broadcast_to(grad / grad.dtype.type(flat.shape[-1]), array.shape), {}
        # Each plane's gradient to its first maximum (as torch), written where argmax points:
        # a mask of hits and a select over the input's size took 3x the forward (16×100×498).
        grad_x = np.zeros(flat.shape, grad.dtype)
        first = flat.argmax(axis=-1)[..., np.newaxis]
        np.put_along_axis(grad_x, first, grad.reshape(*grad.shape[:2], 1), axis=-1)
        return grad_x.reshape(array.shape), {}

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
