"""MXNet's operators over spatial axes, in 1, 2 or 3 dimensions: ``Convolution``,
``Deconvolution``, ``Pooling``, ``Pad``, ``InstanceNorm`` and ``GroupNorm``.

The number of spatial dimensions is the kernel's length (for ``Pad``, the rank the widths
describe); each becomes the registered layer of that dimension. Each entry adds to
``lowering.LOWERINGS``; ``lowering`` imports this module once, last.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...nn.conv import LAYOUTS
from ...nn.norm import GroupNorm, InstanceNorm
from ...nn.padding import ReflectionPad2D
from ...nn.registry import layer_type
from .lowering import Node, float_dtype, lowers

__all__: list[str] = []

_DIMS = (1, 2, 3)  # spatial dimensions with layers


def _layer(name: str, dims: int) -> Callable[..., Any]:
    """The registered layer class of ``dims`` spatial dimensions: ``_layer("Conv{}D", 2)`` is
    ``Conv2D``."""
    return layer_type(name.format(dims)).cls


def _kernel(node: Node, key: str = "kernel") -> tuple[int, ...]:
    """The kernel, whose length fixes the number of spatial dimensions (1 to 3)."""
    kernel = node.attrs.integers(key)
    if len(kernel) not in _DIMS:
        raise node.refuse(f"{key}={kernel} ({len(kernel)} spatial dimensions; 1 to 3 are supported)")
    return kernel


def _sizes(node: Node, key: str, default: int, dims: int) -> tuple[int, ...]:
    """A per-axis attribute (``stride``, ``pad``...): absent or ``()`` means ``default``."""
    values = node.attrs.integers(key, ()) or (default,) * dims
    if len(values) != dims:
        raise node.refuse(f"{key}={values} for a {dims}-D kernel")
    return values


def _layout(node: Node, dims: int) -> None:
    layout = node.attrs.text("layout", "None")
    if layout not in ("None", LAYOUTS[dims]):
        raise node.refuse(f"layout {layout} (a {dims}-D kernel reads {LAYOUTS[dims]})")


@lowers("Convolution")
def _conv(node: Node) -> str:
    kernel = _kernel(node)
    dims = len(kernel)
    _layout(node, dims)
    no_bias = node.attrs.flag("no_bias", False)
    groups = node.attrs.integer("num_group", 1)
    weight = node.param(1, "weight")
    if weight.ndim != 2 + dims or tuple(weight.shape[2:]) != kernel:
        raise node.refuse(f"a weight of shape {weight.shape} for kernel {kernel}")
    block = _layer("Conv{}D", dims)(
        node.attrs.integer("num_filter"), kernel, strides=_sizes(node, "stride", 1, dims),
        padding=_sizes(node, "pad", 0, dims), dilation=_sizes(node, "dilate", 1, dims), groups=groups,
        use_bias=not no_bias, in_channels=weight.shape[1] * groups, dtype=float_dtype(node, weight),
    )
    arrays = {"weight": weight} if no_bias else {"weight": weight, "bias": node.param(2, "bias")}
    return node.add_layer(block, node.value(0), **arrays)


@lowers("Deconvolution")
def _deconv(node: Node) -> str:
    kernel = _kernel(node)
    dims = len(kernel)
    _layout(node, dims)
    target = node.attrs.optional_integers("target_shape")
    if target and any(target):
        # MXNet then derives pad and adj from each input's size: no fixed layer computes that.
        raise node.refuse(f"target_shape={target} (give pad and adj instead)")
    no_bias = node.attrs.flag("no_bias", True)
    groups = node.attrs.integer("num_group", 1)
    channels = node.attrs.integer("num_filter")
    weight = node.param(1, "weight")
    if weight.ndim != 2 + dims or tuple(weight.shape[2:]) != kernel or weight.shape[1] * groups != channels:
        raise node.refuse(f"a weight of shape {weight.shape} for kernel {kernel}, num_filter={channels}")
    strides, adj = _sizes(node, "stride", 1, dims), _sizes(node, "adj", 0, dims)
    if any(a >= s for a, s in zip(adj, strides, strict=True)):
        raise node.refuse(f"adj={adj} not smaller than stride={strides}")
    block = _layer("Conv{}DTranspose", dims)(
        channels, kernel, strides=strides, padding=_sizes(node, "pad", 0, dims), output_padding=adj,
        dilation=_sizes(node, "dilate", 1, dims), groups=groups, use_bias=not no_bias,
        in_channels=weight.shape[0], dtype=float_dtype(node, weight),
    )
    arrays = {"weight": weight} if no_bias else {"weight": weight, "bias": node.param(2, "bias")}
    return node.add_layer(block, node.value(0), **arrays)


@lowers("Pooling")
def _pool(node: Node) -> str:
    pool_type = node.attrs.text("pool_type", "max")
    if pool_type not in ("max", "avg"):
        raise node.refuse(f"pool_type {pool_type!r}")
    node.attrs.integer("p_value", 2)  # lp pooling only
    convention = node.attrs.text("pooling_convention", "valid")
    include_pad = node.attrs.flag("count_include_pad", True)
    if node.attrs.flag("global_pool", False):
        # MXNet ignores kernel, stride and pad here; the kernel's length still gives the rank.
        kernel = node.attrs.integers("kernel", ())
        node.attrs.integers("stride", ())
        node.attrs.integers("pad", ())
        dims = len(kernel) if kernel else len(node.builder.shapes(node.value(0))[0]) - 2
        if dims not in _DIMS:
            raise node.refuse(f"global pooling over {dims} spatial dimensions")
        _layout(node, dims)
        return node.add_layer(_layer(f"Global{pool_type.title()}Pool{{}}D", dims)(), node.value(0))
    kernel = _kernel(node)
    dims = len(kernel)
    _layout(node, dims)
    stride, pad = _sizes(node, "stride", 1, dims), _sizes(node, "pad", 0, dims)
    if convention not in ("valid", "full"):
        raise node.refuse(f"pooling_convention {convention!r}")
    if convention == "full" and any(s > k - p for s, k, p in zip(stride, kernel, pad, strict=True)):
        # MXNet's 'full' may then place a last window wholly in padding; ceil_mode never does.
        raise node.refuse(f"pooling_convention 'full' with stride {stride} > kernel {kernel} - pad {pad}")
    ceil = convention == "full"
    cls = _layer(f"{pool_type.title()}Pool{{}}D", dims)
    if pool_type == "max":
        return node.add_layer(cls(kernel, stride, pad, ceil_mode=ceil), node.value(0))
    block = cls(kernel, stride, pad, ceil_mode=ceil, count_include_pad=include_pad)
    return node.add_layer(block, node.value(0))


@lowers("InstanceNorm")
def _instancenorm(node: Node) -> str:
    # The operator normalises with the channels on axis 1; Gluon swaps other axes around it.
    gamma = node.param(1, "gamma")
    block = InstanceNorm(axis=1, epsilon=node.attrs.number("eps", 1e-3), in_channels=gamma.shape[0],
                         dtype=float_dtype(node, gamma))
    return node.add_layer(block, node.value(0), gamma=gamma, beta=node.param(2, "beta"))


@lowers("GroupNorm")
def _groupnorm(node: Node) -> str:
    if node.attrs.flag("output_mean_var", False):
        raise node.refuse("output_mean_var=True")
    groups = node.attrs.integer("num_groups", 1)
    gamma = node.param(1, "gamma")
    if gamma.shape != (groups,):
        raise node.refuse(f"a gamma of shape {gamma.shape} for num_groups={groups}")
    block = GroupNorm(groups, epsilon=node.attrs.number("eps", 1e-5), dtype=float_dtype(node, gamma))
    return node.add_layer(block, node.value(0), gamma=gamma, beta=node.param(2, "beta"))


@lowers("Pad", "pad")
def _pad(node: Node) -> str:
    """Reflection of NCHW input is the ``ReflectionPad2D`` layer; every other case is built
    from graph ops, one padded axis at a time: border slices (``getitem``), repeated edges
    (``repeat``) and constants (``x ** 0 · 0 + value`` keeps NaNs out), joined by ``concatenate``."""
    mode = node.attrs.text("mode", "constant")
    widths = node.attrs.integers("pad_width")
    value = node.attrs.number("constant_value", 0.0)
    if mode not in ("constant", "edge", "reflect"):
        raise node.refuse(f"mode {mode!r}")
    if len(widths) % 2 or len(widths) < 6 or min(widths) < 0:
        raise node.refuse(f"pad_width={widths}")
    x = node.value(0)
    if mode == "reflect" and len(widths) == 8 and not any(widths[:4]):
        return node.add_layer(ReflectionPad2D(widths), x)
    b = node.builder
    rank = len(widths) // 2
    for axis in range(rank):
        before, after = widths[2 * axis], widths[2 * axis + 1]
        if not before and not after:
            continue
        parts = []
        for count, first in ((before, True), (after, False)):
            if count:
                parts.append(_border(node, x, axis, rank, count, first, mode, value))
            if first:
                parts.append(x)
        x = b.op("concatenate", *parts, axis=axis)
    return x


def _border(
    node: Node, x: str, axis: int, rank: int, count: int, first: bool, mode: str, value: float
) -> str:
    """The ``count`` values padded on one side of ``axis``."""
    b = node.builder

    def take(start: int | None, stop: int | None, step: int | None = None) -> str:
        index: list[dict[str, Any]] = [{"slice": [None, None, None]}] * rank
        index[axis] = {"slice": [start, stop, step]}
        return b.op("getitem", x, index=index)

    if mode == "reflect":  # mirrored about the edge, the edge itself not repeated
        # A slice past the far edge would silently give fewer values: the size must be known.
        a, c, _ = b.shapes(x)
        if a[axis] != c[axis] or count >= a[axis]:
            size = a[axis] if a[axis] == c[axis] else "dynamic"
            raise node.refuse(f"reflect padding of {count} on axis {axis} (of size {size}; it must "
                              "be fixed and larger; pass fixed input_shapes)")
        return take(count, 0, -1) if first else take(-2, -count - 2, -1)
    edge = take(0, 1) if first else take(-1, None)
    if mode == "constant":
        edge = b.op("add", b.op("multiply", b.op("power", edge, b.scalar(0)), b.scalar(0)), b.scalar(value))
    return b.op("repeat", edge, repeats=count, axis=axis)
