"""Initializers: how a parameter's first values are drawn, with Gluon's defaults.

An initializer is a small object with ``__call__(shape, dtype, rng, name="") -> ndarray``. Parameters
may name one by string (``"zeros"``, ``"ones"``) as Gluon's ``bias_initializer="zeros"`` does.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import UsageError

__all__ = [
    "Initializer",
    "Uniform",
    "Normal",
    "Constant",
    "Zero",
    "One",
    "Xavier",
    "create",
]


class Initializer:
    """Base class: subclasses implement ``_draw`` for a known shape, or, as Gluon code does
    (d2l's ``MyInit``), ``_init_weight(name, data)`` filling ``data`` in place."""

    def __call__(
        self, shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator, name: str = ""
    ) -> np.ndarray:
        if type(self)._init_weight is not Initializer._init_weight:
            data = np.zeros(shape, dtype=dtype)
            self._init_weight(name, data)
            return data
        return np.asarray(self._draw(shape, rng), dtype=dtype)

    def _draw(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def _init_weight(self, name: str, data: np.ndarray) -> None:
        """Gluon's hook: fill ``data`` (zeros, of the parameter's shape and dtype) in place."""
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class Uniform(Initializer):
    """Uniform on [-scale, scale]; Gluon's default for weights with ``scale=0.07``."""

    def __init__(self, scale: float = 0.07) -> None:
        self.scale = float(scale)

    def _draw(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(-self.scale, self.scale, size=shape)


class Normal(Initializer):
    """Normal with mean 0 and standard deviation ``sigma`` (Gluon default 0.01)."""

    def __init__(self, sigma: float = 0.01) -> None:
        self.sigma = float(sigma)

    def _draw(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        return rng.normal(0.0, self.sigma, size=shape)


class Constant(Initializer):
    """Every element equal to ``value``, or, as in Gluon, an array broadcast to the shape
    (d2l's bilinear kernel for ``Conv2DTranspose``, ``ParameterDict.get_constant``)."""

    def __init__(self, value: float | np.ndarray) -> None:
        self.value: float | np.ndarray = float(value) if np.ndim(value) == 0 else np.array(value)

    def _draw(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        if np.ndim(self.value) and not _broadcasts(np.shape(self.value), shape):
            raise UsageError(f"Constant: an array of shape {np.shape(self.value)} cannot fill shape {shape}")
        return np.full(shape, self.value)


class Zero(Constant):
    """All zeros: Gluon's default for biases, ``beta`` and ``running_mean``."""

    def __init__(self) -> None:
        super().__init__(0.0)


class One(Constant):
    """All ones: Gluon's default for ``gamma`` and ``running_var``."""

    def __init__(self) -> None:
        super().__init__(1.0)


class Xavier(Initializer):
    """Glorot initialisation, with Gluon's ``rnd_type``, ``factor_type`` and ``magnitude``."""

    def __init__(self, rnd_type: str = "uniform", factor_type: str = "avg", magnitude: float = 3.0) -> None:
        if rnd_type not in ("uniform", "gaussian"):
            raise UsageError(f"Xavier rnd_type must be 'uniform' or 'gaussian', got {rnd_type!r}")
        if factor_type not in ("avg", "in", "out"):
            raise UsageError(f"Xavier factor_type must be 'avg', 'in' or 'out', got {factor_type!r}")
        self.rnd_type = rnd_type
        self.factor_type = factor_type
        self.magnitude = float(magnitude)

    def _draw(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        if len(shape) < 2:
            raise UsageError(f"Xavier needs a shape of at least 2 dims, got {shape}")
        receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
        fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
        factor = {"avg": (fan_in + fan_out) / 2.0, "in": fan_in, "out": fan_out}[self.factor_type]
        scale = math.sqrt(self.magnitude / factor)
        if self.rnd_type == "uniform":
            return rng.uniform(-scale, scale, size=shape)
        return rng.normal(0.0, scale, size=shape)


def _broadcasts(source: tuple[int, ...], target: tuple[int, ...]) -> bool:
    try:
        return np.broadcast_shapes(source, target) == tuple(target)
    except ValueError:
        return False


_BY_NAME: dict[str, type[Initializer]] = {
    "zeros": Zero,
    "ones": One,
    "uniform": Uniform,
    "normal": Normal,
    "xavier": Xavier,
}


def create(init: Initializer | str | None) -> Initializer | None:
    """Turn a string name (``"zeros"``) into an initializer; pass objects and None through."""
    if init is None or isinstance(init, Initializer):
        return init
    if isinstance(init, str) and init.lower() in _BY_NAME:
        return _BY_NAME[init.lower()]()
    raise UsageError(f"unknown initializer {init!r}; known names: {sorted(_BY_NAME)}")
