"""Output shapes where onnx's shape inference lost them.

onnx's inference names a size afresh wherever it cannot follow it: a Reshape, Slice or Concat
whose sizes come from computed values, and from there every Conv, pool or Concat of a value
holding such a name. A model exported with a dynamic batch is full of them, and shape
arithmetic on them (torch's channel shuffle takes ``x.size(1) // 2``; a Swin window reshape
multiplies the batch by a window count) cannot be written as a size. So after each node is
translated, ``follow`` works its outputs' shapes out from its inputs' known ones, by its
operator's rule here, and ``Graph.learn`` lets each fresh name stand for the size found.
Only sizes that follow from the inputs' sizes and the node's constants are written; any other
stays unknown (None), as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

from ...nn import sizes
from .importer import Dims, Graph, broadcast_dims, has_input

__all__ = ["follow"]

Shape = list["int | str | None"]
# A rule: each output's shape (None where it cannot say), from the node's inputs and attributes.
Rule = Callable[[Graph, onnx.NodeProto, dict[str, Any]], "list[Shape | None] | None"]

# Operators whose output has their first input's shape.
SAME_SHAPE = frozenset({
    "Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "BatchNormalization", "Cast", "Ceil", "Celu",
    "Clip", "Cos", "Cosh", "CumSum", "Dropout", "Elu", "Erf", "Exp", "Floor", "Gelu", "GroupNormalization",
    "HardSigmoid", "HardSwish", "Hardmax", "Identity", "InstanceNormalization", "LRN", "LayerNormalization",
    "LeakyRelu", "Log", "LogSoftmax", "LpNormalization", "MeanVarianceNormalization", "Mish", "Neg", "Not",
    "PRelu", "Reciprocal", "Relu", "Round", "Selu", "Shrink", "Sigmoid", "Sign", "Sin", "Sinh", "Softmax",
    "Softplus", "Softsign", "Sqrt", "Tan", "Tanh", "ThresholdedRelu",
})
# Operators whose inputs broadcast to the output, numpy's way.
BROADCAST = frozenset({"Add", "And", "Div", "Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual",
                       "Max", "Mean", "Min", "Mod", "Mul", "Or", "Pow", "Sub", "Sum", "Where", "Xor"})


def follow(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """Learn the shapes of ``node``'s outputs that onnx's inference lost, where its rule can
    tell them from what is known of its inputs."""
    rule = _rule(node.op_type)
    if rule is None or not any(name and _lost(g, name) for name in node.output):
        return
    found = rule(g, node, attrs)
    for name, dims in zip(node.output, found or [], strict=False):
        if name and dims is not None and _lost(g, name):
            g.learn(name, dims)


def _rule(op: str) -> Rule | None:
    if op in SAME_SHAPE:
        return _same
    if op in BROADCAST:
        return _broadcast
    return RULES.get(op)


def _lost(g: Graph, name: str) -> bool:
    """Whether ONNX value ``name``'s shape is unknown, or holds a size no graph input carries."""
    if name in g.vectors or name in g.constants:
        return False
    dims = g.shape(name)
    if dims is None:
        return True
    carried = _carried(g)
    return any(isinstance(d, str) and not _follows(d, carried) for d in dims)


def _carried(g: Graph) -> set[str]:
    return {d for graph_input in g.inputs for d in graph_input["shape"] if isinstance(d, str)}


def _follows(size: str, carried: set[str]) -> bool:
    try:
        return set(sizes.parse(size).names) <= carried
    except ValueError:
        return False


def _dims(g: Graph, name: str) -> Dims | None:
    return g.shape(name) if name else None


def _agreed(g: Graph, found: list[int | str]) -> int | str:
    """One size that several inputs must share: a number if one gives it, else a size the graph
    inputs carry, else the first."""
    carried = _carried(g)
    numbers = [d for d in found if isinstance(d, int)]
    if numbers:
        return numbers[0]
    following = [d for d in found if isinstance(d, str) and _follows(d, carried)]
    return following[0] if following else found[0]


def _same(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[Shape | None] | None:
    dims = _dims(g, node.input[0])
    return None if dims is None else [list(dims)]


def _broadcast(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[Shape | None] | None:
    shapes = [_dims(g, name) for name in node.input if name]
    if not shapes or any(shape is None for shape in shapes):
        return None
    return [broadcast_dims([shape for shape in shapes if shape is not None])]


def _concat(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[Shape | None] | None:
    shapes = [_dims(g, name) for name in node.input if name]
    if not shapes or any(shape is None for shape in shapes) or len({len(s) for s in shapes if s}) != 1:
        return None
    known = [shape for shape in shapes if shape is not None]
    rank = len(known[0])
    axis = int(attrs.get("axis", 0)) % rank
    joined: Shape = []
    for index in range(rank):
        here = [shape[index] for shape in known]
        if index != axis:
            joined.append(_agreed(g, here))
            continue
        total: int | str | None = here[0]
        for size in here[1:]:
            total = None if total is None else sizes.combined("add", total, size)
        joined.append(total)
    return [joined]


def _slice(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[Shape | None] | None:
    """The sliced sizes; a slice from 0 to a size the input gives (``position_ids[:, :seq_len]``)
    has that size (where the array holds fewer, what reads the slice meets the shorter array
    and refuses it when the model runs, as torch's model does)."""
    dims = _dims(g, node.input[0])
    known = {i: g.known(node.input[i]) for i in range(1, 5) if has_input(node, i)}
    given = {i: array for i, array in known.items() if array is not None}
    named = g.vectors.get(node.input[2]) if 2 not in given and has_input(node, 2) else None
    if named is not None:
        given[2], known[2] = np.asarray([-1 if isinstance(d, str) else d for d in named], np.int64), None
    if dims is None or 1 not in given or 2 not in given or len(given) != len(known):
        return None
    starts, ends = np.ravel(given[1]), np.ravel(given[2])
    axes = np.ravel(given[3]) if 3 in given else np.arange(len(starts))
    steps = np.ravel(given[4]) if 4 in given else np.ones(len(starts), np.int64)
    out: Shape = list(dims)
    for index, (start, end, axis, step) in enumerate(zip(starts, ends, axes, steps, strict=True)):
        axis = int(axis) % len(dims)
        size = dims[axis]
        if named is not None and isinstance(named[index], str):
            out[axis] = named[index] if (int(start), int(step)) == (0, 1) else None
        elif isinstance(size, int):
            out[axis] = len(range(*slice(int(start), int(end), int(step)).indices(size)))
        elif not (int(start) == 0 and int(end) >= 2**62 and int(step) == 1):
            out[axis] = None
    return [out]


def _split(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[Shape | None] | None:
    dims = _dims(g, node.input[0])
    if dims is None:
        return None
    axis = int(attrs.get("axis", 0)) % len(dims)
    if has_input(node, 1):
        given = g.known(node.input[1])
        if given is None:
            return None
        pieces: list[int | str | None] = [int(s) for s in np.ravel(given)]
    else:
        size, count = dims[axis], len(node.output)
        if isinstance(size, int):
            piece = -(-size // count)
            pieces = [*[piece] * (count - 1), size - piece * (count - 1)]
        else:
            pieces = [sizes.combined("divide", size, count)] * count
    return [[*dims[:axis], piece, *dims[axis + 1:]] for piece in pieces]


def _windows(size: int | str, kernel: int, stride: int, dilation: int, begin: int, end: int,
             ceil: bool = False) -> int | None:
    """Output positions along one axis (a number only: a named size stays unknown)."""
    if not isinstance(size, int):
        return None
    span = size + begin + end - dilation * (kernel - 1) - 1
    if span < 0:
        return None
    if ceil and span % stride:
        return None  # (where the last window starts in the padding, the rules differ by opset)
    return span // stride + 1


def _spatial(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any], kernel: list[int],
             dims: Dims) -> list[int | None] | None:
    count = len(kernel)
    if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        return None
    pads = list(attrs.get("pads", [0] * 2 * count))
    strides = list(attrs.get("strides", [1] * count))
    dilations = list(attrs.get("dilations", [1] * count))
    ceil = bool(attrs.get("ceil_mode", 0))
    return [_windows(dims[2 + i], kernel[i], strides[i], dilations[i], pads[i], pads[count + i], ceil)
            for i in range(count)]


def _conv(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[Shape | None] | None:
    dims, weight = _dims(g, node.input[0]), _dims(g, node.input[1])
    if dims is None or weight is None or len(dims) < 3 or len(weight) != len(dims):
        return None
    kernel = [int(k) for k in attrs.get("kernel_shape", weight[2:])] if all(
        isinstance(k, int) for k in weight[2:]) else None
    spatial = _spatial(g, node, attrs, kernel, dims) if kernel is not None else None
    return [[dims[0], weight[0], *(spatial or [None] * (len(dims) - 2))]]


def _pool(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[Shape | None] | None:
    dims = _dims(g, node.input[0])
    if dims is None or "kernel_shape" not in attrs:
        return None
    spatial = _spatial(g, node, attrs, [int(k) for k in attrs["kernel_shape"]], dims)
    return [[dims[0], dims[1], *(spatial or [None] * (len(dims) - 2))]]


def _global_pool(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[Shape | None] | None:
    dims = _dims(g, node.input[0])
    return None if dims is None else [[dims[0], dims[1], *[1] * (len(dims) - 2)]]


def _flatten(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[Shape | None] | None:
    dims = _dims(g, node.input[0])
    if dims is None:
        return None
    axis = int(attrs.get("axis", 1)) % (len(dims) + 1) if dims else 0
    return [[sizes.product(list(dims[:axis])), sizes.product(list(dims[axis:]))]]


def _axes(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[int] | None:
    if "axes" in attrs:
        return [int(a) for a in attrs["axes"]]
    if has_input(node, 1):
        given = g.known(node.input[1])
        return None if given is None else [int(a) for a in np.ravel(given)]
    return []


def _unsqueeze(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[Shape | None] | None:
    dims, axes = _dims(g, node.input[0]), _axes(g, node, attrs)
    if dims is None or not axes:
        return None
    rank = len(dims) + len(axes)
    places = {a % rank for a in axes}
    rest = iter(dims)
    return [[1 if i in places else next(rest) for i in range(rank)]]


def _squeeze(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[Shape | None] | None:
    dims, axes = _dims(g, node.input[0]), _axes(g, node, attrs)
    if dims is None or axes is None:
        return None
    gone = {a % len(dims) for a in axes} if axes else {i for i, d in enumerate(dims) if d == 1}
    return [[d for i, d in enumerate(dims) if i not in gone]]


def _reduce(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[Shape | None] | None:
    dims, axes = _dims(g, node.input[0]), _axes(g, node, attrs)
    if dims is None or axes is None:
        return None
    every = not axes
    if every and attrs.get("noop_with_empty_axes", 0):
        return [list(dims)]
    chosen = set(range(len(dims))) if every else {a % len(dims) for a in axes}
    keep = bool(attrs.get("keepdims", 1))
    return [[1 if i in chosen else d for i, d in enumerate(dims)] if keep else
            [d for i, d in enumerate(dims) if i not in chosen]]


def _matmul(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[Shape | None] | None:
    a, b = _dims(g, node.input[0]), _dims(g, node.input[1])
    if a is None or b is None or len(a) < 2 or len(b) < 2:
        return None
    batch = broadcast_dims([list(a[:-2]), list(b[:-2])]) if len(a) > 2 or len(b) > 2 else []
    return [[*batch, a[-2], b[-1]]]


def _gemm(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[Shape | None] | None:
    a, b = _dims(g, node.input[0]), _dims(g, node.input[1])
    if a is None or b is None or len(a) != 2 or len(b) != 2:
        return None
    rows = a[1] if attrs.get("transA", 0) else a[0]
    columns = b[0] if attrs.get("transB", 0) else b[1]
    return [[rows, columns]]


def _pad(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[Shape | None] | None:
    """Each padded axis grows by its two pads (known at import: torch pads Swin's windows by
    amounts computed from fixed sizes)."""
    dims = _dims(g, node.input[0])  # (opset 13 on, the pads are an input; 18 on, axes too)
    pads = g.known(node.input[1]) if has_input(node, 1) else None
    axes = g.known(node.input[3]) if has_input(node, 3) else np.arange(len(dims or []))
    if dims is None or pads is None or axes is None or len(np.ravel(pads)) != 2 * len(np.ravel(axes)):
        return None
    begin_end = np.ravel(pads).reshape(2, -1)
    out: Shape = list(dims)
    for axis, begin, end in zip(np.ravel(axes), *begin_end, strict=True):
        axis = int(axis) % len(dims)
        out[axis] = sizes.combined("add", dims[axis], int(begin) + int(end))
    return [out]


def _constant_of_shape(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> list[Shape | None] | None:
    """The shape it is given (MPNet's relative positions fill a (t, t) array so)."""
    vector = g.vectors.get(node.input[0])
    return None if vector is None else [list(vector)]


RULES: dict[str, Rule] = {
    "Concat": _concat,
    "Slice": _slice,
    "Split": _split,
    "Conv": _conv,
    "MaxPool": _pool,
    "AveragePool": _pool,
    "GlobalAveragePool": _global_pool,
    "GlobalMaxPool": _global_pool,
    "Flatten": _flatten,
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "MatMul": _matmul,
    "Gemm": _gemm,
    "Pad": _pad,
    "ConstantOfShape": _constant_of_shape,
    **dict.fromkeys(("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2",
                     "ReduceL1", "ReduceLogSumExp", "ReduceSumSquare"), _reduce),
}
