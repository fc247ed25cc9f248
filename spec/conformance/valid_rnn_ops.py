"""Valid conformance vectors for the Gluon and d2l additions: the recurrent layers and cells,
the ops added for them (MXNet ``npx`` semantics where named so), size expressions and nested
layer calls (a state passed as a list, a layer returning ``(y, [h, c])``).

The models' own calling convention stays flat (one array per input, a tuple of arrays out) so
that every runner of ``index.json`` can call them; the nesting is inside, in ``layer`` nodes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from valid import Run, Valid, as_dict, exporter, f32, graph_block, node, ready, scalar

from modelpack import nn
from modelpack.nn import functional as F
from modelpack.nn import rnn


def _many(op: str, inputs: list[str], outputs: list[str], **attrs: Any) -> dict[str, Any]:
    return {"op": op, "inputs": inputs, "outputs": outputs, "attrs": attrs}


def ops_gluon() -> Valid:
    """Every op added for Gluon and d2l, with size expressions over the dynamic batch."""
    s = [scalar("s03", 0.3), scalar("s0", 0), scalar("s1", 1.0), scalar("s3", 3)]
    n = [
        node("floor_divide", ["x", "s03"], "floor_divide"), node("mod", ["x", "s03"], "mod"),
        node("greater", ["x", "s0"], "pos"), node("less", ["x", "s1"], "small"),
        node("logical_and", ["pos", "small"], "logical_and"), node("logical_or", ["pos", "small"], "logical_or"),
        node("logical_not", ["pos"], "logical_not"), node("expm1", ["x"], "expm1"), node("abs", ["x"], "ax"),
        node("log1p", ["ax"], "log1p"), node("add", ["ax", "s1"], "ax1"), node("reciprocal", ["ax1"], "reciprocal"),
        node("sign", ["x"], "sign"), node("floor", ["x"], "floor"), node("ceil", ["x"], "ceil"),
        node("clip", ["x"], "clip", a_min=-0.5, a_max=0.5), node("clip", ["x"], "clip_low", a_min=0.0),
        node("dot", ["x", "w"], "dot"),
        node("reshape", ["x"], "x3", shape=["batch", 2, 3]),
        node("batch_dot", ["x3", "x3"], "batch_dot", transpose_b=True),
        node("batch_dot", ["x3", "x3"], "batch_dot_a", transpose_a=True),
        node("fully_connected", ["x", "w", "b"], "fully_connected", num_hidden=6),
        node("fully_connected", ["x3", "w3"], "fully_connected_last", no_bias=True, flatten=False),
        _many("split", ["x"], ["split0", "split1", "split2"], sections=3, axis=1),
        _many("split", ["x"], ["cut0", "cut1", "cut2"], indices=[1, 4], axis=1),
        node("swapaxes", ["x3"], "swapaxes", axis1=0, axis2=2),
        node("getitem", ["x"], "first", index=[{"slice": [None, None, None]}, {"slice": [None, 1, None]}]),
        node("repeat", ["first"], "repeat_batch", repeats="batch", axis=1),
        node("repeat", ["x"], "repeat_flat", repeats=2),
        node("tile", ["first"], "tile", reps=[1, "2*batch"]),
        node("getitem", ["x"], "x1", index=[{"slice": [None, None, None]}, {"newaxis": True}]),
        node("broadcast_to", ["x1"], "broadcast_to", shape=["batch", 3, 6]),
        node("reshape", ["x"], "reshape_heads", shape=["3*batch", 2]),
        node("getitem", ["x"], "half", index=[{"slice": [None, "batch-1", None]}]),
        node("full", [], "full", shape=["batch", 3], value=0.5, dtype="float32"),
        node("arange", [], "arange", stop="2*batch", dtype="int64"),
        node("arange", [], "rows", stop="batch", dtype="int64"),
        node("zeros_like", ["x"], "zeros_like"), node("ones_like", ["x"], "ones_like", dtype="int32"),
        node("full_like", ["x"], "full_like", value=7),
        node("getitem", ["x", "rows", "idx"], "advanced", index=[{"array": 0}, {"array": 1}]),
        node("getitem", ["x", "idx"], "gather_cols", index=[{"ellipsis": True}, {"array": 0}]),
        node("take", ["x", "idx"], "take", axis=1), node("take", ["x", "idx"], "take_clip", axis=0, mode="clip"),
        node("pick", ["x", "idx"], "pick", axis=1), node("add", ["idx", "s3"], "idx3"),
        node("pick", ["x", "idx3"], "pick_wrap", axis=1, mode="wrap", keepdims=True),
        node("one_hot", ["idx"], "one_hot", depth=6, on_value=2.0, off_value=-1.0),
        _many("topk", ["x"], ["topk_values", "topk_indices"], k=2, ret_typ="both"),
        node("topk", ["x"], "topk_mask", k=3, ret_typ="mask", is_ascend=True),
        node("topk", ["x"], "topk_int", axis=0, k=1, dtype="int32"),
        node("sequence_mask", ["x", "lens"], "sequence_mask", use_sequence_length=True, value=-1.0, axis=1),
        node("swapaxes", ["x"], "xt", axis1=0, axis2=1),
        node("sequence_mask", ["xt", "lens"], "sequence_mask_t", use_sequence_length=True),
        node("sequence_last", ["xt", "lens"], "sequence_last", use_sequence_length=True),
        node("sequence_last", ["x"], "sequence_last_all", axis=1),
        node("sequence_reverse", ["xt", "lens"], "sequence_reverse", use_sequence_length=True),
        node("softmax", ["x", "lens"], "softmax_length", use_length=True, temperature=2.0),
        node("log_softmax", ["x", "lens"], "log_softmax_length", use_length=True),
        node("softmax", ["x"], "softmax_f64", axis=0, dtype="float64"),
        node("layer_norm", ["x", "b", "g"], "layer_norm", eps=0.01),
        node("dropout", ["x"], "dropout", p=0.5, axes=[0]),
        node("embedding", ["idx", "w"], "embedding", input_dim=6, output_dim=6),
        node("smooth_l1", ["x"], "smooth_l1", scalar=1.5),
        node("prod", ["x"], "prod", axis=1), node("var", ["x"], "var", axis=1, ddof=1),
        node("std", ["x"], "std", axis=0, keepdims=True), node("argmax", ["x"], "argmax", axis=1),
        node("argmin", ["x"], "argmin"), node("cumsum", ["x"], "cumsum", axis=1),
    ]
    nodes = s + n
    names = [o for item in n for o in item["outputs"] if o not in ("pos", "small", "ax", "ax1", "x3", "first",
                                                                      "x1", "rows", "xt", "idx3")]
    inputs = [("x", "float32", ["batch", 6]), ("idx", "int64", ["batch"]), ("lens", "float32", ["batch"]),
              ("w", "float32", [6, 6]), ("b", "float32", [6]), ("g", "float32", [6]), ("w3", "float32", [4, 3])]
    net = graph_block(inputs, nodes, as_dict(names))

    def args(batch: int, seed: int) -> list[np.ndarray]:
        generator = np.random.default_rng(seed)
        return [
            f32(batch, 6, seed=seed, scale=2.0), generator.integers(0, 6, batch).astype(np.int64),
            generator.integers(0, 7, batch).astype(np.float32), f32(6, 6, seed=seed + 1), f32(6, seed=seed + 2),
            f32(6, seed=seed + 3), f32(4, 3, seed=seed + 4),
        ]

    bad = args(3, 50)
    bad[1][0] = 9  # an embedding index out of range
    return Valid("ops-gluon", "every op added for Gluon and d2l (MXNet npx semantics where named so), "
                 "several outputs per node, integer index arrays, and size expressions over the batch",
                 ["§3.3 size expressions", "§3.4"], exporter(net),
                 [Run(args(2, 45)), Run(args(5, 46)), Run(bad, "InputError")])


def ops_lrn() -> Valid:
    """Local response normalisation (ONNX's and MXNet's LRN, AlexNet's and GoogLeNet's): odd
    windows, an even one (its extra channel after each, as ONNX's window), one wider than the
    channels, on 3-D and 4-D inputs."""
    nodes = [
        node("lrn", ["x"], "lrn_default", size=5),
        node("lrn", ["x"], "lrn_3", size=3, alpha=0.5, beta=0.6, bias=2.0),
        node("lrn", ["x"], "lrn_even", size=4, alpha=0.25, beta=1.0, bias=1.0),
        node("lrn", ["x"], "lrn_wide", size=9, alpha=1.0),
        node("reshape", ["x"], "x4", shape=["batch", 6, 2, 2]),
        node("lrn", ["x4"], "lrn_4d", size=3, alpha=0.1),
    ]
    net = graph_block([("x", "float32", ["batch", 6, 4])], nodes, as_dict(["lrn_default", "lrn_3", "lrn_even",
                                                                           "lrn_wide", "lrn_4d"]))
    return Valid("ops-lrn", "local response normalisation across channels: odd and even windows, "
                 "one wider than the channels, 3-D and 4-D inputs", ["§3.4"], exporter(net),
                 [Run([f32(2, 6, 4, seed=60, scale=3.0)]), Run([f32(3, 6, 4, seed=61)])])


class Recurrent(nn.Block):
    """The fused layers called as d2l calls them: states as lists, ``(y, [h])`` results."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = rnn.RNN(4, num_layers=2, input_size=3)
        self.lstm = rnn.LSTM(5, projection_size=3, bidirectional=True, input_size=4, state_clip_min=-0.5,
                             state_clip_max=0.5)
        self.gru = rnn.GRU(3, layout="NTC", use_sequence_length=True, input_size=6)

    def forward(self, x: Any, h0: Any, lens: Any) -> Any:
        y, (h,) = self.rnn(x, [h0])
        out = self.lstm(y)
        g, (gh,) = self.gru(out.swapaxes(0, 1), self.gru.begin_state(x.shape[1]), lens)
        return y, h, out, g, gh


def recurrent_layers() -> Valid:
    def args(batch: int, seed: int) -> list[np.ndarray]:
        lens = np.random.default_rng(seed).integers(1, 6, batch).astype(np.float32)
        return [f32(5, batch, 3, seed=seed), f32(2, batch, 4, seed=seed + 1), lens]

    net = ready(Recurrent(), 47, *args(2, 47))
    dynamic = {0: {1: "batch"}, 1: {1: "batch"}, 2: {0: "batch"}}
    return Valid("recurrent-layers", "RNN (ReLU, 2 layers) with its state passed as a list, a bidirectional "
                 "LSTM with a projection and cell clipping, a batch-major GRU with sequence lengths and "
                 "zero states made from the batch size", ["§3.2 recurrent layers", "§3.3 trees"],
                 exporter(net, example=tuple(args(2, 47)), dynamic_batch=False, dynamic_axes=dynamic),
                 [Run(args(2, 48)), Run(args(4, 49)), Run(args(3, 50)[:2] + [np.ones(2, np.float32)], "InputError")])


class Cells(nn.Block):
    """Cells unrolled and stepped: a stack of wrapped cells and a bidirectional pair."""

    def __init__(self) -> None:
        super().__init__()
        self.stack = rnn.SequentialRNNCell()
        self.stack.add(rnn.LSTMCell(4, input_size=3, activation="softsign"))
        self.stack.add(rnn.DropoutCell(0.5))
        self.stack.add(rnn.ResidualCell(rnn.GRUCell(4, input_size=4)))
        self.stack.add(rnn.ZoneoutCell(rnn.RNNCell(4, activation="relu", input_size=4), 0.3, 0.3))
        self.bi = rnn.BidirectionalCell(rnn.GRUCell(3, input_size=4), rnn.LSTMCell(3, input_size=4))

    def forward(self, x: Any, lens: Any) -> Any:
        out, states = self.stack.unroll(x.shape[1], x, layout="NTC", merge_outputs=True)
        both, both_states = self.bi.unroll(x.shape[1], out, layout="NTC", merge_outputs=True, valid_length=lens)
        step, _ = self.stack(F.tanh(x[:, 0]), states)
        return (both, step, *both_states)


def recurrent_cells() -> Valid:
    def args(batch: int, seed: int) -> list[np.ndarray]:
        lens = np.random.default_rng(seed).integers(1, 5, batch).astype(np.float32)
        return [f32(batch, 4, 3, seed=seed), lens]

    net = ready(Cells(), 51, *args(2, 51))
    return Valid("recurrent-cells", "LSTM, GRU and RNN cells in a SequentialRNNCell with Dropout, Residual and "
                 "Zoneout wrappers, unrolled then stepped with its states; a BidirectionalCell unrolled with "
                 "valid lengths", ["§3.2 recurrent layers", "§3.3 trees"],
                 exporter(net, example=tuple(args(2, 51))),
                 [Run(args(2, 52)), Run(args(5, 53))])


def ops_math() -> Valid:
    """The trigonometric, hyperbolic and error functions, rounding to even and C's remainder
    (what ONNX's Tan … Atanh, Erf, Round, Mod with fmod=1 and Xor convert to), on floats and
    integers (their results float_of the input), with values past each function's domain and
    halves for the ties."""
    s = [scalar("s07", 0.7), scalar("s3", 3), scalar("s0", 0)]
    unary = ["tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "arcsinh", "arccosh", "arctanh", "erf", "rint"]
    n = [node(op, ["x"], op) for op in unary]
    n += [node(op, ["k"], f"{op}_int") for op in ("arctan", "erf", "rint", "sinh")]
    n += [node("fmod", ["x", "s07"], "fmod"), node("fmod", ["k", "s3"], "fmod_int"),
          node("fmod", ["k", "j"], "fmod_by_int"), node("fmod", ["x", "y"], "fmod_arrays"),
          node("greater", ["x", "s0"], "pos"), node("greater", ["y", "s0"], "ypos"),
          node("logical_xor", ["pos", "ypos"], "logical_xor"), node("logical_xor", ["x", "k"], "logical_xor_mixed")]
    names = [o for item in n for o in item["outputs"] if o not in ("pos", "ypos")]
    inputs = [("x", "float32", ["batch", 6]), ("y", "float32", ["batch", 6]), ("k", "int16", ["batch", 6]),
              ("j", "int16", [6])]
    net = graph_block(inputs, s + n, as_dict(names))

    def args(batch: int, seed: int) -> list[np.ndarray]:
        generator = np.random.default_rng(seed)
        x = f32(batch, 6, seed=seed, scale=1.5)
        x[0, :5] = [0.5, -1.5, 2.5, 1.25, -0.0]  # ties for rint; |x| > 1 for arcsin's NaN
        return [x, f32(batch, 6, seed=seed + 1), generator.integers(-9, 10, (batch, 6)).astype(np.int16),
                np.array([3, -2, 0, 5, -7, 1], np.int16)]

    return Valid("ops-math", "tan, arcsin, arccos, arctan, sinh, cosh, arcsinh, arccosh, arctanh, erf and rint "
                 "on floats and integers, fmod (by a scalar, by 0 on integers, between arrays) and logical_xor",
                 ["§3.4", "§3.5"], exporter(net), [Run(args(2, 61)), Run(args(5, 62))])


def vectors() -> list[Valid]:
    return [ops_gluon(), recurrent_layers(), recurrent_cells(), ops_lrn(), ops_math()]
