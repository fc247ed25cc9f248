"""MXNet operators that select, split, gather, repeat, broadcast or multiply arrays, lowered to
graph ops: ``slice_axis``, ``slice``, ``SliceChannel``/``split``, ``take``, ``one_hot``,
``where``, ``tile``, ``repeat``, ``broadcast_to``/``broadcast_like``, ``dot``, ``batch_dot``
and nearest ``UpSampling`` (the detection and segmentation heads, MobileNet's ReLU6, YOLO's
upsampling, the Module API's models).

Each entry adds to ``lowering.LOWERINGS``; ``lowering`` imports this module once, last.
"""

from __future__ import annotations

from typing import Any

from .lowering import Node, lowers

__all__: list[str] = []

_ALL: dict[str, Any] = {"slice": [None, None, None]}  # ``:`` in a getitem index


def _axis(node: Node, x: str, axis: int) -> int:
    """``axis`` made non-negative: a negative one needs ``x``'s rank, found by probing the graph
    (refused when out of range); a positive one MXNet checked when it exported the symbol."""
    if axis >= 0:
        return axis
    rank = len(node.builder.shapes(x)[0])
    if not -rank <= axis < rank:
        raise node.refuse(f"axis {axis} of a {rank}-D input")
    return axis % rank


def _size(node: Node, x: str, axis: int) -> int | str:
    """The size of ``x`` along ``axis``: a number, or the input size it follows (``batch``)."""
    first, second, names = node.builder.shapes(x)
    if not 0 <= axis < len(first):  # (a positive axis is taken as the file gives it: see _axis)
        raise node.refuse(f"axis {axis} of a {len(first)}-D input")
    if first[axis] == second[axis]:
        return first[axis]
    if (first[axis], second[axis]) in names:
        return names[(first[axis], second[axis])]
    raise node.refuse(f"a size along axis {axis} that follows no input size")


@lowers("slice_axis", "_npx_slice_axis")
def _slice_axis(node: Node) -> str:
    x = node.value(0)
    axis = _axis(node, x, node.attrs.integer("axis"))
    begin, end = node.attrs.integer("begin"), node.attrs.bounds("end")
    if len(end) != 1:
        raise node.refuse(f"end {end}")
    index = [_ALL] * axis + [{"slice": [begin, end[0], None]}]
    return node.builder.op("getitem", x, index=index)


@lowers("slice", "crop", "_npi_slice")
def _slice(node: Node) -> str:
    """MXNet's ``slice``: Python's slicing of the leading axes (``None`` where omitted)."""
    begin = node.attrs.bounds("begin")
    end = node.attrs.bounds("end")
    step = node.attrs.bounds("step", ())
    if len(end) != len(begin) or (step and len(step) != len(begin)):
        raise node.refuse(f"begin {begin}, end {end} and step {step} of different lengths")
    if any(s == 0 for s in step):
        raise node.refuse("a step of 0")
    steps = step or (None,) * len(begin)
    index = [{"slice": [b, e, s]} for b, e, s in zip(begin, end, steps, strict=True)]
    return node.builder.op("getitem", node.value(0), index=index)


@lowers("SliceChannel", "split", "_split_v2")
def _split(node: Node) -> list[str]:
    """Equal parts along ``axis`` (``sections``/``num_outputs``), or parts cut at ``indices``
    (``_split_v2``, numpy-mode's ``np.split``); ``squeeze_axis`` drops the axis when the parts
    are one wide."""
    b, x = node.builder, node.value(0)
    if node.symbol.nodes[node.index].op == "_split_v2":
        count, indices = node.attrs.integer("sections", 0), list(node.attrs.integers("indices", ()))
        axis = _axis(node, x, node.attrs.integer("axis", 0))
    else:
        count, indices = node.attrs.integer("num_outputs"), []
        axis = _axis(node, x, node.attrs.integer("axis", 1))
    squeeze = node.attrs.flag("squeeze_axis", False)
    size = _size(node, x, axis)
    if count > 0 and not indices:
        if not isinstance(size, int) or size % count:
            raise node.refuse(f"{count} equal parts of an axis of size {size}")
        widths = {size // count}
        parts = b.op_outputs("split", count, x, sections=count, axis=axis)
    elif count == 0 and indices[:1] == [0]:  # each part's start, the first at 0 (as MXNet writes it)
        if not isinstance(size, int):
            raise node.refuse("cuts of an axis whose size follows an input size")
        cuts = [*indices, size]
        widths = {max(min(end, size) - max(start, 0), 0) for start, end in zip(cuts, cuts[1:], strict=False)}
        parts = b.op_outputs("split", len(indices), x, indices=indices[1:], axis=axis)
    else:
        raise node.refuse(f"sections={count} with indices={indices}")
    if squeeze and widths != {1}:
        raise node.refuse(f"squeeze_axis=True with parts {sorted(widths)} wide")
    return [b.op("squeeze", part, axis=[axis]) for part in parts] if squeeze else parts


@lowers("take", "_npi_take")
def _take(node: Node) -> str:
    """``mode`` ``clip`` (MXNet's default), ``wrap`` or ``raise``; float indices truncated."""
    mode = node.attrs.text("mode", "clip")
    if mode not in ("clip", "wrap", "raise"):
        raise node.refuse(f"mode {mode!r}")
    b = node.builder
    indices = b.op("cast", node.value(1), dtype="int64")
    return b.op("take", node.value(0), indices, axis=node.attrs.integer("axis", 0), mode=mode)


@lowers("one_hot", "_npx_one_hot")
def _one_hot(node: Node) -> str:
    return node.builder.op(
        "one_hot", node.value(0), depth=node.attrs.integer("depth"),
        on_value=node.attrs.number("on_value", 1.0), off_value=node.attrs.number("off_value", 0.0),
        dtype=node.attrs.text("dtype", "float32"),
    )


@lowers("where", "_npi_where", "_npi_where_lscalar", "_npi_where_rscalar", "_npi_where_scalar2")
def _where(node: Node) -> str:
    """``x`` where ``condition`` is non-zero, else ``y`` (either may be a scalar attribute in
    numpy mode); legacy ``where`` of a 1-D condition over N-D arrays picks whole rows."""
    b = node.builder
    op = node.symbol.nodes[node.index].op
    condition = node.value(0)
    if op == "_npi_where_scalar2":  # two scalars: float32, MXNet's default dtype
        x, y = (b.op("full", shape=[], value=node.attrs.number(k), dtype="float32") for k in ("x", "y"))
    elif op == "_npi_where_lscalar":
        x, y = b.scalar(node.attrs.number("scalar")), node.value(1)
    elif op == "_npi_where_rscalar":
        x, y = node.value(1), b.scalar(node.attrs.number("scalar"))
    else:
        x, y = node.value(1), node.value(2)
    if op == "where":
        rank, condition_rank = len(b.shapes(x)[0]), len(b.shapes(condition)[0])
        if condition_rank == 1 and rank > 1:
            condition = b.op("reshape", condition, shape=[-1] + [1] * (rank - 1))
    return b.op("where", b.op("not_equal", condition, b.scalar(0)), x, y)


@lowers("tile", "_npi_tile")
def _tile(node: Node) -> str:
    return node.builder.op("tile", node.value(0), reps=list(node.attrs.integers("reps")))


@lowers("repeat", "_npi_repeat")
def _repeat(node: Node) -> str:
    axis = node.attrs.optional_integers("axis")
    return node.builder.op("repeat", node.value(0), repeats=node.attrs.integer("repeats"),
                           axis=axis[0] if axis else None)


@lowers("broadcast_to", "_npi_broadcast_to")
def _broadcast_to(node: Node) -> str:
    """``shape``: a 0 keeps the input's size there (legacy), as numpy-mode's -1."""
    x = node.value(0)
    target: list[Any] = []
    shape = node.attrs.integers("shape")
    first = node.builder.shapes(x)[0]
    if len(shape) < len(first):
        raise node.refuse(f"shape {shape} of lower rank than the input's")
    offset = len(shape) - len(first)
    for axis, size in enumerate(shape):
        keep = size == 0 or (size == -1 and node.symbol.nodes[node.index].op == "_npi_broadcast_to")
        target.append(_size(node, x, axis - offset) if keep and axis >= offset else size)
    return node.builder.op("broadcast_to", x, shape=target)


@lowers("broadcast_like")
def _broadcast_like(node: Node) -> str:
    if node.attrs.optional_integers("lhs_axes") or node.attrs.optional_integers("rhs_axes"):
        raise node.refuse("lhs_axes/rhs_axes")
    like = node.value(1)
    rank = len(node.builder.shapes(like)[0])
    return node.builder.op("broadcast_to", node.value(0), shape=[_size(node, like, a) for a in range(rank)])


@lowers("dot", "_npi_dot")
def _dot(node: Node) -> str:
    """Legacy ``dot`` contracts the last axis of ``a`` with the first of ``b``: numpy's ``dot``
    when ``b`` has at most 2 axes (refused beyond); ``transpose_a/b`` on 2-D operands."""
    b = node.builder
    operands = [node.value(0), node.value(1)]
    if len(b.shapes(operands[1])[0]) > 2:
        raise node.refuse("a dot with a right operand of more than 2 axes")
    for position, flag in enumerate(("transpose_a", "transpose_b")):
        if node.attrs.flag(flag, False):
            if len(b.shapes(operands[position])[0]) != 2:
                raise node.refuse(f"{flag} on an operand that is not 2-D")
            operands[position] = b.op("transpose", operands[position], axes=None)
    node.attrs.text("forward_stype", "")
    return b.op("dot", *operands)


@lowers("batch_dot", "_npx_batch_dot")
def _batch_dot(node: Node) -> str:
    node.attrs.text("forward_stype", "")
    return node.builder.op("batch_dot", node.value(0), node.value(1),
                           transpose_a=node.attrs.flag("transpose_a", False),
                           transpose_b=node.attrs.flag("transpose_b", False))


@lowers("UpSampling")
def _upsampling(node: Node) -> str:
    """Nearest-neighbour upsampling of one NCHW input by an integer ``scale`` (bilinear
    upsampling is a learned deconvolution in MXNet: refused)."""
    if node.attrs.text("sample_type") != "nearest":
        raise node.refuse(f"sample_type {node.attrs.raw['sample_type']!r}")
    if node.attrs.integer("num_args", 1) != 1 or node.arity != 1:
        raise node.refuse("several inputs")
    node.attrs.text("multi_input_mode", "")
    node.attrs.integer("num_filter", 0)
    scale = node.attrs.integer("scale")
    if scale < 1:
        raise node.refuse(f"scale {scale}")
    b = node.builder
    return b.op("repeat", b.op("repeat", node.value(0), repeats=scale, axis=2), repeats=scale, axis=3)
