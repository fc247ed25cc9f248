"""Gradients of the registered layers: while recording, each call of one is one tape node.

The forward is the layer's own ``forward`` on plain arrays (so training computes exactly
what inference computes, BatchNorm's running averages included); its VJP, below, maps the
output's gradient to the input's and to each trained parameter's. Containers (``Sequential``,
``Graph``) and custom blocks are not nodes: their ``forward`` runs on Variables, so the layers
and ops inside record themselves. A subclass that overrides ``forward`` is treated as custom.

A rule is ``rule(block, x) -> (out, backward)`` with ``backward(g, wants) -> (grad_x, {param
name: grad})``; ``wants`` names what has a use ("x" and the parameters that train), so a
first layer never computes the gradient of the data and a frozen layer skips its weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..nn import hooks
from ..nn.activations import ELU, Activation, LeakyReLU, as_float, float_input
from ..nn.basic import Dense, Dropout, Embedding, Flatten
from ..nn.block import Block
from ..nn.conv import AvgPool2D, Conv2D, GlobalAvgPool2D, GlobalMaxPool2D, MaxPool2D, _Pool2D
from ..nn.mode import is_training
from ..nn.norm import BatchNorm, LayerNorm
from .variable import Variable, make_node, value_of
from .vjps import OUTPUT_ONLY, VJPS

if TYPE_CHECKING:
    from .recording import Recorder

__all__ = ["RULES", "call_block", "rule_for"]

LayerBackward = Callable[[np.ndarray, frozenset[str]], tuple[Any, dict[str, np.ndarray]]]
Rule = Callable[[Any, Any], tuple[Any, LayerBackward]]
RULES: dict[type[Block], Rule] = {}


def _rule(*classes: type[Block]) -> Callable[[Rule], Rule]:
    def add(fn: Rule) -> Rule:
        for cls in classes:
            RULES[cls] = fn
        return fn

    return add


def rule_for(block: Block) -> Rule | None:
    """The rule of ``block``'s registered layer class, unless its ``forward`` was replaced."""
    for cls in type(block).__mro__:
        rule = RULES.get(cls)
        if rule is not None:
            return rule if type(block).forward is cls.forward else None  # type: ignore[attr-defined]
    return None


def call_block(recorder: Recorder, block: Block, args: tuple[Any, ...]) -> Any:
    """Run one block call while recording (what ``nn.hooks`` routes ``Block.__call__`` to)."""
    rule = rule_for(block)
    if rule is None or len(args) != 1:  # (a layer given several inputs raises its own TypeError)
        return block.forward(*args)
    (x,) = args
    out, backward = rule(block, value_of(x))
    # Read after the forward: a deferred parameter has its data only now.
    leaves = {name: recorder.read_parameter(param) for name, param in block.params.items()}
    trained = {name: leaf for name, leaf in leaves.items() if isinstance(leaf, Variable)}
    wants = frozenset([*trained, *(["x"] if isinstance(x, Variable) else [])])

    def vjp(grad: np.ndarray) -> list[Any]:
        grad_x, grads = backward(grad, wants)
        return [grad_x, *(grads.get(name) for name in trained)]

    return make_node(type(block).__name__, out, [x, *trained.values()], vjp)


def _forward(block: Block, x: Any) -> Any:
    with hooks.suspended():
        return block.forward(x)


def _data(block: Block, name: str) -> np.ndarray:
    with hooks.suspended():
        return block.params[name].data()


def _through_activation(name: str | None, grad: np.ndarray, out: np.ndarray, pre: Callable[[], Any]) -> Any:
    """The gradient before a layer's fused activation; ``pre()`` recomputes its input if the
    activation's VJP needs more than its output."""
    if name is None:
        return grad
    x = out if name in OUTPUT_ONLY else pre()
    return VJPS[name](grad, out, [x], {})[0]


# -- basic layers --------------------------------------------------------------------------------


@_rule(Dense)
def _dense(block: Dense, x: Any) -> tuple[Any, LayerBackward]:
    out = _forward(block, x)
    config = block.get_config()
    weight = _data(block, "weight")
    bias = _data(block, "bias") if config["use_bias"] else None

    def backward(grad: np.ndarray, wants: frozenset[str]) -> tuple[Any, dict[str, np.ndarray]]:
        rows = as_float(x, weight.dtype)
        rows = rows.reshape(rows.shape[0], -1) if config["flatten"] else rows
        rows = rows.reshape(-1, weight.shape[1])

        def pre() -> Any:
            return (rows @ weight.T + (0 if bias is None else bias)).reshape(out.shape)

        grad = _through_activation(config["activation"], grad, out, pre).reshape(-1, weight.shape[0])
        grads = {}
        if "weight" in wants:
            grads["weight"] = grad.T @ rows
        if "bias" in wants:
            grads["bias"] = grad.sum(axis=0)
        grad_x = (grad @ weight).reshape(np.shape(x)) if "x" in wants else None
        return grad_x, grads

    return out, backward


@_rule(Dropout)
def _dropout(block: Dropout, x: Any) -> tuple[Any, LayerBackward]:
    array = float_input(x)
    mask = block.mask(array.shape, array.dtype)  # the layer's own draw, kept for the backward
    out = array if mask is None else array * mask
    return out, lambda grad, wants: (grad if mask is None else grad * mask, {})


@_rule(Flatten)
def _flatten(block: Flatten, x: Any) -> tuple[Any, LayerBackward]:
    out = _forward(block, x)
    return out, lambda grad, wants: (grad.reshape(np.shape(x)), {})


@_rule(Embedding)
def _embedding(block: Embedding, x: Any) -> tuple[Any, LayerBackward]:
    out = _forward(block, x)  # checks the indices
    indices = np.asarray(x).astype(np.int64)

    def backward(grad: np.ndarray, wants: frozenset[str]) -> tuple[Any, dict[str, np.ndarray]]:
        if "weight" not in wants:
            return None, {}
        table = np.zeros(block.weight.shape, dtype=grad.dtype)
        np.add.at(table, indices, grad)  # a row looked up twice gets both gradients
        return None, {"weight": table}

    return out, backward


@_rule(Activation, LeakyReLU, ELU)
def _activation(block: Activation | LeakyReLU | ELU, x: Any) -> tuple[Any, LayerBackward]:
    out = _forward(block, x)
    config = block.get_config()
    if isinstance(block, Activation):
        op = config["activation"]
    else:
        op = "elu" if isinstance(block, ELU) else "leaky_relu"
    attrs = {"alpha": config["alpha"]} if "alpha" in config else {}
    return out, lambda grad, wants: (VJPS[op](grad, out, [float_input(x)], attrs)[0], {})


# -- convolution and pooling ---------------------------------------------------------------------


def _scatter_windows(
    grads: np.ndarray, padded_shape: tuple[int, ...], kernel: tuple[int, int], strides: tuple[int, int],
    dilation: tuple[int, int] = (1, 1),
) -> np.ndarray:
    """The adjoint of taking windows: add each window's (N, C, kh, kw, oh, ow) gradient back
    at the positions it read from (col2im), one strided slice per kernel offset."""
    out = np.zeros(padded_shape, dtype=grads.dtype)
    oh, ow = grads.shape[-2:]
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            top, left = i * dilation[0], j * dilation[1]
            out[:, :, top : top + strides[0] * (oh - 1) + 1 : strides[0],
                left : left + strides[1] * (ow - 1) + 1 : strides[1]] += grads[:, :, i, j]
    return out


@_rule(Conv2D)
def _conv2d(block: Conv2D, x: Any) -> tuple[Any, LayerBackward]:
    out = _forward(block, x)
    config = block.get_config()
    weight = _data(block, "weight")
    bias = _data(block, "bias") if config["use_bias"] else None

    def backward(grad: np.ndarray, wants: frozenset[str]) -> tuple[Any, dict[str, np.ndarray]]:
        array = as_float(x, weight.dtype)
        n, c, h, w = array.shape
        groups, (kh, kw), (ph, pw) = config["groups"], config["kernel_size"], config["padding"]
        cols, (oh, ow) = block.columns(array)  # (N, G, C/G·kh·kw, oh·ow)
        kernels = weight.reshape(1, groups, weight.shape[0] // groups, -1)

        def pre() -> Any:
            z = np.matmul(kernels, cols).reshape(out.shape)
            return z if bias is None else z + bias.reshape(1, -1, 1, 1)

        grad = _through_activation(config["activation"], grad, out, pre)
        per_group = grad.reshape(n, groups, -1, oh * ow)  # (N, G, O/G, oh·ow)
        grads = {}
        if "weight" in wants:
            # One product per example, summed: BLAS reads the transposed columns in place, which
            # measured 3-5x faster than one big product over transposed copies.
            per_example = np.matmul(per_group, np.swapaxes(cols, -1, -2))  # (N, G, O/G, C/G·kh·kw)
            grads["weight"] = per_example.sum(axis=0).reshape(weight.shape)
        if "bias" in wants:
            grads["bias"] = grad.sum(axis=(0, 2, 3))
        grad_x = None
        if "x" in wants:
            grad_cols = np.matmul(np.swapaxes(kernels, -1, -2), per_group)  # (N, G, C/G·kh·kw, P)
            windows = grad_cols.reshape(n, c, kh, kw, oh, ow)
            padded = _scatter_windows(windows, (n, c, h + 2 * ph, w + 2 * pw), (kh, kw),
                                      tuple(config["strides"]), tuple(config["dilation"]))
            grad_x = padded[:, :, ph : ph + h, pw : pw + w].reshape(np.shape(x))
        return grad_x, grads

    return out, backward


def _pool_grad(
    block: _Pool2D, array: np.ndarray, padded_shape: tuple[int, ...], per_offset: list[Any]
) -> Any:
    """The input's gradient from each kernel offset's (N, C, oh, ow) share (padding cropped)."""
    grad = np.zeros(padded_shape, dtype=np.result_type(*per_offset))
    size = np.shape(per_offset[0])[2:]
    for (rows, cols), share in zip(block.offsets(size), per_offset, strict=True):
        grad[:, :, rows, cols] += share
    (ph, pw), (h, w) = block.get_config()["padding"], array.shape[2:]
    return grad[:, :, ph : ph + h, pw : pw + w]


@_rule(MaxPool2D)
def _max_pool(block: MaxPool2D, x: Any) -> tuple[Any, LayerBackward]:
    out = _forward(block, x)

    def backward(grad: np.ndarray, wants: frozenset[str]) -> tuple[Any, dict[str, np.ndarray]]:
        array = float_input(x)
        padded, size = block.padded(array, -np.inf)
        offsets = block.offsets(size)
        best, first = padded[:, :, offsets[0][0], offsets[0][1]], np.zeros(grad.shape, dtype=np.intp)
        for k, (rows, cols) in enumerate(offsets[1:], start=1):
            later = padded[:, :, rows, cols] > best  # strictly: a tie goes to the first, as in torch
            best, first = np.where(later, padded[:, :, rows, cols], best), np.where(later, k, first)
        shares = [np.where(first == k, grad, 0) for k in range(len(offsets))]
        return _pool_grad(block, array, padded.shape, shares), {}

    return out, backward


@_rule(AvgPool2D)
def _avg_pool(block: AvgPool2D, x: Any) -> tuple[Any, LayerBackward]:
    out = _forward(block, x)

    def backward(grad: np.ndarray, wants: frozenset[str]) -> tuple[Any, dict[str, np.ndarray]]:
        array = float_input(x)
        padded, (oh, ow) = block.padded(array, 0.0)
        h, w = array.shape[2:]
        counts = np.outer(block._counts(h, oh, 0), block._counts(w, ow, 1)).astype(grad.dtype)
        share = grad / counts  # each element of a window gets its 1/count of the window's gradient
        return _pool_grad(block, array, padded.shape, [share] * len(block.offsets((oh, ow)))), {}

    return out, backward


@_rule(GlobalAvgPool2D)
def _global_avg_pool(block: GlobalAvgPool2D, x: Any) -> tuple[Any, LayerBackward]:
    out = _forward(block, x)

    def backward(grad: np.ndarray, wants: frozenset[str]) -> tuple[Any, dict[str, np.ndarray]]:
        shape = np.shape(x)
        return np.broadcast_to(grad / grad.dtype.type(shape[2] * shape[3]), shape), {}

    return out, backward


@_rule(GlobalMaxPool2D)
def _global_max_pool(block: GlobalMaxPool2D, x: Any) -> tuple[Any, LayerBackward]:
    out = _forward(block, x)

    def backward(grad: np.ndarray, wants: frozenset[str]) -> tuple[Any, dict[str, np.ndarray]]:
        array = float_input(x)
        flat = array.reshape(*array.shape[:2], -1)
        hits = np.arange(flat.shape[-1]) == flat.argmax(axis=-1)[..., np.newaxis]  # ties: the first
        return np.where(hits, grad.reshape(*grad.shape[:2], 1), 0).astype(grad.dtype).reshape(array.shape), {}

    return out, backward


# -- normalisation -------------------------------------------------------------------------------


def _normalised_grad(grad_hat: np.ndarray, x_hat: np.ndarray, inv_std: np.ndarray, axes: Any) -> np.ndarray:
    """Gradient through (x - mean(x)) / sqrt(var(x) + eps), the statistics taken over ``axes``."""
    mean_grad = grad_hat.mean(axis=axes, keepdims=True)
    mean_grad_x = (grad_hat * x_hat).mean(axis=axes, keepdims=True)
    return inv_std * (grad_hat - mean_grad - x_hat * mean_grad_x)


@_rule(BatchNorm)
def _batch_norm(block: BatchNorm, x: Any) -> tuple[Any, LayerBackward]:
    config = block.get_config()
    batch_stats = is_training() and not config["use_global_stats"]
    # Without batch statistics, the forward normalises with the running ones (it leaves them be).
    running = None if batch_stats else (_data(block, "running_mean"), _data(block, "running_var"))
    out = _forward(block, x)  # in training, also updates the running averages, once

    def backward(grad: np.ndarray, wants: frozenset[str]) -> tuple[Any, dict[str, np.ndarray]]:
        array = as_float(x, grad.dtype)
        axis = config["axis"] % array.ndim
        reduce = tuple(i for i in range(array.ndim) if i != axis)
        shape = [1] * array.ndim
        shape[axis] = -1
        if running is None:
            mean, var = array.mean(axis=reduce, dtype=array.dtype), array.var(axis=reduce, dtype=array.dtype)
        else:
            mean, var = running
        inv_std = (1 / np.sqrt(var + array.dtype.type(config["epsilon"]))).reshape(shape)
        x_hat = (array - mean.reshape(shape)) * inv_std
        grads = {"gamma": (grad * x_hat).sum(axis=reduce), "beta": grad.sum(axis=reduce)}
        gamma = _data(block, "gamma").reshape(shape) if config["scale"] else 1
        grad_hat = grad * gamma
        if running is None:
            grad_x = _normalised_grad(grad_hat, x_hat, inv_std, reduce)
        else:
            grad_x = grad_hat * inv_std
        return grad_x.reshape(np.shape(x)), grads

    return out, backward


@_rule(LayerNorm)
def _layer_norm(block: LayerNorm, x: Any) -> tuple[Any, LayerBackward]:
    out = _forward(block, x)
    config = block.get_config()

    def backward(grad: np.ndarray, wants: frozenset[str]) -> tuple[Any, dict[str, np.ndarray]]:
        array = as_float(x, grad.dtype)
        axis = config["axis"] % array.ndim
        shape = [1] * array.ndim
        shape[axis] = -1
        reduce = tuple(i for i in range(array.ndim) if i != axis)
        mean = array.mean(axis=axis, keepdims=True, dtype=array.dtype)
        var = array.var(axis=axis, keepdims=True, dtype=array.dtype)
        inv_std = 1 / np.sqrt(var + array.dtype.type(config["epsilon"]))
        x_hat = (array - mean) * inv_std
        grads = {"gamma": (grad * x_hat).sum(axis=reduce), "beta": grad.sum(axis=reduce)}
        gamma = _data(block, "gamma").reshape(shape) if config["scale"] else 1
        return _normalised_grad(grad * gamma, x_hat, inv_std, axis).reshape(np.shape(x)), grads

    return out, backward
