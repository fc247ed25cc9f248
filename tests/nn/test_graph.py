"""GraphBlock (nn.graph), which runs a loaded graph: its guards no ordinary export can trip (a
graph naming what its block lacks; each test crafts the input only a hand-edited file or a
tracer bug could produce, so that disabling the guard makes a test fail), numpy's refusals
named by node, and parameter names kept while running."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest
from craft import edit
from models import WithConstant, export_bytes, mlp_ready, ready, round_trip

import modelpack
from modelpack import nn
from modelpack.errors import InputError, SchemaError


class Scaled(nn.Block):
    """A graph with a parameter and a constant of its own, besides a child layer."""

    def __init__(self):
        super().__init__()
        self.dense = nn.Dense(3)
        self.scale = nn.Parameter("scale", shape=(3,))

    def forward(self, x):
        return self.dense(x) * self.scale.data() + np.arange(3.0)


def _traced() -> bytes:
    net = Scaled()
    net.initialize(seed=0)
    x = np.ones((2, 4))
    net(x)
    return export_bytes(net, example=x)


def _graph(document: dict) -> dict:
    return document["architecture"]["config"]["graph"]


@pytest.mark.parametrize(
    ("op", "attr", "value", "message"),
    [
        ("layer", "block", "nosuch", "graph calls block 'nosuch', which is not a child of this block"),
        ("layer", "block", "dense.deeper", "graph calls block 'dense.deeper', which is not a child"),
        ("parameter", "name", "nosuch", "graph reads parameter 'nosuch', which the block does not have"),
        ("constant", "name", "c7", "graph reads constant 'c7', which does not exist"),
    ],
)
def test_graph_naming_a_missing_child_parameter_or_constant_is_refused(op, attr, value, message):
    def rename(document):
        node = next(n for n in _graph(document)["nodes"] if n["op"] == op)
        node["attrs"][attr] = value

    with pytest.raises(SchemaError, match=message):
        modelpack.load(io.BytesIO(edit(_traced(), manifest=rename)))


def test_the_crafted_graphs_load_unedited():
    """The same archive, not edited, loads and runs: the refusals above are the guard's."""
    net = modelpack.load(io.BytesIO(_traced()))
    assert net(np.ones((5, 4))).shape == (5, 3)


def test_a_size_no_own_input_carries_is_refused():
    from pydantic import ValidationError

    from modelpack.nn.graph_spec import GraphSpec

    document = {
        "inputs": [{"name": "x0", "dtype": "float32", "shape": [4]}],
        "nodes": [{"op": "reshape", "inputs": ["x0"], "outputs": ["v0"], "attrs": {"shape": ["2*seq", -1]}}],
        "outputs": {"kind": "single", "values": ["v0"], "keys": None},
    }
    with pytest.raises(ValidationError, match=r"uses dynamic sizes \['seq'\] that no graph input carries"):
        GraphSpec.model_validate(document)
    document["inputs"][0]["shape"] = ["seq"]
    GraphSpec.model_validate(document)  # carried by the input: accepted


def test_mlp_export_unaffected():
    assert modelpack.load(io.BytesIO(export_bytes(mlp_ready(), example=np.ones((2, 20))))) is not None


def _single_graph(nodes: list[dict], outputs: dict | None = None) -> nn.GraphBlock:
    graph = {"inputs": [{"name": "x", "dtype": "int8", "shape": [2]}], "nodes": nodes,
             "outputs": outputs or {"kind": "single", "values": [nodes[-1]["outputs"][0]]}}
    return nn.GraphBlock(graph=graph)


def test_integer_scalar_beyond_int64_refused_not_made_a_float():
    """FORMAT.md §2.1: integers lie in [-2**63, 2**63); pydantic's union would make 2**63 a float."""
    with pytest.raises(ValueError, match=r"outside \[-2\*\*63, 2\*\*63\)"):
        _single_graph([{"op": "scalar", "outputs": ["s"], "attrs": {"value": 2**63}}])
    _single_graph([{"op": "scalar", "outputs": ["s"], "attrs": {"value": 2**63 - 1}}])


def test_scalar_that_does_not_fit_the_array_is_an_input_error():
    """§3.5: an integer scalar must fit an integer array's dtype; numpy's OverflowError used to escape."""
    net = _single_graph([{"op": "scalar", "outputs": ["s"], "attrs": {"value": 300}},
                         {"op": "add", "inputs": ["x", "s"], "outputs": ["y"]}])
    with pytest.raises(modelpack.InputError, match=r"graph node 1 \(add\) cannot run.*300"):
        net(np.array([1, 2], np.int8))


def test_a_layer_call_returning_a_tuple_needs_a_sequence():
    """§3.3: an array returned where the graph expects a tuple is refused, not split along axis 0."""
    net = _single_graph([{"op": "layer", "inputs": ["x"], "outputs": ["a", "b"],
                          "attrs": {"block": "f", "returns": "tuple"}}], {"kind": "tuple", "values": ["a", "b"]})
    net.register_child(nn.Flatten(), "f")
    with pytest.raises(modelpack.InputError, match="returned a ndarray where the graph expects a tuple"):
        net(np.array([1, 2], np.int8))


def test_a_graph_that_cannot_run_says_which_node():
    """A graph is the file author's computation: numpy's refusals become InputErrors naming the node."""
    block = nn.GraphBlock(graph={
        "inputs": [{"name": "x0", "dtype": "float32", "shape": ["batch", 4]}],
        "nodes": [{"op": "reshape", "inputs": ["x0"], "outputs": ["v0"], "attrs": {"shape": [3, -1]}}],
        "outputs": {"kind": "single", "values": ["v0"]},
    })
    with pytest.raises(InputError, match=r"graph node 0 \(reshape\) cannot run on these inputs"):
        block(np.ones((2, 4), np.float32))


def test_running_a_graph_does_not_rename_its_parameters():
    x = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    outer = nn.Sequential()
    outer.add(round_trip(ready(WithConstant(), x), x))
    names = list(outer.collect_params())
    assert names[0] == "0.scale"
    outer(x)  # the graph reads its parameter 'scale'
    assert outer[0].scale.structured_name == "0.scale"  # still the name errors will show


def test_a_graph_drops_each_value_after_its_last_reader():
    """Values no later node reads are let go as the graph runs, as a Block's locals are: a
    chain of eight additions on a 4 MB array peaks near two such arrays, not nine; values
    read again later, or returned, stay."""
    nodes = [{"op": "scalar", "outputs": ["one"], "attrs": {"value": 1.0}}]
    previous = "x"
    for step in range(8):
        inputs = [previous, "one"] if step != 5 else [previous, "v1"]  # v1 read again at step 5
        nodes.append({"op": "add", "inputs": inputs, "outputs": [f"v{step}"]})
        previous = f"v{step}"
    net = nn.GraphBlock(graph={"inputs": [{"name": "x", "dtype": "float32", "shape": ["n"]}], "nodes": nodes,
                               "outputs": {"kind": "tuple", "values": ["v1", "v7"]}})
    x = np.zeros(1 << 20, np.float32)
    tracemalloc.start()
    try:
        early, last = net(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(early, np.full_like(x, 2))
    np.testing.assert_array_equal(last, np.full_like(x, 5 + 2 + 2))  # five ones, v1 (2), two ones
    assert peak < 4.5 * x.nbytes  # the two returned, and at most two more at once


def _chain(steps: int, views: tuple[int, ...] = ()) -> nn.GraphBlock:
    """x + 1 + 1 ... (``steps`` additions), returning the last sum and a reshaped view of each
    step in ``views``."""
    nodes = [{"op": "scalar", "outputs": ["one"], "attrs": {"value": 1.0}}]
    for step in range(steps):
        nodes.append({"op": "add", "inputs": [f"v{step - 1}" if step else "x", "one"], "outputs": [f"v{step}"]})
        if step in views:
            nodes.append({"op": "reshape", "inputs": [f"v{step}"], "outputs": [f"r{step}"], "attrs": {"shape": [-1, 1]}})
    outputs = [f"v{steps - 1}", *(f"r{step}" for step in views)]
    return nn.GraphBlock(graph={"inputs": [{"name": "x", "dtype": "float32", "shape": ["n"]}], "nodes": nodes,
                                "outputs": {"kind": "tuple", "values": outputs}})


def test_a_limited_graph_stops_counting_what_it_let_go():
    """The activation budget counts a value a loaded graph holds until it is freed: a chain of
    eight additions runs within room for four of its arrays (holding each to the end would
    need eight); one whose steps live on in views it returns still counts them."""
    from modelpack.io.limits import Limits
    from modelpack.nn.budget import ActivationBudget, limit_activations

    x = np.zeros(1 << 20, np.float32)
    room = ActivationBudget("chain.mpk", Limits(max_activation_bytes=4 * x.nbytes))
    net = _chain(8)
    limit_activations(net, room)
    np.testing.assert_array_equal(net(x)[0], np.full_like(x, 8))
    kept = _chain(8, views=(1, 2, 3))
    limit_activations(kept, room)
    with pytest.raises(modelpack.LimitError, match=r"chain\.mpk: .*graph node \d+ \(add\)"):
        kept(x)
