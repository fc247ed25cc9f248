"""Each ONNX operator modelpack can compute: one entry per operator in ``OPERATORS``.

Operators with weights become layers (``import_layers``); the rest become ops of the op table,
here. Shape arithmetic on constants and on ``Shape`` results (``x.view(x.size(0), -1)``) is
folded here into reshape targets that name the input's sizes, never run from the file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx

from ... import nn
from ...errors import FormatError, ModelpackError
from ...nn import sizes
from ..imported import TRANSLATION_ERRORS
from .import_layers import (
    activation_layer,
    batchnorm,
    conv,
    flatten,
    gelu,
    gemm,
    global_pool,
    instancenorm,
    layernorm,
    matmul,
    mish,
    pad,
    pool,
    prelu,
    rms_normalization,
)
from .import_ops_more import MORE_OPERATORS
from .import_patterns import SILU
from .import_recurrent import constant_of_shape, recurrent
from .import_shapes import follow
from .importer import (
    FOLD_ELEMENTS,
    FOLD_TOTAL_ELEMENTS,
    Dims,
    Graph,
    Translator,
    broadcast_dims,
    constant_input,
    element_dtype,
    has_input,
    only_first_output,
    to_array,
)

__all__ = ["translate", "OPERATORS"]

_INT64_MAX = 2**63 - 1


def translate(g: Graph, node: onnx.NodeProto) -> None:
    """Add what ``node`` computes to ``g``, or refuse it by operator name."""
    if node.domain not in ("", "ai.onnx"):
        raise g.fail(node, f"operator domain {node.domain!r} is not ONNX's own")
    translator = OPERATORS.get(node.op_type)
    if translator is None and node.op_type not in _FOLD_ONLY:
        raise g.fail(
            node,
            f"operator {node.op_type!r} has no modelpack equivalent; supported: "
            f"{', '.join(sorted(OPERATORS))}",
        )
    _check_arity(g, node)
    attrs = {a.name: _attribute(a) for a in node.attribute}
    if _fold(g, node):
        return
    if translator is None:
        raise g.fail(node, f"{node.op_type} is taken only where its inputs are known when the file is read")
    try:
        translator(g, node, attrs)
        follow(g, node, attrs)
    except ModelpackError:
        raise
    except TRANSLATION_ERRORS as exc:  # a file breaking the operator's schema (see imported)
        raise FormatError(
            f"{g.at(node)}: its attributes or inputs are not what ONNX's {node.op_type} takes "
            f"({type(exc).__name__}: {exc})"
        ) from None


def _check_arity(g: Graph, node: onnx.NodeProto) -> None:
    """The node's input count within what ONNX's schema of its operator allows (at the
    model's opset), before any translator indexes its inputs."""
    opset = max((o.version for o in g.model.opset_import if o.domain in ("", "ai.onnx")), default=None)
    try:
        schema = onnx.defs.get_schema(node.op_type, opset) if opset else onnx.defs.get_schema(node.op_type)
    except onnx.defs.SchemaError:
        return  # an operator this opset does not define: its translator says what it needs
    low, high = schema.min_input, schema.max_input
    if not low <= len(node.input) <= high:
        bound = str(low) if low == high else f"{low} or more" if high > 1 << 20 else f"{low} to {high}"
        raise g.fail(node, f"has {len(node.input)} inputs; {node.op_type} takes {bound}")


# Operators whose result on small constants is itself a constant, evaluated by onnx's reference
# implementation of that one operator: layout (torch.onnx computes a Pad's pads this way) and
# element-wise arithmetic and comparisons (its expand(-1, …) computes the target shape with
# ConstantOfShape, Mul, Equal and Where), so that what reads the result sees a constant.
# Shape vectors whose sizes are all numbers count as constants here: torch.onnx computes an
# attention's scale as Sqrt of a Cast of a Slice of a Shape (scaled_dot_product_attention).
_LAYOUT_FOLDABLE = {"Reshape", "Transpose", "Slice", "Cast", "Concat", "Squeeze", "Unsqueeze", "Range",
                    "Trilu", "Expand", "ScatterND"}
# Operators taken only where they fold: a mask written by index assignments (Swin's shifted
# windows: ``mask[h0:h1, w0:w1] = count``).
_FOLD_ONLY = {"ScatterND"}
_ELEMENTWISE_FOLDABLE = {"Add", "Sub", "Mul", "Div", "Mod", "Neg", "Abs", "Max", "Min", "Equal", "Greater",
                         "Less", "GreaterOrEqual", "LessOrEqual", "Not", "And", "Or", "Where",
                         "Sqrt", "Reciprocal", "Pow", "Exp", "Log", "Floor", "Ceil", "Sign"}


def _fold(g: Graph, node: onnx.NodeProto) -> bool:
    names = [n for n in node.input if n]
    foldable = _LAYOUT_FOLDABLE | _ELEMENTWISE_FOLDABLE
    if node.op_type not in foldable or not names or any(n in g.weights for n in names):
        return False
    if g.folded + FOLD_ELEMENTS > FOLD_TOTAL_ELEMENTS:
        return False  # (the import's folding room used up: nothing more is computed here)
    arrays = {n: g.known(n) for n in names}
    if any(a is None for a in arrays.values()):
        return False
    known: dict[str, np.ndarray] = {n: a for n, a in arrays.items() if a is not None}
    # (a Slice is a view, no work for the elements it leaves: only its result is bounded, below)
    if sum(a.size for a in known.values()) > FOLD_ELEMENTS and node.op_type != "Slice":
        return False
    if node.op_type in _ELEMENTWISE_FOLDABLE:
        try:
            result = np.broadcast_shapes(*(a.shape for a in known.values()))
        except ValueError:
            return False  # the op refuses it, naming the node
        if math.prod(result) > FOLD_ELEMENTS:
            return False
    if _folded_size(node.op_type, [known[n] for n in names]) > FOLD_ELEMENTS:
        return False
    from onnx.reference import ReferenceEvaluator

    try:
        results = ReferenceEvaluator(node).run(None, known)
    except Exception as exc:  # (onnx's reference: numpy's errors on what the file gives)
        raise g.fail(node, f"cannot be computed from its inputs, known when read: {exc}") from None
    if not g.fold_room(sum(int(np.size(array)) for array in results)):
        return False  # (a large Slice of a larger array: left to the op)
    for name, array in zip(node.output, results, strict=True):
        g.constants[name] = np.asarray(array)
    return True


def _folded_size(op: str, inputs: list[np.ndarray]) -> float:
    """How many values folding ``op`` makes, for the operators whose result may be larger than
    their inputs (an Expand's target, a Range's length): counted before anything is made."""
    if op == "Expand":
        try:
            return math.prod(np.broadcast_shapes(inputs[0].shape, tuple(int(d) for d in np.ravel(inputs[1]))))
        except ValueError:
            return 0  # (the op refuses it)
    if op == "Range":
        start, limit, delta = (float(np.ravel(a)[0]) for a in inputs[:3])
        return math.inf if delta == 0 else max(0.0, (limit - start) / delta)
    return 0


def _attribute(attribute: onnx.AttributeProto) -> Any:
    if attribute.type == onnx.AttributeProto.TENSOR:
        return attribute.t
    value = onnx.helper.get_attribute_value(attribute)
    return value.decode() if isinstance(value, bytes) else value


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
    return _sizes_only(g, node.input)


def _sizes_only(g: Graph, names: Sequence[str]) -> bool:
    """True when ``names`` are shape vectors or integer constants, one a vector at least."""
    return (
        bool(names)
        and any(n in g.vectors for n in names)
        and all(n in g.vectors or (n in g.constants and g.constants[n].dtype.kind in "iu") or n == ""
                for n in names)
    )


def _vector(g: Graph, name: str) -> list[int | str]:
    return list(g.vectors[name]) if name in g.vectors else [int(v) for v in np.ravel(g.constants[name])]


def _gather(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    axis = attrs.get("axis", 0)
    data, indices = node.input[0], node.input[1]
    if _folds(g, node):
        vector, picks = _vector(g, data), np.asarray(constant_input(g, node, 1, "indices"))
        g.vectors[node.output[0]] = [vector[int(i)] for i in np.ravel(picks)]
        return
    if data in g.constants and indices not in g.constants and g.constants[data].ndim == 2 and axis == 0:
        weight = g.constants[data]
        block = nn.Embedding(weight.shape[0], weight.shape[1], dtype=weight.dtype.name)
        block.set_parameters({"weight": weight}, source=g.where)
        g.layer(node, block, g.value(indices, node), "embedding")
        return
    if indices not in g.constants and indices not in g.vectors:  # indices the model computes: checked
        g.op(node, "take", [g.value(data, node), g.value(indices, node)], axis=axis)  # when it runs
        return
    index = constant_input(g, node, 1, "indices")
    if index.ndim != 0:  # (x[:, [2, 0]], index_select): numpy's take, negative indices from the end
        g.op(node, "take", [g.value(data, node), g.value(indices, node)], axis=axis)
        return
    whole: dict[str, Any] = {"slice": [None, None, None]}
    items: list[dict[str, Any]]
    if axis >= 0:
        items = [whole] * axis + [{"int": int(index)}]
    else:
        items = [{"ellipsis": True}, {"int": int(index)}, *([whole] * (-axis - 1))]
    g.op(node, "getitem", [g.value(data, node)], index=items)


def _range(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """Range to a limit the input's sizes give (torch.onnx's default exporter reads an
    ``as_strided`` view by indices built from ``arange(batch)``): the ``arange`` op, its stop
    that size. A Range of known inputs folded before this."""
    start, delta = (constant_input(g, node, i, what).reshape(-1) for i, what in ((0, "start"), (2, "delta")))
    limit = g.sizes(node, 1, "limit")
    if len(start) != 1 or len(delta) != 1 or len(limit) != 1:
        raise g.fail(node, "its start, limit and delta are not single numbers")
    if delta[0] == 0:
        raise g.fail(node, "its delta is 0: the range never ends")
    g.op(node, "arange", [], start=start[0].item(), stop=limit[0], step=delta[0].item(),
         dtype=start.dtype.name)
    g.learn(node.output[0], [limit[0] if (start[0], delta[0]) == (0, 1) else None])


def _unsqueeze(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    axes = attrs["axes"] if "axes" in attrs else [int(a) for a in constant_input(g, node, 1, "axes")]
    if node.input[0] in g.vectors:
        g.vectors[node.output[0]] = g.vectors[node.input[0]]  # a 0-d size becomes a 1-d vector
        return
    g.op(node, "expand_dims", [g.value(node.input[0], node)], axis=list(axes))


def _squeeze(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    axes = attrs.get("axes") or (
        [int(a) for a in constant_input(g, node, 1, "axes")] if has_input(node, 1) else None
    )
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
    dtype = element_dtype(attrs["to"], g.where, f"{node.op_type} node {node.name!r}'s target").name
    g.op(node, "cast", [g.value(node.input[0], node)], dtype=dtype)


def _slice(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """Slice as numpy's basic indexing; its starts and ends may be sizes the input gives
    (``position_ids[:, :seq_len]``, as Hugging Face's embeddings read their positions)."""
    starts, ends = g.sizes(node, 1, "starts"), g.sizes(node, 2, "ends")
    rank_dims = g.shape(node.input[0])
    axes = constant_input(g, node, 3, "axes") if has_input(node, 3) else np.arange(len(starts))
    steps = constant_input(g, node, 4, "steps") if has_input(node, 4) else np.ones(len(starts), np.int64)
    if node.input[0] in g.vectors:
        if not all(isinstance(b, int) for b in (*starts, *ends)):
            raise g.fail(node, "slicing sizes at bounds the input gives")
        vector = g.vectors[node.input[0]]
        g.vectors[node.output[0]] = vector[_py_slice(int(starts[0]), int(ends[0]), int(steps[0]))]
        return
    if rank_dims is None:
        raise g.fail(node, "the rank of its input is not known")
    items: list[dict[str, Any]] = [{"slice": [None, None, None]} for _ in rank_dims]
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        piece = _py_slice(start, end, int(step))
        items[int(axis) % len(rank_dims)] = {"slice": [piece.start, piece.stop, piece.step]}
    g.op(node, "getitem", [g.value(node.input[0], node)], index=items)


def _py_slice(start: int | str, end: int | str, step: int) -> slice:
    """ONNX's clamped bounds as Python's (INT64_MAX and friends mean "to the end"); a named
    size, never negative, stays as it is."""
    def bound(value: int | str) -> int | str | None:
        return value if isinstance(value, str) else None if abs(value) >= 2**62 else value

    return slice(bound(start), bound(end), None if step == 1 else step)


def _reshape(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    target = g.sizes(node, 1, "target shape")
    if node.input[0] in g.vectors and target in ([-1], [len(g.vectors[node.input[0]])]):
        g.vectors[node.output[0]] = list(g.vectors[node.input[0]])  # (a shape vector kept 1-D)
        return
    if not attrs.get("allowzero", 0) and 0 in target:
        source = g.shape(node.input[0])
        if source is None:
            raise g.fail(node, "a 0 (copy this size) in the target, but the input's shape is not known")
        target = [source[i] if d == 0 else d for i, d in enumerate(target)]
    g.op(node, "reshape", [g.value(node.input[0], node)], shape=target)
    g.learn(node.output[0], _reshaped(g.shape(node.input[0]), target))


def _reshaped(source: Dims | None, target: Dims) -> list[int | str | None]:
    """A Reshape's output sizes: the target's, its -1 worked out from the input's sizes where
    the named ones cancel (``b·5·8 / (b·2·4)`` is 5) or remain in a size expression
    (``b·5·8 / 8`` is ``5*b``); None where neither."""
    if -1 not in target:
        return list(target)
    unknown = [None if d == -1 else d for d in target]
    if source is None:
        return unknown
    have: list[str] = []
    coefficient = divisor = 1
    for d in source:  # (a product expression, 4*b, counts as its factors)
        factors = _factors(d)
        if factors is None:
            return unknown
        coefficient *= factors[0]
        have += factors[1]
    for d in target:
        if d == -1:
            continue
        factors = _factors(d)
        if factors is None or any(have.count(n) < factors[1].count(n) for n in factors[1]):
            return unknown
        for name in factors[1]:
            have.remove(name)
        divisor *= factors[0]
    if divisor == 0 or coefficient % divisor:
        return unknown
    size = sizes.product([*have, coefficient // divisor])  # (an expression where names remain)
    return [size if d == -1 else d for d in target]


def _factors(size: int | str) -> tuple[int, list[str]] | None:
    """A size as a number times names (``4*b``: 4, [b]); None for one with a divisor or an
    offset, which does not cancel factor by factor."""
    if isinstance(size, int):
        return size, []
    expression = sizes.parse(size)
    if expression.divisor != 1 or expression.offset:
        return None
    return expression.scale, list(expression.names)


def _arith(op: str) -> Translator:
    def emit(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
        if _folds(g, node):  # arithmetic on sizes: fold when every size is known
            vectors = [_vector(g, n) for n in node.input]
            if all(isinstance(d, int) for v in vectors for d in v):
                arrays = [np.asarray(v, np.int64) for v in vectors]
                folds: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
                    "add": np.add,
                    "subtract": np.subtract,
                    "multiply": np.multiply,
                    "divide": _truncating_divide,
                }
                folded = folds.get(op)
                if folded is not None:
                    g.vectors[node.output[0]] = [int(v) for v in np.ravel(folded(*arrays))]
                    return
            if op == "equal":
                g.constants[node.output[0]] = _sizes_equal(g, node, vectors)
                return
            sizes = _sizes_combined(op, vectors)
            if sizes is None:
                raise g.fail(node, "arithmetic on dynamic sizes that a size expression cannot write")
            g.vectors[node.output[0]] = sizes
            return
        names = [g.value(n, node) for n in node.input]
        if len(names) > 2 and op in ("maximum", "minimum", "add"):
            while len(names) > 2:
                first = g._add(op, names[:2], {})
                names = [first, *names[2:]]
        g.op(node, op, names)
        shapes = [g.shape(n) for n in node.input]
        if all(shape is not None for shape in shapes):
            g.learn(node.output[0], broadcast_dims([shape for shape in shapes if shape is not None]))

    return emit


def _sizes_combined(op: str, vectors: list[list[int | str]]) -> list[int | str] | None:
    """Two shape vectors (one of one size broadcast) combined size by size as expressions over
    the dynamic sizes (``nn.sizes.combined``), or None where one cannot be written."""
    lengths = [len(v) for v in vectors]
    if len(vectors) != 2 or (1 not in lengths and lengths[0] != lengths[1]):
        return None
    length = max(lengths)
    pairs = [(v[i if len(v) > 1 else 0] for v in vectors) for i in range(length)]
    results = [sizes.combined(op, *pair) for pair in pairs]
    return None if any(r is None for r in results) else [r for r in results if r is not None]


def _sizes_equal(g: Graph, node: onnx.NodeProto, vectors: list[list[int | str]]) -> np.ndarray:
    """Equal of two shape vectors, size by size, where it is known at import: numbers compared,
    a named size equal to itself and never to a negative number (torch's ``expand(n, -1)``
    finds its -1s so); any other pair is refused."""
    lengths = [len(v) for v in vectors]
    if len(vectors) != 2 or (1 not in lengths and lengths[0] != lengths[1]):
        raise g.fail(node, "compares shape vectors of different lengths")
    result = []
    for i in range(max(lengths)):
        a, b = (v[i if len(v) > 1 else 0] for v in vectors)
        if isinstance(a, int) and isinstance(b, int) or a == b:
            result.append(a == b)
        elif isinstance(a, int) and a < 0 or isinstance(b, int) and b < 0:
            result.append(False)
        else:
            raise g.fail(node, f"compares the sizes {a!r} and {b!r}, which depend on the input")
    return np.array(result, np.bool_)


def _truncating_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ONNX's integer Div: the quotient rounded toward zero (numpy's // floors)."""
    return np.sign(a) * np.sign(b) * (np.abs(a) // np.abs(b))


def _divide(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """Div: true division of floats; of integers, ONNX's quotient rounded toward zero, built from
    the op table's sign, abs and floor_divide (as ``_truncating_divide``) so that it stays an
    integer of the inputs' dtype."""
    if _folds(g, node) or not all(g.integer(name) for name in node.input):
        _arith("divide")(g, node, attrs)
        return
    a, b = (g.value(name, node) for name in node.input)
    signs = g._add("multiply", [g._add("sign", [a], {}), g._add("sign", [b], {})], {})
    magnitude = g._add("floor_divide", [g._add("abs", [a], {}), g._add("abs", [b], {})], {})
    g.op(node, "multiply", [signs, magnitude])


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
    source = g.shape(node.input[0])
    if source is not None:
        perm = attrs.get("perm", range(len(source) - 1, -1, -1))
        g.learn(node.output[0], [source[axis] for axis in perm])


def _log_sum_exp(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """ReduceLogSumExp (``torch.logsumexp``) as numerically stable: the maximum m kept, then
    log(sum(exp(x - m))) + m."""
    axes = attrs.get("axes")
    if axes is None and has_input(node, 1):
        axes = [int(a) for a in constant_input(g, node, 1, "axes")]
    axis, keepdims = (list(axes) if axes else None), bool(attrs.get("keepdims", 1))
    x = g.value(node.input[0], node)
    peak = g._add("max", [x], {"axis": axis, "keepdims": True})
    shifted = g._add("exp", [g._add("subtract", [x, peak], {})], {})
    total = g._add("log", [g._add("sum", [shifted], {"axis": axis, "keepdims": keepdims})], {})
    offset = peak if keepdims else g._add("max", [x], {"axis": axis, "keepdims": False})
    g.op(node, "add", [total, offset])


# Reductions ONNX names that are a sum between element-wise ops: (op before, op after).
_COMPOSED_REDUCTIONS = {"ReduceL1": ("abs", None), "ReduceL2": ("square", "sqrt"),
                        "ReduceSumSquare": ("square", None), "ReduceLogSum": (None, "log")}


def _reduce(op: str) -> Translator:
    def emit(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
        axes = attrs.get("axes")
        if axes is None and has_input(node, 1):
            axes = [int(a) for a in constant_input(g, node, 1, "axes")]
        if not axes and attrs.get("noop_with_empty_axes", 0):
            if node.op_type in _COMPOSED_REDUCTIONS:
                raise g.fail(node, "noop_with_empty_axes on a composed reduction")
            g.alias(node, node.input[0])
            return
        reduce_attrs = {"axis": list(axes) if axes else None, "keepdims": bool(attrs.get("keepdims", 1))}
        before, after = _COMPOSED_REDUCTIONS.get(node.op_type, (None, None))
        value = g.value(node.input[0], node)
        if before is not None:
            value = g._add(before, [value], {})
        if after is None:
            g.op(node, op, [value], **reduce_attrs)
        else:
            g.op(node, after, [g._add(op, [value], reduce_attrs)])

    return emit


def _where(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    condition = g.dtypes.get(node.input[0])
    if condition is not None and condition != np.bool_:
        raise g.fail(node, f"a condition of {condition.name} (ONNX's Where takes bool)")
    if node.input[0] in g.constants and _sizes_only(g, node.input[1:]):
        # sizes of shape vectors picked by a known condition (torch's expand(n, -1) so)
        picks = [bool(c) for c in np.ravel(g.constants[node.input[0]])]
        yes, no = (_vector(g, name) for name in node.input[1:])
        length = max(len(picks), len(yes), len(no))
        if all(len(v) in (1, length) for v in (picks, yes, no)):
            def at(v: list[Any], i: int) -> Any:
                return v[i if len(v) > 1 else 0]
            g.vectors[node.output[0]] = [at(yes, i) if at(picks, i) else at(no, i) for i in range(length)]
            return
    g.op(node, "where", [g.value(n, node) for n in node.input])


def _identity(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    if node.op_type == "Dropout":
        if has_input(node, 2) and bool(np.any(constant_input(g, node, 2, "training_mode"))):
            raise g.fail(node, "training_mode is on")
        only_first_output(g, node)
    g.alias(node, node.input[0])


def _if(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """ONNX's If whose condition is known when the file is read (a test of sizes: torch.onnx's
    TorchScript exporter writes them for LRN and ``x.repeat``): the chosen branch's nodes in
    its place. A condition computed from the data is control flow, which is refused."""
    condition = g.known(node.input[0])
    if condition is None or condition.size != 1:
        raise g.fail(node, "its condition is computed from the data (control flow is not translated)")
    branch = attrs["then_branch" if bool(condition.reshape(-1)[0]) else "else_branch"]
    if len(branch.output) != len(node.output):
        raise g.fail(node, f"its branch gives {len(branch.output)} values for its {len(node.output)} outputs")
    for tensor in branch.initializer:
        g.constants[tensor.name] = to_array(tensor, g.where)
    for inner in branch.node:
        translate(g, inner)
    for index, value in enumerate(branch.output):
        g.alias(node, value.name, index)


def _size(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """ONNX's Size where the count is known when the file is read (a shape vector's length, or
    a value of fixed shape); refused where it depends on a dynamic size."""
    name = node.input[0]
    dims = [len(g.vectors[name])] if name in g.vectors else g.shape(name)
    sizes = [d for d in dims or [] if isinstance(d, int)]
    if dims is None or len(sizes) != len(dims):
        raise g.fail(node, f"the size of {name!r} is not known when the file is read")
    g.constants[node.output[0]] = np.array(math.prod(sizes), np.int64)


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
    "If": _if,
    "Size": _size,
    "Dropout": _identity,
    "Gemm": gemm,
    "MatMul": matmul,
    "Conv": conv,
    "ConvTranspose": conv,
    "InstanceNormalization": instancenorm,
    "Pad": pad,
    "ConstantOfShape": constant_of_shape,
    "RNN": recurrent,
    "LSTM": recurrent,
    "GRU": recurrent,
    "MaxPool": pool(False),
    "AveragePool": pool(True),
    "GlobalAveragePool": global_pool("Avg"),
    "GlobalMaxPool": global_pool("Max"),
    "BatchNormalization": batchnorm,
    "LayerNormalization": layernorm,
    "RMSNormalization": rms_normalization,
    "Flatten": flatten,
    "Relu": activation_layer(lambda a: nn.Activation("relu")),
    "Sigmoid": activation_layer(lambda a: nn.Activation("sigmoid")),
    "Tanh": activation_layer(lambda a: nn.Activation("tanh")),
    "Softplus": activation_layer(lambda a: nn.Activation("softrelu")),
    "Softsign": activation_layer(lambda a: nn.Activation("softsign")),
    "Gelu": activation_layer(gelu),
    "PRelu": prelu,
    SILU: activation_layer(lambda a: nn.Activation("silu")),
    "LeakyRelu": activation_layer(lambda a: nn.LeakyReLU(a.get("alpha", 0.01))),
    "Elu": activation_layer(lambda a: nn.ELU(a.get("alpha", 1.0))),
    "Mish": mish,
    "Add": _arith("add"),
    "Sub": _arith("subtract"),
    "Mul": _arith("multiply"),
    "Div": _divide,
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
    "Tan": _unary("tan"),
    "Asin": _unary("arcsin"),
    "Acos": _unary("arccos"),
    "Atan": _unary("arctan"),
    "Sinh": _unary("sinh"),
    "Cosh": _unary("cosh"),
    "Asinh": _unary("arcsinh"),
    "Acosh": _unary("arccosh"),
    "Atanh": _unary("arctanh"),
    "Erf": _unary("erf"),
    "Round": _unary("rint"),
    "Greater": _arith("greater"),
    "Less": _arith("less"),
    "Equal": _arith("equal"),
    "GreaterOrEqual": _arith("greater_equal"),
    "LessOrEqual": _arith("less_equal"),
    "Where": _where,
    "Softmax": _softmax("softmax"),
    "LogSoftmax": _softmax("log_softmax"),
    "Transpose": _transpose,
    "Range": _range,
    "ReduceSum": _reduce("sum"),
    **{name: _reduce("sum") for name in _COMPOSED_REDUCTIONS},
    "ReduceLogSumExp": _log_sum_exp,
    "ReduceMean": _reduce("mean"),
    "ReduceMax": _reduce("max"),
    "ReduceMin": _reduce("min"),
    "ReduceProd": _reduce("prod"),
    "Ceil": _unary("ceil"),
    "Floor": _unary("floor"),
    "Sign": _unary("sign"),
    "Reciprocal": _unary("reciprocal"),
    "Not": _unary("logical_not"),
    "And": _arith("logical_and"),
    "Or": _arith("logical_or"),
    "Xor": _arith("logical_xor"),
    **MORE_OPERATORS,
}
