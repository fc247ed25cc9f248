"""``npx.convolution`` and ``npx.pooling``: MXNet's functional convolution and pooling.

MXNet's arguments, defaults and checks (1.9.1's ``Convolution`` and ``Pooling``): channels-first
layouts only (``NCW``, ``NCHW``, ``NCDHW``; MXNet's CPU refuses the others too), a number for a
size means one axis (``kernel=3`` is a 1-D kernel), ``stride`` defaults to 1 and ``pad`` to 0 on
every axis (for pooling too: not to the kernel, as Gluon's layers do).

The arithmetic is the layers' own: ``nn.kernels.conv`` (im2col and GEMM, or the paths it picks)
and ``nn.kernels.pool`` (windows folded axis by axis). Inside ``autograd.record()`` a call with
an input on the tape (a Variable, or an array with ``attach_grad()``) is one node whose VJP
is those kernels' backward: the gradients of the data, the weight and the bias for a
convolution, of the data for pooling (max: to the first maximum of each window in scan order;
average: a share to every position its divisor counted; sum: the whole gradient to each).

Pooling follows MXNet's CPU operator: ``pooling_convention='full'`` takes ceil of the window
count, so the last window may hang past the padding (MXNet's rule: no window is dropped, as
PyTorch's ``ceil_mode`` would); a max window with nothing of the input in it gives the dtype's
lowest value (-3.4028235e+38 in float32), an average or sum one 0; the average divides by the
window's positions inside the padded input (``count_include_pad``, the default) or inside the
input. ``global_pool=True`` pools each plane whole, whatever ``kernel``, ``stride`` and ``pad``
say. Refused, as MXNet's oneDNN build refuses them: ``pad`` not smaller than ``kernel`` (also for
``sum``, which MXNet computes), and a kernel larger than the padded input. Not offered:
``pool_type='lp'`` and ``pooling_convention='same'``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd.variable import is_recording, make_node
from ..errors import UsageError
from ..nn.devices import on_device, on_tape
from ..nn.kernels import conv as conv_kernels
from ..nn.kernels import conv_grads
from ..nn.kernels import pool as pool_kernels
from .inputs import is_variable, no_out, refuse_tracing, sizes, value

__all__ = ["convolution", "pooling"]

_LAYOUTS = {1: "NCW", 2: "NCHW", 3: "NCDHW"}
_POOL_TYPES = ("max", "avg", "sum")
_CONVENTIONS = ("valid", "full")


def convolution(
    data: Any = None,
    weight: Any = None,
    bias: Any = None,
    kernel: Any = None,
    stride: Any = None,
    dilate: Any = None,
    pad: Any = None,
    num_filter: Any = None,
    num_group: int = 1,
    workspace: int = 1024,
    no_bias: bool = False,
    cudnn_tune: str | None = None,
    cudnn_off: bool = False,
    layout: str | None = None,
    out: Any = None,
    name: str | None = None,
) -> Any:
    """MXNet's ``npx.convolution``: cross-correlation of ``data`` (N, C, *spatial) with
    ``weight`` (num_filter, C / num_group, *kernel), plus ``bias`` (num_filter,) unless
    ``no_bias``. ``workspace``, ``cudnn_tune``, ``cudnn_off`` and ``name`` are accepted and
    have no effect (there is one CPU implementation).

    >>> npx.convolution(data=X, weight=W, bias=b, kernel=(3, 3), num_filter=20)  # doctest: +SKIP
    """
    op = "convolution"
    refuse_tracing(op, (data, weight, bias),
                   "use the layer (nn.Conv1D, nn.Conv2D or nn.Conv3D), which a graph stores")
    no_out(op, out)
    inputs = [on_tape(data), on_tape(weight), None if bias is None else on_tape(bias)]
    x = _float(value(op, "data", inputs[0]))
    k = sizes(op, "kernel", kernel, minimum=1)
    dims = len(k)
    if not 1 <= dims <= 3:
        raise UsageError(f"npx.{op}: kernel must have 1, 2 or 3 axes, got {kernel!r}")
    if x.ndim != dims + 2:
        raise UsageError(f"npx.{op}: a {dims}-D kernel needs {dims + 2}-D data ({_LAYOUTS[dims]}), "
                         f"got shape {x.shape}")
    _check_layout(op, layout, dims)
    strides = _per_axis(op, "stride", stride, k, default=1, minimum=1)
    dilation = _per_axis(op, "dilate", dilate, k, default=1, minimum=1)
    padding = _per_axis(op, "pad", pad, k, default=0, minimum=0)
    filters, groups = _count(op, "num_filter", num_filter), _count(op, "num_group", num_group)
    channels = x.shape[1]
    if filters % groups or channels % groups:
        raise UsageError(f"npx.{op}: num_filter ({filters}) and the data's channels ({channels}) must be "
                         f"divisible by num_group ({groups})")
    w = value(op, "weight", inputs[1]).astype(x.dtype, copy=False)
    expected = (filters, channels // groups, *k)
    if w.shape != expected:
        raise UsageError(f"npx.{op}: weight must have shape {expected} (num_filter, channels / num_group, "
                         f"*kernel), got {w.shape}")
    if no_bias:
        if bias is not None:
            raise UsageError(f"npx.{op}: bias given with no_bias=True; pass one or the other")
        b = None
    else:
        if bias is None:
            raise UsageError(f"npx.{op}: bias is required unless no_bias=True")
        b = value(op, "bias", inputs[2]).astype(x.dtype, copy=False)
        if b.shape != (filters,):
            raise UsageError(f"npx.{op}: bias must have shape ({filters},) (num_filter), got {b.shape}")
    geometry = conv_kernels.Geometry(k, strides, padding, dilation, groups)
    span = geometry.span
    if any(n + 2 * p < s for n, p, s in zip(x.shape[2:], padding, span, strict=True)):
        raise UsageError(f"npx.{op}: the kernel's extent {span} (dilated) exceeds the data's spatial size "
                         f"{x.shape[2:]} padded by {padding}")
    on_the_tape = is_recording() and any(is_variable(item) for item in inputs)
    result, saved = conv_kernels.forward(x, w, b, geometry, backward=on_the_tape)
    if not on_the_tape:
        return on_device(result)
    wants_x, wants_w, wants_b = (is_variable(item) for item in inputs)

    def vjp(grad: np.ndarray) -> list[Any]:
        grad_x, grad_w = conv_kernels.backward(grad, saved, w, geometry, need_x=wants_x, need_weight=wants_w)
        return [grad_x, grad_w, conv_grads.bias(grad) if wants_b else None]

    return make_node(op, result, inputs, vjp)


def pooling(
    data: Any = None,
    kernel: Any = None,
    pool_type: str = "max",
    global_pool: bool = False,
    cudnn_off: bool = False,
    pooling_convention: str = "valid",
    stride: Any = None,
    pad: Any = None,
    p_value: int | None = None,
    count_include_pad: bool | None = None,
    layout: str | None = None,
    out: Any = None,
    name: str | None = None,
) -> Any:
    """MXNet's ``npx.pooling``: ``pool_type`` ``max``, ``avg`` or ``sum`` over windows of
    ``kernel`` moved by ``stride`` (default 1) over ``data`` padded by ``pad``; see the module's
    docstring for ``pooling_convention``, ``count_include_pad`` and ``global_pool``.
    ``cudnn_off``, ``p_value`` and ``name`` are accepted and have no effect.

    >>> npx.pooling(data=h, pool_type='avg', kernel=(2, 2), stride=(2, 2))  # doctest: +SKIP
    """
    op = "pooling"
    refuse_tracing(op, (data,), "use the layer (nn.MaxPool2D, nn.AvgPool2D, nn.GlobalAvgPool2D, ... in "
                                "1, 2 or 3 dimensions), which a graph stores")
    no_out(op, out)
    if pool_type not in _POOL_TYPES:
        raise UsageError(f"npx.{op}: pool_type {pool_type!r} is not supported; the ones there are: "
                         f"{', '.join(_POOL_TYPES)}")
    if pooling_convention not in _CONVENTIONS:
        raise UsageError(f"npx.{op}: pooling_convention {pooling_convention!r} is not supported; the ones "
                         f"there are: {', '.join(_CONVENTIONS)}")
    if count_include_pad is not None and not isinstance(count_include_pad, (bool, np.bool_)):
        raise UsageError(f"npx.{op}: count_include_pad must be True, False or None, "
                         f"got {count_include_pad!r}")
    include_pad = True if count_include_pad is None else bool(count_include_pad)
    source = on_tape(data)
    x = _float(value(op, "data", source))
    dims = x.ndim - 2
    if not 1 <= dims <= 3:
        raise UsageError(f"npx.{op}: data must be 3-D, 4-D or 5-D (NCW, NCHW, NCDHW), got shape {x.shape}")
    _check_layout(op, layout, dims)
    if global_pool:  # MXNet: the whole plane, at stride 1 without padding, whatever was given
        k, strides, padding = x.shape[2:], (1,) * dims, (0,) * dims
    else:
        k = sizes(op, "kernel", kernel, minimum=1)
        if not k:
            raise UsageError(f"npx.{op}: kernel is required unless global_pool=True")
        if len(k) != dims:
            raise UsageError(f"npx.{op}: a {len(k)}-D kernel needs {len(k) + 2}-D data, got shape {x.shape}")
        strides = _per_axis(op, "stride", stride, k, default=1, minimum=1)
        padding = _per_axis(op, "pad", pad, k, default=0, minimum=0)
        if any(p >= w for p, w in zip(padding, k, strict=True)):
            raise UsageError(f"npx.{op}: pad {padding} must be smaller than kernel {k} on every axis")
        if any(w > n + 2 * p for w, n, p in zip(k, x.shape[2:], padding, strict=True)):
            raise UsageError(f"npx.{op}: kernel {k} exceeds the data's spatial size {x.shape[2:]} "
                             f"padded by {padding}")
    full = pooling_convention == "full" and not global_pool
    axes = zip(x.shape[2:], k, strides, padding, strict=True)
    out_sizes = tuple(_windows(n, w, s, p, full) for n, w, s, p in axes)
    if pool_type == "max":
        result = pool_kernels.fold_axes(x, k, strides, padding, out_sizes, np.maximum, -np.inf)
        np.maximum(result, np.finfo(x.dtype).min, out=result)  # an empty window: MXNet's lowest value
    else:
        result = pool_kernels.fold_axes(x, k, strides, padding, out_sizes, np.add, 0.0)
        divisors = (pool_kernels.divisors(x.shape[2:], out_sizes, k, strides, padding, include_pad, x.dtype)
                    if pool_type == "avg" else None)
        if divisors is not None:
            result /= divisors
    if not (is_recording() and is_variable(source)):
        return on_device(result)

    def vjp(grad: np.ndarray) -> list[Any]:
        if pool_type == "max":
            return [pool_kernels.max_backward(grad, x, result, k, strides, padding)]
        share = grad if divisors is None else grad / divisors
        return [pool_kernels.spread(share, k, strides, padding, x.shape[2:])]

    return make_node(op, result, [source], vjp)


def _float(array: np.ndarray) -> np.ndarray:
    """A float array keeps its dtype; any other is computed in float32."""
    return array if np.issubdtype(array.dtype, np.floating) else array.astype(np.float32)


def _check_layout(op: str, layout: str | None, dims: int) -> None:
    if layout not in (None, _LAYOUTS[dims]):
        raise UsageError(f"npx.{op}: layout {layout!r} is not supported for {dims}-D data; the one there is: "
                         f"{_LAYOUTS[dims]!r} (channels first, as MXNet computes on the CPU)")


def _per_axis(op: str, name: str, given: Any, kernel: tuple[int, ...], *, default: int,
              minimum: int) -> tuple[int, ...]:
    """A size per axis of the kernel: ``default`` on every axis when not given."""
    values = sizes(op, name, given, minimum=minimum)
    if not values:
        return (default,) * len(kernel)
    if len(values) != len(kernel):
        raise UsageError(f"npx.{op}: {name} {values} must have as many axes as kernel {kernel}")
    return values


def _count(op: str, name: str, given: Any) -> int:
    """A positive int argument (``num_filter``, ``num_group``)."""
    if given is None:
        raise UsageError(f"npx.{op}: {name} is required")
    if not isinstance(given, (int, np.integer)) or isinstance(given, (bool, np.bool_)) or given < 1:
        raise UsageError(f"npx.{op}: {name} must be a positive int, got {given!r}")
    return int(given)


def _windows(size: int, kernel: int, stride: int, pad: int, full: bool) -> int:
    """Windows along an axis: MXNet's ``valid`` (floor) or ``full`` (ceil) convention."""
    span = size + 2 * pad - kernel
    return 1 + (-(-span // stride) if full else span // stride)
