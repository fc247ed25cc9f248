"""The recurrent layers and cells as ONNX nodes: one function per type, in ``RECURRENT``.

They differ from ``LAYERS`` in taking several, nested arguments (``(x, [h, c])``) and giving
nested results (``(y, [h, c])``): each function gets the arguments as ``Value``s (lists for
states, None where absent) and returns the same structure of ONNX names as the block returns.

- ``RNN``/``LSTM``/``GRU`` become ONNX's own ``RNN``/``LSTM``/``GRU`` operators, one per layer
  (stacked), both directions in one, so the sequence length stays dynamic. The traps: ONNX's
  LSTM gates are (i, o, f, c), MXNet's (i, f, c, o); ONNX's GRU gates are (z, r, h), MXNet's
  (r, z, n), and MXNet's (cuDNN's) GRU applies the reset gate after the recurrent product, which
  is ONNX's ``linear_before_reset=1``; ONNX's B is both biases concatenated; its Y is
  (T, directions, N, H), so the directions are moved next to H before the next layer.
- The cells are one step, written out (``Gemm`` and the gates), so any of their activations works.
- The wrappers run their cells (``emit_block``); at inference ``DropoutCell`` and ``ZoneoutCell``
  pass their cell's results through unchanged, as their ``forward`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from onnx import helper, numpy_helper

from ...nn import registry
from ...nn.block import Block
from .emitter import Emitter, Value, onnx_dtype
from .export_layers import activation

__all__ = ["RECURRENT", "REFUSED"]

# (emitter, block, config, arguments, path, emit_block) -> the result's structure of ONNX names
EmitBlock = Callable[[Emitter, Block, list[Any], str], Any]
RecurrentEmitter = Callable[[Emitter, Block, dict[str, Any], list[Any], str, EmitBlock], Any]

# the rows of MXNet's gate blocks in the order ONNX's operators want them
_GATE_ORDER = {"LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2], "RNN": [0]}

REFUSED = {
    "BidirectionalCell": "its forward refuses to step (Gluon's rule: it only unrolls); a traced "
    "unroll records its two cells' steps, which are written instead",
}


def _argument(args: list[Any], index: int) -> Any:
    return args[index] if len(args) > index else None


def _reorder(weight: np.ndarray, kind: str) -> np.ndarray:
    blocks = np.split(weight, len(_GATE_ORDER[kind]), axis=0)
    return np.concatenate([blocks[i] for i in _GATE_ORDER[kind]], axis=0)


def _multi(em: Emitter, op_type: str, inputs: list[str], count: int, hint: str, **attrs: Any) -> list[str]:
    """A node with several outputs."""
    while inputs and not inputs[-1]:
        inputs = inputs[:-1]  # ONNX: trailing optional inputs are left out
    outs = [em.fresh(f"{hint}_{i}") for i in range(count)]
    em.nodes.append(helper.make_node(op_type, inputs, outs, name=em.fresh(f"/{hint}/{op_type}"), **attrs))
    return outs


def _fused(em: Emitter, block: Block, c: dict[str, Any], args: list[Any], path: str, emit: EmitBlock) -> Any:
    kind = registry.type_name_of(block) or ""
    if c.get("projection_size") or c.get("state_clip_min") is not None:
        raise em.refuse(
            f"block {path!r} ({kind}): ONNX's LSTM has no projection (projection_size) and no cell "
            "state clipping (its 'clip' bounds the gates' inputs)"
        )
    x, states, lengths = args[0], _argument(args, 1), _argument(args, 2)
    dtype = np.dtype(c["dtype"])
    directions = 2 if c["bidirectional"] else 1
    hidden = c["hidden_size"]
    h = em.as_dtype(x, dtype)
    if c["layout"] == "NTC":
        h = em.node("Transpose", [h], perm=[1, 0, 2])
    sequence = ""
    if c["use_sequence_length"] and lengths is not None:
        sequence = em.node("Cast", [lengths.name], "lengths", to=onnx_dtype("int32"))
    attrs: dict[str, Any] = {
        "hidden_size": hidden,
        "direction": "bidirectional" if directions == 2 else "forward",
    }
    if kind == "GRU":
        attrs["linear_before_reset"] = 1
    if kind == "RNN":
        attrs["activations"] = [{"relu": "Relu", "tanh": "Tanh"}[c["activation"]]] * directions
    state_names = [em.as_dtype(s, dtype) for s in states] if states else []
    h_out, c_out = [], []
    for layer in range(c["num_layers"]):
        names = [f"{d}{layer}" for d in "lr"[:directions]]
        param = lambda n, part: block.params[f"{n}_{part}"].array()  # noqa: E731
        label = f"{path}.l{layer}" if path else f"l{layer}"
        w = np.stack([_reorder(param(n, "i2h_weight"), kind) for n in names])
        r = np.stack([_reorder(param(n, "h2h_weight"), kind) for n in names])
        biases = [[_reorder(param(n, part), kind) for part in ("i2h_bias", "h2h_bias")] for n in names]
        b = np.stack([np.concatenate(pair) for pair in biases])
        rows = em.ints([layer * directions]), em.ints([(layer + 1) * directions]), em.ints([0])
        initial = [em.node("Slice", [s, *rows]) for s in state_names]
        inputs = [h, em.initializer(w, f"{label}.W"), em.initializer(r, f"{label}.R"),
                  em.initializer(b, f"{label}.B"), sequence, *initial]
        outs = _multi(em, kind, inputs, 3 if kind == "LSTM" else 2, kind.lower(), **attrs)
        # Y (T, directions, N, H) -> (T, N, directions · H): the directions side by side, as MXNet
        h = em.node("Reshape", [em.node("Transpose", [outs[0]], perm=[0, 2, 1, 3]), em.ints([0, 0, -1])])
        h_out.append(outs[1])
        c_out.extend(outs[2:])
    if c["layout"] == "NTC":
        h = em.node("Transpose", [h], perm=[1, 0, 2])
    out = em.node("Identity", [h], kind.lower())
    if states is None:
        return out
    join = lambda parts: em.node("Concat", parts, "state", axis=0)  # noqa: E731
    return out, [join(h_out)] + ([join(c_out)] if kind == "LSTM" else [])


def _cell(em: Emitter, block: Block, c: dict[str, Any], args: list[Any], path: str, emit: EmitBlock) -> Any:
    kind = registry.type_name_of(block)
    x, states = args[0], _argument(args, 1)
    dtype, hidden = np.dtype(c["dtype"]), c["hidden_size"]
    h_in = em.as_dtype(x, dtype)
    if x.ndim > 2:
        h_in = em.node("Flatten", [h_in], axis=1)
    param = lambda name: em.initializer(block.params[name].array(), f"{path}.{name}" if path else name)  # noqa: E731
    i2h = em.node("Gemm", [h_in, param("i2h_weight"), param("i2h_bias")], "i2h", transB=1)
    if states:
        previous = [em.as_dtype(s, dtype) for s in states]
    else:
        shape = em.node("Concat", [em.node("Shape", [h_in], end=1), em.ints([hidden])], axis=0)
        zero = numpy_helper.from_array(np.zeros(1, dtype))
        zeros = em.node("ConstantOfShape", [shape], "zeros", value=zero)
        previous = [zeros] * (2 if kind == "LSTMCell" else 1)
    h2h = em.node("Gemm", [previous[0], param("h2h_weight"), param("h2h_bias")], "h2h", transB=1)
    gate = lambda x, i: em.node(  # noqa: E731
        "Slice", [x, em.ints([i * hidden]), em.ints([(i + 1) * hidden]), em.ints([1])]
    )
    if kind == "RNNCell":
        out = activation(em, c["activation"], em.node("Add", [i2h, h2h]), dtype)
        return out, [out]
    if kind == "LSTMCell":
        gates = em.node("Add", [i2h, h2h])
        act, recurrent = c["activation"], c["recurrent_activation"]
        i, f = (activation(em, recurrent, gate(gates, k), dtype) for k in (0, 1))
        g, o = activation(em, act, gate(gates, 2), dtype), activation(em, recurrent, gate(gates, 3), dtype)
        cell = em.node("Add", [em.node("Mul", [f, previous[1]]), em.node("Mul", [i, g])], "c")
        out = em.node("Mul", [o, activation(em, act, cell, dtype)], "h")
        return out, [out, cell]
    reset = em.node("Sigmoid", [em.node("Add", [gate(i2h, 0), gate(h2h, 0)])])
    update = em.node("Sigmoid", [em.node("Add", [gate(i2h, 1), gate(h2h, 1)])])
    new = em.node("Tanh", [em.node("Add", [gate(i2h, 2), em.node("Mul", [reset, gate(h2h, 2)])])])
    keep = em.node("Sub", [em.constant(1, dtype), update])
    out = em.node("Add", [em.node("Mul", [keep, new]), em.node("Mul", [update, previous[0]])], "h")
    return out, [out]


def _names(result: Any) -> Any:
    if isinstance(result, Value):
        return result.name
    if isinstance(result, (list, tuple)):
        return type(result)(_names(r) for r in result)
    return result


def _sequential_cell(
    em: Emitter, block: Block, c: dict[str, Any], args: list[Any], path: str, emit: EmitBlock
) -> Any:
    x, states = args[0], _argument(args, 1)
    new_states: list[str] = []
    position = 0
    for name, child in block.children.items():
        count = len(child.state_info())  # type: ignore[attr-defined]
        mine = None if states is None else list(states[position : position + count])
        position += count
        out, child_states = emit(em, child, [x, mine], f"{path}.{name}" if path else name)
        x = out
        new_states.extend(_names(child_states))
    return x.name, new_states


def _passing(
    em: Emitter, block: Block, c: dict[str, Any], args: list[Any], path: str, emit: EmitBlock
) -> Any:
    """DropoutCell at inference: its input and states, unchanged."""
    states = _argument(args, 1) or []
    return args[0].name, [s.name for s in states]


def _modified(residual: bool) -> RecurrentEmitter:
    def emit_modifier(
        em: Emitter, block: Block, c: dict[str, Any], args: list[Any], path: str, emit: EmitBlock
    ) -> Any:
        base = block.children["base_cell"]
        where = f"{path}.base_cell" if path else "base_cell"
        out, states = emit(em, base, [args[0], _argument(args, 1)], where)
        name = out.name
        if residual:
            name = em.node("Add", [name, em.as_dtype(args[0], out.dtype)], "residual")
        return name, _names(states)

    return emit_modifier


RECURRENT: dict[str, RecurrentEmitter] = {
    "RNN": _fused,
    "LSTM": _fused,
    "GRU": _fused,
    "RNNCell": _cell,
    "LSTMCell": _cell,
    "GRUCell": _cell,
    "SequentialRNNCell": _sequential_cell,
    "DropoutCell": _passing,
    "ZoneoutCell": _modified(residual=False),  # at inference: the base cell's results
    "ResidualCell": _modified(residual=True),
}
