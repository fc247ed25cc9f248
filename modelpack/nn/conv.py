"""Convolutions in 1, 2 and 3 dimensions, and their transposes, on channel-first batches.

One implementation serves every dimension; the arithmetic (im2col and one GEMM, and for a
transposed convolution the scatter back) lives in ``kernels.conv``, shared with the gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import Field, create_model, model_validator

from ..errors import InputError, UsageError
from . import budget
from . import init as init_mod
from .activations import ActivationName, FloatDtype, as_float, get_activation, in_place, relu_into
from .block import Block
from .kernels import conv as kernels
from .kernels import transposed
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
        raise UsageError(f"{what} must be an int or {dims} ints, got {value!r}")
    return items


def check_layout(layout: str | None, dims: int, layer: str) -> None:
    """Refuse a layout other than channels first (None means the default, which is)."""
    if layout not in (None, LAYOUTS[dims]):
        raise UsageError(f"{layer} supports layout {LAYOUTS[dims]!r} only, got {layout!r}")


def check_rank(array: np.ndarray, dims: int, layer: str) -> None:
    """Refuse an input that is not (N, C, *spatial) with ``dims`` spatial axes."""
    if array.ndim != dims + 2:
        raise InputError(f"{layer} expects a {dims + 2}-D {LAYOUTS[dims]} input, got shape {array.shape}")


def windows(padded: np.ndarray, kernel: Sizes, strides: Sizes, dilation: Sizes | None = None) -> np.ndarray:
    """View of shape (N, C, *out, *kernel): every (dilated, strided) window, no copy."""
    return kernels.windows(padded, kernel, strides, dilation)


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
            raise UsageError(
                f"channels ({self.channels}) and in_channels ({self.in_channels}) must be "
                f"divisible by groups ({self.groups})"
            )
        # Declared by each dimension's model (strides always, output_padding for transposes).
        output_padding, strides = vars(self).get("output_padding"), vars(self)["strides"]
        if output_padding is not None and any(p >= s for p, s in zip(output_padding, strides, strict=True)):
            raise UsageError(f"output_padding {output_padding} must be smaller than strides {strides}")
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
            raise UsageError(f"channels ({channels}) must be divisible by groups ({groups})")
        if in_channels and in_channels % self._groups:
            raise UsageError(f"in_channels ({in_channels}) must be divisible by groups ({groups})")
        if self._transpose and any(p >= s for p, s in zip(self._output_padding, self._strides, strict=True)):
            raise UsageError(
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
        return self._forward(x, backward=False)[0]

    def _forward(self, x: Any, backward: bool = True) -> tuple[np.ndarray, Any]:
        """The output, and what the backward needs of this call (``kernels.conv``). A ReLU or
        sigmoid of its own runs in place on each chunk of the output as the kernel computes it
        (LeNet's first convolution at 2 threads: 0.72 → 0.60 ms with its sigmoid)."""
        array = self._checked(x)
        if self._act is None:
            return self._compute(array, backward)
        activation = in_place(self._activation)
        if activation is not None and all(type(a) is np.ndarray for a in self._operands(array)):
            return self._compute(array, backward, activation)
        out, saved = self._compute(array, backward)
        budget.charge(budget.nbytes(out.shape, out.dtype), "its output")  # (a recorded operand too)
        return self._act(out), saved

    def _operands(self, array: np.ndarray) -> tuple[Any, ...]:
        return (array, self.weight.data(), *((self.bias.data(),) if self._use_bias else ()))

    def _checked(self, x: Any) -> np.ndarray:
        """The input as an array of this layer's dtype, its channels checked (the weight's
        deferred shape is then known)."""
        array = as_float(x, self._dtype)
        kind = type(self).__name__
        check_rank(array, self._dims, kind)
        c = array.shape[1]
        if c % self._groups:
            raise InputError(f"{kind} input has {c} channels, not divisible by groups={self._groups}")
        self.weight.shape = self._weight_shape(c)
        return array

    def folded_forward(self, x: Any, affine: Callable[[int], tuple[np.ndarray, np.ndarray]], *,
                       relu: bool) -> np.ndarray:
        """An inference call followed by ``out·scale + shift`` per output channel, with
        ``(scale, shift) = affine(channels)`` (a BatchNorm's at inference), and if ``relu`` a
        ReLU: the affine map folded into the weight and bias, the ReLU applied in place
        (``nn.fusion``'s step; for a layer with no activation of its own)."""
        array = self._checked(x)
        scale, shift = affine(self._channels)
        folded = self._scaled_weight(scale)
        bias = shift if not self._use_bias else self.bias.data() * scale + shift
        if type(array) is np.ndarray and type(folded) is np.ndarray and type(bias) is np.ndarray:
            return self._convolve(array, folded, bias, in_place("relu") if relu else None)
        out = self._convolve(array, folded, bias, None)
        return relu_into(out, out) if relu else out

    def _scaled_weight(self, scale: np.ndarray) -> np.ndarray:
        """The weight with each output channel's kernels times its ``scale``."""
        weight = self.weight.data()
        return weight * scale.reshape(-1, *(1,) * (weight.ndim - 1))

    def _convolve(self, array: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
                  activation: Callable[[np.ndarray], object] | None) -> np.ndarray:
        """An inference call on ``array`` with this weight and bias (folded ones), ``activation``
        applied in place."""
        return kernels.forward(array, weight, bias, self._geometry(), backward=False,
                               activation=activation)[0]

    def _geometry(self) -> kernels.Geometry:
        return kernels.Geometry(self._kernel, self._strides, self._padding, self._dilation, self._groups)

    def _compute(self, array: np.ndarray, backward: bool = True,
                 activation: Callable[[np.ndarray], object] | None = None) -> tuple[np.ndarray, Any]:
        """The convolution plus the bias (before the activation, unless ``activation`` is given
        to apply in place), and what the backward needs."""
        bias = self.bias.data() if self._use_bias else None
        return kernels.forward(array, self.weight.data(), bias, self._geometry(), backward=backward,
                               activation=activation)

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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """As a convolution's, with ``output_padding`` fifth, right after ``padding`` (Gluon's
        order); the convolution's own arguments follow it."""
        if len(args) > 4:  # output_padding given by position: it is the convolution's last
            if "output_padding" in kwargs:
                raise TypeError(f"{type(self).__name__}() got multiple values for argument 'output_padding'")
            args, kwargs = (*args[:4], *args[5:]), {**kwargs, "output_padding": args[4]}
        super().__init__(*args, **kwargs)

    def _weight_shape(self, in_channels: int) -> Sizes:
        return (in_channels, self._channels // self._groups, *self._kernel)

    @property
    def _in_channels(self) -> int:
        return self.weight.shape[0]

    def _compute(self, array: np.ndarray, backward: bool = True,
                 activation: Callable[[np.ndarray], object] | None = None) -> tuple[np.ndarray, Any]:
        bias = self.bias.data() if self._use_bias else None
        return self._convolve(array, self.weight.data(), bias, activation), None

    def _scaled_weight(self, scale: np.ndarray) -> np.ndarray:
        """The weight (in_channels, channels/groups, *kernel) with each output channel's kernels
        times its ``scale``: output channel g·channels/groups + j is column j of group g's rows."""
        weight = self.weight.data()
        groups, per = self._groups, self._channels // self._groups
        by_group = weight.reshape(groups, weight.shape[0] // groups, per, *weight.shape[2:])
        return (by_group * scale.reshape(groups, 1, per, *(1,) * (weight.ndim - 2))).reshape(weight.shape)

    def _convolve(self, array: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
                  activation: Callable[[np.ndarray], object] | None) -> np.ndarray:
        geometry = self._geometry()
        _, out_sizes = transposed.transpose_sizes(array.shape[2:], geometry, self._output_padding)
        if min(out_sizes) < 1:
            raise InputError(
                f"{type(self).__name__}: input of spatial size {array.shape[2:]} gives an empty output "
                f"{out_sizes} with padding {self._padding}"
            )
        out = transposed.transpose_forward(array, weight, bias, geometry, self._output_padding)
        if activation is not None:
            activation(out)
        return out


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
