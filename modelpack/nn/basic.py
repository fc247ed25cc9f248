"""Basic layers: ``Dense``, ``Dropout``, ``Flatten``, ``Embedding``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import Field

from .. import random
from ..errors import InputError, UsageError
from . import budget
from . import init as init_mod
from .activations import ActivationName, FloatDtype, as_float, float_input, get_activation, in_place
from .block import Block
from .kernels import blas, rowloops
from .mode import is_training
from .parameter import Parameter
from .registry import LayerConfig, register_layer

__all__ = ["Dense", "Dropout", "Flatten", "Embedding"]


class DenseConfig(LayerConfig):
    units: int = Field(gt=0)
    activation: ActivationName | None = None
    use_bias: bool = True
    flatten: bool = True
    dtype: FloatDtype = "float32"
    in_units: int = Field(default=0, ge=0)


@register_layer("Dense", config=DenseConfig)
class Dense(Block):
    """Fully connected layer: ``y = activation(x @ W.T + b)`` with ``W`` of shape (units, in_units).

    ``in_units=0`` defers the input size to the first call. With ``flatten=True`` all axes but
    the first are flattened; otherwise the layer applies to the last axis.
    """

    def __init__(
        self,
        units: int,
        activation: str | None = None,
        use_bias: bool = True,
        flatten: bool = True,
        dtype: str = "float32",
        weight_initializer: init_mod.Initializer | str | None = None,
        bias_initializer: init_mod.Initializer | str | None = "zeros",
        in_units: int = 0,
        prefix: str | None = None,
        params: Mapping[str, Parameter] | None = None,
    ) -> None:
        super().__init__(prefix=prefix, params=params)
        self._units = int(units)
        self._flatten = bool(flatten)
        self._use_bias = bool(use_bias)
        self._dtype = np.dtype(dtype)
        self._activation = activation
        self._act = get_activation(activation) if activation is not None else None
        self.weight = Parameter(
            "weight", shape=(self._units, int(in_units)), dtype=self._dtype,
            init=weight_initializer,
        )
        if self._use_bias:
            self.bias = Parameter("bias", shape=(self._units,), dtype=self._dtype, init=bias_initializer)

    def forward(self, x: Any) -> np.ndarray:
        array = as_float(x, self._dtype)
        if array.ndim < 1 or (self._flatten and array.ndim < 2):
            raise InputError(f"Dense expects a batch of inputs (at least 2-D), got shape {array.shape}")
        if self._flatten:
            array = array.reshape(array.shape[0], math.prod(array.shape[1:]))
        self.weight.shape = (self._units, array.shape[-1])
        steps = 1 + (self._use_bias or self._act is not None)  # the product, then bias/activation
        budget.charge(steps * budget.nbytes((*array.shape[:-1], self._units), self._dtype), "its output")
        with blas.for_product(math.prod(array.shape[:-1]), self._units, array.shape[-1]):
            out = array @ self.weight.data().T
        bias = self.bias.data() if self._use_bias else None
        if not (isinstance(out, np.ndarray) and (bias is None or np.result_type(out, bias) == out.dtype)):
            out = out if bias is None else out + bias  # a traced stand-in, or mixed dtypes
            return self._act(out) if self._act is not None else out
        # The product is a new array: bias and activation overwrite it (a pass fewer each over
        # the output than a new array; the same bits).
        if bias is not None:
            with rowloops.long_rows(self._units):
                np.add(out, bias, out=out)
        into = in_place(self._activation)
        if into is not None:
            into(out)
        elif self._act is not None:
            out = self._act(out)
        return out

    def get_config(self) -> dict[str, Any]:
        return self.config_from_attributes(in_units=self.weight.shape[1])

    def __repr__(self) -> str:
        in_units = self.weight.shape[1] or None
        act = f"Activation({self._activation})" if self._activation else "linear"
        return f"Dense({in_units} -> {self._units}, {act})"


class DropoutConfig(LayerConfig):
    rate: float = Field(ge=0.0, lt=1.0)
    axes: list[int] = Field(default_factory=list)


@register_layer("Dropout", config=DropoutConfig)
class Dropout(Block):
    """Drops elements with probability ``rate`` while training; the identity at inference.

    ``axes`` lists axes along which the same mask is shared (variational dropout).
    """

    def __init__(
        self, rate: float, axes: tuple[int, ...] | list[int] = (), prefix: str | None = None
    ) -> None:
        super().__init__(prefix=prefix)
        if not 0.0 <= rate < 1.0:
            raise UsageError(f"Dropout rate must be in [0, 1), got {rate}")
        self._rate = float(rate)
        self._axes = tuple(int(a) for a in axes)

    def forward(self, x: Any) -> np.ndarray:
        array = float_input(x)
        mask = self.mask(array.shape, array.dtype)
        return array if mask is None else array * mask

    def mask(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray | None:
        """The scaled keep-mask for an input of ``shape`` (None: identity), drawn from the
        ``"dropout"`` stream of ``modelpack.random``, so a seeded run drops the same elements."""
        if not is_training() or self._rate == 0.0:
            return None
        mask_shape = tuple(1 if i in self._axes else n for i, n in enumerate(shape))
        keep = random.generator("dropout").random(mask_shape) >= self._rate
        return keep.astype(dtype) / dtype.type(1.0 - self._rate)

    def __repr__(self) -> str:
        return f"Dropout(p = {self._rate}, axes={self._axes})"


class FlattenConfig(LayerConfig):
    pass


@register_layer("Flatten", config=FlattenConfig)
class Flatten(Block):
    """Flattens all axes but the first: (N, a, b, ...) → (N, a·b·...)."""

    def forward(self, x: Any) -> np.ndarray:
        array = np.asarray(x)
        if array.ndim < 1:
            raise InputError("Flatten expects at least a 1-D input")
        return array.reshape(array.shape[0], math.prod(array.shape[1:]))

    def __repr__(self) -> str:
        return "Flatten"


class EmbeddingConfig(LayerConfig):
    input_dim: int = Field(gt=0)
    output_dim: int = Field(gt=0)
    dtype: FloatDtype = "float32"


@register_layer("Embedding", config=EmbeddingConfig)
class Embedding(Block):
    """Looks up rows of a (input_dim, output_dim) table by integer index."""

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        dtype: str = "float32",
        weight_initializer: init_mod.Initializer | str | None = None,
        prefix: str | None = None,
        params: Mapping[str, Parameter] | None = None,
    ) -> None:
        super().__init__(prefix=prefix, params=params)
        self._input_dim = int(input_dim)
        self._output_dim = int(output_dim)
        self._dtype = np.dtype(dtype)
        self.weight = Parameter(
            "weight", shape=(self._input_dim, self._output_dim), dtype=self._dtype,
            init=weight_initializer,
        )

    def forward(self, x: Any) -> np.ndarray:
        indices = np.asarray(x)
        if not np.issubdtype(indices.dtype, np.integer):
            # MXNet takes float indices; only whole numbers are meaningful.
            rounded = indices.astype(np.int64)
            if not np.array_equal(rounded, indices):
                raise InputError("Embedding indices must be whole numbers")
            indices = rounded
        if indices.size and (indices.min() < 0 or indices.max() >= self._input_dim):
            raise InputError(
                f"Embedding index out of range: expected 0 <= index < {self._input_dim}, "
                f"found min {indices.min()} and max {indices.max()}"
            )
        budget.charge(budget.nbytes((*indices.shape, self._output_dim), self._dtype), "the rows it looks up")
        return self.weight.data()[indices]

    def __repr__(self) -> str:
        return f"Embedding({self._input_dim} -> {self._output_dim}, {self._dtype.name})"
