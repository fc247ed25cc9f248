"""Convolutions in 1, 2 and 3 dimensions, and their transposes, on channel-first batches.

One implementation serves every dimension. Convolution is im2col: a strided view gathers
every receptive field, one copy lays them out as a matrix, and a single matmul per group
(BLAS) does the arithmetic. A transposed convolution multiplies first and then scatters
each kernel offset's products into the output with one strided add per offset (a loop over
the kernel's few positions, never over pixels).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import Field, create_model, model_validator

from ..errors import InputError
from . import budget
from . import init as init_mod
from .activations import ActivationName, FloatDtype, as_float, get_activation
from .block import Block
from .parameter import Parameter
from .registry import LayerConfig, register_layer

__all__ = [
    "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
    "MAX_SPATIAL", "LAYOUTS", "sizes", "as_tuple", "check_layout", "check_rank", "windows",
]

# The largest kernel, pool, stride, dilation or padding an archive may declare: far beyond
# any real network, and small enough that no size computed from it overflows. Layers without
# weights are bounded only by this (a config costs a few bytes, so the file bounds nothing).
MAX_SPATIAL = 4096

# The only layouts supported: channels first, as MXNet's CPU kernels compute.
LAYOUTS = {1: "NCW", 2: "NCHW", 3: "NCDHW"}

Sizes = tuple[int, ...]


def sizes(dims: int, minimum: int) -> Any:
    """Config type of a per-axis size: a list of ``dims`` ints in [minimum, MAX_SPATIAL]
    (lists, because YAML has no tuples and strict models do not coerce)."""
    item = Annotated[int, Field(ge=minimum, le=MAX_SPATIAL)]
    return Annotated[list[item], Field(min_length=dims, max_length=dims)]


def as_tuple(value: int | tuple[int, ...] | list[int], dims: int, what: str) -> Sizes:
    """An int (the same on every axis) or one int per axis, as a tuple."""
    if isinstance(value, (int, np.integer)):
        return (int(value),) * dims
    items = tuple(int(v) for v in value)
    if len(items) != dims:
        raise ValueError(f"{what} must be an int or {dims} ints, got {value!r}")
    return items


def check_layout(layout: str | None, dims: int, layer: str) -> None:
    """Refuse a layout other than channels first (None means the default, which is)."""
    if layout not in (None, LAYOUTS[dims]):
        raise ValueError(f"{layer} supports layout {LAYOUTS[dims]!r} only, got {layout!r}")


def check_rank(array: np.ndarray, dims: int, layer: str) -> None:
    """Refuse an input that is not (N, C, *spatial) with ``dims`` spatial axes."""
    if array.ndim != dims + 2:
        raise InputError(f"{layer} expects a {dims + 2}-D {LAYOUTS[dims]} input, got shape {array.shape}")


def windows(padded: np.ndarray, kernel: Sizes, strides: Sizes, dilation: Sizes | None = None) -> np.ndarray:
    """View of shape (N, C, *out, *kernel): every (dilated, strided) window, no copy."""
    dims = len(kernel)
    dilation = dilation or (1,) * dims
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))
    if any(n < s for n, s in zip(padded.shape[2:], span, strict=True)):
        raise InputError(
            f"input of spatial size {padded.shape[2:]} (after padding) is smaller than the "
            f"kernel's extent {span}"
        )
    view = sliding_window_view(padded, span, axis=tuple(range(2, 2 + dims)))
    index = (slice(None), slice(None), *(slice(None, None, s) for s in strides),
             *(slice(None, None, d) for d in dilation))
    return view[index]


class _ConvConfig(LayerConfig):
    channels: int = Field(gt=0)
    groups: int = Field(default=1, gt=0)
    activation: ActivationName | None = None
    use_bias: bool = True
    in_channels: int = Field(default=0, ge=0)
    dtype: FloatDtype = "float32"

    @model_validator(mode="after")
    def _groups_divide(self) -> _ConvConfig:
        if self.channels % self.groups or self.in_channels % self.groups:
            raise ValueError(
                f"channels ({self.channels}) and in_channels ({self.in_channels}) must be "
                f"divisible by groups ({self.groups})"
            )
        # Declared by each dimension's model (strides always, output_padding for transposes).
        output_padding, strides = vars(self).get("output_padding"), vars(self)["strides"]
        if output_padding is not None and any(p >= s for p, s in zip(output_padding, strides, strict=True)):
            raise ValueError(f"output_padding {output_padding} must be smaller than strides {strides}")
        return self


def _conv_config(name: str, dims: int, *, transpose: bool) -> type[LayerConfig]:
    """The config model of one convolution type: the shared fields plus per-axis sizes."""
    fields: dict[str, Any] = {
        "kernel_size": (sizes(dims, 1), ...),
        "strides": (sizes(dims, 1), [1] * dims),
        "padding": (sizes(dims, 0), [0] * dims),
        "dilation": (sizes(dims, 1), [1] * dims),
    }
    if transpose:
        fields["output_padding"] = (sizes(dims, 0), [0] * dims)
    return create_model(name, __base__=_ConvConfig, **fields)


class _Conv(Block):
    """N-D convolution (cross-correlation, as every framework computes it), channels first.

    Weight shape is (channels, in_channels // groups, *kernel); ``in_channels=0`` defers it.
    """

    _dims: ClassVar[int]
    _transpose: ClassVar[bool] = False

    def __init__(
        self,
        channels: int,
        kernel_size: int | tuple[int, ...],
        strides: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] = 0,
        dilation: int | tuple[int, ...] = 1,
        groups: int = 1,
        layout: str | None = None,
        activation: str | None = None,
        use_bias: bool = True,
        weight_initializer: init_mod.Initializer | str | None = None,
        bias_initializer: init_mod.Initializer | str | None = "zeros",
        in_channels: int = 0,
        dtype: str = "float32",
        prefix: str | None = None,
        params: Mapping[str, Parameter] | None = None,
        output_padding: int | tuple[int, ...] = 0,
    ) -> None:
        super().__init__(prefix=prefix, params=params)
        dims, kind = self._dims, type(self).__name__
        check_layout(layout, dims, kind)
        self._channels = int(channels)
        self._kernel = as_tuple(kernel_size, dims, "kernel_size")
        self._strides = as_tuple(strides, dims, "strides")
        self._padding = as_tuple(padding, dims, "padding")
        self._dilation = as_tuple(dilation, dims, "dilation")
        self._output_padding = as_tuple(output_padding, dims, "output_padding")
        self._groups = int(groups)
        if self._groups < 1 or self._channels % self._groups:
            raise ValueError(f"channels ({channels}) must be divisible by groups ({groups})")
        if in_channels and in_channels % self._groups:
            raise ValueError(f"in_channels ({in_channels}) must be divisible by groups ({groups})")
        if self._transpose and any(p >= s for p, s in zip(self._output_padding, self._strides, strict=True)):
            raise ValueError(
                f"output_padding {self._output_padding} must be smaller than strides {self._strides}"
            )
        self._activation = activation
        self._act = get_activation(activation) if activation is not None else None
        self._use_bias = bool(use_bias)
        self._dtype = np.dtype(dtype)
        self.weight = Parameter("weight", shape=self._weight_shape(int(in_channels)), dtype=self._dtype,
                                init=weight_initializer)
        if self._use_bias:
            self.bias = Parameter("bias", shape=(self._channels,), dtype=self._dtype, init=bias_initializer)

    def _alias(self) -> str:
        return "conv"  # Gluon names every convolution conv0, conv1, ...

    def _weight_shape(self, in_channels: int) -> Sizes:
        return (self._channels, in_channels // self._groups, *self._kernel)

    @property
    def _in_channels(self) -> int:
        return self.weight.shape[1] * self._groups

    def forward(self, x: Any) -> np.ndarray:
        array = as_float(x, self._dtype)
        kind = type(self).__name__
        check_rank(array, self._dims, kind)
        c = array.shape[1]
        if c % self._groups:
            raise InputError(f"{kind} input has {c} channels, not divisible by groups={self._groups}")
        self.weight.shape = self._weight_shape(c)
        out = self._compute(array)
        if self._use_bias:
            out = out + self.bias.data().reshape(1, -1, *(1,) * self._dims)
        return self._act(out) if self._act is not None else out

    def _charge_output(self, shape: Sizes, dtype: np.dtype) -> None:
        """The output, then as many again for the bias and the activation (budget.py)."""
        steps = 1 + (self._use_bias or self._act is not None)
        budget.charge(steps * budget.nbytes(shape, dtype), "its output")

    def _compute(self, array: np.ndarray) -> np.ndarray:
        n, g = array.shape[0], self._groups
        cols, out_sizes = self.columns(array)
        self._charge_output((n, self._channels, *out_sizes), array.dtype)
        kernels = self.weight.data().reshape(1, g, self._channels // g, -1)
        return np.matmul(kernels, cols).reshape(n, self._channels, *out_sizes)  # (N, G, O/G, P)

    def columns(self, array: np.ndarray) -> tuple[np.ndarray, Sizes]:
        """im2col: the receptive fields as (N, G, C/G·prod(kernel), prod(out)), and the
        output's spatial sizes."""
        n, c = array.shape[:2]
        g, dims = self._groups, self._dims
        padded = array
        if any(self._padding):
            spatial = (size + 2 * p for size, p in zip(array.shape[2:], self._padding, strict=True))
            padded_shape = (n, c, *spatial)
            budget.charge(budget.nbytes(padded_shape, array.dtype), f"padding the input by {self._padding}")
            padded = np.pad(array, ((0, 0), (0, 0), *((p, p) for p in self._padding)))
        win = windows(padded, self._kernel, self._strides, self._dilation)
        out_sizes = win.shape[2:2 + dims]
        cols_bytes = budget.nbytes((n, c, *self._kernel, *out_sizes), array.dtype)
        budget.charge(cols_bytes, "gathering its windows (im2col)")
        # (N, G, C/G, *out, *k) -> (N, G, C/G, *k, *out): the one copy, laid out so that the
        # matmul writes its result directly in channel-first order.
        cols = win.reshape(n, g, c // g, *out_sizes, *self._kernel)
        order = (0, 1, 2, *range(3 + dims, 3 + 2 * dims), *range(3, 3 + dims))
        cols = np.ascontiguousarray(cols.transpose(order))
        return cols.reshape(n, g, (c // g) * math.prod(self._kernel), math.prod(out_sizes)), out_sizes

    def get_config(self) -> dict[str, Any]:
        # kernel_size is kept as self._kernel: the short name the compute code reads.
        return self.config_from_attributes(kernel_size=self._kernel)

    def __repr__(self) -> str:
        dims = self._dims
        parts = [f"{self._in_channels or None} -> {self._channels}", f"kernel_size={self._kernel}",
                 f"stride={self._strides}"]
        if self._padding != (0,) * dims:
            parts.append(f"padding={self._padding}")
        if self._output_padding != (0,) * dims:
            parts.append(f"output_padding={self._output_padding}")
        if self._dilation != (1,) * dims:
            parts.append(f"dilation={self._dilation}")
        if self._groups != 1:
            parts.append(f"groups={self._groups}")
        if self._activation:
            parts.append(f"Activation({self._activation})")
        if not self._use_bias:
            parts.append("bias=False")
        return f"{type(self).__name__}({', '.join(parts)})"


class _ConvTranspose(_Conv):
    """N-D transposed convolution (the gradient of a convolution with respect to its input).

    Weight shape is (in_channels, channels // groups, *kernel), MXNet's (and torch's) layout.
    Output size per axis: (size − 1)·stride − 2·padding + dilation·(kernel − 1) + 1 + output_padding.
    """

    _transpose: ClassVar[bool] = True

    def __init__(
        self,
        channels: int,
        kernel_size: int | tuple[int, ...],
        strides: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] = 0,
        output_padding: int | tuple[int, ...] = 0,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """As a convolution's, with ``output_padding`` after ``padding`` (Gluon's order); the
        other arguments (``dilation``, ``groups``, ... ``in_channels``, ``dtype``) are its."""
        kwargs["output_padding"] = output_padding
        super().__init__(channels, kernel_size, strides, padding, *args, **kwargs)

    def _weight_shape(self, in_channels: int) -> Sizes:
        return (in_channels, self._channels // self._groups, *self._kernel)

    @property
    def _in_channels(self) -> int:
        return self.weight.shape[0]

    def _compute(self, array: np.ndarray) -> np.ndarray:
        n, c = array.shape[:2]
        g, o = self._groups, self._channels
        in_sizes = array.shape[2:]
        full = tuple(
            (i - 1) * s + d * (k - 1) + 1 + a
            for i, s, d, k, a in zip(in_sizes, self._strides, self._dilation, self._kernel,
                                     self._output_padding, strict=True)
        )
        out_sizes = tuple(f - 2 * p for f, p in zip(full, self._padding, strict=True))
        if min(out_sizes) < 1:
            raise InputError(
                f"{type(self).__name__}: input of spatial size {in_sizes} gives an empty output "
                f"{out_sizes} with padding {self._padding}"
            )
        # Every input pixel times every kernel tap, per group: (N, G, O/G·prod(k), prod(in)).
        budget.charge(budget.nbytes((n, o, *self._kernel, *in_sizes), array.dtype), "its products")
        budget.charge(budget.nbytes((n, o, *full), array.dtype), "the full output it scatters into")
        self._charge_output((n, o, *out_sizes), array.dtype)
        weight = self.weight.data().reshape(g, c // g, -1).transpose(0, 2, 1)
        products = np.matmul(weight[None], array.reshape(n, g, c // g, -1))
        products = products.reshape(n, o, *self._kernel, *in_sizes)
        result = np.zeros((n, o, *full), dtype=products.dtype)
        for offset in itertools.product(*(range(k) for k in self._kernel)):
            target = tuple(
                slice(j * d, j * d + (i - 1) * s + 1, s)
                for j, d, i, s in zip(offset, self._dilation, in_sizes, self._strides, strict=True)
            )
            source, destination = (slice(None), slice(None), *offset), (slice(None), slice(None), *target)
            result[destination] += products[source]
        kept = (slice(p, p + size) for p, size in zip(self._padding, out_sizes, strict=True))
        crop = (slice(None), slice(None), *kept)
        return result[crop] if any(self._padding) else result


@register_layer("Conv1D", config=_conv_config("Conv1DConfig", 1, transpose=False))
class Conv1D(_Conv):
    """1-D convolution on NCW input; see ``Conv2D``."""

    _dims = 1


@register_layer("Conv2D", config=_conv_config("Conv2DConfig", 2, transpose=False))
class Conv2D(_Conv):
    """2-D convolution (cross-correlation, as every framework computes it) on NCHW input.

    Weight shape is (channels, in_channels // groups, kh, kw); ``in_channels=0`` defers it.
    """

    _dims = 2


@register_layer("Conv3D", config=_conv_config("Conv3DConfig", 3, transpose=False))
class Conv3D(_Conv):
    """3-D convolution on NCDHW input; see ``Conv2D``."""

    _dims = 3


@register_layer("Conv1DTranspose", config=_conv_config("Conv1DTransposeConfig", 1, transpose=True))
class Conv1DTranspose(_ConvTranspose):
    """1-D transposed convolution on NCW input; see ``Conv2DTranspose``."""

    _dims = 1


@register_layer("Conv2DTranspose", config=_conv_config("Conv2DTransposeConfig", 2, transpose=True))
class Conv2DTranspose(_ConvTranspose):
    """2-D transposed convolution (a.k.a. deconvolution) on NCHW input.

    Weight shape is (in_channels, channels // groups, kh, kw); ``output_padding`` (smaller
    than the stride, as MXNet requires) adds rows and columns at the far edge.
    """

    _dims = 2


@register_layer("Conv3DTranspose", config=_conv_config("Conv3DTransposeConfig", 3, transpose=True))
class Conv3DTranspose(_ConvTranspose):
    """3-D transposed convolution on NCDHW input; see ``Conv2DTranspose``."""

    _dims = 3
