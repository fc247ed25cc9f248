"""ONNX operators with weights (and activations) as modelpack layers, for ``import_ops``' table.

``Gemm`` with a constant B is ``Dense`` (``transB`` decides the weight's layout), ``Conv`` is
``Conv1D``/``2D``/``3D``, pools keep their strides and read unequal begin and end pads as
``ceil_mode`` where the input's sizes are fixed, ``BatchNormalization`` is ``BatchNorm`` from
its running statistics. A chain of these loads as a ``Sequential``. A translation that would
not be exact (asymmetric padding, a transposed A, a pooling dilation) is refused naming the
attribute.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

from ... import nn
from ...nn import registry, sizes
from .importer import Dims, Graph, Translator, broadcast_dims, constant_input, has_input, only_first_output


def activation_layer(block: Callable[[dict[str, Any]], nn.Block]) -> Translator:
    def emit(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
        try:
            layer = block(attrs)
        except ValueError as exc:
            raise g.fail(node, str(exc)) from None
        g.layer(node, layer, g.value(node.input[0], node), node.op_type.lower())

    return emit


def gelu(attrs: dict[str, Any]) -> nn.Block:
    approximate = attrs.get("approximate", "none")
    if approximate == "none":
        return nn.Activation("gelu")
    if approximate == "tanh" and "GELU" in registry.known_layers():
        return registry.layer_type("GELU").build({"approximation": "tanh"})
    raise ValueError(f"approximate={approximate!r} (modelpack's gelu activation is exact)")


# ONNX's Selu defaults: SELU's own constants (as float32 rounds them)
SELU_ALPHA, SELU_GAMMA = 1.67326319217681884765625, 1.05070102214813232421875


def selu(attrs: dict[str, Any]) -> nn.Block:
    """ONNX's default constants are SELU's own; others have no modelpack layer
    (``import_ops_more._selu`` composes them)."""
    alpha, gamma = attrs.get("alpha", SELU_ALPHA), attrs.get("gamma", SELU_GAMMA)
    if abs(alpha - 1.6732632) > 1e-6 or abs(gamma - 1.050701) > 1e-6 or "SELU" not in registry.known_layers():
        raise ValueError(f"alpha={alpha}, gamma={gamma} (modelpack's SELU has the standard constants)")
    return registry.layer_type("SELU").build({})


def mish(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """Mish (opset 18): x·tanh(softplus(x)), as exporters before it wrote it node by node."""
    x = g.value(node.input[0], node)
    bounded = g.child(nn.Activation("tanh"), g.child(nn.Activation("softrelu"), x, "softplus"), "tanh")
    g.op(node, "multiply", [x, bounded])


def prelu(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    slope = _float_weight(g, node, 1, "slope")
    dims = g.shape(node.input[0])
    if dims is not None and slope.ndim == len(dims) and slope.shape[0] == 1:
        slope = slope[0]  # (torch.onnx's default exporter: (1, C, 1, 1), the batch axis kept)
    channels = slope.size
    if channels > 1 and (slope.shape[0] != channels or slope.ndim < 1):
        raise g.fail(node, f"a slope of shape {slope.shape} (modelpack's PReLU has one per channel, axis 1)")
    if channels > 1 and (dims is None or len(dims) != slope.ndim + 1):
        raise g.fail(node, f"a slope of shape {slope.shape} that is not per channel for this input")
    block = _registered(g, node, "PReLU", {"in_channels": channels, "dtype": slope.dtype.name})
    block.set_parameters({"alpha": slope.reshape(-1)}, source=g.where)
    g.layer(node, block, g.value(node.input[0], node), "prelu")


def _float_weight(g: Graph, node: onnx.NodeProto, index: int, what: str) -> np.ndarray:
    array = constant_input(g, node, index, what)
    if array.dtype.name not in ("float16", "float32", "float64"):
        raise g.fail(node, f"its {what} has dtype {array.dtype}, not a float type")
    return array


def gemm(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    if attrs.get("transA", 0) or node.input[1] not in g.constants:
        _gemm_of_values(g, node, attrs)
        return
    b = _float_weight(g, node, 1, "B")
    if b.ndim != 2:  # (Gemm's B is a matrix; onnx's checker says so, a damaged file may not)
        raise g.fail(node, f"its B has shape {b.shape}, not a matrix")
    weight = np.ascontiguousarray(b if attrs.get("transB", 0) else b.T)
    alpha = attrs.get("alpha", 1.0)
    if alpha != 1.0:  # (a pass over the weight, which may be hundreds of MB, only where it scales)
        weight = weight * b.dtype.type(alpha)
    units, in_units = weight.shape
    arrays = {"weight": weight.astype(b.dtype, copy=False)}
    if has_input(node, 2):
        bias = _float_weight(g, node, 2, "C")
        if bias.size not in (1, units) or (bias.ndim == 2 and bias.shape[0] != 1):
            raise g.fail(node, f"its C of shape {bias.shape} is not a bias of {units}")
        arrays["bias"] = (
            np.broadcast_to(bias.reshape(-1), (units,)) * bias.dtype.type(attrs.get("beta", 1.0))
        ).astype(b.dtype)
    block = nn.Dense(units, use_bias="bias" in arrays, flatten=False, dtype=b.dtype.name, in_units=in_units)
    block.set_parameters(arrays, source=g.where)
    g.layer(node, block, g.value(node.input[0], node), "dense")


def _gemm_of_values(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """A Gemm that is no Dense layer (its B computed, as torch.mm of two values exports, or its
    A transposed): alpha · A′ · B′ + beta · C as graph ops."""
    a, b = g.value(node.input[0], node), g.value(node.input[1], node)
    if attrs.get("transA", 0):
        a = g._add("transpose", [a], {"axes": [1, 0]})
    if attrs.get("transB", 0):
        b = g._add("transpose", [b], {"axes": [1, 0]})
    product = g._add("matmul", [a, b], {})
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    if alpha != 1.0:
        product = g._add("multiply", [product, g.scalar(alpha)], {})
    if not has_input(node, 2):
        g.values[node.output[0]] = product
        return
    c = g.value(node.input[2], node)
    g.op(node, "add", [product, c if beta == 1.0 else g._add("multiply", [c, g.scalar(beta)], {})])


def matmul(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    if (
        node.input[1] in g.constants
        and g.constants[node.input[1]].ndim == 2
        and node.input[0] not in g.constants
    ):
        b = _float_weight(g, node, 1, "B")
        block = nn.Dense(b.shape[1], use_bias=False, flatten=False, dtype=b.dtype.name, in_units=b.shape[0])
        block.set_parameters({"weight": np.ascontiguousarray(b.T)}, source=g.where)
        g.layer(node, block, g.value(node.input[0], node), "dense")
    else:
        g.op(node, "matmul", [g.value(n, node) for n in node.input])
    a_shape, b_shape = g.shape(node.input[0]), g.shape(node.input[1])
    if a_shape is not None and b_shape is not None and len(a_shape) >= 2 and len(b_shape) >= 2:
        batch = broadcast_dims([a_shape[:-2], b_shape[:-2]]) if len(a_shape) > 2 or len(b_shape) > 2 else []
        g.learn(node.output[0], [*batch, a_shape[-2], b_shape[-1]])


def _explicit_pads(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any], kernel: list[int]) -> list[int]:
    """The node's pads, begin then end per spatial axis: its ``pads``, or what its ``auto_pad``
    means. SAME_UPPER / SAME_LOWER pad so that the output has ceil(size / stride) positions,
    the odd one at the end / beginning: at stride 1 that is (k - 1)·d whatever the size;
    otherwise the input's sizes must be fixed."""
    dims = len(kernel)
    mode = attrs.get("auto_pad", "NOTSET")
    if mode in ("NOTSET", "VALID"):
        return list(attrs.get("pads", [0] * 2 * dims)) if mode == "NOTSET" else [0] * 2 * dims
    if mode not in ("SAME_UPPER", "SAME_LOWER"):
        raise g.fail(node, f"auto_pad={mode!r}")
    strides = list(attrs.get("strides", [1] * dims))
    dilations = list(attrs.get("dilations", [1] * dims))
    shape = g.shape(node.input[0])
    extents = shape[2:] if shape is not None and len(shape) == dims + 2 else [None] * dims
    begins, ends = [], []
    for size, k, stride, dilation in zip(extents, kernel, strides, dilations, strict=True):
        reach = (k - 1) * dilation + 1
        if stride == 1:
            total = reach - 1
        elif isinstance(size, int):
            total = max((-(-size // stride) - 1) * stride + reach - size, 0)
        else:
            raise g.fail(node, f"auto_pad={mode!r} at stride {stride} on an input of unknown size "
                               f"{size!r} (give explicit pads)")
        small, large = total // 2, total - total // 2
        begins.append(small if mode == "SAME_UPPER" else large)
        ends.append(large if mode == "SAME_UPPER" else small)
    return begins + ends


def _symmetric(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any], kernel: list[int]) -> list[int]:
    dims = len(kernel)
    pads = _explicit_pads(g, node, attrs, kernel)
    if pads[:dims] != pads[dims:]:
        raise g.fail(node, f"asymmetric pads {pads} (begin {pads[:dims]}, end {pads[dims:]})")
    return pads[:dims]


def _registered(g: Graph, node: onnx.NodeProto, type_name: str, config: dict[str, Any]) -> nn.Block:
    """A layer of a registered type (1-D and 3-D ones exist once their layers land)."""
    if type_name not in registry.known_layers():
        raise g.fail(node, f"it would be a {type_name}, which this modelpack does not have")
    try:
        return registry.layer_type(type_name).build(config)
    except (ValueError, TypeError) as exc:
        raise g.fail(node, str(exc)) from None


def conv(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """Conv and ConvTranspose; the transposed weight (in, out / groups, *kernel) is modelpack's
    layout too."""
    transpose = node.op_type == "ConvTranspose"
    if transpose and "output_shape" in attrs:
        raise g.fail(node, "output_shape (give pads and output_padding)")
    if transpose and attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise g.fail(node, f"auto_pad={attrs['auto_pad']!r} (give explicit pads and output_padding)")
    weight = _float_weight(g, node, 1, "weight")
    dims = weight.ndim - 2
    groups = attrs.get("group", 1)
    arrays = {"weight": weight}
    if has_input(node, 2):
        arrays["bias"] = _float_weight(g, node, 2, "bias")
    channels, in_channels = weight.shape[0], weight.shape[1] * groups
    if transpose:
        channels, in_channels = in_channels, weight.shape[0]
    config = {
        "channels": channels,
        "kernel_size": list(weight.shape[2:]),
        "strides": list(attrs.get("strides", [1] * dims)),
        "padding": _symmetric(g, node, attrs, list(weight.shape[2:])),
        **({"output_padding": list(attrs.get("output_padding", [0] * dims))} if transpose else {}),
        "dilation": list(attrs.get("dilations", [1] * dims)),
        "groups": groups,
        "use_bias": "bias" in arrays,
        "in_channels": in_channels,
        "dtype": weight.dtype.name,
    }
    block = _registered(g, node, f"Conv{dims}D{'Transpose' if transpose else ''}", config)
    block.set_parameters(arrays, source=g.where)
    g.layer(node, block, g.value(node.input[0], node), "conv_transpose" if transpose else "conv")


def pool(average: bool) -> Translator:
    def emit(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
        kernel = list(attrs["kernel_shape"])
        dims = len(kernel)
        dilations = list(attrs.get("dilations", [1] * dims))
        if attrs.get("storage_order", 0) or (average and any(d != 1 for d in dilations)):
            raise g.fail(
                node, f"dilations={attrs.get('dilations')} / storage_order (modelpack pools without)"
            )
        strides = list(attrs.get("strides", [1] * dims))
        pads = _explicit_pads(g, node, attrs, kernel)
        ceil = bool(attrs.get("ceil_mode", 0))
        if any(d != 1 for d in dilations):
            _dilated_max_pool(g, node, kernel, strides, dilations, pads, ceil)
            return
        include = bool(attrs.get("count_include_pad", 0))
        if pads[:dims] != pads[dims:]:
            counted = average and include
            as_ceil = None if ceil else _ceil_from_end_pads(g, node, kernel, strides, pads, counted)
            if as_ceil is None:
                _pool_padded(g, node, kernel, strides, pads, ceil, average, include)
                return
            ceil = as_ceil
        config: dict[str, Any] = {
            "pool_size": kernel,
            "strides": strides,
            "padding": pads[:dims],
            "ceil_mode": ceil,
        }
        if average:
            config["count_include_pad"] = include
        block = _registered(g, node, f"{'Avg' if average else 'Max'}Pool{dims}D", config)
        g.layer(node, block, g.value(node.input[0], node), "avgpool" if average else "maxpool")

    return emit


def _ceil_from_end_pads(g: Graph, node: onnx.NodeProto, kernel: list[int], strides: list[int],
                        pads: list[int], counts_padding: bool) -> bool | None:
    """The ``ceil_mode`` with which modelpack's symmetric padding (the begin pads) makes the
    same windows as unequal begin and end pads, if one does (the input's sizes fixed)."""
    dims = g.shape(node.input[0])
    sizes = [n for n in (dims or [])[2:] if isinstance(n, int)]
    count = len(kernel)
    if len(sizes) == count:
        for candidate in (False, True):
            if all(
                _same_windows(n, k, s, b, e, candidate, counts_padding)
                for n, k, s, b, e in zip(sizes, kernel, strides, pads[:count], pads[count:], strict=True)
            ):
                return candidate
    return None


def _axis_slice(g: Graph, x: str, rank: int, axis: int, start: int | None, stop: int | None,
                step: int | None = None) -> str:
    """``x[..., start:stop:step, ...]`` along ``axis`` of a rank-``rank`` value, the other axes
    whole: the slices padding, pooling and cropping are built from."""
    items: list[dict[str, Any]] = [{"slice": [None, None, None]}] * rank
    items[axis] = {"slice": [start, stop, step]}
    return g._add("getitem", [x], {"index": items})


# Slices a dilated max pool is computed from (the taps of every axis, one axis after another).
DILATED_MAX_TAPS = 256


def _dilated_max_pool(g: Graph, node: onnx.NodeProto, kernel: list[int], strides: list[int],
                      dilations: list[int], pads: list[int], ceil: bool) -> None:
    """MaxPool with dilations (modelpack's pooling layers have none), on fixed input sizes: the
    input padded with −∞, then axis by axis (a maximum over a box is one over each of its
    axes in turn) the maximum of that axis's taps, each a strided slice."""
    dims = g.shape(node.input[0])
    count = len(kernel)
    sizes = dims[2:] if dims is not None and len(dims) == count + 2 else []
    if ceil or len(sizes) != count or not all(isinstance(n, int) for n in sizes):
        where = "with ceil_mode" if ceil else f"on input shape {dims}"
        raise g.fail(node, f"dilations={dilations} {where} (dilated pools take fixed sizes, rounding down)")
    if len(dilations) != count or min(dilations) < 1:
        raise g.fail(node, f"dilations={dilations} for a {kernel} kernel (one of at least 1 per axis)")
    if sum(kernel) > DILATED_MAX_TAPS:
        raise g.fail(node, f"dilations={dilations} of a {kernel} kernel (at most {DILATED_MAX_TAPS} taps)")
    outs = [(int(n) + b + e - (k - 1) * d - 1) // s + 1 for n, k, s, d, b, e in
            zip(sizes, kernel, strides, dilations, pads[:count], pads[count:], strict=True)]
    if min(outs) < 1:
        raise g.fail(node, f"no window of a {kernel} kernel dilated by {dilations} fits an input of {sizes}")
    x = _padded(g, node, g.value(node.input[0], node), dims or [], [0, 0, *pads[:count], 0, 0, *pads[count:]],
                -math.inf)
    for axis, (k, d, s, o) in enumerate(zip(kernel, dilations, strides, outs, strict=True)):
        along = x
        for tap in range(k):
            part = _axis_slice(g, along, count + 2, axis + 2, tap * d, tap * d + s * (o - 1) + 1, s)
            x = part if tap == 0 else g._add("maximum", [x, part], {})
    g.values[node.output[0]] = x


def _pool_padded(g: Graph, node: onnx.NodeProto, kernel: list[int], strides: list[int], pads: list[int],
                 ceil: bool, average: bool, include: bool) -> None:
    """Pooling with unequal begin and end pads that no ``ceil_mode`` expresses (Caffe2's
    GoogLeNet: a 7×7 average over 7×7 maps padded at the end only): the input padded first
    (−∞ for a maximum, 0 for an average), then pooled unpadded. An average that does not count
    the padding is divided by its windows' share of the input: the same pooling over a padded
    map of ones."""
    dims = g.shape(node.input[0])
    count = len(kernel)
    if ceil or dims is None or len(dims) != count + 2:
        raise g.fail(node, f"asymmetric pads {pads} (begin {pads[:count]}, end {pads[count:]})"
                           + (" with ceil_mode" if ceil else ""))
    spread = [0, 0, *pads[:count], 0, 0, *pads[count:]]
    config: dict[str, Any] = {"pool_size": kernel, "strides": strides, "padding": [0] * count}
    if average:
        config["count_include_pad"] = True
    kind = f"{'Avg' if average else 'Max'}Pool{count}D"

    def pooled(x: str) -> str:
        name = g._fresh(node.name or kind.lower())
        g.children[name] = _registered(g, node, kind, config)
        return g._add("layer", [x], {"block": name})

    x = g.value(node.input[0], node)
    result = pooled(_padded(g, node, x, dims, spread, 0.0 if average else -math.inf))
    if average and not include:
        ones = g._add("ones_like", [_axis_slice(g, x, len(dims), 1, None, 1)], {"dtype": None})
        share = pooled(_padded(g, node, ones, [dims[0], 1, *dims[2:]], spread, 0.0))
        result = g._add("divide", [result, share], {})
    g.values[node.output[0]] = result


def _same_windows(n: int, k: int, s: int, begin: int, end: int, ceil: bool, counts_padding: bool) -> bool:
    """ONNX's floor rule with (begin, end) pads and modelpack's with (begin, begin) and ``ceil``
    make the same windows (and, counting padding, the same divisors)."""
    onnx_out = (n + begin + end - k) // s + 1
    span = n + 2 * begin - k
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= n + begin:
        out -= 1
    last_end = (onnx_out - 1) * s + k - begin  # where the last window ends, in input coordinates
    return out == onnx_out and (not counts_padding or last_end <= n + min(begin, end))


def global_pool(kind: str) -> Translator:
    def emit(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
        dims = g.shape(node.input[0])
        if dims is None:
            raise g.fail(node, "the rank of its input is not known")
        block = _registered(g, node, f"Global{kind}Pool{len(dims) - 2}D", {})
        g.layer(node, block, g.value(node.input[0], node), node.op_type.lower())

    return emit


def batchnorm(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    if attrs.get("training_mode", 0):
        raise g.fail(node, "training_mode=1")
    only_first_output(g, node)
    scale, bias, mean, var = (
        _float_weight(g, node, i, what) for i, what in enumerate(("scale", "B", "mean", "var"), start=1)
    )
    block = nn.BatchNorm(
        axis=1,
        momentum=float(attrs.get("momentum", 0.9)),
        epsilon=float(attrs.get("epsilon", 1e-5)),
        in_channels=scale.shape[0],
        dtype=scale.dtype.name,
    )
    block.set_parameters(
        {"gamma": scale, "beta": bias, "running_mean": mean, "running_var": var}, source=g.where
    )
    g.layer(node, block, g.value(node.input[0], node), "batchnorm")


def rms_normalization(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """RMSNormalization (opset 23): x / √(mean(x²) + ε) · scale, the mean over the axes from
    ``axis`` on; a 16-bit input computed in float32 (``stash_type`` 1, the default) and cast back."""
    dims = g.shape(node.input[0])
    if dims is None:
        raise g.fail(node, "its input's rank is not known")
    axis = attrs.get("axis", -1)
    if not -len(dims) <= axis < len(dims):
        raise g.fail(node, f"axis={axis} is out of range for rank {len(dims)}")
    if attrs.get("stash_type", 1) != 1:
        raise g.fail(node, f"stash_type={attrs['stash_type']} (only float32, 1, is taken)")
    x, dtype = g.value(node.input[0], node), g.dtype(node.input[0])
    narrow = dtype is not None and dtype.itemsize < 4
    if narrow:
        x = g._add("cast", [x], {"dtype": "float32"})
    squares = g._add("mean", [g._add("square", [x], {})], {"axis": list(range(axis % len(dims), len(dims))),
                                                            "keepdims": True})
    root = g._add("sqrt", [g._add("add", [squares, g.scalar(float(attrs.get("epsilon", 1e-5)))], {})], {})
    y = g._add("divide", [x, root], {})
    if dtype is not None and narrow:
        y = g._add("cast", [y], {"dtype": dtype.name})
    g.op(node, "multiply", [y, g.value(node.input[1], node)])


def layernorm(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    only_first_output(g, node)
    scale = _float_weight(g, node, 1, "scale")
    dims = g.shape(node.input[0])
    axis = attrs.get("axis", -1)
    x = g.value(node.input[0], node)
    arrays = {"gamma": scale}
    if has_input(node, 2):
        arrays["beta"] = _float_weight(g, node, 2, "B")
    back = None
    if not (axis == -1 or (dims is not None and axis == len(dims) - 1)):
        # over several trailing axes (torch's LayerNorm([4, 5])): those axes flattened into one,
        # normalised, and laid out again; the scale and bias flattened the same way
        if dims is None:
            raise g.fail(node, f"normalising over axes from {axis} on, of an input of unknown rank")
        start = axis % len(dims)
        trailing = dims[start:]
        if not all(isinstance(d, int) for d in trailing) or scale.size != math.prod(trailing):
            raise g.fail(node, f"normalising over axes from {axis} on, of sizes {trailing} "
                               "(their sizes fixed, the scale's their product)")
        x = g._add("reshape", [x], {"shape": [*dims[:start], scale.size]})
        arrays = {key: array.reshape(-1) for key, array in arrays.items()}
        scale, back = arrays["gamma"], list(dims)
    if scale.ndim != 1:
        raise g.fail(node, f"a scale of shape {list(scale.shape)} for the last axis")
    block = nn.LayerNorm(
        axis=-1,
        epsilon=float(attrs.get("epsilon", 1e-5)),
        center="beta" in arrays,
        in_channels=scale.shape[0],
        dtype=scale.dtype.name,
    )
    if "beta" not in arrays:
        arrays["beta"] = np.zeros_like(scale)
    block.set_parameters(arrays, source=g.where)
    g.layer(node, block, x, "layernorm")
    if back is not None:
        g.values[node.output[0]] = g._add("reshape", [g.values[node.output[0]]], {"shape": back})


def _constant_pad(g: Graph, node: onnx.NodeProto, pads: list[int]) -> None:
    """Pad with a constant (0 unless given): ``_padded``."""
    dims = g.shape(node.input[0])
    if dims is None or len(pads) != 2 * len(dims):
        raise g.fail(node, f"pads {pads} for an input of shape {dims}")
    value = 0.0
    if has_input(node, 2):
        value = float(np.ravel(constant_input(g, node, 2, "constant_value"))[0])
    g.values[node.output[0]] = _padded(g, node, g.value(node.input[0], node), dims, pads, value)


def _padded(g: Graph, node: onnx.NodeProto, x: str, dims: Dims, pads: list[int], value: float) -> str:
    """``x`` (of shape ``dims``, the dtype of the node's input) padded with ``value``, ONNX's
    ``pads`` (every axis's begin, then every axis's end): per padded axis, blocks of that value
    joined on either side (``full`` of the input's other sizes, named ones included); a negative
    pad crops instead."""
    dtype = g.dtypes.get(node.input[0])
    if dtype is None:
        raise g.fail(node, "constant padding of an input whose dtype is not known")
    current: list[int | str | None] = list(dims)
    for axis in range(len(dims)):
        begin, end = pads[axis], pads[axis + len(dims)]
        if begin < 0 or end < 0:  # a negative pad crops
            x = _axis_slice(g, x, len(dims), axis, max(-begin, 0) or None, end if end < 0 else None)
            size, cropped = current[axis], max(-begin, 0) + max(-end, 0)
            current[axis] = None if size is None else sizes.combined("subtract", size, cropped)
            begin, end = max(begin, 0), max(end, 0)
        if begin or end:
            if any(size is None for size in current):
                raise g.fail(node, f"padding after a crop of a size that follows the input: {dims}")
            blocks = [g._add("full", [], {"shape": [*current[:axis], width, *current[axis + 1:]],
                                          "value": value, "dtype": dtype.name}) if width else None
                      for width in (begin, end)]
            x = g._add("concatenate", [v for v in (blocks[0], x, blocks[1]) if v is not None], {"axis": axis})
            size = current[axis]
            current[axis] = None if size is None else sizes.combined("add", size, begin + end)
    return x


def flatten(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """Flatten from axis 1 is the Flatten layer; from another axis, a reshape to the two
    products of the sizes before and from it (size expressions where they follow the input)."""
    axis = attrs.get("axis", 1)
    if axis == 1:
        g.layer(node, nn.Flatten(), g.value(node.input[0], node), "flatten")
        return
    dims = g.shape(node.input[0])
    if dims is None:
        raise g.fail(node, f"axis={axis} of an input of unknown rank")
    split = axis + len(dims) if axis < 0 else axis  # (from -rank to rank: rank leaves a trailing 1)
    if not 0 <= split <= len(dims):
        raise g.fail(node, f"axis={axis} of an input of rank {len(dims)}")
    halves = [sizes.product(dims[:split]), sizes.product(dims[split:])]
    if None in halves:
        raise g.fail(node, f"axis={axis}: the sizes {dims} multiply beyond a size expression")
    g.op(node, "reshape", [g.value(node.input[0], node)], shape=halves)


def instancenorm(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    scale, bias = _float_weight(g, node, 1, "scale"), _float_weight(g, node, 2, "B")
    config = {
        "axis": 1,
        "epsilon": float(attrs.get("epsilon", 1e-5)),
        "center": True,
        "scale": True,
        "in_channels": scale.shape[0],
        "dtype": scale.dtype.name,
    }
    block = _registered(g, node, "InstanceNorm", config)
    block.set_parameters({"gamma": scale, "beta": bias}, source=g.where)
    g.layer(node, block, g.value(node.input[0], node), "instancenorm")


def pad(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """Constant padding (``F.pad``'s default) is ``_padded``; reflection of the last two axes of
    an NCHW input is ReflectionPad2D; edge, wrap and other reflections are ``_pad_from_input``."""
    mode = attrs.get("mode", "constant")
    pads = [int(p) for p in constant_input(g, node, 1, "pads")]
    if has_input(node, 3):
        raise g.fail(node, f"mode={mode!r} with axes (give pads for every axis)")
    if mode == "constant":
        _constant_pad(g, node, pads)
        return
    if mode == "reflect" and len(pads) == 8 and not any(pads[i] for i in (0, 1, 4, 5)) and min(pads) >= 0:
        width = [0, 0, 0, 0, pads[2], pads[6], pads[3], pads[7]]  # (before, after) per axis
        block = _registered(g, node, "ReflectionPad2D", {"padding": width})
        g.layer(node, block, g.value(node.input[0], node), "reflection_pad")
        return
    if mode not in ("reflect", "edge", "wrap"):
        raise g.fail(node, f"mode={mode!r}")
    _pad_from_input(g, node, pads, mode)


def _pad_from_input(g: Graph, node: onnx.NodeProto, pads: list[int], mode: str) -> None:
    """Edge, wrap or reflect padding as slices of the input joined on either side, axis by axis:
    its first or last value repeated (edge), its other end (wrap), its values mirrored about
    the end one (reflect). Those read within the axis, so its size must be known and wide enough."""
    dims = g.shape(node.input[0])
    if dims is None or len(pads) != 2 * len(dims):
        raise g.fail(node, f"pads {pads} for an input of shape {dims}")
    rank, x = len(dims), g.value(node.input[0], node)
    for axis, size in enumerate(dims):
        begin, end = pads[axis], pads[axis + rank]
        if not begin and not end:
            continue
        reach = max(begin, end) + (mode == "reflect")
        if min(begin, end) < 0 or (mode != "edge" and not (isinstance(size, int) and reach <= size)):
            raise g.fail(node, f"mode={mode!r} pads {begin} and {end} on axis {axis} of size {size!r}")
        sides: list[str | None] = []
        for width, before in ((begin, True), (end, False)):
            if not width:
                sides.append(None)
            elif mode == "edge":
                start, stop = (0, 1) if before else (-1, None)
                value = _axis_slice(g, x, rank, axis, start, stop)
                sides.append(g._add("repeat", [value], {"repeats": width, "axis": axis}))
            elif mode == "wrap":
                start, stop = (-width, None) if before else (0, width)
                sides.append(_axis_slice(g, x, rank, axis, start, stop))
            else:  # reflect: the values next to the end one, mirrored
                start, stop = (width, 0) if before else (-2, -width - 2)
                sides.append(_axis_slice(g, x, rank, axis, start, stop, -1))
        x = g._add("concatenate", [v for v in (sides[0], x, sides[1]) if v is not None], {"axis": axis})
    g.values[node.output[0]] = x
