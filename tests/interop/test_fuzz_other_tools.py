"""Mutation fuzzing of the converters' inputs: other tools' files, changed the way a damaged or
crafted one would be. MXNet symbols get their attributes set to odd values, inputs dropped or
repeated, operators swapped; ONNX graphs get their attributes, inputs, operators and
initializers changed. Converting the file and running what converts on the reference input
may raise only ModelpackErrors, within a time bound (tests/test_fuzz.py does the same for
modelpack's own archives). The soak runs (``-m slow``) take thousands of cases each.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fuzzing import time_bound
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import modelpack
from modelpack.errors import ModelpackError

MODELS = Path(__file__).parent.parent / "data" / "mxnet-models"
SYMBOLS = ["legacy-ops", "module-ops", "np-ops", "resampling"]
ODD = ["-1", "0", "1", "2", "()", "(0,)", "(1, -1)", "(0, 0)", "1e9", "None", "True", "", "(2, 2, 2)",
       "99999999999", "(-3, 2)", "-2", "nan", "inf", "(1, 1, 1, 1, 1, 1, 1)", "abc", "(-1,)", "3.5"]
CASES = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
SOAK = settings(max_examples=3000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def _mutated_symbol(document: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    document = copy.deepcopy(document)
    nodes = document["nodes"]
    ops = sorted({node["op"] for node in nodes})
    for _ in range(rng.randint(1, 2)):
        node = rng.choice(nodes)
        attrs = node.setdefault("attrs", {})
        kind = rng.randrange(5)
        if kind == 0 and attrs:
            attrs[rng.choice(sorted(attrs))] = rng.choice(ODD)
        elif kind == 1 and node.get("inputs"):
            node["inputs"].pop(rng.randrange(len(node["inputs"])))
        elif kind == 2 and node.get("inputs"):
            node["inputs"].append(list(rng.choice(node["inputs"])))
        elif kind == 3 and node["op"] != "null":
            node["op"] = rng.choice(ops)
        else:
            key = rng.choice(["axis", "axes", "shape", "kernel", "stride", "pad", "num_group", "num_outputs",
                              "squeeze_axis", "keepdims", "dtype", "begin", "end", "reps", "scale"])
            attrs[key] = rng.choice(ODD)
    return document


def _convert_and_run(symbol: Path, params: Path, inputs: list[np.ndarray]) -> None:
    try:
        net = modelpack.convert(symbol, params)
        net(*inputs)
    except ModelpackError:
        pass


def _symbol_case(tmp_path: Path, name: str, rng: random.Random) -> None:
    document = _mutated_symbol(json.loads((MODELS / f"{name}-symbol.json").read_text()), rng)
    symbol = tmp_path / f"{name}-symbol.json"
    symbol.write_text(json.dumps(document))
    inputs = [np.load(path) for path in sorted(MODELS.glob(f"{name}-input-*.npy"))]
    with time_bound(20.0):
        _convert_and_run(symbol, MODELS / f"{name}-0000.params", inputs)


@CASES
@given(st.sampled_from(SYMBOLS), st.randoms(use_true_random=False))
def test_mutated_mxnet_symbols_convert_or_are_refused(tmp_path_factory, name, rng):
    _symbol_case(tmp_path_factory.mktemp("sym"), name, rng)


@pytest.mark.slow
@SOAK
@given(st.sampled_from(SYMBOLS), st.randoms(use_true_random=False))
def test_mutated_mxnet_symbols_soak(tmp_path_factory, name, rng):
    _symbol_case(tmp_path_factory.mktemp("sym"), name, rng)


# -- ONNX ---------------------------------------------------------------------------------------


def _onnx_seeds(folder: Path) -> list[tuple[Any, np.ndarray]]:
    """A CNN and a traced graph exported by ``to_onnx``: layers, ops and constants."""
    onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install -e '.[onnx]')")
    from modelpack import nn
    from modelpack.interop.onnx import to_onnx

    cnn = nn.Sequential()
    cnn.add(nn.Conv2D(4, 3, padding=1, activation="relu"), nn.BatchNorm(), nn.MaxPool2D(2),
            nn.Conv2D(4, 3, groups=2, strides=2), nn.AvgPool2D(2, ceil_mode=True), nn.Flatten(),
            nn.Dense(6, activation="tanh"), nn.LayerNorm(), nn.Dense(3))
    cnn.initialize(seed=0)
    x = np.random.default_rng(0).standard_normal((2, 2, 9, 9)).astype(np.float32)
    cnn(x)
    to_onnx(cnn, folder / "cnn.onnx", example=x)

    class Traced(nn.Block):
        def __init__(self) -> None:
            super().__init__()
            self.dense = nn.Dense(4, flatten=False)

        def forward(self, x: Any) -> Any:
            h = self.dense(x)
            return np.concatenate([h, np.sqrt(np.abs(h))], axis=-1).reshape(x.shape[0], -1).transpose() / 3.0

    traced = Traced()
    traced.initialize(seed=0)
    y = np.random.default_rng(1).standard_normal((2, 3, 5)).astype(np.float32)
    traced(y)
    to_onnx(traced, folder / "traced.onnx", example=y)
    return [(onnx.load(str(folder / "cnn.onnx")), x), (onnx.load(str(folder / "traced.onnx")), y),
            (_older_opset_model(), x)]


def _older_opset_model() -> Any:
    """An opset-9 graph in the older operators' forms (attributes that opset 13 made inputs,
    Softmax over the flattened tail, Upsample), which the importer upgrades first."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(2)

    def constant(name: str, *shape: int) -> Any:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "s", "o", "m", "v"], ["n"]),
        helper.make_node("Clip", ["n"], ["r"], min=0.0, max=6.0),
        helper.make_node("Split", ["r"], ["a", "d"], axis=1, split=[1, 3]),
        helper.make_node("Upsample", ["a", "scales"], ["u"], mode="nearest"),
        helper.make_node("MaxPool", ["u"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Unsqueeze", ["p"], ["q"], axes=[0]),
        helper.make_node("Squeeze", ["q"], ["t"], axes=[0]),
        helper.make_node("Concat", ["t", "d"], ["k"], axis=1),
        helper.make_node("ReduceMean", ["k"], ["e"], axes=[2], keepdims=0),
        helper.make_node("Softmax", ["e"], ["y"], axis=1),
    ]
    initializers = [constant("w", 4, 2, 3, 3), constant("b", 4), constant("s", 4), constant("o", 4),
                    constant("m", 4), numpy_helper.from_array(np.full(4, 2.0, np.float32), "v"),
                    numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]
    graph = helper.make_graph(nodes, "older", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2, 9, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)], ir_version=4)


def _mutated_graph(model: Any, rng: random.Random) -> Any:
    import onnx
    from onnx import helper, numpy_helper

    mutated = onnx.ModelProto()
    mutated.CopyFrom(model)
    nodes = list(mutated.graph.node)
    ops = sorted({node.op_type for node in nodes})
    for _ in range(rng.randint(1, 2)):
        node, kind = rng.choice(nodes), rng.randrange(8)
        if kind == 0 and node.attribute:
            attribute = rng.choice(list(node.attribute))
            if attribute.type == onnx.AttributeProto.INT:
                attribute.i = rng.choice([-1, 0, 1, 2, 7, 2**31, 2**62])
            elif attribute.type == onnx.AttributeProto.INTS and len(attribute.ints):
                attribute.ints[rng.randrange(len(attribute.ints))] = rng.choice([-1, 0, 3, 2**62])
            elif attribute.type == onnx.AttributeProto.FLOAT:
                attribute.f = rng.choice([0.0, -1.0, 1e30, float("nan"), float("inf")])
        elif kind == 1 and node.attribute:
            node.attribute.pop(rng.randrange(len(node.attribute)))
        elif kind == 2:
            node.op_type = rng.choice(ops)
        elif kind == 3 and len(node.input):
            node.input.pop(rng.randrange(len(node.input)))
        elif kind == 4 and mutated.graph.initializer:
            tensor = rng.choice(list(mutated.graph.initializer))
            array = numpy_helper.to_array(tensor)
            array = array.reshape(-1) if rng.random() < 0.5 else array.reshape(1, *array.shape)
            tensor.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(array), tensor.name))
        elif kind == 5:
            name = rng.choice(["axis", "perm", "group", "strides", "pads", "kernel_shape", "transB", "to"])
            node.attribute.extend([helper.make_attribute(name, rng.choice([1, 0, -1, 5, [0, 1], [1, 0, 1, 0]]))])
        elif kind == 6 and len(node.input) >= 2:
            i, j = rng.sample(range(len(node.input)), 2)
            node.input[i], node.input[j] = node.input[j], node.input[i]
        elif kind == 7:  # another opset: older ones go through onnx's version converter
            mutated.opset_import[0].version = rng.choice([-1, 0, 1, 6, 7, 9, 11, 12, 13, 99])
    return mutated


@pytest.fixture(scope="module")
def onnx_seeds(tmp_path_factory):
    return _onnx_seeds(tmp_path_factory.mktemp("onnx-seeds"))


def _onnx_case(folder: Path, seeds: list[tuple[Any, np.ndarray]], rng: random.Random) -> None:
    from modelpack.interop.onnx import from_onnx

    model, x = rng.choice(seeds)
    path = folder / "case.onnx"
    path.write_bytes(_mutated_graph(model, rng).SerializeToString())  # (not onnx.save: it checks)
    with time_bound(20.0):
        try:
            from_onnx(path)(x)
        except ModelpackError:
            pass


@CASES
@given(st.randoms(use_true_random=False))
def test_mutated_onnx_graphs_convert_or_are_refused(tmp_path_factory, onnx_seeds, rng):
    _onnx_case(tmp_path_factory.mktemp("onnx"), onnx_seeds, rng)


@pytest.mark.slow
@SOAK
@given(st.randoms(use_true_random=False))
def test_mutated_onnx_graphs_soak(tmp_path_factory, onnx_seeds, rng):
    _onnx_case(tmp_path_factory.mktemp("onnx"), onnx_seeds, rng)
