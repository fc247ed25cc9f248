"""Valid conformance vectors: archives every reader must read, with what they must give.

Models are written by modelpack's public API (``export``, ``save``) or, where a second
writer's bytes are the point (zip64, data descriptors, deflated members, the block form of
the manifest, CP437 names), by ``zipcraft``. Every parameter is random, so a reader that
drops a bias, swaps gamma and beta or ignores a stored running mean gives another output.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zipcraft as zc

import modelpack
from modelpack import nn
from modelpack.nn import functional as F


@dataclass
class Run:
    """One call of the loaded model: inputs, and the error class if it must be refused."""

    inputs: list[np.ndarray]
    error: str | None = None


@dataclass
class Valid:
    name: str
    about: str
    rules: list[str]
    write: Callable[[Path], None]
    runs: list[Run] = field(default_factory=list)
    tolerance: dict[str, float] | None = None  # rtol/atol for every output, when not the default


def randomize(net: nn.Block, seed: int) -> nn.Block:
    """Every parameter random (running variances positive), so none is 0 or 1 everywhere."""
    rng = np.random.default_rng(seed)
    for name, param in net.collect_params().items():
        if name.endswith("running_var"):
            values = rng.uniform(0.5, 2.0, param.shape)
        else:
            values = rng.normal(0.0, 0.6, param.shape)
        param.set_data(values.astype(param.dtype))
    return net


def ready(net: nn.Block, seed: int, *example: np.ndarray) -> nn.Block:
    net.initialize(seed=seed)
    if example:
        net(*example)
    return randomize(net, seed + 100)


def exporter(net: nn.Block, **options: Any) -> Callable[[Path], None]:
    return lambda path: modelpack.export(net, path, **options)


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def f32(*shape: int, seed: int, scale: float = 1.0) -> np.ndarray:
    return (rng(seed).normal(size=shape) * scale).astype(np.float32)


# -- hand-built graphs ----------------------------------------------------------------------

def node(op: str, inputs: list[str], output: str, **attrs: Any) -> dict[str, Any]:
    return {"op": op, "inputs": inputs, "outputs": [output], "attrs": attrs}


def scalar(output: str, value: bool | int | float) -> dict[str, Any]:
    return {"op": "scalar", "inputs": [], "outputs": [output], "attrs": {"value": value}}


def call(block: str, inputs: list[str], output: str) -> dict[str, Any]:
    return node("layer", inputs, output, block=block)


def graph_block(
    inputs: list[tuple[str, str, list[int | str]]],
    nodes: list[dict[str, Any]],
    outputs: dict[str, Any],
    children: dict[str, nn.Block] | None = None,
    constants: list[np.ndarray] | None = None,
) -> nn.GraphBlock:
    graph = {
        "inputs": [{"name": n, "dtype": d, "shape": s} for n, d, s in inputs],
        "nodes": nodes,
        "outputs": outputs,
    }
    block = nn.GraphBlock(source_class="Conformance", constants=len(constants or []), graph=graph)
    for name, child in (children or {}).items():
        block.register_child(child, name)
    if constants:
        block.set_constants(constants)
    return block


def as_dict(names: list[str]) -> dict[str, Any]:
    return {"kind": "dict", "values": names, "keys": names}


def outputs_of(nodes: list[dict[str, Any]], skip: tuple[str, ...] = ()) -> list[str]:
    return [n["outputs"][0] for n in nodes if n["op"] != "scalar" and n["outputs"][0] not in skip]


# -- layer models ---------------------------------------------------------------------------

def mlp() -> Valid:
    net = nn.Sequential()
    net.add(nn.Dense(5, activation="relu", in_units=4), nn.Dense(3, activation="sigmoid"))
    x = f32(2, 4, seed=1)
    ready(net, 1, x)
    return Valid("mlp", "Sequential of two Dense layers, random biases", ["§3.1", "§3.2 Dense"],
                 exporter(net, metadata={"vector": "mlp"}), [Run([x]), Run([f32(3, 4, seed=2)]),
                                                              Run([f32(2, 5, seed=3)], "ShapeMismatchError")])


def dense_shapes() -> Valid:
    children = {
        "flat": nn.Dense(3, flatten=True, in_units=12),
        "last": nn.Dense(3, flatten=False, use_bias=False, activation="tanh", in_units=4),
        "fl": nn.Flatten(),
    }
    x = f32(2, 3, 4, seed=4)
    v = f32(5, seed=5)
    nodes = [call("flat", ["x"], "flat"), call("last", ["x"], "last"), call("fl", ["x"], "fl"),
             call("fl", ["v"], "fl1")]
    net = ready(graph_block([("x", "float32", ["batch", 3, 4]), ("v", "float32", [5])], nodes,
                            as_dict(["flat", "last", "fl", "fl1"]), children), 4)
    return Valid("dense-shapes", "Dense with flatten true/false, no bias, 3-D input; Flatten of 3-D and 1-D",
                 ["§3.2 Dense", "§3.2 Flatten", "§3.3"], exporter(net), [Run([x, v])])


def activations() -> Valid:
    names = ["relu", "sigmoid", "tanh", "softrelu", "softsign", "gelu", "silu"]
    children: dict[str, nn.Block] = {n: nn.Activation(n) for n in names}
    children.update(leaky=nn.LeakyReLU(0.2), elu=nn.ELU(0.5), drop=nn.Dropout(0.3, axes=[1]))
    nodes = [call(n, ["x"], n) for n in children] + [call("relu", ["i"], "relu_int"),
                                                      call("elu", ["h"], "elu_half")]
    x = np.concatenate([np.linspace(-6, 6, 9), [0.0, -0.0, 30.0, -30.0, np.nan]]).astype(np.float32)
    x = np.stack([x, -x])
    i = np.array([[-3, 0, 4]], dtype=np.int32)
    h = np.array([-2.0, 0.5, 3.0], dtype=np.float16)
    net = ready(graph_block([("x", "float32", [2, 14]), ("i", "int32", [1, 3]), ("h", "float16", [3])],
                            nodes, as_dict(outputs_of(nodes)), children), 6)
    return Valid("activations", "every activation layer, LeakyReLU, ELU, Dropout; NaN, ±0, large inputs; "
                 "an int input (computed in float32) and a float16 one", ["§3.2 Activation", "§3.2"],
                 exporter(net), [Run([x, i, h])])


def conv() -> Valid:
    net = nn.Sequential()
    net.add(
        nn.Conv2D(4, (3, 2), strides=(2, 1), padding=(1, 2), dilation=(2, 1), groups=2,
                  activation="tanh", in_channels=2),
        nn.Conv2D(3, 1, use_bias=False, in_channels=4),
        nn.Conv2D(2, 3, padding=1, activation="relu", in_channels=3),
    )
    x = f32(2, 2, 9, 7, seed=7)
    ready(net, 7, x)
    return Valid("conv", "Conv2D: groups, dilation, asymmetric stride/padding/kernel, no bias",
                 ["§3.2 Conv2D"], exporter(net), [Run([x]), Run([f32(1, 2, 2, 2, seed=8)], "InputError"),
                                                 Run([f32(1, 4, 9, 7, seed=8)], "ShapeMismatchError")])


def pools() -> Valid:
    children = {
        "max_ceil": nn.MaxPool2D((3, 3), strides=2, padding=1, ceil_mode=True),
        "max": nn.MaxPool2D(2),
        "avg_incl": nn.AvgPool2D(3, strides=2, padding=1, ceil_mode=True, count_include_pad=True),
        "avg_excl": nn.AvgPool2D(3, strides=2, padding=1, ceil_mode=True, count_include_pad=False),
        "avg_rect": nn.AvgPool2D((2, 3), strides=(1, 2)),
        "gap": nn.GlobalAvgPool2D(),
        "gmp": nn.GlobalMaxPool2D(),
    }
    nodes = [call(n, ["x"], n) for n in children]
    x = f32(2, 3, 7, 7, seed=9)
    x[1, 2, 3, 3] = np.nan
    net = graph_block([("x", "float32", ["batch", 3, 7, 7])], nodes,
                      {"kind": "tuple", "values": list(children), "keys": None}, children)
    return Valid("pools", "pooling on an odd 7x7 input: ceil mode, padding, both count_include_pad, "
                 "rectangular windows, global pools; one NaN", ["§3.2 pooling"], exporter(net),
                 [Run([x]), Run([f32(1, 3, 2, 2, seed=10)], "InputError")])


def norms() -> Valid:
    children = {
        "bn": nn.BatchNorm(in_channels=3),
        "bn_fixed": nn.BatchNorm(center=False, scale=False, in_channels=3, epsilon=0.1),
        "bn_last": nn.BatchNorm(axis=-1, in_channels=4),
        "ln": nn.LayerNorm(in_channels=4),
        "ln_axis1": nn.LayerNorm(axis=1, in_channels=3, scale=False, center=False),
        "ln_scale_only": nn.LayerNorm(in_channels=4, center=False),
    }
    nodes = [call("bn", ["x4"], "bn"), call("bn_fixed", ["x4"], "bn_fixed"),
             call("bn_last", ["x2"], "bn_last"), call("ln", ["x2"], "ln"),
             call("ln_axis1", ["x4"], "ln_axis1"), call("ln_scale_only", ["x2"], "ln_scale_only")]
    net = ready(graph_block([("x4", "float32", ["batch", 3, 4, 4]), ("x2", "float32", [5, 4])], nodes,
                            as_dict(outputs_of(nodes)), children), 11)
    return Valid("norms", "BatchNorm (random statistics; center/scale false with non-trivial stored "
                 "gamma and beta; axis -1), LayerNorm (axis, scale/center false)",
                 ["§3.2 BatchNorm", "§3.2 LayerNorm"], exporter(net),
                 [Run([f32(2, 3, 4, 4, seed=12, scale=3.0), f32(5, 4, seed=13)])])


def embedding() -> Valid:
    children = {"emb": nn.Embedding(10, 4)}
    nodes = [call("emb", ["ids"], "a"), call("emb", ["ids32"], "b"), call("emb", ["whole"], "c")]
    net = ready(graph_block([("ids", "int64", [2, 3]), ("ids32", "int32", [4]), ("whole", "float32", [2])],
                            nodes, {"kind": "list", "values": ["a", "b", "c"], "keys": None}, children), 14)
    ids = np.array([[0, 9, 3], [3, 3, 1]], dtype=np.int64)
    ids32 = np.array([2, 7, 0, 5], dtype=np.int32)
    whole = np.array([4.0, 8.0], dtype=np.float32)
    return Valid("embedding", "Embedding with int64, int32 and whole-float indices", ["§3.2 Embedding"],
                 exporter(net), [Run([ids, ids32, whole]),
                                 Run([ids, ids32, np.array([4.5, 1.0], np.float32)], "InputError"),
                                 Run([ids + 1, ids32, whole], "InputError")])


def float16() -> Valid:
    net = nn.Sequential()
    net.add(nn.Dense(6, activation="gelu", dtype="float16", in_units=5),
            nn.LayerNorm(dtype="float16", in_channels=6), nn.Dense(3, dtype="float16"),
            nn.BatchNorm(dtype="float16", in_channels=3))
    x = f32(4, 5, seed=15)
    ready(net, 15, x)
    return Valid("float16", "float16 layers (float32 input converted)", ["§3.2 precision", "§4 float16"],
                 exporter(net), [Run([x])])


def float64() -> Valid:
    net = nn.Sequential()
    net.add(nn.Conv2D(2, 3, padding=1, dtype="float64", in_channels=1),
            nn.BatchNorm(dtype="float64", in_channels=2), nn.MaxPool2D(2, ceil_mode=True),
            nn.Flatten(), nn.Dense(3, activation="softrelu", dtype="float64", in_units=18),
            nn.Dense(2, activation="gelu", dtype="float64"))
    x = rng(16).normal(size=(2, 1, 5, 5))
    ready(net, 16, x)
    return Valid("float64", "float64 layers; gelu within 1e-6 of exact, so a looser tolerance",
                 ["§3.2 precision", "§4 float64"], exporter(net), [Run([x])],
                 tolerance={"rtol": 1e-6, "atol": 1e-9})


# -- ops ------------------------------------------------------------------------------------

def ops_float() -> Valid:
    s = [scalar("s15", 1.5), scalar("s2", 2), scalar("sneg", -1.0), scalar("s0", 0), scalar("shalf", 0.5)]
    n = [
        node("add", ["x", "y"], "add"), node("subtract", ["x", "s15"], "subtract"),
        node("multiply", ["x", "y"], "multiply"), node("abs", ["y"], "ay"), node("add", ["ay", "shalf"], "ayh"),
        node("divide", ["x", "ayh"], "divide"), node("abs", ["x"], "abs"), node("power", ["abs", "s2"], "power"),
        node("power", ["abs", "shalf"], "power_half"), node("maximum", ["x", "y"], "maximum"),
        node("minimum", ["x", "y"], "minimum"), node("matmul", ["x", "m"], "matmul"),
        node("matmul", ["y", "m"], "matmul_vec_mat"), node("matmul", ["x", "y"], "matmul_mat_vec"),
        node("matmul", ["y", "y"], "matmul_dot"), node("greater", ["x", "y"], "greater"),
        node("greater_equal", ["x", "s0"], "greater_equal"), node("less", ["x", "y"], "less"),
        node("less_equal", ["x", "y"], "less_equal"), node("equal", ["x", "x"], "equal"),
        node("not_equal", ["x", "y"], "not_equal"), node("negative", ["x"], "negative"),
        node("square", ["x"], "square"), node("exp", ["x"], "exp"), node("log", ["ayh"], "log"),
        node("sqrt", ["abs"], "sqrt"), node("sin", ["x"], "sin"), node("cos", ["x"], "cos"),
        *[node(a, ["x"], a) for a in ("relu", "sigmoid", "tanh", "softrelu", "softsign", "gelu", "silu")],
        node("leaky_relu", ["x"], "leaky_relu", alpha=0.1), node("elu", ["x"], "elu", alpha=0.7),
        node("softmax", ["x"], "softmax"), node("log_softmax", ["x"], "log_softmax", axis=1),
        node("greater", ["x", "s0"], "pos"), node("where", ["pos", "x", "sneg"], "where"),
        node("concatenate", ["x", "x"], "concatenate", axis=1), node("stack", ["x", "x"], "stack", axis=-1),
        node("reshape", ["x"], "reshape", shape=["batch", 12]), node("reshape", ["x"], "reshape_infer", shape=[-1, 6]),
        node("transpose", ["x"], "transpose", axes=[2, 0, 1]), node("transpose", ["x"], "transpose_rev"),
        node("flatten", ["x"], "flatten"), node("expand_dims", ["x"], "expand_dims", axis=1),
        node("squeeze", ["expand_dims"], "squeeze", axis=1),
        node("expand_dims", ["x"], "expand_dims_list", axis=[0, -1]),
        node("squeeze", ["expand_dims_list"], "squeeze_all"),
        node("cast", ["x"], "cast_int32", dtype="int32"), node("cast", ["x"], "cast_float16", dtype="float16"),
        node("cast", ["x"], "cast_bool", dtype="bool"), node("cast", ["x"], "cast_float64", dtype="float64"),
        node("getitem", ["x"], "getitem", index=[{"slice": [None, None, None]}, {"int": 1}, {"slice": [3, None, -2]}]),
        node("getitem", ["x"], "getitem_ellipsis", index=[{"ellipsis": True}, {"newaxis": True}, {"int": -1}]),
        node("getitem", ["x"], "getitem_clamp", index=[{"int": 0}, {"slice": [-10, 10, 2]}]),
        node("getitem", ["y"], "getitem_reverse", index=[{"slice": [None, None, -1]}]),
        node("getitem", ["x"], "getitem_lead", index=[{"newaxis": True}, {"ellipsis": True}, {"slice": [1, -1, None]}]),
        node("getitem", ["y"], "getitem_negstep", index=[{"slice": [-2, -10, -2]}]),
        node("sum", ["x"], "sum"), node("sum", ["x"], "sum_keep", axis=[0, 2], keepdims=True),
        node("mean", ["x"], "mean", axis=1), node("max", ["x"], "max", axis=-1, keepdims=True),
        node("min", ["x"], "min"),
    ]
    nodes = s + n
    net = graph_block([("x", "float32", ["batch", 3, 4]), ("y", "float32", [4]), ("m", "float32", [4, 2])],
                      nodes, as_dict(outputs_of(nodes, skip=("ay", "ayh", "pos"))))
    x = f32(2, 3, 4, seed=17, scale=2.0)
    return Valid("ops-float", "every graph op on float32 values, with weak scalars, broadcasting, "
                 "matmul of vectors, slicing with negative steps and clamping", ["§3.3", "§3.4"],
                 exporter(net), [Run([x, f32(4, seed=18), f32(4, 2, seed=19)]),
                                 Run([f32(2, 3, 5, seed=20), f32(4, seed=18), f32(4, 2, seed=19)], "InputError"),
                                 Run([x, f32(4, seed=18)], "InputError")])


def ops_promotion() -> Valid:
    s = [scalar("s100", 100), scalar("s2_5", 2.5), scalar("s2", 2), scalar("s3", 3), scalar("s0", 0),
         scalar("s300", 300), scalar("s5", 5), scalar("s1", 1), scalar("s2_0", 2.0), scalar("st", True),
         scalar("sf", False), scalar("sbig", 1e5)]
    n = [
        node("add", ["a", "b"], "int8_uint8"), node("add", ["a", "s100"], "int8_wraps"),
        node("multiply", ["i", "s2_5"], "int32_times_float"), node("add", ["h", "i"], "float16_int32"),
        node("add", ["h", "a"], "float16_int8"), node("add", ["f", "a"], "float32_int8"),
        node("add", ["h", "b"], "float16_uint8"), node("divide", ["i", "j"], "int_divide"),
        node("power", ["i", "s2"], "int_power"), node("power", ["q", "q"], "bool_power"),
        node("greater", ["f", "s0"], "q2"), node("add", ["q", "q2"], "bool_add"),
        node("multiply", ["q", "q2"], "bool_multiply"), node("maximum", ["q", "q2"], "bool_maximum"),
        node("minimum", ["q", "q2"], "bool_minimum"), node("sum", ["a"], "sum_int8"),
        node("sum", ["b"], "sum_uint8"), node("sum", ["q"], "sum_bool"), node("mean", ["a"], "mean_int8"),
        node("max", ["b"], "max_uint8"), node("min", ["h"], "min_float16"), node("mean", ["h"], "mean_float16"),
        node("cast", ["a"], "a16", dtype="int16"), node("exp", ["a16"], "exp_int16"), node("sqrt", ["b"], "sqrt_uint8"),
        node("log", ["i"], "log_int32"), node("square", ["q"], "square_bool"),
        node("negative", ["b"], "negative_uint8"), node("abs", ["a"], "abs_int8"),
        node("greater", ["a", "s300"], "int8_gt_300"), node("less", ["a", "s2_5"], "int8_lt_float"),
        node("where", ["q", "a", "s5"], "where_int8"), node("where", ["q", "s1", "s2_0"], "where_scalars"),
        node("concatenate", ["a", "b"], "concat_int16"), node("stack", ["f", "d"], "stack_float64"),
        node("add", ["u", "l"], "uint64_int64"), node("matmul", ["m8", "n8"], "matmul_int8"),
        node("cast", ["i"], "cast_uint8", dtype="uint8"), node("cast", ["f"], "cast_int8", dtype="int8"),
        node("cast", ["d"], "cast_float16", dtype="float16"), node("cast", ["a"], "cast_bool", dtype="bool"),
        node("cast", ["q"], "cast_float32", dtype="float32"), node("add", ["s2", "s3"], "scalar_int"),
        node("multiply", ["st", "s2_5"], "scalar_float"), node("add", ["st", "sf"], "scalar_bool"),
        node("multiply", ["h", "sbig"], "float16_overflow"), node("add", ["q", "s2"], "bool_plus_int"),
        node("add", ["q", "s2_5"], "bool_plus_float"), node("subtract", ["b", "a"], "uint8_minus_int8"),
        node("sum", ["m8"], "sum_axis", axis=0),
    ]
    nodes = s + n
    inputs = [("a", "int8", [4]), ("b", "uint8", [4]), ("i", "int32", [4]), ("j", "int32", [4]),
              ("h", "float16", [4]), ("f", "float32", [4]), ("d", "float64", [4]), ("q", "bool", [4]),
              ("u", "uint64", [2]), ("l", "int64", [2]), ("m8", "int8", [2, 3]), ("n8", "int8", [3, 2])]
    skip = ("q2", "a16")
    net = graph_block(inputs, nodes, as_dict(outputs_of(nodes, skip=skip)))
    values = [
        np.array([120, -128, 5, 0], np.int8), np.array([0, 255, 7, 200], np.uint8),
        np.array([300, 2, 7, 1000], np.int32), np.array([7, -3, 2, 9], np.int32),
        np.array([1.5, -2.0, 0.333, 60000.0], np.float16), np.array([-2.7, 2.7, 0.5, -0.5], np.float32),
        np.array([1e-8, 65504.0, 70000.0, 0.1], np.float64), np.array([True, False, True, False]),
        np.array([2**63, 5], np.uint64), np.array([-(2**62), -5], np.int64),
        np.array([[100, -7, 3], [1, 2, 3]], np.int8), np.array([[100, 1], [50, 2], [-4, 3]], np.int8),
    ]
    return Valid("ops-promotion", "dtype promotion (NumPy 2 rules with weak scalars): integer wrap, "
                 "int/float mixing, bool arithmetic, sums and means of integers, casts, scalar-only ops",
                 ["§3.5"], exporter(net), [Run(values), Run(values[:-1], "InputError")])


# -- traced custom blocks -------------------------------------------------------------------

class Inner(nn.Block):
    """A traced block with its own parameter, a constant and a tuple result."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Dense(4, activation="tanh", in_units=4)
        self.offset = np.array([0.5, -1.0, 2.0, 0.25], dtype=np.float32)
        self.gain = nn.Parameter("gain", shape=(4,))

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = self.fc(x - self.offset) * self.gain.data()
        return h, F.relu(h)[:, ::-1]


class Outer(nn.Block):
    """Nested traced blocks, two inputs, a constant, a float scalar, a dict result."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Dense(4, in_units=3)
        self.inner = Inner()
        self.table = np.linspace(-1.0, 1.0, 4).astype(np.float32)
        self.head = nn.Sequential()
        self.head.add(nn.Dense(2, in_units=8), nn.Activation("softsign"))

    def forward(self, x: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        a, b = self.inner(self.stem(x))
        logits = self.head(np.concatenate([a, b * self.table], axis=1))
        masked = np.where(mask, logits, -1e4)
        return {"masked": masked, "score": np.max(F.log_softmax(masked, axis=-1), axis=1)}


def traced_nested() -> Valid:
    x, mask = f32(2, 3, seed=21), np.array([[True, False], [True, True]])
    net = ready(Outer(), 21, x, mask)
    x3, mask3 = f32(3, 3, seed=22), np.array([[False, True], [True, True], [True, False]])
    return Valid("traced-nested", "a traced block inside a traced block: own parameters, constants at two "
                 "paths, a tuple-returning layer call, two inputs with a dynamic batch, a dict result",
                 ["§3.3"],
                 exporter(net, example=(x, mask)),
                 [Run([x, mask]), Run([x3, mask3]), Run([x3, mask], "InputError"), Run([x], "InputError"),
                  Run([f32(2, 3, 1, seed=23), mask], "InputError")])


class Shifted(nn.Block):
    def __init__(self) -> None:
        super().__init__()
        self.shift = np.array([[1.0, -2.0, 0.5, 0.0]], dtype=np.float32)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return F.elu(x + self.shift, alpha=0.3) * 2


def sequential_with_graph() -> Valid:
    net = nn.Sequential()
    net.add(nn.Dense(4, in_units=3), Shifted(), nn.Dense(2))
    x = f32(2, 3, seed=24)
    ready(net, 24, x)
    return Valid("sequential-graph", "a Sequential holding a traced block (its constant is '1#const0')",
                 ["§3.3 constants"], exporter(net, example=x), [Run([x]), Run([f32(5, 3, seed=25)])])


# -- tensor archives ------------------------------------------------------------------------

def all_dtypes() -> dict[str, np.ndarray]:
    info = np.iinfo
    return {
        "bool": np.array([[True, False, True]]),
        "int8": np.array([info(np.int8).min, -1, 0, info(np.int8).max], np.int8),
        "int16": np.array([info(np.int16).min, 12345, info(np.int16).max], np.int16),
        "int32": np.array([info(np.int32).min, 7, info(np.int32).max], np.int32).reshape(3, 1),
        "int64": np.array([info(np.int64).min, 2**53 + 1, info(np.int64).max], np.int64),
        "uint8": np.array([0, 128, 255], np.uint8),
        "uint16": np.array([0, 65535], np.uint16),
        "uint32": np.array([0, 2**32 - 1], np.uint32),
        "uint64": np.array([0, 2**64 - 1, 2**53 + 1], np.uint64),
        "float16": np.array([np.nan, -0.0, np.inf, 65504.0, 6e-8, -1.5], np.float16),
        "float32": np.array([[np.nan, -0.0], [np.inf, 1e-45]], np.float32),
        "float64": np.array([np.nan, -0.0, -np.inf, 5e-324, 1.0 / 3.0], np.float64),
        "complex64": np.array([1 + 2j, np.nan + np.inf * 1j], np.complex64),
        "complex128": np.array([[-0.0 - 1j]], np.complex128),
        "scalar": np.array(2.5, np.float32),
        "empty": np.zeros((0,), np.int16),
        "empty3d": np.zeros((2, 0, 3), np.float64),
        "nan_payload": np.array([0x7FF8DEADBEEF0001], np.uint64).view(np.float64),
    }


def tensors_dtypes() -> Valid:
    return Valid("tensors-dtypes", "a dict of every dtype, 0-d and empty arrays, special floats, NaN payload",
                 ["§4", "§5"], lambda p: modelpack.save(p, all_dtypes(), metadata={"vector": "tensors"}))


def tensors_list() -> Valid:
    arrays = [np.arange(6, dtype=np.int32).reshape(2, 3), np.array(True), np.ones((1, 1, 1), np.float16)]
    return Valid("tensors-list", "a list layout", ["§5"], lambda p: modelpack.save(p, arrays))


def tensors_empty_tuple() -> Valid:
    return Valid("tensors-empty-tuple", "a tuple of no arrays: an empty bundle", ["§5", "§1.2"],
                 lambda p: modelpack.save(p, ()))


def tensors_single() -> Valid:
    return Valid("tensors-single", "a single array", ["§5"],
                 lambda p: modelpack.save(p, np.array([[1.0, 2.0]], np.float64)))


def tensors_unicode() -> Valid:
    arrays = {"π": np.array([3.14], np.float32), "名前": np.array([1], np.int8), "a b": np.array([2], np.int8),
              "😀" * 513: np.array([0], np.uint8), "#const0": np.array([5], np.int16)}
    return Valid("tensors-unicode", "non-ASCII names (UTF-8 flag), a name beyond U+FFFF (block form), a "
                 "513-code-point name that is 1026 UTF-16 units (allowed: 1024 code points)",
                 ["§1 names", "§2.2 tensor names", "§2.1 block form"],
                 lambda p: modelpack.save(p, arrays, metadata={"emoji": "😀", "nel": "a\x85b"}))


def deflated_model() -> Valid:
    net = nn.Sequential()
    net.add(nn.Dense(4, activation="silu", in_units=3), nn.Dense(2))
    x = f32(2, 3, seed=26)
    ready(net, 26, x)
    return Valid("deflate", "compress=True: deflated bundle members with zip64 local extra fields",
                 ["§1 method 8", "§4", "§1.2 ZIP64"], exporter(net, compress=True), [Run([x])])


def tensors_deflated() -> Valid:
    return Valid("tensors-deflate", "every dtype, deflated", ["§4"],
                 lambda p: modelpack.save(p, all_dtypes(), compress=True))


# -- crafted by a second writer -------------------------------------------------------------

def _base_model() -> tuple[dict[str, Any], dict[str, np.ndarray], list[np.ndarray]]:
    """A small Sequential as a manifest document and arrays, written without modelpack."""
    arrays = {
        "0.weight": f32(4, 3, seed=30), "0.bias": f32(4, seed=31),
        "1.gamma": f32(4, seed=32), "1.beta": f32(4, seed=33),
        "1.running_mean": f32(4, seed=34), "1.running_var": rng(35).uniform(0.5, 2, 4).astype(np.float32),
        "3.weight": f32(2, 4, seed=36),
    }
    doc = {
        "format": "modelpack", "format_version": "1.1", "producer": "conformance zipcraft", "kind": "model",
        "architecture": {"type": "Sequential", "children": {
            "0": {"type": "Dense", "config": {"units": 4, "in_units": 3}},
            "1": {"type": "BatchNorm", "config": {"axis": -1, "in_channels": 4, "epsilon": 0.001}},
            "2": {"type": "LeakyReLU", "config": {"alpha": 0.5}},
            "3": {"type": "Dense", "config": {"units": 2, "in_units": 4, "use_bias": False}},
        }},
        "weights": {name: zc.tensor_info(a) for name, a in arrays.items()},
        "metadata": {"vector": "crafted"},
    }
    return doc, arrays, [f32(3, 3, seed=37)]


def _entries(arrays: dict[str, np.ndarray], **options: Any) -> list[zc.Entry]:
    return [zc.Entry((name + ".npy").encode(), zc.npy(a), **options) for name, a in arrays.items()]


def crafted(name: str, about: str, rules: list[str], make: Callable[[], bytes], inputs: list[np.ndarray] | None,
            ) -> Valid:
    return Valid(name, about, rules, lambda p: p.write_bytes(make()), [Run(inputs)] if inputs else [])


def crafted_vectors() -> list[Valid]:
    doc, arrays, inputs = _base_model()
    text = zc.json_form(doc).encode()

    def zip64() -> bytes:
        return bytes(zc.Archive(text, _entries(arrays, zip64=True), bundle_options={"zip64_end": True},
                                outer_manifest=zc.Entry(b"manifest.yaml", b"", zip64=True),
                                outer_weights=zc.Entry(b"weights.npz", b"", zip64=True),
                                outer_options={"zip64_end": True}))

    def outer_deflate() -> bytes:
        return bytes(zc.Archive(text, _entries(arrays, method=8), outer_manifest=zc.Entry(b"manifest.yaml", b"", method=8),
                                outer_weights=zc.Entry(b"weights.npz", b"", method=8)))

    def descriptors() -> bytes:
        entries = _entries(arrays)
        for i, entry in enumerate(entries):
            crc, size = zlib.crc32(entry.data), len(entry.data)
            if i % 2:
                entry.descriptor = struct.pack("<4s3L", zc.DESCRIPTOR, crc, size, size)
            else:
                entry.descriptor = struct.pack("<3L", crc, size, size)
        entries[-1].method = 8
        stream = entries[-1].file_bytes()
        entries[-1].descriptor = struct.pack("<4sLQQ", zc.DESCRIPTOR, zlib.crc32(entries[-1].data),
                                                len(stream), len(entries[-1].data))
        manifest = zc.Entry(b"manifest.yaml", b"")
        # A descriptor must repeat the central CRC-32 and sizes (§1.2): 32-bit sizes, signed.
        manifest.descriptor = struct.pack("<4s3L", zc.DESCRIPTOR, zlib.crc32(text), len(text), len(text))
        return bytes(zc.Archive(text, entries, outer_manifest=manifest))

    def order_and_hosts() -> bytes:
        entries = _entries(arrays)[::-1]
        entries[0].made_by, entries[0].external = 0, 0x20  # MS-DOS host, archive bit
        entries[1].external = 0o644 << 16  # file type bits 0: what modelpack 1.0/1.1 writers set
        return bytes(zc.Archive(text, entries, weights_first=True,
                                outer_weights=zc.Entry(b"weights.npz", b"", made_by=(19 << 8) | 20)))

    def npy_headers() -> bytes:
        entries = _entries(arrays)
        w = arrays["0.weight"]
        entries[0].data = zc.npy_raw('{"shape": (4, 3), "descr": "<f4", "fortran_order": False}', w.tobytes())
        entries[1].data = zc.npy(arrays["0.bias"], version=(2, 0))
        entries[2].data = zc.npy_raw("{'fortran_order': False,'shape':(4,),'descr':'<f4'}", arrays["1.gamma"].tobytes())
        entries[3].data = zc.npy_raw("{ 'descr' : '<f4' , 'fortran_order' : False , 'shape' : ( 4 , ) , }",
                                     arrays["1.beta"].tobytes(), version=(2, 0))
        return bytes(zc.Archive(text, entries))

    def format_10() -> bytes:
        old = dict(doc, format_version="1.0",
                   weights={n: zc.tensor_info(a, sha256=False) for n, a in arrays.items()})
        return bytes(zc.Archive(zc.json_form(old).encode(), _entries(arrays), comment=b"written by hand"))

    def newer_minor() -> bytes:
        new = dict(doc, format_version="1.9", future={"anything": [1, 2.5, None]})
        new["weights"] = {n: dict(i, compression="none") for n, i in doc["weights"].items()}
        return bytes(zc.Archive(zc.json_form(new).encode(), _entries(arrays)))

    def named_children() -> bytes:
        names = {"0": "stem", "1": "stem_norm", "2": "act", "3": "head"}
        renamed = dict(doc, architecture={"type": "Sequential", "children": {
            names[k]: v for k, v in doc["architecture"]["children"].items()}})
        renamed["weights"] = {names[n[0]] + n[1:]: i for n, i in doc["weights"].items()}
        arrays2 = {names[n[0]] + n[1:]: a for n, a in arrays.items()}
        return bytes(zc.Archive(zc.json_form(renamed).encode(), _entries(arrays2)))

    return [
        crafted("craft-named-sequential", "a Sequential whose children keep layer names (as converted models "
                "do): applied in mapping order, parameters named after them", ["§3", "§3.1"], named_children, inputs),
        crafted("craft-zip64", "every member of archive and bundle through ZIP64 extra fields and zip64 end "
                "records (32-bit fields saturated), though small", ["§1.2 ZIP64"], zip64, inputs),
        crafted("craft-outer-deflate", "manifest.yaml, weights.npz and every tensor deflated",
                ["§1 method 8"], outer_deflate, inputs),
        crafted("craft-descriptors", "data descriptors (with and without signature, 32- and 64-bit sizes) "
                "after stored and deflated members", ["§1.2 tiling", "§1.2 local headers"], descriptors, inputs),
        crafted("craft-order-hosts", "weights.npz before manifest.yaml; bundle members in reverse order; "
                "MS-DOS and OS X hosts; permission-only external attributes", ["§1", "§1.1", "§4"],
                order_and_hosts, inputs),
        crafted("craft-npy-headers", "npy headers in other grammar forms: double quotes, other key order, "
                "no trailing comma, spaces, format 2.0", ["§4 grammar"], npy_headers, inputs),
        crafted("craft-format-1.0", "a format 1.0 manifest without sha256, and a comment that means nothing",
                ["§6", "§7.2"], format_10, inputs),
        crafted("craft-newer-minor", "format 1.9: unknown top-level and TensorInfo fields are ignored",
                ["§6"], newer_minor, inputs),
        *block_form_vectors(doc, arrays, inputs),
        cp437_names(),
    ]


BLOCK_MANIFEST = """\
--- # a document start marker and comments are allowed
format: modelpack
format_version: '1.1'
producer: "conformance \\x7A\\u0069pcraft"
kind: model
architecture:
  type: Sequential
  config: {}
  children:
    '0':
      type: Dense
      config: {units: 4, in_units: +3, activation: ~, use_bias: True, flatten: true, dtype: float32}
    "1":
      type: BatchNorm
      config:
        axis: -1
        in_channels: 4
        epsilon: 1.0e-03
        momentum: .9
        center: TRUE
        scale: true
    '2':
      type: LeakyReLU
      config:
        alpha: 5.e-1
    '3':
      type: Dense
      config:
        units: 2
        in_units: 4
        use_bias: false
        activation: null
        dtype: "float32"
weights:
{weights}
metadata:
  vector: crafted
  exponent_without_point: 1e5
  sign_before_point: -.5
  single_letter: y
  octal_1_2: 0o17
  leading_zero_8: 08
  plain_text: 3d conv, 1x1
  quoted_number: "12"
  quoted_true: 'true'
  literal: |
    two
    lines
  folded: >
    folded
    text
  empty_quoted: ''
"""

BLOCK_METADATA = {
    "vector": "crafted", "exponent_without_point": "1e5", "sign_before_point": "-.5", "single_letter": "y",
    "octal_1_2": "0o17", "leading_zero_8": "08", "plain_text": "3d conv, 1x1", "quoted_number": "12",
    "quoted_true": "true", "literal": "two\nlines\n", "folded": "folded text\n", "empty_quoted": "",
}


def block_form_vectors(doc: dict[str, Any], arrays: dict[str, np.ndarray], inputs: list[np.ndarray]) -> list[Valid]:
    lines = []
    for name, info in doc["weights"].items():
        lines.append(f"  {name}:\n    dtype: {info['dtype']}\n    shape: [{', '.join(map(str, info['shape']))}]\n"
                     f"    sha256: {info['sha256']}")
    text = BLOCK_MANIFEST.replace("{weights}", "\n".join(lines)).encode()
    return [crafted("craft-block-form", "a manifest in the block form: plain scalars resolved by the §2.1 "
                    "table (strings that YAML 1.2 would read as numbers), quoted, literal and folded "
                    "scalars, flow mappings, a document marker, comments",
                    ["§2.1 block form"], lambda: bytes(zc.Archive(text, _entries(arrays))), inputs)]


def cp437_names() -> Valid:
    arrays = {"ü": np.array([1, 2], np.int16), "é": np.array([3], np.int16)}
    doc = {"format": "modelpack", "format_version": "1.1", "producer": "conformance", "kind": "tensors",
           "layout": "dict", "weights": {n: zc.tensor_info(a) for n, a in arrays.items()}}
    entries = [zc.Entry(b"\x81.npy", zc.npy(arrays["ü"]), flags=0),  # CP437 0x81 is ü
               zc.Entry("é.npy".encode(), zc.npy(arrays["é"]), flags=0x800)]
    text = zc.json_form(doc).encode()
    return crafted("craft-cp437", "a bundle member name without the UTF-8 flag is CP437 (0x81 is 'ü'); "
                   "one with it is UTF-8", ["§1 names"], lambda: bytes(zc.Archive(text, entries)), None)


# -- added with the reader changes FORMAT.md requires (§2.1, §3.3, §3.5) ------------------------

def ops_int_activations() -> Valid:
    names = ["relu", "sigmoid", "tanh", "softrelu", "softsign", "gelu", "silu"]
    sources = {"relu": "i", "sigmoid": "i", "tanh": "u", "softrelu": "b", "softsign": "i", "gelu": "i", "silu": "u"}
    nodes = [node(n, [sources[n]], n) for n in names] + [
        node("leaky_relu", ["i"], "leaky_relu", alpha=0.2), node("elu", ["b"], "elu"),
        node("leaky_relu", ["u"], "leaky_default"), node("softmax", ["i"], "softmax"),
        node("log_softmax", ["u"], "log_softmax", axis=0), node("relu", ["h"], "relu_float16"),
    ]
    net = graph_block([("i", "int32", [4]), ("u", "uint8", [4]), ("b", "bool", [4]), ("h", "float16", [4])],
                      nodes, as_dict(outputs_of(nodes)))
    inputs = [np.array([-3, 0, 2, 7], np.int32), np.array([0, 1, 200, 255], np.uint8),
              np.array([True, False, False, True]), np.array([-1.5, 0.0, 2.0, np.nan], np.float16)]
    return Valid("ops-int-activations", "activation ops on integer and bool inputs compute in float32 (as the "
                 "activation layers do); alpha defaults; a float16 input keeps its dtype", ["§3.4", "§3.5"],
                 exporter(net), [Run(inputs)])


def refusals_at_run() -> list[Valid]:
    def one(name: str, about: str, inputs: list[tuple[str, str, list[int | str]]], nodes: list[dict[str, Any]],
            runs: list[Run], children: dict[str, nn.Block] | None = None,
            outputs: dict[str, Any] | None = None) -> Valid:
        net = graph_block(inputs, nodes, outputs or {"kind": "single", "values": [nodes[-1]["outputs"][0]]}, children)
        return Valid(name, about, ["§3.3", "§3.5"], exporter(ready(net, 40) if children else net), runs)

    i8 = np.array([1, -2, 3], np.int8)
    return [
        one("run-scalar-overflow", "an integer scalar (300) that does not fit the int8 array it meets is refused",
            [("x", "int8", [3])], [scalar("s", 300), node("add", ["x", "s"], "y")], [Run([i8], "InputError")]),
        one("run-negative-power", "an integer raised to a negative integer is refused; the same graph runs on "
            "non-negative exponents", [("x", "int32", [3]), ("e", "int32", [3])], [node("power", ["x", "e"], "y")],
            [Run([np.array([2, -3, 5], np.int32), np.array([3, 0, 1], np.int32)]),
             Run([np.array([2, -3, 5], np.int32), np.array([1, -1, 1], np.int32)], "InputError")]),
        one("run-bool-subtract", "subtract of two booleans is refused", [("p", "bool", [2]), ("q", "bool", [2])],
            [node("subtract", ["p", "q"], "y")], [Run([np.array([True, False]), np.array([True, True])], "InputError")]),
        one("run-returns-array", "a layer call declared to return a tuple gets an array: refused, not split",
            [("x", "float32", [2, 3])],
            [{"op": "layer", "inputs": ["x"], "outputs": ["a", "b"], "attrs": {"block": "f", "returns": "tuple"}}],
            [Run([f32(2, 3, seed=41)], "InputError")], {"f": nn.Flatten()},
            {"kind": "tuple", "values": ["a", "b"], "keys": None}),
        one("run-max-empty", "max over an empty axis is refused; sum and mean of nothing are 0 and NaN",
            [("x", "float32", ["batch", 3])],
            [node("sum", ["x"], "s", axis=0), node("mean", ["x"], "m", axis=0), node("max", ["x"], "y", axis=0)],
            [Run([f32(2, 3, seed=42)]), Run([np.zeros((0, 3), np.float32)], "InputError")],
            outputs={"kind": "list", "values": ["s", "m", "y"], "keys": None}),
        one("run-empty-reductions", "sum and mean over an empty axis: 0 and NaN",
            [("x", "float32", ["batch", 3])], [node("sum", ["x"], "s", axis=0), node("mean", ["x"], "m", axis=0)],
            [Run([np.zeros((0, 3), np.float32)])], outputs={"kind": "tuple", "values": ["s", "m"], "keys": None}),
    ]


class Masked(nn.Block):
    """Non-finite scalars in a traced graph: the writer falls back to the block form."""

    def __init__(self) -> None:
        super().__init__()
        self.leaky = nn.LeakyReLU(float("inf"))

    def forward(self, x: np.ndarray) -> np.ndarray:
        masked = np.where(x > 0, x, -np.inf)
        return np.concatenate([self.leaky(x), masked * 2.0, np.where(x > 1, float("nan"), x)], axis=1)


def nonfinite() -> Valid:
    x = f32(2, 3, seed=43, scale=2.0)
    net = Masked()
    net(x)
    return Valid("nonfinite", "±inf and NaN in a layer config and in traced graph scalars, written by modelpack "
                 "in the block form", ["§2.1 block form", "§3.3"], exporter(net, example=x),
                 [Run([x]), Run([f32(4, 3, seed=44)])])


def gluon_spatial() -> Valid:
    """The layers of 1 and 3 spatial axes, the transposed convolutions and ReflectionPad2D."""
    children: dict[str, nn.Block] = {
        "conv1": nn.Conv1D(4, 3, strides=2, padding=1, dilation=2, groups=2, activation="relu", in_channels=2),
        "conv3": nn.Conv3D(2, (1, 2, 3), strides=(1, 2, 1), padding=(0, 1, 1), use_bias=False, in_channels=2),
        "tconv1": nn.Conv1DTranspose(3, 3, strides=2, padding=1, output_padding=1, dilation=2, in_channels=2),
        "tconv2": nn.Conv2DTranspose(4, (3, 2), strides=(2, 3), padding=(1, 0), output_padding=(1, 2), groups=2,
                                     activation="tanh", in_channels=2),
        "tconv3": nn.Conv3DTranspose(2, 2, strides=2, use_bias=False, in_channels=2),
        "max1": nn.MaxPool1D(3, 2, 1, ceil_mode=True),
        "avg1": nn.AvgPool1D(3, 2, 1, ceil_mode=True, count_include_pad=False),
        "max3": nn.MaxPool3D((1, 2, 2), padding=(0, 1, 0)),
        "avg3": nn.AvgPool3D(2, strides=1, padding=1),
        "gmax1": nn.GlobalMaxPool1D(), "gavg1": nn.GlobalAvgPool1D(),
        "gmax3": nn.GlobalMaxPool3D(), "gavg3": nn.GlobalAvgPool3D(),
        "pad": nn.ReflectionPad2D((0, 0, 0, 0, 1, 2, 2, 0)),
    }
    by_input = {"x1": ["conv1", "tconv1", "max1", "avg1", "gmax1", "gavg1"], "x2": ["tconv2", "pad"],
                "x3": ["conv3", "tconv3", "max3", "avg3", "gmax3", "gavg3"]}
    nodes = [call(name, [x], name) for x, names in by_input.items() for name in names]
    inputs = [("x1", "float32", ["batch", 2, 7]), ("x2", "float32", ["batch", 2, 3, 3]),
              ("x3", "float32", ["batch", 2, 3, 4, 5])]
    net = ready(graph_block(inputs, nodes, as_dict(outputs_of(nodes)), children), 50)
    x1, x2, x3 = f32(2, 2, 7, seed=51), f32(2, 2, 3, 3, seed=52), f32(2, 2, 3, 4, 5, seed=53)
    x1[1, 0, 3] = np.nan
    return Valid("gluon-spatial", "Conv1D/Conv3D, the three transposed convolutions (groups, dilation, "
                 "output_padding), 1-D and 3-D max/avg/global pools (ceil mode, padding), ReflectionPad2D; "
                 "one NaN", ["§3.2 Conv1D, Conv3D", "§3.2 transposed convolutions", "§3.2 pooling",
                              "§3.2 ReflectionPad2D"],
                 exporter(net), [Run([x1, x2, x3]), Run([x1, f32(1, 2, 2, 3, seed=54), x3], "InputError")])


def gluon_norms_activations() -> Valid:
    """InstanceNorm, GroupNorm, PReLU, SELU, Swish, GELU, Identity, Lambda and Concatenate."""
    branches = nn.Concatenate(axis=1)
    branches.add(nn.Dense(3, in_units=4), nn.Identity(), nn.Lambda("tanh"))
    children: dict[str, nn.Block] = {
        "inorm": nn.InstanceNorm(in_channels=3, epsilon=1e-3),
        "inorm_last": nn.InstanceNorm(axis=-1, in_channels=4, scale=True),
        "gnorm": nn.GroupNorm(num_groups=3, scale=False, center=False),
        "prelu": nn.PReLU(in_channels=3), "prelu1": nn.PReLU(),
        "selu": nn.SELU(), "swish": nn.Swish(1.5), "gelu": nn.GELU(), "gelu_tanh": nn.GELU("tanh"),
        "lambda": nn.HybridLambda("softmax"), "cat": branches,
    }
    by_input = {"x": ["inorm", "inorm_last", "gnorm", "prelu"], "v": ["prelu1", "selu", "swish", "gelu", "gelu_tanh",
                                                                      "lambda"], "d": ["cat"]}
    nodes = [call(name, [x], name) for x, names in by_input.items() for name in names]
    inputs = [("x", "float32", ["batch", 3, 2, 4]), ("v", "float32", [2, 7]), ("d", "float32", ["batch", "features"])]
    net = ready(graph_block(inputs, nodes, as_dict(outputs_of(nodes)), children), 55)
    v = np.array([[-6, -1.5, -0.0, 0.0, 0.7, 3, 30], [-30, -0.5, 1e-3, -1e-3, 2, 5, np.nan]], np.float32)
    return Valid("gluon-norms-activations", "InstanceNorm (axis 1 and -1; stored gamma and beta applied whatever "
                 "scale and center say), GroupNorm (one gamma per group), PReLU (per channel and single), SELU, "
                 "Swish, GELU (erf and tanh), Concatenate of Dense, Identity and Lambda, HybridLambda",
                 ["§3.2 InstanceNorm", "§3.2 GroupNorm", "§3.2 PReLU", "§3.2 Concatenate", "§3.2 Lambda"],
                 exporter(net), [Run([f32(2, 3, 2, 4, seed=56, scale=2.0), v, f32(2, 4, seed=57)]),
                                 Run([f32(2, 3, 2, 4, seed=56), v, f32(2, 5, seed=57)], "ShapeMismatchError")])


def tied_parameters() -> Valid:
    """§3.1 (1.3): d2l's tied layers, and a block used twice: each shared parameter stored once."""
    shared, twice = nn.Dense(4, activation="relu", in_units=4), nn.Dense(4, in_units=4)
    net = nn.Sequential()
    net.add(nn.Dense(4, activation="relu", in_units=3), shared,
            nn.Dense(4, activation="relu", in_units=4, params=shared.params), twice, twice, nn.Dense(2, in_units=4))
    randomize(net, 71)
    return Valid("tied-parameters", "a Sequential whose third Dense shares the second's parameters (Gluon's "
                 "params=) and whose fourth block is used twice: ties 2.* → 1.* and 4.* → 3.*",
                 ["§3.1 shared parameters"], exporter(net), [Run([f32(3, 3, seed=72)])])


def vectors() -> list[Valid]:
    from offsets import valid_vectors as offset_vectors  # late: these build on this module's helpers
    from valid_rnn_ops import vectors as rnn_ops_vectors

    return [
        mlp(), dense_shapes(), activations(), conv(), pools(), norms(), embedding(), float16(), float64(),
        ops_float(), ops_promotion(), traced_nested(), sequential_with_graph(), deflated_model(),
        tensors_dtypes(), tensors_list(), tensors_empty_tuple(), tensors_single(), tensors_unicode(),
        tensors_deflated(), *crafted_vectors(), ops_int_activations(), *refusals_at_run(), nonfinite(),
        gluon_spatial(), gluon_norms_activations(), *rnn_ops_vectors(), tied_parameters(), *offset_vectors(),
    ]
