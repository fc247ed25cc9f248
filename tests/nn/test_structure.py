"""Nested call structures (``nn.structure``): flatten/unflatten round trips, and graphs refuse
a structure that does not hold exactly their values, or a call shaped otherwise."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from modelpack import nn
from modelpack.errors import InputError
from modelpack.nn import structure
from modelpack.nn.graph_spec import GraphSpec

leaves = st.integers(0, 9).map(lambda i: np.full(1, i))
nested = st.recursive(
    st.one_of(leaves, st.none()),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.lists(inner, max_size=3).map(tuple)),
    max_leaves=12,
)


@given(nested)
def test_round_trip(value):
    tree, values = structure.flatten(value)
    assert structure.count(tree) == len(values)
    rebuilt = structure.unflatten(tree, values)
    assert structure.flatten(rebuilt) == (tree, values) or repr(rebuilt) == repr(value)


def test_nesting_past_the_limit_is_refused():
    value: list = [np.ones(1)]
    for _ in range(structure.MAX_DEPTH + 1):
        value = [value]
    with pytest.raises(ValueError, match="structures nest at most 32 levels"):
        structure.flatten(value)


def _graph(**extra):
    return {
        "inputs": [{"name": "x0", "dtype": "float32", "shape": [2]}, {"name": "x1", "dtype": "float32", "shape": [2]}],
        "nodes": [{"op": "add", "inputs": ["x0", "x1"], "outputs": ["v0"]}],
        "outputs": {"kind": "tree", "values": ["v0", "x1"], "tree": {"kind": "tuple", "items": ["value", {"kind": "list", "items": ["value", "none"]}]}},
        **extra,
    }


def test_a_graph_runs_with_nested_arguments_and_results():
    block = nn.GraphBlock(graph=_graph(args=["value", {"kind": "list", "items": ["value"]}]))
    out, (state, nothing) = block(np.ones(2, np.float32), [np.full(2, 2.0, np.float32)])
    assert out.tolist() == [3.0, 3.0] and state.tolist() == [2.0, 2.0] and nothing is None
    with pytest.raises(InputError, match=r"expects arguments \(x, \[x\]\), got \(x, x\)"):
        block(np.ones(2, np.float32), np.ones(2, np.float32))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"args": ["value"]}, "the argument structure does not hold exactly the graph's inputs"),
        ({"outputs": {"kind": "tree", "values": ["v0"], "tree": {"kind": "list", "items": ["value", "value"]}}},
         "the output tree does not hold exactly"),
        ({"outputs": {"kind": "tuple", "values": ["v0"], "tree": "value"}}, "'tree' exactly when their kind is 'tree'"),
        ({"outputs": {"kind": "tree", "values": ["v0"], "tree": {"kind": "set", "items": []}}}, "kind"),
    ],
)
def test_graphs_refuse_structures_that_do_not_fit(edit, message):
    with pytest.raises(ValidationError, match=message):
        GraphSpec.model_validate({**_graph(), **edit})


def test_layer_nodes_refuse_structures_that_do_not_fit():
    graph = {
        "inputs": [{"name": "x0", "dtype": "float32", "shape": [2]}],
        "nodes": [{"op": "layer", "inputs": ["x0"], "outputs": ["v0", "v1"],
                   "attrs": {"block": "cell", "returns": "tree", "tree": {"kind": "tuple", "items": ["value"]}}}],
        "outputs": {"kind": "single", "values": ["v0"]},
    }
    with pytest.raises(ValidationError, match="its result tree does not match its outputs"):
        GraphSpec.model_validate(graph)
    graph["nodes"][0]["attrs"] = {"block": "cell", "returns": "tuple", "args": ["value", "value"]}
    with pytest.raises(ValidationError, match="its argument structure does not match its inputs"):
        GraphSpec.model_validate(graph)
