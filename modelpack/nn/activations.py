"""Activation functions (numpy, dtype-preserving) and the blocks that apply them.

Names follow MXNet: ``relu``, ``sigmoid``, ``tanh``, ``softrelu`` (softplus), ``softsign``,
``gelu`` (exact, erf-based), ``silu`` (x·sigmoid(x)). ``LeakyReLU`` and ``ELU`` take ``alpha``;
``PReLU`` learns it; ``SELU``, ``Swish`` (``beta``) and ``GELU`` are Gluon's layers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from ..errors import InputError, UsageError
from ..io.npy import FLOAT_DTYPES
from . import init as init_mod
from .block import Block
from .kernels import backend
from .parameter import Parameter
from .registry import LayerConfig, register_layer

__all__ = [
    "ACTIVATIONS",
    "ActivationName",
    "FloatDtype",
    "get_activation",
    "relu",
    "relu_into",
    "relu_grad",
    "sigmoid",
    "sigmoid_into",
    "in_place",
    "tanh",
    "softrelu",
    "softsign",
    "gelu",
    "erf",
    "silu",
    "leaky_relu",
    "elu",
    "selu",
    "swish",
    "gelu_tanh",
    "Activation",
    "LeakyReLU",
    "ELU",
    "PReLU",
    "SELU",
    "Swish",
    "GELU",
]

_SQRT_HALF = 0.7071067811865476


# numpy's vectorised float maximum runs only when both operands step alike; against a
# broadcast scalar 0 it goes element by element. So a large contiguous array is compared,
# row by row, with a block of zeros kept in cache (1 MB of float32: 97 µs → 37 µs, same bits).
_ZEROS_BLOCK = 1 << 14
_zeros: dict[np.dtype, np.ndarray] = {}


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0); NaN stays NaN."""
    if not (isinstance(x, np.ndarray) and x.dtype.kind == "f" and x.size >= _ZEROS_BLOCK
            and x.flags.c_contiguous):
        return np.maximum(x, np.zeros((), dtype=x.dtype))
    return _relu_blocks(x, np.empty_like(x))


def relu_into(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """max(x, 0) written into ``out`` (which may be ``x`` itself), a float array of x's shape."""
    if x.size >= _ZEROS_BLOCK and x.flags.c_contiguous and out.flags.c_contiguous:
        return _relu_blocks(x, out)
    return np.maximum(x, np.zeros((), dtype=x.dtype), out=out)


def _relu_blocks(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """max(x, 0) into ``out``, both C-contiguous, row by row against the cached zeros."""
    zeros = _zeros.get(x.dtype)
    if zeros is None:
        zeros = _zeros[x.dtype] = np.zeros(_ZEROS_BLOCK, x.dtype)
    flat, into = x.reshape(-1), out.reshape(-1)
    whole = x.size - x.size % _ZEROS_BLOCK
    np.maximum(flat[:whole].reshape(-1, _ZEROS_BLOCK), zeros, out=into[:whole].reshape(-1, _ZEROS_BLOCK))
    np.maximum(flat[whole:], zeros[:x.size - whole], out=into[whole:])
    return out


def relu_grad(grad: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The gradient through relu from its output: ``grad · (out > 0)`` (−0 for a negative grad
    where out is 0, NaN for a NaN grad), on ``compiled_activation``'s loop in one pass when the
    compiled kernels are in use and both are C-contiguous float32 arrays of one shape."""
    if (type(grad) is np.ndarray and type(out) is np.ndarray and grad.dtype == np.float32
            and out.dtype == np.float32 and grad.shape == out.shape and grad.flags.c_contiguous
            and out.flags.c_contiguous and backend.compiled() is not None):
        from .kernels import compiled_activation

        result = np.empty_like(grad)
        compiled_activation.relu_grad(grad, out, result)
        return result
    return grad * (out > 0)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)); exp overflow to inf gives the correct limit 0. Each step runs in
    place on one array (a fresh temporary per step made LeNet's sigmoids 1.3–5× slower)."""
    if not (isinstance(x, np.ndarray) and x.ndim and x.dtype.kind == "f"):
        with np.errstate(over="ignore"):
            return (1 / (1 + np.exp(-x))).astype(x.dtype, copy=False)
    return sigmoid_into(x, np.empty_like(x))


def sigmoid_into(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``sigmoid(x)`` written into ``out`` (which may be ``x`` itself), a float array of x's shape."""
    with np.errstate(over="ignore"):
        np.negative(x, out=out)
        np.exp(out, out=out)
    np.add(out, 1, out=out)
    return np.reciprocal(out, out=out)


def tanh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent."""
    return np.tanh(x)


def softrelu(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(x)), computed without overflow (a.k.a. softplus)."""
    return np.logaddexp(np.zeros((), dtype=x.dtype), x)


def softsign(x: np.ndarray) -> np.ndarray:
    """x / (1 + |x|)."""
    return x / (1 + np.abs(x))


def _erfc(z: np.ndarray) -> np.ndarray:
    """Complementary error function in float64, relative error < 1.2e-7 everywhere.

    numpy has no erf; this is the classic Chebyshev-fitted rational form (Numerical Recipes
    ``erfcc``). Relative accuracy of erfc is what GELU needs: 1 + erf(z) = erfc(-z).
    """
    a = np.abs(z)
    t = 1.0 / (1.0 + 0.5 * a)
    poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    with np.errstate(under="ignore"):
        result = t * np.exp(-a * a + poly)
    return np.where(z >= 0, result, 2.0 - result)


# Elements per step of gelu and erf: their float64 temporaries would take ~18 times the input
# at once; in steps they stay near 5 MB whatever the size (a loaded model's budget counts the
# output).
_WIDE_STEP = 1 << 16


def _in_float64_steps(x: np.ndarray, compute: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``compute`` (float64 in, float64 out, element-wise) over x in steps of ``_WIDE_STEP``,
    each step's result cast to x's dtype."""
    out = np.empty(np.shape(x), dtype=x.dtype)
    flat, flat_out = np.asarray(x).reshape(-1), out.reshape(-1)
    for start in range(0, flat.size, _WIDE_STEP):
        flat_out[start : start + _WIDE_STEP] = compute(flat[start : start + _WIDE_STEP].astype(np.float64))
    return out


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU: x·Φ(x) = 0.5·x·erfc(-x/√2), evaluated in float64 then cast back."""
    return _in_float64_steps(x, lambda wide: 0.5 * wide * _erfc(-wide * _SQRT_HALF))


# erf's Maclaurin series, 2/√π · Σ (−1)ⁿ z²ⁿ⁺¹ / (n!·(2n+1)), is used below ``_ERF_SERIES_BELOW``:
# there its 33 terms leave less than 1e-17 and its cancellation costs ~3e-16 (the largest term is
# 2.4). Above, 1 − erfc(|z|) is within 6e-10 of erf, erfc(2) being 0.0047.
_ERF_SERIES_BELOW = 2.0
_ERF_COEFFICIENTS = tuple(2 / math.sqrt(math.pi) * (-1) ** n / (math.factorial(n) * (2 * n + 1))
                          for n in range(33))
_exact_erf = np.frompyfunc(math.erf, 1, 1)


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, element-wise, in x's float dtype (ONNX's ``Erf``, MXNet's ``erf``).

    numpy has none. float64 arrays take ``math.erf`` per element (correctly rounded, ~0.1 µs
    each); narrower floats are computed in float64 (the series near 0, where 1 − erfc would lose
    small values' digits; ``_erfc`` beyond) and rounded once, so float32 results are erf's to
    its last bit or so."""
    if x.dtype == np.float64:
        return _exact_erf(x).astype(np.float64) if x.ndim else np.float64(math.erf(float(x)))
    return _in_float64_steps(x, _erf_wide)


def _erf_wide(z: np.ndarray) -> np.ndarray:
    near = np.abs(z) < _ERF_SERIES_BELOW
    square = z * z
    total = np.full_like(z, _ERF_COEFFICIENTS[-1])
    for coefficient in reversed(_ERF_COEFFICIENTS[:-1]):
        total = total * square + coefficient
    # NaN stays NaN on either side; ±inf gives ±1 from erfc's side.
    return np.where(near, z * total, np.copysign(1.0 - _erfc(np.abs(z)), z))


def silu(x: np.ndarray) -> np.ndarray:
    """x·sigmoid(x) (a.k.a. swish with beta 1)."""
    return x * sigmoid(x)


def leaky_relu(x: np.ndarray, alpha: float = 0.01) -> np.ndarray:
    """x where x > 0, alpha·x elsewhere."""
    return np.where(x > 0, x, x * x.dtype.type(alpha))


def elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """x where x > 0, alpha·(exp(x) - 1) elsewhere (expm1 for accuracy near 0)."""
    with np.errstate(over="ignore"):
        return np.where(x > 0, x, x.dtype.type(alpha) * np.expm1(x))


# SELU's constants (Klambauer et al., 2017), to the digits MXNet uses.
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(x: np.ndarray) -> np.ndarray:
    """Scaled ELU with the self-normalising constants: scale·(x if x > 0 else alpha·(e^x − 1))."""
    return x.dtype.type(_SELU_SCALE) * elu(x, _SELU_ALPHA)


def swish(x: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """x·sigmoid(beta·x); beta = 1 is ``silu``."""
    return x * sigmoid(x * x.dtype.type(beta))


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """GELU's tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), in float64."""
    wide = x.astype(np.float64)
    inner = np.sqrt(2.0 / np.pi) * (wide + 0.044715 * wide**3)
    return (0.5 * wide * (1.0 + np.tanh(inner))).astype(x.dtype)


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": relu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "softrelu": softrelu,
    "softsign": softsign,
    "gelu": gelu,
    "silu": silu,
}


# Config field types shared by the layers' configs, derived from the tables above: a new
# activation is one entry in ACTIVATIONS. The type checker sees plain text.
if TYPE_CHECKING:
    ActivationName = str
    FloatDtype = str
else:
    ActivationName = Literal[tuple(ACTIVATIONS)]
    FloatDtype = Literal[FLOAT_DTYPES]


def get_activation(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The activation function called ``name``; unknown names list the known ones."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise UsageError(
            f"unknown activation {name!r}; known activations: {', '.join(ACTIVATIONS)}"
        ) from None


# The activations a kernel may apply in place to each chunk of its output while it is in cache
# (``kernels.conv.forward``): the same bits as the function on the whole array.
_IN_PLACE: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "relu": relu_into,
    "sigmoid": sigmoid_into,
}


def in_place(name: str | None) -> Callable[[np.ndarray], object] | None:
    """The activation ``name`` as a function overwriting its float array argument, or None
    where there is none."""
    into = _IN_PLACE.get(name) if name is not None else None
    return None if into is None else (lambda array: into(array, array))


def as_float(x: Any, dtype: np.dtype) -> np.ndarray:
    """Inputs of another dtype are cast to the layer's dtype, as frameworks do."""
    array = np.asarray(x)
    return array if array.dtype == dtype else array.astype(dtype)


def float_input(x: Any) -> np.ndarray:
    """Parameter-free layers keep a float input's dtype and compute other inputs in float32."""
    array = np.asarray(x)
    return array if np.issubdtype(array.dtype, np.floating) else array.astype(np.float32)


class ActivationConfig(LayerConfig):
    activation: ActivationName


@register_layer("Activation", config=ActivationConfig)
class Activation(Block):
    """Applies a named activation function element-wise: ``Activation("relu")``."""

    _activation: str

    def __init__(self, activation: str, prefix: str | None = None) -> None:
        object.__setattr__(self, "_activation", activation)  # before Block names it (relu0, ...)
        super().__init__(prefix=prefix)
        self._act = get_activation(activation)

    def _alias(self) -> str:
        return self._activation

    def forward(self, x: Any) -> np.ndarray:
        return self._act(float_input(x))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._activation})"


class LeakyReLUConfig(LayerConfig):
    alpha: float


@register_layer("LeakyReLU", config=LeakyReLUConfig)
class LeakyReLU(Block):
    """Leaky ReLU with slope ``alpha`` for negative inputs."""

    def __init__(self, alpha: float, prefix: str | None = None) -> None:
        super().__init__(prefix=prefix)
        self._alpha = float(alpha)

    def forward(self, x: Any) -> np.ndarray:
        return leaky_relu(float_input(x), self._alpha)

    def __repr__(self) -> str:
        return f"LeakyReLU({self._alpha})"


class ELUConfig(LayerConfig):
    alpha: float = 1.0


@register_layer("ELU", config=ELUConfig)
class ELU(Block):
    """Exponential linear unit with scale ``alpha`` for negative inputs."""

    def __init__(self, alpha: float = 1.0, prefix: str | None = None) -> None:
        super().__init__(prefix=prefix)
        self._alpha = float(alpha)

    def forward(self, x: Any) -> np.ndarray:
        return elu(float_input(x), self._alpha)

    def __repr__(self) -> str:
        return f"ELU({self._alpha})"


class PReLUConfig(LayerConfig):
    in_channels: int = Field(default=1, gt=0)
    dtype: FloatDtype = "float32"


@register_layer("PReLU", config=PReLUConfig)
class PReLU(Block):
    """Leaky ReLU whose slope ``alpha`` is learned: one for all inputs (``in_channels=1``), or
    one per channel (axis 1; axis 0 of a 1-D input), as MXNet broadcasts it."""

    def __init__(
        self,
        alpha_initializer: init_mod.Initializer | str | None = None,
        in_channels: int = 1,
        dtype: str = "float32",
        prefix: str | None = None,
        params: Mapping[str, Parameter] | None = None,
    ) -> None:
        super().__init__(prefix=prefix, params=params)
        if in_channels < 1:
            raise UsageError(f"PReLU in_channels must be positive, got {in_channels}")
        self._dtype = np.dtype(dtype)
        self.alpha = Parameter("alpha", shape=(int(in_channels),), dtype=self._dtype,
                               init=alpha_initializer or init_mod.Constant(0.25))

    def forward(self, x: Any) -> np.ndarray:
        array = as_float(x, self._dtype)
        alpha = self.alpha.data()
        channels = alpha.shape[0]
        if channels > 1:
            axis = 1 if array.ndim > 1 else 0
            if array.ndim < 1 or array.shape[axis] != channels:
                raise InputError(
                    f"PReLU with {channels} slopes needs {channels} channels on axis {axis}, "
                    f"got shape {array.shape}"
                )
            shape = [1] * array.ndim
            shape[axis] = channels
            alpha = alpha.reshape(shape)
        else:
            alpha = alpha.reshape(())
        return np.where(array > 0, array, array * alpha)

    def get_config(self) -> dict[str, Any]:
        return self.config_from_attributes(in_channels=self.alpha.shape[0])

    def __repr__(self) -> str:
        return f"PReLU(in_channels={self.alpha.shape[0]})"


class SELUConfig(LayerConfig):
    pass


@register_layer("SELU", config=SELUConfig)
class SELU(Block):
    """Scaled exponential linear unit with the self-normalising constants (``selu``)."""

    def forward(self, x: Any) -> np.ndarray:
        return selu(float_input(x))

    def __repr__(self) -> str:
        return "SELU()"


class SwishConfig(LayerConfig):
    beta: float = Field(default=1.0, allow_inf_nan=False)


@register_layer("Swish", config=SwishConfig)
class Swish(Block):
    """x·sigmoid(beta·x) (``swish``)."""

    def __init__(self, beta: float = 1.0, prefix: str | None = None) -> None:
        super().__init__(prefix=prefix)
        self._beta = float(beta)

    def forward(self, x: Any) -> np.ndarray:
        return swish(float_input(x), self._beta)

    def __repr__(self) -> str:
        return f"Swish(beta={self._beta})"


class GELUConfig(LayerConfig):
    approximation: Literal["erf", "tanh"] = "erf"


@register_layer("GELU", config=GELUConfig)
class GELU(Block):
    """Gaussian error linear unit: exact (``erf``, MXNet 1.9's only kind) or the ``tanh``
    approximation (Gluon 2's option)."""

    def __init__(self, approximation: str = "erf", prefix: str | None = None) -> None:
        super().__init__(prefix=prefix)
        if approximation not in ("erf", "tanh"):
            raise UsageError(f"GELU approximation must be 'erf' or 'tanh', got {approximation!r}")
        self._approximation = approximation

    def forward(self, x: Any) -> np.ndarray:
        array = float_input(x)
        return gelu(array) if self._approximation == "erf" else gelu_tanh(array)

    def __repr__(self) -> str:
        return f"GELU(approximation={self._approximation})"
