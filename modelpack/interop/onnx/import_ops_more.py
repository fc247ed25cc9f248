"""ONNX operators whose options modelpack's ops take as attributes: ``ArgMax``/``ArgMin``,
``CumSum``, ``Clip``, ``Tile`` and ``Split`` (the last four read constant inputs); those built
from a few of modelpack's ops: the variadic ``Sum`` and ``Mean``, ``Mod`` (numpy's mod or fmod),
``HardSigmoid`` and ``HardSwish``; ``Expand`` (``broadcast_to`` the sizes it works out);
``GatherND`` (a ``take`` along its data's leading axes, merged), ``GatherElements`` (numpy's
advanced indexing), ``Trilu`` (a ``where`` of each position's row and column), ``IsNaN`` and
``IsInf`` (comparisons).
All in ``MORE_OPERATORS`` (merged into ``import_ops.OPERATORS``). What numpy's functions do
not do (the last extremum, exclusive or reversed sums) is refused naming the option.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx

from ...nn import sizes
from ...nn.ops import einsum_plan
from ...nn.ops.neural import LRN_MAX_SIZE
from .import_layers import SELU_ALPHA, SELU_GAMMA, selu
from .importer import Dims, Graph, Translator, constant_input, has_input, only_first_output

__all__ = ["MORE_OPERATORS"]


def _arg(op: str) -> Translator:
    def emit(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
        if attrs.get("select_last_index", 0):
            raise g.fail(node, "select_last_index=1 (modelpack gives the first extremum)")
        g.op(node, op, [g.value(node.input[0], node)], axis=int(attrs.get("axis", 0)),
             keepdims=bool(attrs.get("keepdims", 1)))

    return emit


def _cumsum(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """CumSum; ``reverse`` as the sum of the input flipped along the axis, flipped back;
    ``exclusive`` as the inclusive sum less each element."""
    axis = int(constant_input(g, node, 1, "axis").reshape(-1)[0])
    dims = g.shape(node.input[0])
    x = g.value(node.input[0], node)
    reverse, exclusive = bool(attrs.get("reverse", 0)), bool(attrs.get("exclusive", 0))
    if not (reverse or exclusive):
        g.op(node, "cumsum", [x], axis=axis)
        return
    if dims is None:
        raise g.fail(node, "a reverse or exclusive sum of an input of unknown rank")
    items: list[dict[str, Any]] = [{"slice": [None, None, None]} for _ in dims]
    items[axis % len(dims)] = {"slice": [None, None, -1]}
    source = g._add("getitem", [x], {"index": items}) if reverse else x
    total = g._add("cumsum", [source], {"axis": axis})
    if exclusive:
        total = g._add("subtract", [total, source], {})
    if reverse:
        total = g._add("getitem", [total], {"index": items})
    g.values[node.output[0]] = total


def _clip(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    bounds = [
        float(constant_input(g, node, i, what).reshape(-1)[0]) if has_input(node, i) else None
        for i, what in ((1, "min"), (2, "max"))
    ]
    g.op(node, "clip", [g.value(node.input[0], node)], a_min=bounds[0], a_max=bounds[1])


def _tile(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    reps = [int(r) for r in constant_input(g, node, 1, "repeats")]
    g.op(node, "tile", [g.value(node.input[0], node)], reps=reps)
    source, inferred = g.shape(node.input[0]), g.shape(node.output[0])
    if source is not None and inferred is not None and len(source) == len(reps) == len(inferred):
        g.learn(node.output[0], [have if r == 1 else have * r if isinstance(have, int) else other
                                 for have, r, other in zip(source, reps, inferred, strict=True)])


def _gather_nd(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """GatherND with no batch axes (torch.onnx's default exporter writes a 1-D linear
    interpolation, Swin's relative position bias and Hugging Face's ``mask[batch, key]`` so):
    the slices at each tuple of k indices. Constant indices are checked here, and read as a
    ``take`` along the data's first k axes merged; computed ones are numpy's advanced indexing
    by each of the tuples' k columns, which numpy checks axis by axis as the model runs."""
    if attrs.get("batch_dims", 0):
        raise g.fail(node, f"batch_dims={attrs['batch_dims']} (only 0, no batch axes, is taken)")
    if node.input[1] not in g.constants and node.input[1] not in g.vectors:
        tuples, dims = g.shape(node.input[1]), g.shape(node.input[0])
        if not tuples or not isinstance(tuples[-1], int) or tuples[-1] < 1:
            raise g.fail(node, f"its indices ({node.input[1]!r}) are computed by the model, in tuples of a "
                               "size not known when the file is read")
        if dims is None or tuples[-1] > len(dims):  # (before a node per index of the tuple is made)
            raise g.fail(node, f"tuples of {tuples[-1]} indices into data of rank "
                               f"{'unknown' if dims is None else len(dims)}")
        indices = g.value(node.input[1], node)
        columns = [g._add("getitem", [indices], {"index": [{"ellipsis": True}, {"int": i}]})
                   for i in range(tuples[-1])]
        g.op(node, "getitem", [g.value(node.input[0], node), *columns],
             index=[{"array": i} for i in range(len(columns))])
        return
    index = np.asarray(constant_input(g, node, 1, "indices"))
    dims = g.shape(node.input[0])
    if index.dtype.kind not in "iu" or index.ndim == 0 or index.shape[-1] == 0:
        raise g.fail(node, f"its indices are {index.dtype} of shape {list(index.shape)}; it takes integer "
                           "tuples of at least one index, the last axis")
    k = index.shape[-1]
    if dims is None or len(dims) < k or not all(isinstance(d, int) for d in dims[:k]):
        raise g.fail(node, f"the sizes its indices read (its data's leading {k}) are not known when the file "
                           "is read")
    lead = np.asarray(dims[:k], np.int64)
    if ((index < -lead) | (index >= lead)).any():
        raise g.fail(node, f"an index is out of range for the sizes {lead.tolist()} it reads")
    index = np.where(index < 0, index + lead, index).astype(np.int64)
    data = g.value(node.input[0], node)
    if k > 1:
        data = g._add("reshape", [data], {"shape": [int(lead.prod()), *dims[k:]]})
    flat = f"{node.output[0]}#flat"
    g.constants[flat] = np.ravel_multi_index(tuple(np.moveaxis(index, -1, 0)), tuple(lead)).astype(np.int64)
    g.op(node, "take", [data, g.value(flat, node)], axis=0)
    g.learn(node.output[0], [*index.shape[:-1], *dims[k:]])


def _gather_elements(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """GatherElements (``torch.gather``): at each position of the indices, the data's value
    at that position with the index put on ``axis``. numpy's advanced indexing by the indices
    on that axis and each position's own index on every other (a running count of ones along
    it: the indices' sizes may be known only when the model runs); numpy checks each index."""
    dims, taken = g.shape(node.input[0]), g.shape(node.input[1])
    if dims is None or taken is None or len(dims) != len(taken):
        raise g.fail(node, f"its data's and indices' shapes ({dims} and {taken}) are not known to be of "
                           "one rank")
    rank, axis = len(taken), attrs.get("axis", 0)
    if not -rank <= axis < rank:
        raise g.fail(node, f"axis={axis} is out of range for rank {rank}")
    index = g.value(node.input[1], node)
    ones = g._add("ones_like", [index], {"dtype": "int64"}) if rank > 1 else index
    arrays = [index if d == axis % rank else
              g._add("subtract", [g._add("cumsum", [ones], {"axis": d}), g.scalar(1)], {})
              for d in range(rank)]
    g.op(node, "getitem", [g.value(node.input[0], node), *arrays], index=[{"array": i} for i in range(rank)])


def _positions(g: Graph, x: str) -> tuple[str, str]:
    """Each position's row and column (its last two axes) in graph value ``x``'s shape, counted
    from 1 as running sums of ones: no size need be known before the model runs."""
    ones = g._add("ones_like", [x], {"dtype": "int64"})
    rows, columns = (g._add("cumsum", [ones], {"axis": axis}) for axis in (-2, -1))
    return rows, columns


def _trilu(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """Trilu of a value the model computes (a causal mask over a dynamic sequence length;
    one of known inputs folded before this): the input where column − row is at least k
    (upper) or at most k (lower), else zero; each position's row and column a running count of
    ones, so the sizes need only be known when the model runs."""
    k = int(constant_input(g, node, 1, "k").reshape(-1)[0]) if has_input(node, 1) else 0
    dims = g.shape(node.input[0])
    if dims is None or len(dims) < 2:
        raise g.fail(node, f"its input's shape ({dims}) is not known to have the two axes it reads")
    x = g.value(node.input[0], node)
    rows, columns = _positions(g, x)
    offset = g._add("subtract", [columns, rows], {})
    keep = g._add("greater_equal" if attrs.get("upper", 1) else "less_equal", [offset, g.scalar(k)], {})
    g.op(node, "where", [keep, x, g._add("zeros_like", [x], {})])


def _is_nan(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """IsNaN: x ≠ x, true only of NaN (torch's attention writes it to zero a fully masked row)."""
    x = g.value(node.input[0], node)
    g.op(node, "not_equal", [x, x])


def _is_inf(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """IsInf: x equal to +∞ and/or −∞, as ``detect_positive`` and ``detect_negative`` ask."""
    x = g.value(node.input[0], node)
    positive, negative = attrs.get("detect_positive", 1), attrs.get("detect_negative", 1)
    if positive and negative:
        g.op(node, "equal", [g._add("abs", [x], {}), g.scalar(math.inf)])
    elif positive or negative:
        g.op(node, "equal", [x, g.scalar(math.inf if positive else -math.inf)])
    else:
        g.op(node, "zeros_like", [x], dtype="bool")


# Attention's options with no equivalent here (past keys and values, a key cache's lengths,
# attention windows), each with the value that means it is unused.
_ATTENTION_UNUSED = {"left_window_size": -1, "right_window_size": -1}


def _attention(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """Attention (opset 23; torch.onnx's default exporter writes scaled_dot_product_attention
    so from that opset on): softmax(Q·Kᵀ·scale, soft-capped, plus the mask's bias and the causal
    frontier's) · V, over heads of (B, H, S, D), or of (B, S, H·D) split by ``q_num_heads`` and
    ``kv_num_heads``; fewer key heads are repeated for the query heads (grouped-query). A query
    row no key may attend gives zeros, as ONNX asks. Caches and windows are refused."""
    only_first_output(g, node)
    for index, what in ((4, "past_key"), (5, "past_value"), (6, "nonpad_kv_seqlen")):
        if has_input(node, index):
            raise g.fail(node, f"its {what} input (a key and value cache; attention is computed whole)")
    for name, unused in _ATTENTION_UNUSED.items():
        if attrs.get(name, unused) != unused:
            raise g.fail(node, f"{name}={attrs[name]} (only {unused}, no window, is taken)")
    if attrs.get("softmax_precision", 0) not in (0, onnx.TensorProto.FLOAT):
        raise g.fail(node, f"softmax_precision={attrs['softmax_precision']} (only float32's is taken)")
    shapes = [g.shape(name) for name in node.input[:3]]
    known = [dims for dims in shapes if dims is not None and len(dims) in (3, 4)]
    if len(known) != 3 or len({len(dims) for dims in known}) != 1:
        raise g.fail(node, f"Q, K and V of shapes {shapes} (it takes three 3-D or three 4-D ones)")
    q, k, v, size = _attention_heads(g, node, attrs, known)
    scale = attrs.get("scale")
    if scale is None:
        if size is None:
            raise g.fail(node, "its head size is not known when the file is read (the scale's default)")
        scale = 1.0 / math.sqrt(size)
    keys = g._add("swapaxes", [k], {"axis1": -1, "axis2": -2})
    scores = g._add("multiply", [g._add("matmul", [q, keys], {}), g.scalar(float(scale))], {})
    cap = float(attrs.get("softcap", 0.0))
    if cap:
        scaled = g._add("tanh", [g._add("multiply", [scores, g.scalar(1.0 / cap)], {})], {})
        scores = g._add("multiply", [scaled, g.scalar(cap)], {})
    excluded = g.scalar(-math.inf)
    if has_input(node, 3):
        mask = g.value(node.input[3], node)
        if g.dtype(node.input[3]) == np.dtype(bool):
            scores = g._add("where", [mask, scores, excluded], {})
        else:
            scores = g._add("add", [scores, mask], {})
    if attrs.get("is_causal", 0):  # (no cache: query i attends key j ≤ i)
        rows, columns = _positions(g, scores)
        scores = g._add("where", [g._add("less_equal", [columns, rows], {}), scores, excluded], {})
    # a row no key may attend: its scores made 0 (no NaN from the softmax), its weights 0
    closed = g._add("equal", [g._add("max", [scores], {"axis": -1, "keepdims": True}), excluded], {})
    opened = g._add("where", [closed, g.scalar(0.0), scores], {})
    weights = g._add("where", [closed, g.scalar(0.0), g._add("softmax", [opened], {"axis": -1})], {})
    if len(known[0]) == 4:
        g.op(node, "matmul", [weights, v])
        return
    heads_last = g._add("transpose", [g._add("matmul", [weights, v], {})], {"axes": [0, 2, 1, 3]})
    g.op(node, "reshape", [heads_last], shape=[known[0][0], known[0][1], -1])


def _attention_heads(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any],
                     shapes: list[Dims]) -> tuple[str, str, str, int | None]:
    """Attention's Q, K and V as (B, H, S, D) graph values, K and V with as many heads as Q,
    and the head size where it is known."""
    q, k, v = (g.value(name, node) for name in node.input[:3])
    if len(shapes[0]) == 3:  # (B, S, H·D): split into heads
        counts = [attrs.get("q_num_heads", 0), attrs.get("kv_num_heads", 0)]
        split = [g._add("reshape", [x], {"shape": [dims[0], dims[1], h, -1]})
                 for x, dims, h in zip((q, k, v), shapes, (counts[0], counts[1], counts[1]), strict=True)]
        q, k, v = (g._add("transpose", [x], {"axes": [0, 2, 1, 3]}) for x in split)
        width = shapes[0][2]
        size = width // counts[0] if isinstance(width, int) and counts[0] else None
    else:
        counts = [shapes[0][1], shapes[1][1]]
        size = shapes[0][3] if isinstance(shapes[0][3], int) else None
    heads, groups = counts
    whole = isinstance(heads, int) and isinstance(groups, int) and 0 < groups <= heads
    if not whole or heads % groups:
        raise g.fail(node, f"{heads} query heads for {groups} key heads (a whole number of query heads each)")
    if heads != groups:
        k, v = (g._add("repeat", [x], {"repeats": heads // groups, "axis": 1}) for x in (k, v))
    return q, k, v, size


def _topk(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """TopK with a constant k: the values and their int64 indices (ties: the lower index first,
    as ONNX asks), largest or smallest, always sorted (``sorted=0`` leaves the order free)."""
    k = [int(v) for v in np.ravel(constant_input(g, node, 1, "k"))]
    if len(k) != 1 or k[0] < 1:
        raise g.fail(node, f"k={k} (one count, at least 1)")
    g._add("topk", [g.value(node.input[0], node)],
           {"axis": int(attrs.get("axis", -1)), "k": k[0], "ret_typ": "both",
            "is_ascend": not attrs.get("largest", 1), "dtype": "int64"}, outputs=2)
    for name, value in zip(node.output, g.nodes[-1]["outputs"], strict=False):
        if name:
            g.values[name] = value


def _blocks(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """DepthToSpace (modes DCR and CRD: torch's PixelShuffle) and SpaceToDepth (PixelUnshuffle)
    as a reshape, a transpose and a reshape; sizes that follow the inputs are written as size
    expressions (``2*h``, ``h/2``)."""
    b = int(attrs["blocksize"])
    dims = g.shape(node.input[0])
    if dims is None or len(dims) != 4 or b < 1:
        raise g.fail(node, f"blocksize {b} on an input of shape {dims} (4-D, NCHW)")
    n, c, h, w = dims
    grown = [sizes.combined("multiply", d, b) for d in (h, w)]
    shrunk = [sizes.combined("divide", d, b) for d in (h, w)]
    if node.op_type == "SpaceToDepth":
        channels = sizes.combined("multiply", c, b * b)
        if None in (*shrunk, channels):
            raise g.fail(node, f"sizes {dims} that blocks of {b} cannot split")
        split, axes, joined = [n, c, shrunk[0], b, shrunk[1], b], [0, 3, 5, 1, 2, 4], [n, channels, *shrunk]
    else:
        channels = sizes.combined("divide", c, b * b)
        if None in (*grown, channels):
            raise g.fail(node, f"{c} channels, not a multiple of {b * b}")
        crd = attrs.get("mode", "DCR") == "CRD"
        split = [n, channels, b, b, h, w] if crd else [n, b, b, channels, h, w]
        axes = [0, 1, 4, 2, 5, 3] if crd else [0, 3, 4, 1, 5, 2]
        joined = [n, channels, *grown]
    parts = g._add("reshape", [g.value(node.input[0], node)], {"shape": split})
    moved = g._add("transpose", [parts], {"axes": axes})
    g.op(node, "reshape", [moved], shape=joined)
    g.learn(node.output[0], joined)


# Resize's interpolation matrices are built at import: at most this many values each, and from
# an axis of at most RESIZE_MAX_SIZE values (the identity resized is its size squared: at most
# 2^26 values, a second's work for onnx's reference, a chunk at a time).
RESIZE_MATRIX_ELEMENTS = 1 << 22
RESIZE_MAX_SIZE = 1 << 13


def _resize(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """Resize (``F.interpolate``, ``nn.Upsample``) of the last one or two axes of a 3-D or 4-D
    input of fixed sizes there, as one matmul per resized axis by that axis's interpolation
    matrix. Every mode is separable (nearest, linear, cubic, each coordinate transformation,
    antialiasing), so the matrix is what onnx's reference Resize makes of an identity along
    that axis alone, with the node's own attributes: the same arithmetic, by construction."""
    dims = g.shape(node.input[0])
    if dims is None or len(dims) not in (3, 4):
        raise g.fail(node, f"an input of shape {dims} (3-D or 4-D: batch, channels, then sizes)")
    if "axes" in attrs or attrs.get("coordinate_transformation_mode") == "tf_crop_and_resize":
        raise g.fail(node, "axes or tf_crop_and_resize (resize every axis, or crop first)")
    if attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch":  # (the sizes would not be the target's)
        raise g.fail(node, f"keep_aspect_ratio_policy={attrs['keep_aspect_ratio_policy']!r} (give the sizes)")
    targets: list[int | str | None]
    scales: list[float] | None = None
    if has_input(node, 3):
        targets = list(g.sizes(node, 3, "sizes"))  # (torch: the input's batch and channels, then constants)
    elif has_input(node, 2):
        scales = [float(v) for v in np.ravel(constant_input(g, node, 2, "scales"))]
        targets = [math.floor(d * f) if isinstance(d, int) else None
                   for d, f in zip(dims, scales, strict=True)]
    else:
        raise g.fail(node, "neither scales nor sizes")
    if len(targets) != len(dims):
        raise g.fail(node, f"{len(targets)} target sizes for an input of rank {len(dims)}")
    if any(t is not None and t != d for t, d in zip(targets[:2], dims[:2], strict=True)) or (
            scales is not None and scales[:2] != [1.0, 1.0]):
        raise g.fail(node, "a resized batch or channel axis")
    value = g.value(node.input[0], node)
    for axis in range(2, len(dims)):
        size, target = dims[axis], targets[axis]
        if target == size and (scales is None or scales[axis] == 1.0):
            continue
        if not isinstance(size, int) or not isinstance(target, int):
            raise g.fail(node, f"axis {axis} of size {size!r} (resizing needs the input's sizes fixed there)")
        if size * target > RESIZE_MATRIX_ELEMENTS or size > RESIZE_MAX_SIZE:
            raise g.fail(node, f"an interpolation matrix of {target} by {size} values (at most "
                               f"{RESIZE_MATRIX_ELEMENTS}, from an axis of at most {RESIZE_MAX_SIZE})")
        matrix = _interpolation(node, attrs, size, target, None if scales is None else scales[axis])
        key = f"{node.output[0]}::axis{axis}"
        if axis == len(dims) - 1:
            g.constants[key] = np.ascontiguousarray(matrix.T)
            value = g._add("matmul", [value, g.value(key, node)], {})
        else:
            g.constants[key] = matrix
            value = g._add("matmul", [g.value(key, node), value], {})
    g.values[node.output[0]] = value


def _interpolation(node: onnx.NodeProto, attrs: dict[str, Any], size: int, target: int,
                   scale: float | None) -> np.ndarray:
    """The (target, size) matrix that Resize applies along one axis: onnx's reference Resize of
    the identity (row i the unit vector along that axis), with the node's attributes."""
    from onnx.reference import ReferenceEvaluator

    kept = {k: v for k, v in attrs.items() if k != "keep_aspect_ratio_policy"}
    inputs = ["x", "", "scales"] if scale is not None else ["x", "", "", "sizes"]
    one = ReferenceEvaluator(onnx.helper.make_node("Resize", inputs, ["y"], **kept))
    matrix = np.empty((target, size), np.float32)
    rows = max(1, RESIZE_MATRIX_ELEMENTS // max(size, target))  # unit vectors at a time: memory bounded
    for start in range(0, size, rows):
        count = min(rows, size - start)
        units = np.zeros((count, 1, size), np.float32)
        units[np.arange(count), 0, start + np.arange(count)] = 1
        feeds: dict[str, np.ndarray] = {"x": units}
        if scale is not None:
            feeds["scales"] = np.array([1.0, 1.0, scale], np.float32)
        else:
            feeds["sizes"] = np.array([count, 1, target], np.int64)
        (resized,) = one.run(None, feeds)
        matrix[:, start:start + count] = np.asarray(resized, np.float32).reshape(count, target).T
    return matrix


def _einsum(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """Einsum as ``nn.ops.einsum_plan`` lays it out (an explicit or implicit output, ``...``; no
    index twice in one operand): one operand summed and transposed; two contracted by a
    batched matmul between transposes and reshapes; more, two at a time left to right. Sizes
    that follow the inputs are written as size expressions."""
    equation = str(attrs["equation"])
    shapes = [g.shape(name) for name in node.input]
    if any(dims is None for dims in shapes):
        raise g.fail(node, f"equation {equation!r} on operands of unknown rank")
    try:
        operands, output = einsum_plan.parse(equation, [len(dims) for dims in shapes])  # type: ignore[arg-type]
    except ValueError as exc:
        raise g.fail(node, str(exc)) from None
    extents: dict[str, int | str] = {}
    for indices, dims in zip(operands, shapes, strict=True):
        for index, size in zip(indices, dims, strict=True):  # type: ignore[arg-type]
            if extents.setdefault(index, size) != size:
                raise g.fail(node, f"equation {equation!r}: index sizes {extents[index]} and {size} "
                                   "(broadcast)")
    values = [g.value(name, node) for name in node.input]
    if len(operands) == 1:
        summed, axes = einsum_plan.single(operands[0], output)
        value = g._add("sum", [values[0]], {"axis": list(summed), "keepdims": False}) if summed else values[0]
        g.op(node, "transpose", [value], axes=axes)
        return
    steps = einsum_plan.chain(operands, output)
    current = values[0]
    for k, (left, right, kept) in enumerate(steps, start=1):
        plan = einsum_plan.pair(left, right, kept)
        result = _contracted(g, node, plan, current, values[k], extents)
        if k == len(steps):
            g.op(node, "transpose", [result], axes=plan.final)
        elif plan.final != sorted(plan.final):  # the next step reads it in ``kept``'s order
            current = g._add("transpose", [result], {"axes": plan.final})
        else:
            current = result


def _contracted(g: Graph, node: onnx.NodeProto, plan: einsum_plan.Pair, a: str, b: str,
                extents: dict[str, int | str]) -> str:
    """Two operands contracted as ``plan`` says, up to the product split into ``plan.laid``'s
    axes (the caller transposes it to the step's output)."""
    def product(indices: str) -> int | str:
        total = sizes.product([extents[index] for index in indices])
        if total is None:
            raise g.fail(node, f"the sizes of {indices!r} multiply beyond a size expression")
        return total

    def arranged(value: str, summed: tuple[int, ...], order: list[int], shape: list[int | str]) -> str:
        if summed:
            value = g._add("sum", [value], {"axis": list(summed), "keepdims": False})
        if order != sorted(order):
            value = g._add("transpose", [value], {"axes": order})
        return g._add("reshape", [value], {"shape": shape})

    batch_sizes, inner = [extents[i] for i in plan.batch], product(plan.contracted)
    left = arranged(a, plan.sums[0], plan.order_a, [*batch_sizes, product(plan.free_a), inner])
    right = arranged(b, plan.sums[1], plan.order_b, [*batch_sizes, inner, product(plan.free_b)])
    result = g._add("matmul", [left, right], {})
    return g._add("reshape", [result], {"shape": [extents[i] for i in plan.laid]})


def _split(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """Split with constant piece sizes (opset 13–17 give them as an input), or into as many
    pieces as it has outputs (``num_outputs`` from opset 18) of an axis of fixed size: equal,
    the last smaller where they do not divide it."""
    axis = int(attrs.get("axis", 0))
    if has_input(node, 1):
        pieces = [int(s) for s in constant_input(g, node, 1, "split")]
    else:
        count, dims = int(attrs.get("num_outputs", len(node.output))), g.shape(node.input[0])
        size = dims[axis] if dims is not None and -len(dims) <= axis < len(dims) else None
        if not isinstance(size, int) or count < 1:
            raise g.fail(node, f"no split sizes (equal pieces of an axis of size {size!r})")
        piece = -(-size // count)
        pieces = [piece] * (count - 1) + [size - piece * (count - 1)]
        if pieces[-1] < 0 or (count > 1 and pieces[-1] == 0 and "num_outputs" not in attrs):
            raise g.fail(node, f"{count} pieces of an axis of size {size}")
    cuts = [int(c) for c in np.cumsum(pieces)[:-1]]
    g._add("split", [g.value(node.input[0], node)],
           {"sections": None, "indices": cuts, "axis": axis}, outputs=len(pieces))
    for name, value in zip(node.output, g.nodes[-1]["outputs"], strict=True):
        g.values[name] = value


def _lp_normalization(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """LpNormalization: x divided by its L1 or L2 norm along ``axis`` (no epsilon, as ONNX's)."""
    p, axis = int(attrs.get("p", 2)), int(attrs.get("axis", -1))
    if p not in (1, 2):
        raise g.fail(node, f"p={p} (1 or 2)")
    x = g.value(node.input[0], node)
    magnitudes = g._add("abs" if p == 1 else "square", [x], {})
    total = g._add("sum", [magnitudes], {"axis": [axis], "keepdims": True})
    g.op(node, "divide", [x, total if p == 1 else g._add("sqrt", [total], {})])


def _summed(g: Graph, node: onnx.NodeProto) -> str:
    """The graph value of all of ``node``'s inputs added, left to right (ONNX broadcasts)."""
    names = [g.value(name, node) for name in node.input]
    total = names[0]
    for name in names[1:]:
        total = g._add("add", [total, name], {})
    return total


def _sum(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    g.values[node.output[0]] = _summed(g, node)


def _mean(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    count = g.scalar(float(len(node.input)))
    g.op(node, "divide", [_summed(g, node), count])


def _mod(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """ONNX's Mod: with fmod=0 the remainder takes the divisor's sign (numpy's mod), with
    fmod=1 the dividend's (C's fmod, numpy's fmod)."""
    g.op(node, "fmod" if attrs.get("fmod", 0) else "mod", [g.value(name, node) for name in node.input])


def _exp_minus_one(g: Graph, x: str, inner: float, outer: float) -> str:
    """outer·(exp(x / inner) − 1) as graph values (ELU-family's negative side)."""
    scaled = x if inner == 1 else g._add("divide", [x, g.scalar(inner)], {})
    grown = g._add("expm1", [scaled], {})
    return grown if outer == 1 else g._add("multiply", [grown, g.scalar(outer)], {})


def _selu(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """Selu: with ONNX's default constants the SELU layer; with others, gamma·(x where x > 0,
    else alpha·(exp(x) − 1))."""
    try:
        layer = selu(attrs)
    except ValueError:
        alpha, gamma = float(attrs.get("alpha", SELU_ALPHA)), float(attrs.get("gamma", SELU_GAMMA))
        x = g.value(node.input[0], node)
        positive = g._add("greater", [x, g.scalar(0.0)], {})
        chosen = g._add("where", [positive, x, _exp_minus_one(g, x, 1.0, alpha)], {})
        g.op(node, "multiply", [chosen, g.scalar(gamma)])
        return
    g.layer(node, layer, g.value(node.input[0], node), "selu")


def _lrn(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """LRN (AlexNet's, GoogLeNet's): the op of the same window (``nn.ops.neural.lrn``)."""
    size = attrs.get("size")
    if not isinstance(size, int) or not 1 <= size <= LRN_MAX_SIZE:
        raise g.fail(node, f"size={size!r}: LRN's window spans 1 to {LRN_MAX_SIZE} channels")
    options = {name: float(attrs.get(name, default)) for name, default in
               (("alpha", 1e-4), ("beta", 0.75), ("bias", 1.0))}
    g.op(node, "lrn", [g.value(node.input[0], node)], size=size, **options)


def _celu(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """Celu: max(0, x) + min(0, alpha·(exp(x / alpha) − 1))."""
    alpha = float(attrs.get("alpha", 1.0))
    x = g.value(node.input[0], node)
    positive = g._add("maximum", [x, g.scalar(0.0)], {})
    negative = g._add("minimum", [_exp_minus_one(g, x, alpha, alpha), g.scalar(0.0)], {})
    g.op(node, "add", [positive, negative])


def _hard_sigmoid_of(g: Graph, x: str, alpha: float, beta: float) -> str:
    """max(0, min(1, alpha·x + beta)) as graph values."""
    scaled = g._add("multiply", [x, g.scalar(alpha)], {})
    shifted = g._add("add", [scaled, g.scalar(beta)], {})
    return g._add("clip", [shifted], {"a_min": 0.0, "a_max": 1.0})


def _hard_sigmoid(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
    g.values[node.output[0]] = _hard_sigmoid_of(g, g.value(node.input[0], node), alpha, beta)


def _shrink(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """Shrink: x − bias where x > lambd, x + bias where x < −lambd, else 0 (of x's dtype)."""
    lambd, bias = float(attrs.get("lambd", 0.5)), float(attrs.get("bias", 0.0))
    x = g.value(node.input[0], node)
    low, high = g._add("less", [x, g.scalar(-lambd)], {}), g._add("greater", [x, g.scalar(lambd)], {})
    raised, lowered = g._add("add", [x, g.scalar(bias)], {}), g._add("subtract", [x, g.scalar(bias)], {})
    below = g._add("where", [low, raised, g._add("zeros_like", [x], {"dtype": None})], {})
    g.op(node, "where", [high, lowered, below])


def _hard_swish(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """x · HardSigmoid(x) with alpha 1/6 and beta 0.5, as ONNX defines it."""
    x = g.value(node.input[0], node)
    g.op(node, "multiply", [x, _hard_sigmoid_of(g, x, 1 / 6, 0.5)])


def _expand(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """Expand: the input broadcast with the target shape both ways (a 1 in the target keeps the
    input's size), as ``broadcast_to`` to the sizes that gives; the target a constant or a
    shape vector (sizes named for the model's inputs allowed), the input's shape known."""
    target = g.sizes(node, 1, "target shape")
    source = g.shape(node.input[0])
    if source is None:
        raise g.fail(node, "the input's shape is not known")
    rank = max(len(source), len(target))
    padded_source = [1] * (rank - len(source)) + list(source)
    padded_target = [1] * (rank - len(target)) + target
    sizes: list[int | str] = []
    for have, want in zip(padded_source, padded_target, strict=True):
        if want == 1 or want == have:
            sizes.append(have)
        elif have == 1:
            sizes.append(want)
        else:
            raise g.fail(node, f"cannot broadcast a size {have} to {want}")
    g.op(node, "broadcast_to", [g.value(node.input[0], node)], shape=sizes)
    g.learn(node.output[0], sizes)


MORE_OPERATORS: dict[str, Translator] = {
    "ArgMax": _arg("argmax"),
    "ArgMin": _arg("argmin"),
    "CumSum": _cumsum,
    "Clip": _clip,
    "Tile": _tile,
    "GatherND": _gather_nd,
    "GatherElements": _gather_elements,
    "Trilu": _trilu,
    "Attention": _attention,
    "IsNaN": _is_nan,
    "IsInf": _is_inf,
    "TopK": _topk,
    "DepthToSpace": _blocks,
    "Resize": _resize,
    "Einsum": _einsum,
    "SpaceToDepth": _blocks,
    "Split": _split,
    "LpNormalization": _lp_normalization,
    "Selu": _selu,
    "Celu": _celu,
    "LRN": _lrn,
    "Sum": _sum,
    "Mean": _mean,
    "Mod": _mod,
    "HardSigmoid": _hard_sigmoid,
    "HardSwish": _hard_swish,
    "Shrink": _shrink,
    "Expand": _expand,
}
