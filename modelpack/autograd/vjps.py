"""One vector-Jacobian product (VJP) per registered op: the gradients of ``modelpack.nn.ops``.

A VJP gets the gradient of the op's output (a list of them for an op with several outputs),
the output, the input values and the op's attributes, and returns one gradient per input:
None where an input has none (a condition, an integer array, a Python number). Gradients of
broadcast inputs are summed back to the input's shape. At kinks and ties the choice is
PyTorch's (the test oracle): relu'(0) = 0, |x|'(0) = 0, ``maximum``/``minimum`` split a
tie's gradient in halves, ``max``/``min`` reductions share it evenly among the tied elements.
Element-wise ops are here; ``shape_vjps`` and ``neural_vjps`` hold the other families.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..nn import activations as act
from ..nn.registry import files_in

__all__ = ["VJPS", "Vjp", "CAPTURE", "OUTPUT_ONLY", "reduce_to"]

Vjp = Callable[[Any, Any, list[Any], dict[str, Any]], list[Any]]
VJPS: dict[str, Vjp] = {}
# For ops that draw random numbers (dropout): what to keep from before the forward, passed to
# the VJP among the attributes, so that it can redraw exactly what the forward drew.
CAPTURE: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}

# Activations whose VJP needs only the output (layers then need not recompute their input).
OUTPUT_ONLY = frozenset({"relu", "sigmoid", "tanh"})


_vjp = files_in(VJPS)  # @_vjp("add", ...) files a VJP under those op names


def _floating(value: Any) -> bool:
    return isinstance(value, (np.ndarray, np.generic)) and np.issubdtype(value.dtype, np.floating)


def reduce_to(grad: np.ndarray, value: Any) -> np.ndarray | None:
    """``grad`` summed down to ``value``'s shape (undoing broadcasting); None if ``value`` is
    not a floating-point array (nothing to differentiate)."""
    if not _floating(value):
        return None
    shape = np.shape(value)
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=stretched, keepdims=True) if stretched else grad


# -- element-wise arithmetic ---------------------------------------------------------------


@_vjp("add")
def _add(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    a, b = inputs
    return [reduce_to(g, a), reduce_to(g, b)]


@_vjp("subtract")
def _subtract(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    a, b = inputs
    return [reduce_to(g, a), reduce_to(-g, b) if _floating(b) else None]


@_vjp("multiply")
def _multiply(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    a, b = inputs
    return [reduce_to(g * b, a) if _floating(a) else None, reduce_to(g * a, b) if _floating(b) else None]


@_vjp("divide")
def _divide(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    a, b = inputs
    grad_b = reduce_to(-g * a / (b * b), b) if _floating(b) else None
    return [reduce_to(g / b, a) if _floating(a) else None, grad_b]


@_vjp("power")
def _power(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    a, b = inputs
    grad_a = grad_b = None
    with np.errstate(divide="ignore", invalid="ignore"):
        if _floating(a):
            # b·a^(b-1), but 0 where b == 0 (a⁰ is constant even at a = 0, where 0^-1 is inf)
            grad_a = reduce_to(np.where(np.equal(b, 0), 0, g * b * np.power(a, np.subtract(b, 1))), a)
        if _floating(b):
            # out·log(a), but 0 at a == 0 with b >= 0 (the limit), as torch does
            zero = np.logical_and(np.equal(a, 0), np.greater_equal(b, 0))
            grad_b = reduce_to(np.where(zero, 0, g * out * np.log(a)), b)
    return [grad_a, grad_b]


def _tie_split(g: np.ndarray, first_wins: np.ndarray, tie: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    half = g * 0.5
    to_first = np.where(tie, half, np.where(first_wins, g, 0))
    to_second = np.where(tie, half, np.where(first_wins, 0, g))
    return to_first, to_second


@_vjp("maximum")
def _maximum(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    a, b = inputs
    to_a, to_b = _tie_split(g, np.greater(a, b), np.equal(a, b))
    return [reduce_to(to_a, a), reduce_to(to_b, b)]


@_vjp("minimum")
def _minimum(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    a, b = inputs
    to_a, to_b = _tie_split(g, np.less(a, b), np.equal(a, b))
    return [reduce_to(to_a, a), reduce_to(to_b, b)]


@_vjp("matmul")
def _matmul(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    a, b = inputs
    # 1-D operands act as a row (a) or a column (b) vector; the added axis is dropped again.
    a2 = a[np.newaxis, :] if a.ndim == 1 else a
    b2 = b[:, np.newaxis] if b.ndim == 1 else b
    batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    g2 = np.reshape(g, (*batch, a2.shape[-2], b2.shape[-1]))
    grad_a = grad_b = None
    if _floating(a):
        grad_a = g2 @ np.swapaxes(b2, -1, -2)
        grad_a = reduce_to(grad_a[..., 0, :] if a.ndim == 1 else grad_a, a)
    if _floating(b):
        grad_b = np.swapaxes(a2, -1, -2) @ g2
        grad_b = reduce_to(grad_b[..., 0] if b.ndim == 1 else grad_b, b)
    return [grad_a, grad_b]


@_vjp("greater", "greater_equal", "less", "less_equal", "equal", "not_equal", "logical_and", "logical_or",
      "logical_xor", "floor_divide")
def _comparison(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    return [None, None]  # piecewise constant: no gradient flows


@_vjp("logical_not", "argmax", "argmin", "zeros_like", "ones_like", "full_like")
def _no_gradient(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    return [None] * len(inputs)  # the output does not depend smoothly on the input


@_vjp("full", "arange")
def _made_from_sizes(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    return []  # no inputs


@_vjp("fmod")
def _fmod(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    a, b = inputs  # a - trunc(a/b)·b, as torch's fmod
    grad_b = reduce_to(-g * np.trunc(a / b), b) if _floating(b) else None
    return [reduce_to(g, a) if _floating(a) else None, grad_b]


@_vjp("mod")
def _mod(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    a, b = inputs  # a - floor(a/b)·b, as torch's remainder
    grad_b = reduce_to(-g * np.floor_divide(a, b), b) if _floating(b) else None
    return [reduce_to(g, a) if _floating(a) else None, grad_b]


def _within(x: np.ndarray, low: float | None, high: float | None) -> np.ndarray:
    """Where clip passes x through (bounds included, as torch's clamp)."""
    inside = np.ones(x.shape, dtype=bool)
    if low is not None:
        inside &= x >= low
    if high is not None:
        inside &= x <= high
    return inside


def _times(first: np.ndarray, *factors: Any) -> np.ndarray:
    """first · factors…, multiplied into ``first`` (a fresh temporary) in place: one array
    allocated for the whole chain instead of one per product."""
    result = np.asarray(first)
    for factor in factors:
        fits = result.shape == np.broadcast_shapes(result.shape, np.shape(factor))
        if fits and result.dtype == np.result_type(result, factor):
            np.multiply(result, factor, out=result)
        else:
            result = result * factor
    return result


def _unary(fn: Callable[[np.ndarray, Any, Any, dict[str, Any]], np.ndarray]) -> Vjp:
    """A VJP of a one-input element-wise op from ``fn(g, out, x, attrs)``."""

    def vjp(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
        (x,) = inputs
        return [fn(g, out, x, attrs) if _floating(x) else None]

    return vjp


_SQRT_2PI = math.sqrt(2.0 * math.pi)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

VJPS.update({
    "expm1": _unary(lambda g, out, x, attrs: g * (out + 1)),
    "log1p": _unary(lambda g, out, x, attrs: g / (1 + x)),
    "reciprocal": _unary(lambda g, out, x, attrs: -g * out * out),
    # piecewise constant: zero gradient, as torch gives
    "sign": _unary(lambda g, out, x, attrs: np.zeros_like(g)),
    "floor": _unary(lambda g, out, x, attrs: np.zeros_like(g)),
    "ceil": _unary(lambda g, out, x, attrs: np.zeros_like(g)),
    "clip": _unary(lambda g, out, x, attrs: g * _within(x, attrs.get("a_min"), attrs.get("a_max"))),
    "negative": _unary(lambda g, out, x, attrs: -g),
    "abs": _unary(lambda g, out, x, attrs: g * np.sign(x)),
    "exp": _unary(lambda g, out, x, attrs: g * out),
    "log": _unary(lambda g, out, x, attrs: g / x),
    "sqrt": _unary(lambda g, out, x, attrs: g / (2 * out)),
    "square": _unary(lambda g, out, x, attrs: g * 2 * x),
    "sin": _unary(lambda g, out, x, attrs: g * np.cos(x)),
    "cos": _unary(lambda g, out, x, attrs: -g * np.sin(x)),
    "tan": _unary(lambda g, out, x, attrs: g * (1 + out * out)),
    "arcsin": _unary(lambda g, out, x, attrs: g / np.sqrt(1 - x * x)),
    "arccos": _unary(lambda g, out, x, attrs: -g / np.sqrt(1 - x * x)),
    "arctan": _unary(lambda g, out, x, attrs: g / (1 + x * x)),
    "sinh": _unary(lambda g, out, x, attrs: g * np.cosh(x)),
    "cosh": _unary(lambda g, out, x, attrs: g * np.sinh(x)),
    "arcsinh": _unary(lambda g, out, x, attrs: g / np.sqrt(x * x + 1)),
    "arccosh": _unary(lambda g, out, x, attrs: g / np.sqrt(x * x - 1)),
    "arctanh": _unary(lambda g, out, x, attrs: g / (1 - x * x)),
    "rint": _unary(lambda g, out, x, attrs: np.zeros_like(g)),
    # d/dx erf(x) = 2/√π · exp(−x²)
    "erf": _unary(lambda g, out, x, attrs: g * (_TWO_OVER_SQRT_PI * np.exp(-x * x)).astype(x.dtype)),
    "relu": _unary(lambda g, out, x, attrs: act.relu_grad(g, out)),
    "sigmoid": _unary(lambda g, out, x, attrs: _times(1 - out, out, g)),
    "tanh": _unary(lambda g, out, x, attrs: _times(np.subtract(1, out * out, dtype=out.dtype), g)),
    "softrelu": _unary(lambda g, out, x, attrs: g * act.sigmoid(x)),
    "softsign": _unary(lambda g, out, x, attrs: g / np.square(1 + np.abs(x))),
    "leaky_relu": _unary(lambda g, out, x, attrs: np.where(x > 0, g, g * x.dtype.type(attrs["alpha"]))),
    # x <= 0: d/dx alpha·(e^x - 1) = alpha·e^x = out + alpha, as torch computes it.
    "elu": _unary(lambda g, out, x, attrs: np.where(x > 0, g, g * (out + x.dtype.type(attrs["alpha"])))),
})


@_vjp("gelu")
def _gelu(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    (x,) = inputs
    if not _floating(x):
        return [None]
    wide = x.astype(np.float64)
    cdf = 0.5 * act._erfc(-wide * act._SQRT_HALF)  # Φ(x), with the forward's erfc
    pdf = np.exp(-0.5 * wide * wide) / _SQRT_2PI  # φ(x)
    return [(g * (cdf + wide * pdf)).astype(x.dtype)]


@_vjp("silu")
def _silu(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    (x,) = inputs
    if not _floating(x):
        return [None]
    s = act.sigmoid(x)
    return [g * (s * (1 + x * (1 - s)))]


@_vjp("where")
def _where(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    condition, a, b = inputs
    zero = np.zeros((), dtype=g.dtype)
    return [None, reduce_to(np.where(condition, g, zero), a), reduce_to(np.where(condition, zero, g), b)]


def _softmax_input(grad: np.ndarray, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    """From the gradient of the scaled input x/T (and its dtype) to x's; none for ``length``."""
    x = inputs[0]
    temperature = attrs.get("temperature")
    if temperature is not None and temperature != 1.0:
        grad = grad / grad.dtype.type(temperature)
    return [grad.astype(x.dtype) if _floating(x) else None, *([None] * (len(inputs) - 1))]


@_vjp("softmax")
def _softmax(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    axis = attrs.get("axis", -1)  # masked positions (past a length) have out = 0: no gradient
    return _softmax_input(out * (g - np.sum(g * out, axis=axis, keepdims=True)), inputs, attrs)


@_vjp("log_softmax")
def _log_softmax(g: np.ndarray, out: Any, inputs: list[Any], attrs: dict[str, Any]) -> list[Any]:
    axis = attrs.get("axis", -1)
    live = np.isfinite(out)  # masked positions are -inf whatever x is: they pass no gradient
    g = np.where(live, g, 0).astype(g.dtype)
    grad = g - np.exp(np.where(live, out, -np.inf)) * np.sum(g, axis=axis, keepdims=True)
    return _softmax_input(grad, inputs, attrs)
