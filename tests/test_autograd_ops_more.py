"""The gradients of the rest of the op table (the MXNet ``npx`` ops, numpy's products,
layout and moment ops) against PyTorch autograd; same method and tolerance as
``test_autograd_ops.py`` (float64, ``rtol=1e-9``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_autograd_ops import ATOL, RTOL, check, seeds

import modelpack.random
from modelpack import autograd, nn
from modelpack.autograd.variable import apply

torch = pytest.importorskip("torch")
F = torch.nn.functional


@settings(max_examples=15)
@given(seed=seeds)
def test_more_elementwise(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3, 4))
    check("expm1", [x], {}, torch.expm1, seed)
    check("log1p", [np.abs(x)], {}, torch.log1p, seed)
    check("reciprocal", [np.sign(x) * (np.abs(x) + 0.5)], {}, torch.reciprocal, seed)
    for op, function in (("sign", torch.sign), ("floor", torch.floor), ("ceil", torch.ceil)):
        check(op, [x], {}, function, seed)
    check("clip", [x], {"a_min": -0.5, "a_max": 0.7}, lambda t: torch.clamp(t, -0.5, 0.7), seed)
    check("clip", [x], {"a_min": None, "a_max": 0.2}, lambda t: torch.clamp(t, max=0.2), seed)
    b = np.sign(rng.normal(size=(4,))) * (np.abs(rng.normal(size=(4,))) + 0.5)
    check("mod", [3 * x, b], {}, torch.remainder, seed)
    check("fmod", [3 * x, b], {}, torch.fmod, seed)


@settings(max_examples=15)
@given(seed=seeds)
def test_trigonometric_hyperbolic_rounding_and_erf(seed):
    x = np.random.default_rng(seed).normal(size=(3, 4))
    inside = 0.9 * np.tanh(x)  # (−0.9, 0.9): the domain of arcsin, arccos and arctanh, away from its ends
    for op, function, values in (("tan", torch.tan, 0.5 * inside), ("arcsin", torch.asin, inside),
                                 ("arccos", torch.acos, inside), ("arctan", torch.atan, x),
                                 ("sinh", torch.sinh, x), ("cosh", torch.cosh, x), ("arcsinh", torch.asinh, x),
                                 ("arccosh", torch.acosh, 1.1 + np.abs(x)), ("arctanh", torch.atanh, inside),
                                 ("rint", torch.round, 3 * x), ("erf", torch.erf, x)):
        check(op, [values], {}, function, seed)
    check("smooth_l1", [2 * x], {"scalar": 1.5},
          lambda t: F.smooth_l1_loss(t, torch.zeros_like(t), reduction="none", beta=1 / 1.5**2), seed)


def _torch_lrn(t, size, alpha, beta, bias):
    """ONNX's LRN in torch ops: its window reaches floor((size − 1) / 2) channels back."""
    before, after = (size - 1) // 2, size // 2
    square = t * t
    padded = torch.cat([square.new_zeros((t.shape[0], before, *t.shape[2:])), square,
                        square.new_zeros((t.shape[0], after, *t.shape[2:]))], dim=1)
    total = sum(padded[:, k:k + t.shape[1]] for k in range(size))
    return t * (bias + alpha / size * total) ** -beta


@settings(max_examples=15)
@given(seed=seeds, size=st.integers(1, 9), shape=st.sampled_from([(2, 5), (2, 6, 3), (1, 4, 3, 2)]))
def test_lrn(seed, size, shape):
    """Odd sizes are also torch's own local_response_norm; even ones follow ONNX's window."""
    x = np.random.default_rng(seed).normal(size=shape)
    attrs = {"size": size, "alpha": 0.3, "beta": 0.75, "bias": 1.5}
    check("lrn", [x], attrs, lambda t: _torch_lrn(t, size, 0.3, 0.75, 1.5), seed)
    if size % 2 and x.ndim >= 3:  # (torch's takes 3-D inputs and up)
        check("lrn", [x], attrs, lambda t: F.local_response_norm(t, size, alpha=0.3, beta=0.75, k=1.5), seed)


@settings(max_examples=15)
@given(seed=seeds, axis=st.sampled_from([None, 0, 1, -1]), keepdims=st.booleans(), ddof=st.sampled_from([0, 1]))
def test_moments_products_and_running_sums(seed, axis, keepdims, ddof):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3, 4, 2))
    x[0, 1, 0] = 0.0  # a zero: the product's gradient must not divide by it
    dims = tuple(range(3)) if axis is None else axis
    check("var", [x], {"axis": axis, "keepdims": keepdims, "ddof": ddof},
          lambda t: torch.var(t, dim=dims, keepdim=keepdims, correction=ddof), seed)
    check("std", [x], {"axis": axis, "keepdims": keepdims, "ddof": ddof},
          lambda t: torch.std(t, dim=dims, keepdim=keepdims, correction=ddof), seed)
    if axis is not None:
        check("prod", [x], {"axis": axis, "keepdims": keepdims}, lambda t: torch.prod(t, dim=axis, keepdim=keepdims),
              seed)
        check("cumsum", [x], {"axis": axis}, lambda t: torch.cumsum(t, dim=axis), seed)
    else:
        check("prod", [x], {"axis": None, "keepdims": False}, torch.prod, seed)
        check("cumsum", [x], {"axis": None}, lambda t: torch.cumsum(t.reshape(-1), 0), seed)


@settings(max_examples=15)
@given(seed=seeds, axis=st.sampled_from([None, 0, 2]), repeats=st.integers(1, 3))
def test_layout_ops(seed, axis, repeats):
    x = np.random.default_rng(seed).normal(size=(2, 3, 2))
    check("swapaxes", [x], {"axis1": 0, "axis2": 2}, lambda t: t.transpose(0, 2), seed)
    check("broadcast_to", [x[:, :1]], {"shape": [4, 2, 3, 2]}, lambda t: t.expand(4, 2, 3, 2), seed)
    if axis is None:
        check("repeat", [x], {"repeats": repeats, "axis": None}, lambda t: t.reshape(-1).repeat_interleave(repeats),
              seed)
    else:
        check("repeat", [x], {"repeats": repeats, "axis": axis},
              lambda t: t.repeat_interleave(repeats, dim=axis), seed)
    check("tile", [x], {"reps": [2, 1, 3]}, lambda t: t.repeat(2, 1, 3), seed)
    check("tile", [x], {"reps": [2, 1, 1, 2]}, lambda t: t.repeat(2, 1, 1, 2), seed)


def test_split_gives_each_piece_its_gradient():
    x = autograd.Variable(np.arange(12.0).reshape(6, 2))
    with autograd.record():
        a, b, c = apply("split", [x], {"sections": 3, "indices": None, "axis": 0})
        loss = (a * 1.0).sum() + (c * 3.0).sum()
    loss.backward()
    np.testing.assert_array_equal(x.grad, np.repeat([[1.0], [0.0], [3.0]], 2, axis=0).repeat(2, axis=1))
    assert b.shape == (2, 2)


DOT_SHAPES = [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)), ((2, 5, 3), (3, 4)),
              ((2, 3), (6, 3, 4)), ((2, 5, 3), (7, 3, 4)), ((2, 5, 3), (3,)), ((), (2, 3))]


@settings(max_examples=20)
@given(shapes=st.sampled_from(DOT_SHAPES), seed=seeds)
def test_dot(shapes, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=shapes[0]), rng.normal(size=shapes[1])

    def reference(s: Any, t: Any) -> Any:
        if s.ndim == 0 or t.ndim == 0:
            return s * t
        if t.ndim == 1:
            return torch.tensordot(s, t, dims=([s.ndim - 1], [0]))
        return torch.tensordot(s, t, dims=([s.ndim - 1], [t.ndim - 2]))

    check("dot", [np.asarray(a), np.asarray(b)], {}, reference, seed)


@settings(max_examples=10)
@given(transpose_a=st.booleans(), transpose_b=st.booleans(), seed=seeds)
def test_batch_dot_and_fully_connected(transpose_a, transpose_b, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(2, 4, 3) if transpose_a else (2, 3, 4))
    b = rng.normal(size=(2, 5, 4) if transpose_b else (2, 4, 5))
    check("batch_dot", [a, b], {"transpose_a": transpose_a, "transpose_b": transpose_b},
          lambda s, t: torch.matmul(s.transpose(-1, -2) if transpose_a else s, t.transpose(-1, -2) if transpose_b else t),
          seed)
    x, w, bias = rng.normal(size=(2, 3, 4)), rng.normal(size=(5, 12)), rng.normal(size=(5,))
    check("fully_connected", [x, w, bias], {"num_hidden": 5, "no_bias": False, "flatten": True},
          lambda t, u, v: F.linear(t.reshape(2, -1), u, v), seed)
    check("fully_connected", [x, w[:, :4]], {"num_hidden": 0, "no_bias": True, "flatten": False},
          lambda t, u: F.linear(t, u), seed)


@settings(max_examples=15)
@given(axis=st.sampled_from([0, 1]), seed=seeds)
def test_sequence_ops(axis, seed):
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(4, 3, 2) if axis == 0 else (3, 4, 2))  # time on ``axis``, 3 sequences
    lengths = np.array([4, 1, 3])  # integers: a constant to both sides
    steps = torch.arange(4)[:, None] < torch.tensor(lengths)[None, :]
    keep = (steps if axis == 0 else steps.T)[..., None]
    check("sequence_mask", [data, lengths], {"use_sequence_length": True, "axis": axis, "value": -1.0},
          lambda t, n: torch.where(keep, t, torch.tensor(-1.0, dtype=t.dtype)), seed)
    last = torch.tensor([3, 0, 2])
    batch = torch.arange(3)
    check("sequence_last", [data, lengths], {"use_sequence_length": True, "axis": axis},
          lambda t, n: t[last, batch] if axis == 0 else t[batch, last], seed)

    def reversed_(t: Any, n: Any) -> Any:
        columns = []
        for j, length in enumerate([4, 1, 3]):
            seq = t[:, j] if axis == 0 else t[j]
            columns.append(torch.cat([seq[:length].flip(0), seq[length:]]))
        return torch.stack(columns, dim=1 if axis == 0 else 0)

    check("sequence_reverse", [data, lengths], {"use_sequence_length": True, "axis": axis}, reversed_, seed)


@settings(max_examples=10)
@given(seed=seeds, temperature=st.sampled_from([None, 0.5, 2.0]))
def test_softmax_with_length_and_temperature(seed, temperature):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3, 5))
    length = np.array([5, 2, 3])
    mask = torch.arange(5)[None, :] < torch.tensor(length)[:, None]
    scale = 1.0 if temperature is None else temperature
    attrs = {"axis": -1, "temperature": temperature, "use_length": True, "dtype": None}

    def masked_softmax(t: Any, n: Any) -> Any:
        return torch.softmax(torch.where(mask, t / scale, torch.tensor(-torch.inf, dtype=t.dtype)), dim=-1)

    check("softmax", [x, length], attrs, masked_softmax, seed)
    ours = autograd.Variable(x)
    with autograd.record():
        out = apply("log_softmax", [ours, length], attrs)
    head = np.where(mask.numpy(), rng.normal(size=x.shape), 0)  # the -inf entries carry no gradient
    out.backward(head)
    theirs = torch.tensor(x, requires_grad=True)
    expected = torch.log_softmax(torch.where(mask, theirs / scale, torch.tensor(-torch.inf, dtype=theirs.dtype)), -1)
    torch.where(mask, expected, torch.zeros_like(expected)).backward(torch.tensor(head))
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=RTOL, atol=ATOL)


@settings(max_examples=10)
@given(seed=seeds)
def test_lookups_and_layer_norm(seed):
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(6, 3))
    ids = rng.integers(0, 6, size=(2, 5))  # repeats certain
    check("embedding", [ids, table], {"input_dim": 6, "output_dim": 3},
          lambda t, w: F.embedding(t.long(), w), seed)
    x = rng.normal(size=(4, 6))
    index = np.array([[0, 2], [5, 5], [1, 0]])  # repeats: the gradient adds
    check("take", [x, index], {"axis": 1, "mode": "raise"}, lambda t, i: t[:, torch.tensor(index)], seed)
    check("take", [x, np.array([3, 3, 23])], {"axis": None, "mode": "wrap"},
          lambda t, i: t.reshape(-1)[torch.tensor([3, 3, 23 % 24])], seed)
    picks = np.array([1, 5, 9, 0])  # 9 is clipped to 5
    check("pick", [x, picks], {"axis": -1, "mode": "clip", "keepdims": False},
          lambda t, i: t[torch.arange(4), torch.tensor([1, 5, 5, 0])], seed)
    gamma, beta = rng.normal(size=(6,)), rng.normal(size=(6,))
    check("layer_norm", [x, gamma, beta], {"axis": -1, "eps": 1e-3},
          lambda t, g, b: F.layer_norm(t, (6,), g, b, eps=1e-3), seed)


@settings(max_examples=10)
@given(seed=seeds, k=st.integers(1, 4), ascend=st.booleans())
def test_topk_values(seed, k, ascend):
    x = np.random.default_rng(seed).normal(size=(3, 5))
    check("topk", [x], {"axis": -1, "k": k, "ret_typ": "value", "is_ascend": ascend, "dtype": "float32"},
          lambda t: torch.topk(t, k, dim=-1, largest=not ascend, sorted=True).values, seed)
    ours = autograd.Variable(x)
    with autograd.record():
        values, indices = apply("topk", [ours], {"axis": -1, "k": k, "ret_typ": "both", "is_ascend": ascend,
                                                  "dtype": "float32"})
        loss = (values * values).sum()
    loss.backward()
    theirs = torch.tensor(x, requires_grad=True)
    (torch.topk(theirs, k, dim=-1, largest=not ascend).values ** 2).sum().backward()
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=RTOL, atol=ATOL)


def test_dropout_op_gradient_redraws_its_mask_from_the_seeded_stream():
    x = np.random.default_rng(0).normal(size=(40, 30))
    modelpack.random.seed(11)
    ours = autograd.Variable(x)
    with autograd.record():
        out = apply("dropout", [ours], {"p": 0.4, "axes": [1]})
    out.backward(np.full(x.shape, 3.0))
    modelpack.random.seed(11)
    with nn.training():
        again = nn.functional.dropout(x, p=0.4, axes=[1])  # the same stream, the same draw
    mask = again / x
    assert 0 < (again == 0).mean() < 1 and np.allclose(mask[:, :1], mask[:, 1:2])
    np.testing.assert_array_equal(out.value, again)
    np.testing.assert_allclose(ours.grad, 3.0 * mask, rtol=1e-12)


def test_positions_and_constants_have_no_gradient():
    x = autograd.Variable(np.array([[1.0, 3.0], [2.0, 0.5]]))
    with autograd.record():
        position = apply("argmax", [x], {"axis": 1, "keepdims": False})
        ones = apply("ones_like", [x], {"dtype": None})
        loss = (x * ones).sum() + apply("one_hot", [position], {"depth": 2, "on_value": 1.0, "off_value": 0.0,
                                                                  "dtype": "float32"}).sum()
    loss.backward()
    np.testing.assert_array_equal(x.grad, np.ones((2, 2)))
