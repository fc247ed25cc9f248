"""Each ONNX operator modelpack can compute, as layers or graph ops: one entry per operator.

Operators with weights become layers (``Gemm`` with a constant B is ``Dense``, ``Conv`` is
``Conv2D``, ...), so a chain of them loads as a ``Sequential``; the rest become ops of the op
table. Shape arithmetic on constants and on ``Shape`` results is folded here, never run from
the file. A translation that would not be exact (asymmetric padding, ``Gemm`` with a
transposed A, a pooling dilation) is refused naming the attribute.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

from ... import nn
from ...nn import registry
from .import_patterns import SILU
from .importer import Graph, to_array

__all__ = ["translate", "OPERATORS"]

_INT64_MAX = 2**63 - 1
Translator = Callable[[Graph, onnx.NodeProto, dict[str, Any]], None]


def translate(g: Graph, node: onnx.NodeProto) -> None:
    """Add what ``node`` computes to ``g``, or refuse it by operator name."""
    if node.domain not in ("", "ai.onnx"):
        raise g.fail(node, f"operator domain {node.domain!r} is not ONNX's own")
    translator = OPERATORS.get(node.op_type)
    if translator is None:
        raise g.fail(
            node,
            f"operator {node.op_type!r} has no modelpack equivalent; supported: "
            f"{', '.join(sorted(OPERATORS))}",
        )
    attrs = {a.name: _attribute(a) for a in node.attribute}
    translator(g, node, attrs)


def _attribute(attribute: onnx.AttributeProto) -> Any:
    if attribute.type == onnx.AttributeProto.TENSOR:
        return attribute.t
    value = onnx.helper.get_attribute_value(attribute)
    return value.decode() if isinstance(value, bytes) else value


def _const(g: Graph, node: onnx.NodeProto, index: int, what: str) -> np.ndarray:
    name = node.input[index] if index < len(node.input) else ""
    if name in g.vectors and all(isinstance(d, int) for d in g.vectors[name]):
        return np.asarray(g.vectors[name], np.int64)
    if name not in g.constants:
        raise g.fail(node, f"its {what} ({name!r}) must be a constant")
    return g.constants[name]


def _has(node: onnx.NodeProto, index: int) -> bool:
    return index < len(node.input) and node.input[index] != ""


def _only_first_output(g: Graph, node: onnx.NodeProto) -> None:
    used = {name for other in g.model.graph.node for name in other.input} | {
        o.name for o in g.model.graph.output
    }
    if any(name and name in used for name in node.output[1:]):
        raise g.fail(node, "its extra outputs are used; only the first is translated")


# -- constants and shapes ------------------------------------------------------------------------
def _constant(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    if "value" in attrs:
        g.constants[node.output[0]] = to_array(attrs["value"], g.where)
    elif "value_float" in attrs or "value_int" in attrs:
        g.constants[node.output[0]] = np.asarray(
            attrs.get("value_float", attrs.get("value_int")),
            np.float32 if "value_float" in attrs else np.int64,
        )
    elif "value_floats" in attrs or "value_ints" in attrs:
        g.constants[node.output[0]] = np.asarray(
            attrs.get("value_floats", attrs.get("value_ints")),
            np.float32 if "value_floats" in attrs else np.int64,
        )
    else:
        raise g.fail(node, f"a constant given as {sorted(attrs)}")


def _shape(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    dims = g.shape(node.input[0])
    if dims is None:
        raise g.fail(node, f"the shape of {node.input[0]!r} is not known")
    g.vectors[node.output[0]] = dims[attrs.get("start", 0) : attrs.get("end", len(dims))]


def _folds(g: Graph, node: onnx.NodeProto) -> bool:
    """True when every input is a shape vector or an integer constant (shape arithmetic)."""
    return (
        bool(node.input)
        and any(n in g.vectors for n in node.input)
        and all(
            n in g.vectors or (n in g.constants and g.constants[n].dtype.kind in "iu") or n == ""
            for n in node.input
        )
    )


def _vector(g: Graph, name: str) -> list[int | str]:
    return list(g.vectors[name]) if name in g.vectors else [int(v) for v in np.ravel(g.constants[name])]


def _gather(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    axis = attrs.get("axis", 0)
    data, indices = node.input[0], node.input[1]
    if _folds(g, node):
        vector, picks = _vector(g, data), np.asarray(_const(g, node, 1, "indices"))
        g.vectors[node.output[0]] = [vector[int(i)] for i in np.ravel(picks)]
        return
    if data in g.constants and indices not in g.constants and g.constants[data].ndim == 2 and axis == 0:
        weight = g.constants[data]
        block = nn.Embedding(weight.shape[0], weight.shape[1], dtype=weight.dtype.name)
        block.set_parameters({"weight": weight}, source=g.where)
        g.layer(node, block, g.value(indices, node), "embedding")
        return
    index = _const(g, node, 1, "indices")
    if index.ndim != 0:
        raise g.fail(node, "gathering several indices from a computed tensor (only one constant index)")
    whole: dict[str, Any] = {"slice": [None, None, None]}
    items: list[dict[str, Any]]
    if axis >= 0:
        items = [whole] * axis + [{"int": int(index)}]
    else:
        items = [{"ellipsis": True}, {"int": int(index)}, *([whole] * (-axis - 1))]
    g.op(node, "getitem", [g.value(data, node)], index=items)


def _unsqueeze(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    axes = attrs["axes"] if "axes" in attrs else [int(a) for a in _const(g, node, 1, "axes")]
    if node.input[0] in g.vectors:
        g.vectors[node.output[0]] = g.vectors[node.input[0]]  # a 0-d size becomes a 1-d vector
        return
    g.op(node, "expand_dims", [g.value(node.input[0], node)], axis=list(axes))


def _squeeze(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    axes = attrs.get("axes") or ([int(a) for a in _const(g, node, 1, "axes")] if _has(node, 1) else None)
    if node.input[0] in g.vectors:
        g.vectors[node.output[0]] = g.vectors[node.input[0]]
        return
    g.op(node, "squeeze", [g.value(node.input[0], node)], axis=None if axes is None else list(axes))


def _concat(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    if _folds(g, node):
        g.vectors[node.output[0]] = [d for name in node.input for d in _vector(g, name)]
        return
    g.op(node, "concatenate", [g.value(n, node) for n in node.input], axis=attrs["axis"])


def _cast(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    if node.input[0] in g.vectors:
        g.vectors[node.output[0]] = g.vectors[node.input[0]]
        return
    dtype = onnx.helper.tensor_dtype_to_np_dtype(attrs["to"]).name
    g.op(node, "cast", [g.value(node.input[0], node)], dtype=dtype)


def _slice(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    starts, ends = _const(g, node, 1, "starts"), _const(g, node, 2, "ends")
    rank_dims = g.shape(node.input[0])
    axes = _const(g, node, 3, "axes") if _has(node, 3) else np.arange(len(starts))
    steps = _const(g, node, 4, "steps") if _has(node, 4) else np.ones(len(starts), np.int64)
    if node.input[0] in g.vectors:
        vector = g.vectors[node.input[0]]
        g.vectors[node.output[0]] = vector[_py_slice(int(starts[0]), int(ends[0]), int(steps[0]))]
        return
    if rank_dims is None:
        raise g.fail(node, "the rank of its input is not known")
    items: list[dict[str, Any]] = [{"slice": [None, None, None]} for _ in rank_dims]
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        piece = _py_slice(int(start), int(end), int(step))
        items[int(axis) % len(rank_dims)] = {"slice": [piece.start, piece.stop, piece.step]}
    g.op(node, "getitem", [g.value(node.input[0], node)], index=items)


def _py_slice(start: int, end: int, step: int) -> slice:
    """ONNX's clamped bounds as Python's (INT64_MAX and friends mean "to the end")."""
    big = 2**62
    return slice(
        None if abs(start) >= big else start, None if abs(end) >= big else end, None if step == 1 else step
    )


def _reshape(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    target = _vector(g, node.input[1]) if node.input[1] in g.vectors or node.input[1] in g.constants else None
    if target is None:
        raise g.fail(node, f"its target shape ({node.input[1]!r}) is computed from values, not sizes")
    if not attrs.get("allowzero", 0) and 0 in target:
        source = g.shape(node.input[0])
        if source is None:
            raise g.fail(node, "a 0 (copy this size) in the target, but the input's shape is not known")
        target = [source[i] if d == 0 else d for i, d in enumerate(target)]
    g.op(node, "reshape", [g.value(node.input[0], node)], shape=target)


def _arith(op: str) -> Translator:
    def emit(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
        if _folds(g, node):  # arithmetic on sizes: fold when every size is known
            vectors = [_vector(g, n) for n in node.input]
            if all(isinstance(d, int) for v in vectors for d in v):
                arrays = [np.asarray(v, np.int64) for v in vectors]
                folded = {
                    "add": np.add,
                    "subtract": np.subtract,
                    "multiply": np.multiply,
                    "divide": np.floor_divide,
                }.get(op)
                if folded is not None:
                    g.vectors[node.output[0]] = [int(v) for v in np.ravel(folded(*arrays))]
                    return
            raise g.fail(node, "arithmetic on dynamic sizes")
        names = [g.value(n, node) for n in node.input]
        if len(names) > 2 and op in ("maximum", "minimum", "add"):
            while len(names) > 2:
                first = g._add(op, names[:2], {})
                names = [first, *names[2:]]
        g.op(node, op, names)

    return emit


def _unary(op: str, **fixed: Any) -> Translator:
    return lambda g, node, attrs: g.op(node, op, [g.value(node.input[0], node)], **fixed)


def _softmax(op: str) -> Translator:
    return lambda g, node, attrs: g.op(node, op, [g.value(node.input[0], node)], axis=attrs.get("axis", -1))


def _transpose(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    g.op(
        node,
        "transpose",
        [g.value(node.input[0], node)],
        axes=list(attrs["perm"]) if "perm" in attrs else None,
    )


def _reduce(op: str) -> Translator:
    def emit(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
        axes = attrs.get("axes")
        if axes is None and _has(node, 1):
            axes = [int(a) for a in _const(g, node, 1, "axes")]
        if not axes and attrs.get("noop_with_empty_axes", 0):
            g.alias(node, node.input[0])
            return
        g.op(
            node,
            op,
            [g.value(node.input[0], node)],
            axis=list(axes) if axes else None,
            keepdims=bool(attrs.get("keepdims", 1)),
        )

    return emit


def _where(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    g.op(node, "where", [g.value(n, node) for n in node.input])


def _identity(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    if node.op_type == "Dropout":
        if _has(node, 2) and bool(np.any(_const(g, node, 2, "training_mode"))):
            raise g.fail(node, "training_mode is on")
        _only_first_output(g, node)
    g.alias(node, node.input[0])


# -- layers ------------------------------------------------------------------------------------
def _activation_layer(block: Callable[[dict[str, Any]], nn.Block]) -> Translator:
    def emit(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
        try:
            layer = block(attrs)
        except ValueError as exc:
            raise g.fail(node, str(exc)) from None
        g.layer(node, layer, g.value(node.input[0], node), node.op_type.lower())

    return emit


def _gelu(attrs: dict[str, Any]) -> nn.Block:
    approximate = attrs.get("approximate", "none")
    if approximate == "none":
        return nn.Activation("gelu")
    if approximate == "tanh" and "GELU" in registry.known_layers():
        return registry.layer_type("GELU").build({"approximation": "tanh"})
    raise ValueError(f"approximate={approximate!r} (modelpack's gelu activation is exact)")


def _selu(attrs: dict[str, Any]) -> nn.Block:
    """ONNX's default constants are SELU's own; others have no modelpack equivalent."""
    alpha, gamma = (
        attrs.get("alpha", 1.67326319217681884765625),
        attrs.get("gamma", 1.05070102214813232421875),
    )
    if abs(alpha - 1.6732632) > 1e-6 or abs(gamma - 1.050701) > 1e-6 or "SELU" not in registry.known_layers():
        raise ValueError(f"alpha={alpha}, gamma={gamma} (modelpack's SELU has the standard constants)")
    return registry.layer_type("SELU").build({})


def _prelu(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    slope = _float_weight(g, node, 1, "slope")
    channels = slope.size
    if channels > 1 and (slope.shape[0] != channels or slope.ndim < 1):
        raise g.fail(node, f"a slope of shape {slope.shape} (modelpack's PReLU has one per channel, axis 1)")
    dims = g.shape(node.input[0])
    if channels > 1 and (dims is None or len(dims) != slope.ndim + 1):
        raise g.fail(node, f"a slope of shape {slope.shape} that is not per channel for this input")
    block = _registered(g, node, "PReLU", {"in_channels": channels, "dtype": slope.dtype.name})
    block.set_parameters({"alpha": slope.reshape(-1)}, source=g.where)
    g.layer(node, block, g.value(node.input[0], node), "prelu")


def _float_weight(g: Graph, node: onnx.NodeProto, index: int, what: str) -> np.ndarray:
    array = _const(g, node, index, what)
    if array.dtype.name not in ("float16", "float32", "float64"):
        raise g.fail(node, f"its {what} has dtype {array.dtype}, not a float type")
    return array


def _gemm(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    if attrs.get("transA", 0):
        raise g.fail(node, "transA=1 (a transposed input)")
    if node.input[1] not in g.constants:
        raise g.fail(node, "its B is computed, not a constant weight")
    b = _float_weight(g, node, 1, "B")
    weight = np.ascontiguousarray(b if attrs.get("transB", 0) else b.T) * b.dtype.type(
        attrs.get("alpha", 1.0)
    )
    units, in_units = weight.shape
    arrays = {"weight": weight.astype(b.dtype)}
    if _has(node, 2):
        bias = _float_weight(g, node, 2, "C")
        if bias.size not in (1, units) or (bias.ndim == 2 and bias.shape[0] != 1):
            raise g.fail(node, f"its C of shape {bias.shape} is not a bias of {units}")
        arrays["bias"] = (
            np.broadcast_to(bias.reshape(-1), (units,)) * bias.dtype.type(attrs.get("beta", 1.0))
        ).astype(b.dtype)
    block = nn.Dense(units, use_bias="bias" in arrays, flatten=False, dtype=b.dtype.name, in_units=in_units)
    block.set_parameters(arrays, source=g.where)
    g.layer(node, block, g.value(node.input[0], node), "dense")


def _matmul(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    if (
        node.input[1] in g.constants
        and g.constants[node.input[1]].ndim == 2
        and node.input[0] not in g.constants
    ):
        b = _float_weight(g, node, 1, "B")
        block = nn.Dense(b.shape[1], use_bias=False, flatten=False, dtype=b.dtype.name, in_units=b.shape[0])
        block.set_parameters({"weight": np.ascontiguousarray(b.T)}, source=g.where)
        g.layer(node, block, g.value(node.input[0], node), "dense")
        return
    g.op(node, "matmul", [g.value(n, node) for n in node.input])


def _symmetric(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any], dims: int) -> list[int]:
    pads = list(attrs.get("pads", [0] * 2 * dims))
    if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise g.fail(node, f"auto_pad={attrs['auto_pad']!r} (give explicit pads)")
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


def _conv(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    weight = _float_weight(g, node, 1, "weight")
    dims = weight.ndim - 2
    groups = attrs.get("group", 1)
    arrays = {"weight": weight}
    if _has(node, 2):
        arrays["bias"] = _float_weight(g, node, 2, "bias")
    config = {
        "channels": weight.shape[0],
        "kernel_size": list(weight.shape[2:]),
        "strides": list(attrs.get("strides", [1] * dims)),
        "padding": _symmetric(g, node, attrs, dims),
        "dilation": list(attrs.get("dilations", [1] * dims)),
        "groups": groups,
        "use_bias": "bias" in arrays,
        "in_channels": weight.shape[1] * groups,
        "dtype": weight.dtype.name,
    }
    block = _registered(g, node, f"Conv{dims}D", config)
    block.set_parameters(arrays, source=g.where)
    g.layer(node, block, g.value(node.input[0], node), "conv")


def _pool(average: bool) -> Translator:
    def emit(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
        kernel = list(attrs["kernel_shape"])
        dims = len(kernel)
        if any(d != 1 for d in attrs.get("dilations", [1] * dims)) or attrs.get("storage_order", 0):
            raise g.fail(
                node, f"dilations={attrs.get('dilations')} / storage_order (modelpack pools without)"
            )
        strides = list(attrs.get("strides", [1] * dims))
        pads = list(attrs.get("pads", [0] * 2 * dims))
        ceil = bool(attrs.get("ceil_mode", 0))
        include = bool(attrs.get("count_include_pad", 0))
        if pads[:dims] != pads[dims:]:
            ceil = _ceil_from_end_pads(g, node, kernel, strides, pads, ceil, average and include)
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


def _ceil_from_end_pads(
    g: Graph,
    node: onnx.NodeProto,
    kernel: list[int],
    strides: list[int],
    pads: list[int],
    ceil: bool,
    counts_padding: bool,
) -> bool:
    """Unequal begin and end pads as modelpack's symmetric padding (the begin pads) plus the
    ``ceil_mode`` that gives the same windows — possible when the input's sizes are fixed."""
    dims = g.shape(node.input[0])
    sizes = [n for n in (dims or [])[2:] if isinstance(n, int)]
    count = len(kernel)
    if not ceil and len(sizes) == count:
        for candidate in (False, True):
            if all(
                _same_windows(n, k, s, b, e, candidate, counts_padding)
                for n, k, s, b, e in zip(sizes, kernel, strides, pads[:count], pads[count:], strict=True)
            ):
                return candidate
    raise g.fail(node, f"asymmetric pads {pads} (begin {pads[:count]}, end {pads[count:]})")


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


def _global_pool(kind: str) -> Translator:
    def emit(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
        dims = g.shape(node.input[0])
        if dims is None:
            raise g.fail(node, "the rank of its input is not known")
        block = _registered(g, node, f"Global{kind}Pool{len(dims) - 2}D", {})
        g.layer(node, block, g.value(node.input[0], node), node.op_type.lower())

    return emit


def _batchnorm(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    if attrs.get("training_mode", 0):
        raise g.fail(node, "training_mode=1")
    _only_first_output(g, node)
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


def _layernorm(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    _only_first_output(g, node)
    scale = _float_weight(g, node, 1, "scale")
    dims = g.shape(node.input[0])
    axis = attrs.get("axis", -1)
    if scale.ndim != 1 or not (axis == -1 or (dims is not None and axis == len(dims) - 1)):
        raise g.fail(node, f"normalising over axes from {axis} on (modelpack normalises the last axis only)")
    arrays = {"gamma": scale}
    if _has(node, 2):
        arrays["beta"] = _float_weight(g, node, 2, "B")
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
    g.layer(node, block, g.value(node.input[0], node), "layernorm")


def _flatten(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    if attrs.get("axis", 1) != 1:
        raise g.fail(node, f"axis={attrs['axis']} (modelpack flattens from axis 1)")
    g.layer(node, nn.Flatten(), g.value(node.input[0], node), "flatten")


OPERATORS: dict[str, Translator] = {
    "Constant": _constant,
    "Shape": _shape,
    "Gather": _gather,
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Concat": _concat,
    "Cast": _cast,
    "Slice": _slice,
    "Reshape": _reshape,
    "Identity": _identity,
    "Dropout": _identity,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Conv": _conv,
    "MaxPool": _pool(False),
    "AveragePool": _pool(True),
    "GlobalAveragePool": _global_pool("Avg"),
    "GlobalMaxPool": _global_pool("Max"),
    "BatchNormalization": _batchnorm,
    "LayerNormalization": _layernorm,
    "Flatten": _flatten,
    "Relu": _activation_layer(lambda a: nn.Activation("relu")),
    "Sigmoid": _activation_layer(lambda a: nn.Activation("sigmoid")),
    "Tanh": _activation_layer(lambda a: nn.Activation("tanh")),
    "Softplus": _activation_layer(lambda a: nn.Activation("softrelu")),
    "Softsign": _activation_layer(lambda a: nn.Activation("softsign")),
    "Gelu": _activation_layer(_gelu),
    "Selu": _activation_layer(_selu),
    "PRelu": _prelu,
    SILU: _activation_layer(lambda a: nn.Activation("silu")),
    "LeakyRelu": _activation_layer(lambda a: nn.LeakyReLU(a.get("alpha", 0.01))),
    "Elu": _activation_layer(lambda a: nn.ELU(a.get("alpha", 1.0))),
    "Add": _arith("add"),
    "Sub": _arith("subtract"),
    "Mul": _arith("multiply"),
    "Div": _arith("divide"),
    "Pow": _arith("power"),
    "Max": _arith("maximum"),
    "Min": _arith("minimum"),
    "Neg": _unary("negative"),
    "Abs": _unary("abs"),
    "Exp": _unary("exp"),
    "Log": _unary("log"),
    "Sqrt": _unary("sqrt"),
    "Sin": _unary("sin"),
    "Cos": _unary("cos"),
    "Greater": _arith("greater"),
    "Less": _arith("less"),
    "Equal": _arith("equal"),
    "GreaterOrEqual": _arith("greater_equal"),
    "LessOrEqual": _arith("less_equal"),
    "Where": _where,
    "Softmax": _softmax("softmax"),
    "LogSoftmax": _softmax("log_softmax"),
    "Transpose": _transpose,
    "ReduceSum": _reduce("sum"),
    "ReduceMean": _reduce("mean"),
    "ReduceMax": _reduce("max"),
    "ReduceMin": _reduce("min"),
}
