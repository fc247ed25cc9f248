"""ONNX's ``RNN``, ``LSTM`` and ``GRU`` operators as modelpack's layers, and ``ConstantOfShape``
(how torch.onnx writes their zero initial states).

One ONNX node is one layer of one or both directions. The traps, undone here as ``to_onnx``
does them: ONNX's LSTM gates are (i, o, f, c), modelpack's (MXNet's) (i, f, c, o); ONNX's GRU
gates are (z, r, h), modelpack's (r, z, n), and only ``linear_before_reset=1`` is modelpack's
GRU; B holds both biases. The layer's output (T, N, directions · H) is given back as ONNX's
Y, (T, directions, N, H). ``sequence_lens`` is modelpack's ``use_sequence_length`` (outputs
past an example's length are 0, its states those of its last valid step, in both). Options
modelpack's layers do not have (peepholes, ``clip``, ``input_forget``, a reverse-only
direction, other activations) are refused naming them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx

from .import_layers import _float_weight, _registered
from .importer import Graph, has_input, to_array

__all__ = ["recurrent", "constant_of_shape"]

# ONNX's gate blocks in modelpack's order (the inverse of to_onnx's reordering)
_GATES = {"LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2], "RNN": [0]}
_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}


def constant_of_shape(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """A filled array of a (possibly dynamic) shape: a constant, or the ``full`` op."""
    dims = g.sizes(node, 0, "shape")
    fill = to_array(attrs["value"], g.where) if "value" in attrs else np.zeros(1, np.float32)
    fixed = [d for d in dims if isinstance(d, int)]
    # A small one is a constant now; a large one (its sizes come from the file) is made when the
    # model runs, by the op that checks its size first.
    if len(fixed) == len(dims) and 0 <= min(fixed, default=0) and g.fold_room(math.prod(fixed)):
        g.constants[node.output[0]] = np.full(fixed, fill.reshape(-1)[0], fill.dtype)
        return
    g.op(node, "full", [], shape=dims, value=fill.reshape(-1)[0].item(), dtype=fill.dtype.name)


def _check_options(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any], directions: int) -> None:
    kind = node.op_type
    if attrs.get("direction", "forward") not in ("forward", "bidirectional"):
        raise g.fail(node, f"direction={attrs['direction']!r} (modelpack runs forward, or both ways)")
    for option in ("clip", "input_forget", "layout", "activation_alpha", "activation_beta"):
        if attrs.get(option):
            raise g.fail(node, f"{option}={attrs[option]!r} (modelpack's layers have no such option)")
    if kind == "GRU" and not attrs.get("linear_before_reset", 0):
        raise g.fail(node, "linear_before_reset=0 (modelpack's GRU, as MXNet's and cuDNN's, resets after "
                           "the recurrent product: linear_before_reset=1)")
    if kind == "LSTM" and has_input(node, 7):
        raise g.fail(node, "peephole weights P (modelpack's LSTM has none)")
    given = attrs.get("activations")
    given = None if given is None else [a.decode() if isinstance(a, bytes) else a for a in given]
    allowed = [[a] * directions for a in ("Tanh", "Relu")] if kind == "RNN" else [
        _ACTIVATIONS[kind] * directions
    ]
    if given is not None and list(given) not in allowed:
        raise g.fail(node, f"activations={given} (modelpack's {kind} uses {allowed[0]})")


def recurrent(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    kind = node.op_type
    w, r = _float_weight(g, node, 1, "W"), _float_weight(g, node, 2, "R")
    directions, rows, features = w.shape
    hidden = int(attrs.get("hidden_size", rows // len(_GATES[kind])))
    _check_options(g, node, attrs, directions)
    b = _float_weight(g, node, 3, "B") if has_input(node, 3) else np.zeros((directions, 2 * rows), w.dtype)
    config: dict[str, Any] = {
        "hidden_size": hidden,
        "num_layers": 1,
        "layout": "TNC",
        "bidirectional": directions == 2,
        "input_size": features,
        "dtype": w.dtype.name,
        "use_sequence_length": has_input(node, 4),
    }
    if kind == "RNN":
        first = list(attrs.get("activations", ["Tanh"]))[0]
        config["activation"] = "relu" if first in ("Relu", b"Relu") else "tanh"
    block = _registered(g, node, kind, config)

    def order(array: np.ndarray) -> np.ndarray:
        blocks = np.split(array, len(_GATES[kind]), axis=0)
        return np.concatenate([blocks[i] for i in _GATES[kind]], axis=0)

    arrays = {}
    for d in range(directions):
        prefix = f"{'lr'[d]}0_"
        arrays[prefix + "i2h_weight"] = order(w[d])
        arrays[prefix + "h2h_weight"] = order(r[d])
        arrays[prefix + "i2h_bias"] = order(b[d][:rows])
        arrays[prefix + "h2h_bias"] = order(b[d][rows:])
    block.set_parameters(arrays, source=g.where)

    x = g.value(node.input[0], node)
    count = 2 if kind == "LSTM" else 1
    wanted = any(name for name in node.output[1:])
    given = [has_input(node, 5 + i) for i in range(count)]
    lengths = [g.value(node.input[4], node)] if has_input(node, 4) else []
    name = g._fresh(kind.lower())
    g.children[name] = block
    if not wanted and not any(given):
        args = {"args": ["value", "none", "value"]} if lengths else {}
        y = g._add("layer", [x, *lengths], {"block": name, **args})
    else:
        states = [
            g.value(node.input[5 + i], node) if given[i] else _zeros(g, node, directions, hidden, w.dtype)
            for i in range(count)
        ]
        states_tree = {"kind": "list", "items": ["value"] * count}
        g._add("layer", [x, *states, *lengths], {
            "block": name, "returns": "tree", "args": ["value", states_tree, *(["value"] if lengths else [])],
            "tree": {"kind": "tuple", "items": ["value", states_tree]},
        }, outputs=1 + count)
        y, *new_states = g.nodes[-1]["outputs"]
        for onnx_name, value in zip(node.output[1:], new_states, strict=False):
            if onnx_name:
                g.values[onnx_name] = value
    # (T, N, directions · H) -> ONNX's Y, (T, directions, N, H)
    if directions == 1:
        g.values[node.output[0]] = g._add("expand_dims", [y], {"axis": 1})
    else:
        g._add("split", [y], {"sections": 2, "indices": None, "axis": 2}, outputs=2)
        halves = g.nodes[-1]["outputs"]
        g.values[node.output[0]] = g._add("stack", halves, {"axis": 1})


def _zeros(g: Graph, node: onnx.NodeProto, directions: int, hidden: int, dtype: np.dtype) -> str:
    """Zero initial states (directions, N, H), N being the input's batch size (axis 1)."""
    dims = g.shape(node.input[0])
    if dims is None or len(dims) != 3:
        raise g.fail(node, "its input's batch size is not known (for the zero initial states)")
    return g._add("full", [], {"shape": [directions, dims[1], hidden], "value": 0.0, "dtype": dtype.name})
