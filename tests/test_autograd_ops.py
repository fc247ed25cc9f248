"""The gradient of every op in ``modelpack.nn.ops`` against PyTorch autograd, the oracle.

Each op runs on float64 ``Variable``s through ``autograd.variable.apply`` (the path graph
nodes and ``nn.functional`` take), is backpropagated with a random head gradient, and every
input's gradient is compared with torch's for the same function. Hypothesis draws shapes
(broadcasting included), axes and options; values come from a seeded numpy generator.

Tolerance: ``rtol=1e-9, atol=1e-12``. Both sides compute the same formula in float64
(unit roundoff 1.1e-16), differing only in the order of a few operations, so each gradient
element is off by a few roundoffs times the condition of its formula; 1e-9 leaves room for
sums over the drawn sizes and for cancellations. One justified exception: GELU uses a
rational erfc with relative error below 1.2e-7 (``nn.activations._erfc``) in both forward
and gradient, while torch uses the exact erf, so it gets ``rtol=atol=1e-6``: near x = -2.4
the gradient Φ(x) + x·φ(x) is a difference of nearly equal terms, where an absolute error of
1.2e-7·|g| in Φ shows up as a larger relative one (measured: 4.8e-9 absolute, 1.1e-6 relative).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from modelpack import autograd
from modelpack.autograd.variable import apply
from modelpack.autograd.vjps import VJPS
from modelpack.nn import ops
from modelpack.nn.ops.indexing import encode_index

torch = pytest.importorskip("torch")
F = torch.nn.functional

RTOL, ATOL = 1e-9, 1e-12
seeds = st.integers(0, 2**32 - 1)
small_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


def check(
    op: str,
    inputs: list[Any],
    attrs: dict[str, Any],
    reference: Callable[..., Any],
    seed: int,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> None:
    """Our value and input gradients of ``op`` against ``reference`` run by torch autograd.

    Float arrays in ``inputs`` are differentiated; anything else is a constant to both.
    """
    rng = np.random.default_rng(seed)
    inputs = [np.asarray(x) if isinstance(x, np.generic) else x for x in inputs]
    ours = [autograd.Variable(x) if _float_array(x) else x for x in inputs]
    with autograd.record():
        out = apply(op, ours, attrs)
    head = rng.normal(size=np.shape(out.value))
    out.backward(head)
    theirs = [torch.tensor(x, requires_grad=True) if _float_array(x) else _const(x) for x in inputs]
    expected = reference(*theirs)
    expected.backward(torch.tensor(head, dtype=expected.dtype))
    np.testing.assert_allclose(out.value, expected.detach().numpy(), rtol=rtol, atol=atol)
    for index, (mine, reference_input) in enumerate(zip(ours, theirs, strict=True)):
        if isinstance(mine, autograd.Variable):
            assert mine.grad is not None and mine.grad.dtype == mine.value.dtype, f"input {index}"
            np.testing.assert_allclose(
                mine.grad, reference_input.grad.numpy(), rtol=rtol, atol=atol, err_msg=f"{op}: input {index}"
            )


def _float_array(x: Any) -> bool:
    return isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating)


def _const(x: Any) -> Any:
    return torch.tensor(x) if isinstance(x, np.ndarray) else torch.tensor(x, dtype=torch.float64)


def test_every_op_has_a_vjp():
    assert sorted(set(ops.known_ops()) - set(VJPS)) == []


BINARY = {
    "add": torch.add,
    "subtract": torch.sub,
    "multiply": torch.mul,
    "divide": torch.div,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
}


@settings(max_examples=30)
@given(op=st.sampled_from(sorted(BINARY)), shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3),
       seed=seeds, scalar=st.sampled_from([None, 0, 1]))
def test_binary_elementwise(op, shapes, seed, scalar):
    rng = np.random.default_rng(seed)
    a, b = (rng.normal(size=shape) for shape in shapes.input_shapes)
    if op == "divide":
        b = np.sign(b) * (np.abs(b) + 0.5)  # away from 0, where the gradient explodes
    inputs: list[Any] = [a, b]
    if scalar is not None:
        inputs[scalar] = 1.5  # a Python number: a constant with no gradient
    check(op, inputs, {}, BINARY[op], seed)


@settings(max_examples=20)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3), seed=seeds)
def test_power(shapes, seed):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.5, 2.0, size=shapes.input_shapes[0])  # positive: real powers everywhere
    exponent = rng.uniform(-2.0, 2.0, size=shapes.input_shapes[1])
    check("power", [base, exponent], {}, torch.pow, seed)
    check("power", [base, 3.0], {}, torch.pow, seed)


def test_power_at_zero_follows_torch():
    check("power", [np.array([0.0, 0.0, 2.0]), np.array([2.0, 0.0, 0.0])], {}, torch.pow, 0)


def test_ties_split_like_torch():
    x = np.array([1.0, 2.0, 3.0])
    check("maximum", [x, np.array([1.0, 3.0, 3.0])], {}, torch.maximum, 0)
    check("minimum", [x, np.array([1.0, 3.0, 3.0])], {}, torch.minimum, 0)
    tied = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    check("max", [tied], {"axis": 1, "keepdims": False}, lambda t: torch.amax(t, dim=1), 0)
    check("min", [tied], {"axis": None, "keepdims": False}, torch.amin, 0)
    check("relu", [np.array([-1.0, 0.0, 2.0])], {}, torch.relu, 0)
    check("abs", [np.array([-1.0, 0.0, 2.0])], {}, torch.abs, 0)


MATMUL_SHAPES = st.one_of(
    st.tuples(st.just((3,)), st.just((3,))),
    st.tuples(st.just((3,)), st.just((3, 2))),
    st.tuples(st.just((2, 3)), st.just((3,))),
    st.tuples(st.just((2, 3)), st.just((3, 4))),
    st.tuples(st.just((5, 2, 3)), st.just((3, 4))),
    st.tuples(st.just((2, 3)), st.just((5, 3, 4))),
    st.tuples(st.just((5, 1, 2, 3)), st.just((4, 3, 2))),
)


@settings(max_examples=20)
@given(shapes=MATMUL_SHAPES, seed=seeds)
def test_matmul(shapes, seed):
    rng = np.random.default_rng(seed)
    check("matmul", [rng.normal(size=shapes[0]), rng.normal(size=shapes[1])], {}, torch.matmul, seed)


UNARY: dict[str, tuple[Callable[..., Any], Callable[[np.ndarray], np.ndarray]]] = {
    # name: (torch function, how to bring a normal sample into the op's domain)
    "negative": (torch.neg, lambda x: x),
    "abs": (torch.abs, lambda x: x),
    "exp": (torch.exp, lambda x: x),
    "log": (torch.log, lambda x: np.abs(x) + 0.1),
    "sqrt": (torch.sqrt, lambda x: np.abs(x) + 0.1),
    "square": (torch.square, lambda x: x),
    "sin": (torch.sin, lambda x: x),
    "cos": (torch.cos, lambda x: x),
    "relu": (torch.relu, lambda x: x),
    "sigmoid": (torch.sigmoid, lambda x: 4 * x),
    "tanh": (torch.tanh, lambda x: 2 * x),
    "softrelu": (lambda t: F.softplus(t, threshold=50), lambda x: 8 * x),  # torch: x itself past 20
    "softsign": (F.softsign, lambda x: x),
    "gelu": (F.gelu, lambda x: 2 * x),
    "silu": (F.silu, lambda x: 4 * x),
}


@settings(max_examples=40)
@given(op=st.sampled_from(sorted(UNARY)), shape=small_shapes, seed=seeds)
def test_unary(op, shape, seed):
    reference, domain = UNARY[op]
    x = domain(np.random.default_rng(seed).normal(size=shape))
    gelu = op == "gelu"
    check(op, [x], {}, reference, seed, rtol=1e-6 if gelu else RTOL, atol=1e-6 if gelu else ATOL)


@settings(max_examples=20)
@given(shape=small_shapes, seed=seeds, alpha=st.floats(0.01, 2.0))
def test_leaky_relu_and_elu(shape, seed, alpha):
    x = np.random.default_rng(seed).normal(size=shape)
    check("leaky_relu", [x], {"alpha": alpha}, lambda t: F.leaky_relu(t, alpha), seed)
    check("elu", [x], {"alpha": alpha}, lambda t: F.elu(t, alpha), seed)


@settings(max_examples=20)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3), seed=seeds)
def test_where(shapes, seed):
    rng = np.random.default_rng(seed)
    condition = rng.random(shapes.input_shapes[0]) < 0.5
    a, b = rng.normal(size=shapes.input_shapes[1]), rng.normal(size=shapes.input_shapes[2])
    check("where", [condition, a, b], {}, torch.where, seed)


@settings(max_examples=20)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), seed=seeds, data=st.data())
def test_softmax_and_log_softmax(shape, seed, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = 3 * np.random.default_rng(seed).normal(size=shape)
    check("softmax", [x], {"axis": axis}, lambda t: torch.softmax(t, dim=axis), seed)
    check("log_softmax", [x], {"axis": axis}, lambda t: torch.log_softmax(t, dim=axis), seed)


@settings(max_examples=20)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), count=st.integers(1, 3), seed=seeds,
       data=st.data())
def test_concatenate_and_stack(shape, count, seed, data):
    rng = np.random.default_rng(seed)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    arrays = [rng.normal(size=shape) for _ in range(count)]
    sizes = [shape[:axis % len(shape)] + (n,) + shape[axis % len(shape) + 1:] for n in range(1, count + 1)]
    ragged = [rng.normal(size=s) for s in sizes]
    check("concatenate", ragged, {"axis": axis}, lambda *t: torch.cat(t, dim=axis), seed)
    stack_axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    check("stack", arrays, {"axis": stack_axis}, lambda *t: torch.stack(t, dim=stack_axis), seed)


@settings(max_examples=20)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=4), seed=seeds, data=st.data())
def test_layout_ops(shape, seed, data):
    x = np.random.default_rng(seed).normal(size=shape)
    axes = data.draw(st.permutations(range(len(shape))))
    check("transpose", [x], {"axes": list(axes)}, lambda t: t.permute(*axes), seed)
    check("transpose", [x], {"axes": None}, lambda t: t.permute(*reversed(range(t.ndim))), seed)
    check("reshape", [x], {"shape": [-1]}, lambda t: t.reshape(-1), seed)
    check("flatten", [x], {}, lambda t: t.reshape(t.shape[0], -1), seed)
    check("expand_dims", [x], {"axis": 1}, lambda t: t.unsqueeze(1), seed)
    ones = [i for i, n in enumerate(shape) if n == 1]
    check("squeeze", [x], {"axis": None}, lambda t: t.reshape([n for n in shape if n != 1]), seed)
    if ones:
        check("squeeze", [x], {"axis": ones[0]}, lambda t: t.squeeze(ones[0]), seed)
    check("cast", [x], {"dtype": "float32"}, lambda t: t.to(torch.float32), seed, rtol=1e-6)


INDICES = st.sampled_from([
    (0,), (slice(None), 1), (slice(1, None), None), (Ellipsis, 0), (slice(None, None, -1),),
    (slice(0, 3, 2), Ellipsis, None), (-1, slice(None, 2)),
    (np.array([0, 2, 0]),), (slice(None), np.array([[0, 1], [2, 0]])),  # advanced: a repeat adds up
])


@settings(max_examples=20)
@given(index=INDICES, seed=seeds)
def test_getitem(index, seed):
    x = np.random.default_rng(seed).normal(size=(4, 3, 2))
    encoded, arrays = encode_index(index)

    def reference(t: Any, *index_arrays: Any) -> Any:  # torch has no negative steps: flip instead
        if any(isinstance(item, slice) and item.step == -1 for item in index):
            return t.flip(0)
        return t[tuple(torch.tensor(item) if isinstance(item, np.ndarray) else item for item in index)]

    check("getitem", [x, *arrays], {"index": encoded}, reference, seed)


REDUCTIONS = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax, "min": torch.amin}


@settings(max_examples=40)
@given(op=st.sampled_from(sorted(REDUCTIONS)), shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
       keepdims=st.booleans(), seed=seeds, data=st.data())
def test_reductions(op, shape, keepdims, seed, data):
    x = np.random.default_rng(seed).normal(size=shape)
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1),
                               st.lists(st.integers(0, len(shape) - 1), min_size=1, unique=True)))
    dims = tuple(range(len(shape))) if axis is None else (tuple(axis) if isinstance(axis, list) else axis)
    check(op, [x], {"axis": axis, "keepdims": keepdims},
          lambda t: REDUCTIONS[op](t, dim=dims, keepdim=keepdims), seed)


def test_comparisons_pass_no_gradient():
    a, b = np.array([1.0, 2.0]), np.array([2.0, 1.0])
    for op in ("greater", "greater_equal", "less", "less_equal", "equal", "not_equal"):
        assert VJPS[op](np.ones(2), None, [a, b], {}) == [None, None]
        x = autograd.Variable(a)
        with autograd.record():
            y = (apply(op, [x, b], {}) * x).sum()  # the mask is a constant factor
        y.backward()
        np.testing.assert_array_equal(x.grad, getattr(np, op)(a, b).astype(float))
