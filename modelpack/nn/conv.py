"""2-D convolution and pooling on NCHW batches, vectorised with strided windows (no pixel loops).

Convolution is im2col: a strided view gathers every receptive field, one copy lays them out
as a matrix, and a single matmul per group (BLAS) does the arithmetic.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import Field, model_validator

from ..errors import InputError
from . import init as init_mod
from .activations import ActivationName, FloatDtype, as_float, float_input, get_activation
from .block import Block
from .parameter import Parameter
from .registry import LayerConfig, register_layer

__all__ = ["Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "GlobalMaxPool2D"]

Pair = tuple[int, int]


def _pair(value: int | tuple[int, ...] | list[int], what: str) -> Pair:
    if isinstance(value, (int, np.integer)):
        return (int(value), int(value))
    items = tuple(int(v) for v in value)
    if len(items) != 2:
        raise ValueError(f"{what} must be an int or a pair of ints, got {value!r}")
    return (items[0], items[1])


def _check_nchw(array: np.ndarray, layer: str) -> None:
    if array.ndim != 4:
        raise InputError(f"{layer} expects a 4-D NCHW input, got shape {array.shape}")


def _windows(padded: np.ndarray, kernel: Pair, strides: Pair, dilation: Pair = (1, 1)) -> np.ndarray:
    """View of shape (N, C, out_h, out_w, kh, kw): every (dilated, strided) window, no copy."""
    span = (dilation[0] * (kernel[0] - 1) + 1, dilation[1] * (kernel[1] - 1) + 1)
    if padded.shape[2] < span[0] or padded.shape[3] < span[1]:
        raise InputError(
            f"input of spatial size {padded.shape[2:]} (after padding) is smaller than the "
            f"kernel's extent {span}"
        )
    view = sliding_window_view(padded, span, axis=(2, 3))
    return view[:, :, :: strides[0], :: strides[1], :: dilation[0], :: dilation[1]]


# Pairs are lists in configs: YAML has no tuples, and strict models do not coerce.
PositivePair = Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=2, max_length=2)]
NonNegativePair = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=2, max_length=2)]


class Conv2DConfig(LayerConfig):
    channels: int = Field(gt=0)
    kernel_size: PositivePair
    strides: PositivePair = [1, 1]
    padding: NonNegativePair = [0, 0]
    dilation: PositivePair = [1, 1]
    groups: int = Field(default=1, gt=0)
    activation: ActivationName | None = None
    use_bias: bool = True
    in_channels: int = Field(default=0, ge=0)
    dtype: FloatDtype = "float32"

    @model_validator(mode="after")
    def _groups_divide(self) -> Conv2DConfig:
        if self.channels % self.groups or self.in_channels % self.groups:
            raise ValueError(
                f"channels ({self.channels}) and in_channels ({self.in_channels}) must be "
                f"divisible by groups ({self.groups})"
            )
        return self


@register_layer("Conv2D", config=Conv2DConfig)
class Conv2D(Block):
    """2-D convolution (cross-correlation, as every framework computes it) on NCHW input.

    Weight shape is (channels, in_channels // groups, kh, kw); ``in_channels=0`` defers it.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int | tuple[int, int],
        strides: int | tuple[int, int] = (1, 1),
        padding: int | tuple[int, int] = (0, 0),
        dilation: int | tuple[int, int] = (1, 1),
        groups: int = 1,
        layout: str = "NCHW",
        activation: str | None = None,
        use_bias: bool = True,
        weight_initializer: init_mod.Initializer | str | None = None,
        bias_initializer: init_mod.Initializer | str | None = "zeros",
        in_channels: int = 0,
        dtype: str = "float32",
        prefix: str | None = None,
    ) -> None:
        super().__init__(prefix=prefix)
        if layout != "NCHW":
            raise ValueError(f"Conv2D supports layout 'NCHW' only, got {layout!r}")
        self._channels = int(channels)
        self._kernel = _pair(kernel_size, "kernel_size")
        self._strides = _pair(strides, "strides")
        self._padding = _pair(padding, "padding")
        self._dilation = _pair(dilation, "dilation")
        self._groups = int(groups)
        if self._groups < 1 or self._channels % self._groups:
            raise ValueError(f"channels ({channels}) must be divisible by groups ({groups})")
        if in_channels and in_channels % self._groups:
            raise ValueError(f"in_channels ({in_channels}) must be divisible by groups ({groups})")
        self._activation = activation
        self._act = get_activation(activation) if activation is not None else None
        self._use_bias = bool(use_bias)
        self._dtype = np.dtype(dtype)
        self.weight = Parameter(
            "weight",
            shape=(self._channels, int(in_channels) // self._groups, *self._kernel),
            dtype=self._dtype,
            init=weight_initializer,
        )
        if self._use_bias:
            self.bias = Parameter("bias", shape=(self._channels,), dtype=self._dtype, init=bias_initializer)

    def _alias(self) -> str:
        return "conv"

    def forward(self, x: Any) -> np.ndarray:
        array = as_float(x, self._dtype)
        _check_nchw(array, "Conv2D")
        n, c = array.shape[:2]
        g = self._groups
        if c % g:
            raise InputError(f"Conv2D input has {c} channels, not divisible by groups={g}")
        self.weight.shape = (self._channels, c // g, *self._kernel)
        ph, pw = self._padding
        padded = np.pad(array, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else array
        win = _windows(padded, self._kernel, self._strides, self._dilation)
        out_h, out_w = win.shape[2:4]
        kh, kw = self._kernel
        # (N, G, C/G, oh, ow, kh, kw) -> (N, G, C/G*kh*kw, oh*ow): the one copy (im2col),
        # laid out so that the matmul writes its result directly in NCHW order.
        cols = win.reshape(n, g, c // g, out_h, out_w, kh, kw).transpose(0, 1, 2, 5, 6, 3, 4)
        cols = np.ascontiguousarray(cols).reshape(n, g, (c // g) * kh * kw, out_h * out_w)
        kernels = self.weight.data().reshape(1, g, self._channels // g, -1)
        out = np.matmul(kernels, cols)  # (N, G, O/G, oh*ow)
        out = out.reshape(n, self._channels, out_h, out_w)
        if self._use_bias:
            out = out + self.bias.data().reshape(1, -1, 1, 1)
        return self._act(out) if self._act is not None else out

    def get_config(self) -> dict[str, Any]:
        return {
            "channels": self._channels,
            "kernel_size": list(self._kernel),
            "strides": list(self._strides),
            "padding": list(self._padding),
            "dilation": list(self._dilation),
            "groups": self._groups,
            "activation": self._activation,
            "use_bias": self._use_bias,
            "in_channels": self.weight.shape[1] * self._groups,
            "dtype": self._dtype.name,
        }

    def __repr__(self) -> str:
        in_channels = self.weight.shape[1] * self._groups or None
        parts = [f"{in_channels} -> {self._channels}", f"kernel_size={self._kernel}",
                 f"stride={self._strides}"]
        if self._padding != (0, 0):
            parts.append(f"padding={self._padding}")
        if self._dilation != (1, 1):
            parts.append(f"dilation={self._dilation}")
        if self._groups != 1:
            parts.append(f"groups={self._groups}")
        if self._activation:
            parts.append(f"Activation({self._activation})")
        if not self._use_bias:
            parts.append("bias=False")
        return f"Conv2D({', '.join(parts)})"


class _Pool2D(Block):
    """Shared shape logic of max and average pooling (PyTorch's ceil_mode rule)."""

    def __init__(
        self,
        pool_size: int | tuple[int, int] = (2, 2),
        strides: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        ceil_mode: bool = False,
        layout: str = "NCHW",
        prefix: str | None = None,
    ) -> None:
        super().__init__(prefix=prefix)
        if layout != "NCHW":
            raise ValueError(f"{type(self).__name__} supports layout 'NCHW' only, got {layout!r}")
        self._pool = _pair(pool_size, "pool_size")
        self._strides = _pair(strides if strides is not None else self._pool, "strides")
        self._padding = _pair(padding, "padding")
        if any(2 * p > k for p, k in zip(self._padding, self._pool, strict=True)):
            raise ValueError(f"padding {self._padding} must be at most half of pool_size {self._pool}")
        self._ceil_mode = bool(ceil_mode)

    def _alias(self) -> str:
        return "pool"

    def _out_size(self, size: int, axis: int) -> int:
        k, s, p = self._pool[axis], self._strides[axis], self._padding[axis]
        span = size + 2 * p - k
        if span < 0:
            raise InputError(
                f"{type(self).__name__}: input size {size} with padding {p} is smaller than "
                f"pool size {k}"
            )
        out = (-(-span // s) if self._ceil_mode else span // s) + 1
        if self._ceil_mode and (out - 1) * s >= size + p:
            out -= 1  # the last window must start inside the input or its left padding
        return out

    def _padded_windows(self, array: np.ndarray, fill: float) -> tuple[np.ndarray, Pair]:
        _check_nchw(array, type(self).__name__)
        h, w = array.shape[2:]
        out = (self._out_size(h, 0), self._out_size(w, 1))
        extra = [
            max(0, (o - 1) * s + k - (n + 2 * p))
            for o, s, k, n, p in zip(out, self._strides, self._pool, (h, w), self._padding, strict=True)
        ]
        pads = ((0, 0), (0, 0), (self._padding[0], self._padding[0] + extra[0]),
                (self._padding[1], self._padding[1] + extra[1]))
        padded = np.pad(array, pads, constant_values=fill) if any(sum(p) for p in pads) else array
        win = _windows(padded, self._pool, self._strides)[:, :, : out[0], : out[1]]
        return win, out

    def get_config(self) -> dict[str, Any]:
        return {
            "pool_size": list(self._pool),
            "strides": list(self._strides),
            "padding": list(self._padding),
            "ceil_mode": self._ceil_mode,
        }

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(size={self._pool}, stride={self._strides}, "
                f"padding={self._padding}, ceil_mode={self._ceil_mode})")


class MaxPool2DConfig(LayerConfig):
    pool_size: PositivePair = [2, 2]
    strides: PositivePair | None = None
    padding: NonNegativePair = [0, 0]
    ceil_mode: bool = False

    @model_validator(mode="after")
    def _padding_fits(self) -> MaxPool2DConfig:
        if any(2 * p > k for p, k in zip(self.padding, self.pool_size, strict=True)):
            raise ValueError(f"padding {self.padding} must be at most half of pool_size {self.pool_size}")
        return self


class AvgPool2DConfig(MaxPool2DConfig):
    count_include_pad: bool = True


class GlobalPool2DConfig(LayerConfig):
    pass


@register_layer("MaxPool2D", config=MaxPool2DConfig)
class MaxPool2D(_Pool2D):
    """Maximum over each window; padding never wins (it is -inf)."""

    def forward(self, x: Any) -> np.ndarray:
        array = float_input(x)
        win, _ = self._padded_windows(array, -np.inf)
        return win.max(axis=(4, 5))


@register_layer("AvgPool2D", config=AvgPool2DConfig)
class AvgPool2D(_Pool2D):
    """Mean over each window; ``count_include_pad`` decides whether padding counts."""

    def __init__(
        self,
        pool_size: int | tuple[int, int] = (2, 2),
        strides: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        ceil_mode: bool = False,
        layout: str = "NCHW",
        count_include_pad: bool = True,
        prefix: str | None = None,
    ) -> None:
        super().__init__(pool_size, strides, padding, ceil_mode, layout, prefix)
        self._count_include_pad = bool(count_include_pad)

    def forward(self, x: Any) -> np.ndarray:
        array = float_input(x)
        win, out = self._padded_windows(array, 0.0)
        sums = win.sum(axis=(4, 5))
        counts = np.outer(self._counts(array.shape[2], out[0], 0), self._counts(array.shape[3], out[1], 1))
        return (sums / counts.astype(array.dtype)).astype(array.dtype, copy=False)

    def _counts(self, size: int, out: int, axis: int) -> np.ndarray:
        """Divisor along one axis: window clipped to the padded input (or the real input)."""
        k, s, p = self._pool[axis], self._strides[axis], self._padding[axis]
        start = np.arange(out) * s - p
        if self._count_include_pad:
            return np.minimum(start + k, size + p) - start
        return np.minimum(start + k, size) - np.maximum(start, 0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "count_include_pad": self._count_include_pad}


@register_layer("GlobalAvgPool2D", config=GlobalPool2DConfig)
class GlobalAvgPool2D(Block):
    """Mean over the whole spatial extent: (N, C, H, W) → (N, C, 1, 1)."""

    def forward(self, x: Any) -> np.ndarray:
        array = float_input(x)
        _check_nchw(array, "GlobalAvgPool2D")
        return array.mean(axis=(2, 3), keepdims=True, dtype=array.dtype)

    def get_config(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        return "GlobalAvgPool2D(size=(1, 1), stride=(1, 1), padding=(0, 0), ceil_mode=True)"


@register_layer("GlobalMaxPool2D", config=GlobalPool2DConfig)
class GlobalMaxPool2D(Block):
    """Maximum over the whole spatial extent: (N, C, H, W) → (N, C, 1, 1)."""

    def forward(self, x: Any) -> np.ndarray:
        array = float_input(x)
        _check_nchw(array, "GlobalMaxPool2D")
        return array.max(axis=(2, 3), keepdims=True)

    def get_config(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        return "GlobalMaxPool2D(size=(1, 1), stride=(1, 1), padding=(0, 0), ceil_mode=True)"
