"""MXNet's fused ``RNN`` operator → ``modelpack.nn.rnn``'s ``RNN``, ``LSTM`` or ``GRU`` layer.

Gluon 1.9's ``rnn.LSTM(...).export()`` writes the operator with its parameters packed into
one vector: every layer's weights (per layer, per direction: ``i2h`` then ``h2h``), then its
biases in the same order, each ``Reshape``\\ d to 1-D and joined by ``_rnn_param_concat``
(an older export names one flat ``parameters`` variable instead). The vector is unpacked
positionally, as the operator reads it, into the layer's ``l0_i2h_weight``, ... . Begin states
are graph inputs (the caller passed them) or ``_zeros`` nodes (Gluon's default): the layer
then starts from zeros itself. The operator is time-major; Gluon's ``NTC`` layout is a
``SwapAxis`` on each side, converted as such.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import MissingParameterError
from ...nn.block import Block
from ...nn.rnn import GRU, LSTM, RNN
from ...nn.rnn.steps import GATES
from .lowering import READS_ITSELF, Node, float_dtype, lowers
from .symbol import Attrs, Symbol

__all__ = ["rnn_input_shape"]

_OPS = ("RNN", "_npx_rnn")
_ZEROS = ("_zeros", "zeros", "_npi_zeros")
_CONCATS = ("_rnn_param_concat", "Concat", "concat", "_npi_concatenate")
_RESHAPES = ("Reshape", "reshape", "_npx_reshape", "_np_reshape")


def _states(mode: str) -> int:
    return 2 if mode == "lstm" else 1


def _own_inputs(symbol: Symbol, index: int) -> set[int]:
    """The packed parameters, and begin states that are zeros."""
    inputs = symbol.nodes[index].inputs
    return {1} | {p for p in range(2, len(inputs)) if symbol.nodes[inputs[p][0]].op in _ZEROS}


for _op in _OPS:
    READS_ITSELF[_op] = _own_inputs


def _packed(node: Node) -> tuple[np.ndarray, list[str]]:
    """The packed parameter vector (the arrays behind input 1, flattened and joined in order)
    and the names of the variables it came from."""
    symbol = node.symbol
    parts: list[np.ndarray] = []
    names: list[str] = []
    stack = [symbol.nodes[node.index].inputs[1][0]]
    while stack:
        index = stack.pop()
        source = symbol.nodes[index]
        attrs = Attrs(source.attributes(), symbol.where(index))
        if source.op == "null":
            array = node.lookup(index)
            if array is None:
                raise MissingParameterError(
                    f"{node.where}: parameter {source.name!r} is not in the parameter file"
                )
            parts.append(array.reshape(-1))
            names.append(source.name)
            continue
        if source.op in _CONCATS:
            axis = attrs.integer("dim" if "dim" in attrs.raw else "axis", 0)
            attrs.integer("num_args", len(source.inputs))
            if axis not in (0, -1):
                raise node.refuse(f"parameters joined along axis {axis}")
            stack.extend(entry[0] for entry in reversed(source.inputs))
        elif source.op in _RESHAPES:
            target = attrs.integers("newshape" if "newshape" in attrs.raw else "shape")
            if target != (-1,) or attrs.text("order", "C") != "C" or attrs.flag("reverse", False):
                raise node.refuse(f"parameters reshaped by {source.op} with {source.attributes()}")
            stack.append(source.inputs[0][0])
        else:
            raise node.refuse(f"parameters computed by {source.op} (node {source.name!r})")
        if attrs.unused():
            raise node.refuse(f"parameters through {source.op} with attributes {attrs.unused()}")
    dtypes = {part.dtype for part in parts}
    if len(dtypes) != 1:
        raise node.refuse(f"parameters of several dtypes {sorted(d.name for d in dtypes)}")
    return np.concatenate(parts), names


def _unpack(
    node: Node, flat: np.ndarray, mode: str, hidden: int, layers: int, dirs: int
) -> dict[str, np.ndarray]:
    """The layer's parameters by name, in the operator's order (weights first, then biases)."""
    gates = GATES[mode] * hidden
    later = (layers - 1) * dirs * gates * (dirs * hidden + hidden)  # layers 1.. : i2h and h2h weights
    rest = flat.size - later - layers * dirs * 2 * gates - dirs * gates * hidden
    if rest <= 0 or rest % (dirs * gates):
        raise node.refuse(
            f"a packed parameter vector of {flat.size} values for mode={mode}, state_size={hidden}, "
            f"num_layers={layers}, bidirectional={dirs == 2}"
        )
    arrays: dict[str, np.ndarray] = {}
    offset, inputs = 0, rest // (dirs * gates)
    for kind in ("weight", "bias"):
        width = inputs
        for layer in range(layers):
            for d in "lr"[:dirs]:
                for part, columns in (("i2h", width), ("h2h", hidden)):
                    shape = (gates, columns) if kind == "weight" else (gates,)
                    size = int(np.prod(shape))
                    arrays[f"{d}{layer}_{part}_{kind}"] = flat[offset:offset + size].reshape(shape)
                    offset += size
            width = dirs * hidden
    return arrays


@lowers(*_OPS)
def _rnn(node: Node) -> list[str]:
    mode = node.attrs.text("mode")
    if mode not in ("rnn_relu", "rnn_tanh", "lstm", "gru"):
        raise node.refuse(f"mode {mode!r}")
    hidden = node.attrs.integer("state_size")
    layers = node.attrs.integer("num_layers", 1)
    dirs = 2 if node.attrs.flag("bidirectional", False) else 1
    node.attrs.flag("state_outputs", False)  # the states are outputs 1.. either way; read if used
    if node.attrs.text("projection_size", "None") != "None":
        raise node.refuse(f"projection_size={node.attrs.text('projection_size')}")
    if node.attrs.flag("use_sequence_length", False):
        raise node.refuse("use_sequence_length=True")
    for key in ("lstm_state_clip_min", "lstm_state_clip_max"):
        if node.attrs.optional_number(key) is not None:
            # MXNet's CPU kernel ignores the clip and its GPU kernel applies it: no one answer.
            raise node.refuse(f"{key}={node.attrs.text(key)}")
    if node.attrs.flag("lstm_state_clip_nan", False):
        raise node.refuse("lstm_state_clip_nan=True")
    dropout = node.attrs.number("p", 0.0)  # between layers, while training only
    count = _states(mode)
    if node.arity != 2 + count:
        raise node.refuse(f"{node.arity} inputs for mode={mode} (data, parameters and {count} state(s))")
    flat, names = _packed(node)
    arrays = _unpack(node, flat, mode, hidden, layers, dirs)
    dtype = float_dtype(node, flat)
    options: dict[str, Any] = {
        "num_layers": layers, "layout": "TNC", "dropout": dropout, "bidirectional": dirs == 2,
        "input_size": arrays["l0_i2h_weight"].shape[1], "dtype": dtype,
    }
    block: Block
    if mode == "lstm":
        block = LSTM(hidden, **options)
    elif mode == "gru":
        block = GRU(hidden, **options)
    else:
        block = RNN(hidden, activation=mode[4:], **options)
    block.set_parameters(arrays, source=node.where)
    inputs = node.symbol.nodes[node.index].inputs
    zeros = [node.symbol.nodes[inputs[p][0]].op in _ZEROS for p in range(2, 2 + count)]
    x = node.value(0)
    # Named as Gluon's layer (``lstm0``), so its parameters read lstm0.l0_i2h_weight.
    prefix = names[0][: -len("l0_i2h_weight")] if names and names[0].endswith("l0_i2h_weight") else ""
    hint = prefix.rstrip("_") or node.layer_name()
    if all(zeros):  # Gluon's default: the layer starts from zeros and returns the output only
        return [node.builder.layer(hint, block, x)]
    if any(zeros):
        raise node.refuse("begin states of which some are zeros and some are inputs")
    states = [node.value(p) for p in range(2, 2 + count)]
    state_tree = {"kind": "list", "items": ["value"] * count}
    return node.builder.call(
        hint, block, [x, *states], ["value", state_tree],
        {"kind": "tuple", "items": ["value", state_tree]},
    )


def rnn_input_shape(symbol: Symbol, arrays: dict[str, np.ndarray], index: int, position: int,
                    swapped: bool) -> list[int | str] | None:
    """The shape of the graph input read at ``position`` of RNN node ``index`` (through a
    swap of axes 0 and 1 if ``swapped``): (seq, batch, features) data, (layers·dirs, batch,
    hidden) states."""
    attrs = Attrs(symbol.nodes[index].attributes(), symbol.where(index))
    try:
        hidden, mode = attrs.integer("state_size"), attrs.text("mode")
        layers, dirs = attrs.integer("num_layers", 1), 2 if attrs.flag("bidirectional", False) else 1
    except Exception:  # a malformed node: its lowering reports it
        return None
    if position >= 2:
        return [layers * dirs, "batch", hidden]
    if position != 0 or mode not in GATES:
        return None
    total = 0
    stack = [symbol.nodes[index].inputs[1][0]]
    while stack and len(stack) < 10_000:
        source = symbol.nodes[stack.pop()]
        if source.op == "null":
            total += int(np.size(arrays[source.name])) if source.name in arrays else 0
        else:
            stack.extend(entry[0] for entry in source.inputs)
    gates = GATES[mode] * hidden
    rest = total - (layers - 1) * dirs * gates * (dirs + 1) * hidden - layers * dirs * 2 * gates
    features = rest // (dirs * gates) - hidden if rest > 0 else 0
    if features <= 0:
        return None
    return ["batch", "seq", features] if swapped else ["seq", "batch", features]
