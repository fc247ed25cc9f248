"""Size expressions (``nn.sizes``): the grammar round-trips, fitting finds the expression two
or three traced sizes imply, evaluation refuses what is not a whole non-negative size, and a
graph may only use sizes its inputs bind."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from modelpack.nn.graph_spec import GraphSpec
from modelpack.nn.sizes import SizeExpr, combined, parse, resolve

names = st.sampled_from(["batch", "seq", "x0_0", "T"])
exprs = st.builds(
    lambda a, b, two, scale, divisor, offset: SizeExpr((a, b) if two and a != b else (a,), scale, divisor, offset),
    names, names, st.booleans(), st.integers(1, 999), st.integers(1, 999), st.integers(-99, 99),
)


@given(exprs)
def test_text_round_trips(expr):
    assert parse(str(expr)) == expr


@given(exprs, st.integers(1, 50), st.integers(1, 50))
def test_value_is_the_formula(expr, a, b):
    sizes = {"batch": a, "seq": b, "x0_0": a * 3, "T": b + 1}
    product = expr.scale
    for name in expr.names:
        product *= sizes[name]
    whole = product % expr.divisor == 0 and product // expr.divisor + expr.offset >= 0
    if whole:
        assert expr.value(sizes) == product // expr.divisor + expr.offset
    else:
        with pytest.raises(ValueError, match="not a whole number|negative"):
            expr.value(sizes)


@pytest.mark.parametrize(
    ("group", "points", "text"),
    [
        (("batch",), [({"batch": 2}, 8), ({"batch": 3}, 12)], "4*batch"),
        (("batch",), [({"batch": 8}, 4), ({"batch": 12}, 6)], "batch/2"),
        (("seq",), [({"seq": 5}, 4), ({"seq": 7}, 6)], "seq-1"),
        (("seq",), [({"seq": 5}, 11), ({"seq": 7}, 15)], "2*seq+1"),
        (("batch", "seq"), [({"batch": 2, "seq": 5}, 30), ({"batch": 3, "seq": 7}, 63)], "3*batch*seq"),
    ],
)
def test_fit_finds_the_expression(group, points, text):
    assert str(SizeExpr.fit(group, points)) == text


@pytest.mark.parametrize(
    ("group", "points"),
    [
        (("batch",), [({"batch": 2}, 3), ({"batch": 3}, 2)]),  # shrinks as the batch grows
        (("batch",), [({"batch": 2}, 4), ({"batch": 2}, 5)]),  # the size did not change
        (("batch",), [({"batch": 2}, 4), ({"batch": 3}, 9), ({"batch": 5}, 25)]),  # batch², not a line
        (("batch", "seq"), [({"batch": 2, "seq": 5}, 30), ({"batch": 3, "seq": 7}, 64)]),
    ],
)
def test_fit_refuses_what_the_grammar_cannot_say(group, points):
    assert SizeExpr.fit(group, points) is None


def test_resolve_walks_attributes_and_names_the_problem():
    assert resolve([{"slice": [None, "seq-1", None]}, {"int": 0}], {"seq": 4}) == [{"slice": [None, 3, None]}, {"int": 0}]
    with pytest.raises(ValueError, match=r"size 2\*seq uses dynamic size 'seq', which no input binds"):
        resolve(["2*seq"], {"batch": 3})
    with pytest.raises(ValueError, match=r"size batch-5 is negative \(-2\)"):
        resolve("batch-5", {"batch": 3})


@pytest.mark.parametrize(
    "text", ["batch**2", "__import__('os')", "batch+", "2*", "0*batch", "batch/0", "a*b*c", "batch + 1", "-batch"]
)
def test_the_schema_refuses_anything_outside_the_grammar(text):
    document = {
        "inputs": [{"name": "x0", "dtype": "float32", "shape": ["batch", 4]}],
        "nodes": [{"op": "reshape", "inputs": ["x0"], "outputs": ["v0"], "attrs": {"shape": [text, -1]}}],
        "outputs": {"kind": "single", "values": ["v0"]},
    }
    with pytest.raises(ValidationError):
        GraphSpec.model_validate(document)
    with pytest.raises(ValueError, match="is not a size expression"):
        parse(text)


@pytest.mark.parametrize(("op", "a", "b", "written"), [
    ("multiply", "batch", 2, "2*batch"), ("multiply", 2, "batch", "2*batch"), ("multiply", "batch", "seq", "batch*seq"),
    ("divide", "4*batch", 2, "2*batch"), ("divide", "batch", 2, "batch/2"), ("add", "batch", 1, "batch+1"),
    ("subtract", "batch/2", 1, "batch/2-1"), ("multiply", "batch+1", 3, "3*batch+3"), ("divide", "batch+2", 2, "batch/2+1"),
    ("add", 3, 4, 7), ("divide", 8, 2, 4),
    # what the grammar cannot write, or is not exact
    ("divide", "batch+1", 2, None), ("add", "batch", "seq", None), ("multiply", "batch*seq", "t", None),
    ("multiply", "batch+1", "seq", None), ("divide", 7, 2, None), ("multiply", "batch", -1, None),
    ("maximum", "batch", 2, None), ("divide", 2, "batch", None),
])
def test_combined_writes_size_arithmetic(op, a, b, written):
    assert combined(op, a, b) == written


_OPS = {"add": lambda x, y: x + y, "subtract": lambda x, y: x - y, "multiply": lambda x, y: x * y,
        "divide": lambda x, y: x // y}


@given(exprs, st.sampled_from(sorted(_OPS)), st.integers(1, 12), st.integers(1, 50), st.integers(1, 50))
def test_combined_is_the_arithmetic_wherever_it_is_written(expr, op, k, a, b):
    """Where ``combined`` writes an expression, it evaluates to the arithmetic on the values
    (at sizes where both are defined)."""
    text = combined(op, str(expr), k)
    sizes = {"batch": a, "seq": b, "x0_0": a * 3, "T": b + 1}
    try:
        before = expr.value(sizes)
    except ValueError:
        return
    if text is None:
        return
    if op == "divide" and before % k:
        return  # (the expression is exact only where the size divides)
    try:
        after = parse(text).value(sizes)
    except ValueError:
        return  # (negative there: no size)
    assert after == _OPS[op](before, k)
