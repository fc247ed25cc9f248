"""The VJPs of the registered layers that are not spatial: dense, dropout, flatten, embedding,
the activation layers and the normalisations (see ``rules`` for what a rule is)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..nn.activations import (  # _SELU_*: the forward's own constants
    _SELU_ALPHA,
    _SELU_SCALE,
    ELU,
    GELU,
    SELU,
    Activation,
    LeakyReLU,
    PReLU,
    Swish,
    as_float,
    float_input,
    sigmoid,
)
from ..nn.basic import Dense, Dropout, Embedding, Flatten
from ..nn.compose import Identity, Lambda
from ..nn.kernels import blas, rowloops
from ..nn.kernels import norm as norm_kernels
from ..nn.norm import BatchNorm, GroupNorm, InstanceNorm, LayerNorm
from ..nn.rnn.cells import RecurrentCell
from ..nn.rnn.layers import _RNNLayer
from .rules import PASS_THROUGH, Grads, LayerBackward, data, forward, forward_saving, rule, through_activation
from .vjps import VJPS

__all__: list[str] = []

# Lambda runs its op through nn.hooks.run_op; the recurrent layers and cells are written with
# nn.functional ops only (nn/rnn/steps.py), each recorded with its own VJP.
PASS_THROUGH.update({Identity, Lambda, _RNNLayer, RecurrentCell})


@rule(Dense)
def _dense(block: Dense, x: Any) -> tuple[Any, LayerBackward]:
    out = forward(block, x)
    config = block.get_config()
    weight = data(block, "weight")
    bias = data(block, "bias") if config["use_bias"] else None

    def backward(grad: np.ndarray, wants: frozenset[str]) -> tuple[Any, Grads]:
        rows = as_float(x, weight.dtype)
        rows = rows.reshape(rows.shape[0], -1) if config["flatten"] else rows
        rows = rows.reshape(-1, weight.shape[1])

        def pre() -> Any:
            return (rows @ weight.T + (0 if bias is None else bias)).reshape(out.shape)

        grad = through_activation(config["activation"], grad, out, pre).reshape(-1, weight.shape[0])
        grads = {}
        with blas.for_product(weight.shape[0], weight.shape[1], rows.shape[0]):  # each product's size
            if "weight" in wants:
                grads["weight"] = grad.T @ rows
            grad_x = (grad @ weight).reshape(np.shape(x)) if "x" in wants else None
        if "bias" in wants:
            grads["bias"] = grad.sum(axis=0)
        return grad_x, grads

    return out, backward


@rule(Dropout)
def _dropout(block: Dropout, x: Any) -> tuple[Any, LayerBackward]:
    array = float_input(x)
    mask = block.mask(array.shape, array.dtype)  # the layer's own draw, kept for the backward
    out = array if mask is None else array * mask
    return out, lambda grad, wants: (grad if mask is None else grad * mask, {})


@rule(Flatten)
def _flatten(block: Flatten, x: Any) -> tuple[Any, LayerBackward]:
    out = forward(block, x)
    return out, lambda grad, wants: (grad.reshape(np.shape(x)), {})


@rule(Embedding)
def _embedding(block: Embedding, x: Any) -> tuple[Any, LayerBackward]:
    out = forward(block, x)  # checks the indices
    indices = np.asarray(x).astype(np.int64)

    def backward(grad: np.ndarray, wants: frozenset[str]) -> tuple[Any, Grads]:
        if "weight" not in wants:
            return None, {}
        table = np.zeros(block.weight.shape, dtype=grad.dtype)
        np.add.at(table, indices, grad)  # a row looked up twice gets both gradients
        return None, {"weight": table}

    return out, backward


# -- activation layers ----------------------------------------------------------------------------


@rule(Activation, LeakyReLU, ELU)
def _activation(block: Activation | LeakyReLU | ELU, x: Any) -> tuple[Any, LayerBackward]:
    out = forward(block, x)
    config = block.get_config()
    if isinstance(block, Activation):
        op = config["activation"]
    else:
        op = "elu" if isinstance(block, ELU) else "leaky_relu"
    attrs = {"alpha": config["alpha"]} if "alpha" in config else {}
    return out, lambda grad, wants: (VJPS[op](grad, out, [float_input(x)], attrs)[0], {})


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


@rule(GELU, SELU, Swish)
def _smooth_activation(block: GELU | SELU | Swish, x: Any) -> tuple[Any, LayerBackward]:
    out = forward(block, x)
    config = block.get_config()

    def backward(grad: np.ndarray, wants: frozenset[str]) -> tuple[Any, Grads]:
        array = float_input(x)
        if isinstance(block, GELU) and config["approximation"] == "erf":
            return VJPS["gelu"](grad, out, [array], {})[0], {}
        if isinstance(block, GELU):  # d/dx 0.5·x·(1 + tanh(u)), u = √(2/π)·(x + 0.044715·x³)
            wide = array.astype(np.float64)
            t = np.tanh(_SQRT_2_OVER_PI * (wide + 0.044715 * wide**3))
            slope = 0.5 * (1 + t) + 0.5 * wide * (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * wide**2)
            return (grad * slope).astype(array.dtype), {}
        if isinstance(block, SELU):  # scale where x > 0, scale·alpha·e^x = out + scale·alpha elsewhere
            scale, alpha = _selu_constants(array.dtype)
            return grad * np.where(array > 0, scale, out + scale * alpha), {}
        beta = array.dtype.type(config["beta"])  # swish: s + beta·x·s·(1 - s), s = sigmoid(beta·x)
        s = sigmoid(array * beta)
        return grad * (s + beta * array * s * (1 - s)), {}

    return out, backward


def _selu_constants(dtype: np.dtype) -> tuple[Any, Any]:
    return dtype.type(_SELU_SCALE), dtype.type(_SELU_ALPHA)


@rule(PReLU)
def _prelu(block: PReLU, x: Any) -> tuple[Any, LayerBackward]:
    out = forward(block, x)
    alpha = data(block, "alpha")

    def backward(grad: np.ndarray, wants: frozenset[str]) -> tuple[Any, Grads]:
        array = as_float(x, alpha.dtype)
        axis = 1 if array.ndim > 1 else 0
        shape = [1] * array.ndim
        if alpha.shape[0] > 1:
            shape[axis] = alpha.shape[0]
        slopes = alpha.reshape(shape) if alpha.shape[0] > 1 else alpha.reshape(())
        positive = array > 0
        grads = {}
        if "alpha" in wants:  # Σ of g·x where the slope applied, per channel (or over all)
            where_negative = np.where(positive, 0, grad * array)
            if alpha.shape[0] > 1:
                grads["alpha"] = where_negative.sum(axis=tuple(i for i in range(array.ndim) if i != axis))
            else:
                grads["alpha"] = where_negative.sum().reshape(1)
        return np.where(positive, grad, grad * slopes), grads

    return out, backward


# -- normalisation --------------------------------------------------------------------------------


def _normalised_grad(grad_hat: np.ndarray, x_hat: np.ndarray, inv_std: np.ndarray, axes: Any) -> np.ndarray:
    """Gradient through (x - mean(x)) / sqrt(var(x) + eps), the statistics taken over ``axes``:
    into one new array, in place after its first step (the same bits as a new array a step)."""
    mean_grad = grad_hat.mean(axis=axes, keepdims=True)
    mean_grad_x = (grad_hat * x_hat).mean(axis=axes, keepdims=True)
    with rowloops.over_statistics(grad_hat.shape, axes):
        result = np.subtract(grad_hat, mean_grad)
        np.subtract(result, x_hat * mean_grad_x, out=result)
        return np.multiply(result, inv_std, out=result)


def _normalised(array: np.ndarray, axes: Any, epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """x̂ and 1/σ over ``axes`` (kept), with the forward's statistics; x̂ a new array, scaled in
    place."""
    mean = array.mean(axis=axes, keepdims=True, dtype=array.dtype)
    var = array.var(axis=axes, keepdims=True, dtype=array.dtype)
    inv_std = 1 / np.sqrt(var + array.dtype.type(epsilon))
    with rowloops.over_statistics(array.shape, axes):
        x_hat = np.subtract(array, mean)
        return np.multiply(x_hat, inv_std, out=x_hat), inv_std


@rule(BatchNorm)
def _batch_norm(block: BatchNorm, x: Any) -> tuple[Any, LayerBackward]:
    scaled, axis = block._scale, block._axis  # (config fields, without building the whole config each call)
    # In training, also updates the running averages, once; the statistics it normalised
    # with (the batch's, or the running ones it left be) are the backward's.
    out, stats = forward_saving(block, x)

    def backward(grad: np.ndarray, wants: frozenset[str]) -> tuple[Any, Grads]:
        array = as_float(x, grad.dtype)
        gamma = data(block, "gamma") if scaled else None
        grad_x, grad_gamma, grad_beta = norm_kernels.batch_norm_backward(
            grad, array, axis % array.ndim, stats, gamma)
        return grad_x.reshape(np.shape(x)), {"gamma": grad_gamma, "beta": grad_beta}

    return out, backward


@rule(LayerNorm, InstanceNorm)
def _layer_or_instance_norm(block: LayerNorm | InstanceNorm, x: Any) -> tuple[Any, LayerBackward]:
    out = forward(block, x)
    config = block.get_config()

    def backward(grad: np.ndarray, wants: frozenset[str]) -> tuple[Any, Grads]:
        array = as_float(x, grad.dtype)
        axis = config["axis"] % array.ndim
        shape = [1] * array.ndim
        shape[axis] = -1
        others = tuple(i for i in range(array.ndim) if i != axis)
        if isinstance(block, LayerNorm):  # over the one axis; gamma only with scale
            stats: Any = axis
            gamma = data(block, "gamma").reshape(shape) if config["scale"] else 1
        else:  # each example's each channel over the spatial axes; gamma always applies
            stats = tuple(i for i in others if i != 0)
            gamma = data(block, "gamma").reshape(shape)
        x_hat, inv_std = _normalised(array, stats, config["epsilon"])
        grads = {"gamma": (grad * x_hat).sum(axis=others), "beta": grad.sum(axis=others)}
        return _normalised_grad(grad * gamma, x_hat, inv_std, stats).reshape(np.shape(x)), grads

    return out, backward


@rule(GroupNorm)
def _group_norm(block: GroupNorm, x: Any) -> tuple[Any, LayerBackward]:
    out = forward(block, x)
    config = block.get_config()

    def backward(grad: np.ndarray, wants: frozenset[str]) -> tuple[Any, Grads]:
        groups = config["num_groups"]
        array = as_float(x, grad.dtype)
        grouped = array.reshape(array.shape[0], groups, -1)
        grad_grouped = grad.reshape(grad.shape[0], groups, -1)
        x_hat, inv_std = _normalised(grouped, (2,), config["epsilon"])
        grads = {"gamma": (grad_grouped * x_hat).sum(axis=(0, 2)), "beta": grad_grouped.sum(axis=(0, 2))}
        gamma = data(block, "gamma").reshape(1, groups, 1)  # one per group, as MXNet 1.9
        return _normalised_grad(grad_grouped * gamma, x_hat, inv_std, (2,)).reshape(np.shape(x)), grads

    return out, backward
