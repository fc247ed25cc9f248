"""Composites (``nn.ops.composites``): numpy functions written over the op set. ``np.linalg.norm``
on a recorded value equals numpy's on the plain value (float64: rtol 1e-12; float32: 1e-6),
its gradient equals central differences (float64, rtol 1e-6), and a traced ``forward`` that
calls it exports and loads as the ops it is made of."""

from __future__ import annotations

import io

import numpy as np
import pytest

import modelpack
from modelpack import autograd, nn
from modelpack.errors import UsageError

# (ord, axis) pairs numpy accepts for a 3x4 matrix, each norm the composite writes.
NORMS = [
    (None, None), (None, 0), (None, (0, 1)), (2, 1), (1, 0), (1, -1), (3, 1), (0.5, 0), (-2, 1),
    (np.inf, 1), (-np.inf, 0), (0, 1), ("fro", None), ("fro", (1, 0)), (1, None), (-1, (0, 1)),
    (np.inf, None), (-np.inf, (1, 0)),
]


def _norm(x, ord, axis, keepdims):  # noqa: A002
    return np.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize(("ord", "axis"), NORMS)
def test_norm_of_a_variable_equals_numpys(ord, axis, keepdims):  # noqa: A002
    value = np.random.default_rng(3).normal(size=(3, 4))
    for dtype, rtol in ((np.float64, 1e-12), (np.float32, 1e-6)):
        x = autograd.Variable(value.astype(dtype))
        with autograd.record():
            got = _norm(x, ord, axis, keepdims)
        want = _norm(value.astype(dtype), ord, axis, keepdims)
        assert isinstance(got, autograd.Variable)
        assert got.shape == np.shape(want) and got.dtype == want.dtype
        np.testing.assert_allclose(got.value, want, rtol=rtol)


def test_norm_of_integers_is_in_float64_as_numpys():
    x = autograd.Variable(np.array([3, 4]))
    with autograd.record():
        got = np.linalg.norm(x)
    assert got.dtype == np.float64 and got.value == 5.0


@pytest.mark.parametrize(("ord", "axis"), [n for n in NORMS if n[0] != 0])
def test_norm_gradient_equals_central_differences(ord, axis):  # noqa: A002
    value = np.random.default_rng(4).normal(size=(3, 4))
    weights = np.random.default_rng(5).normal(size=np.shape(_norm(value, ord, axis, False)))
    x = autograd.Variable(value)
    with autograd.record():
        total = (_norm(x, ord, axis, False) * weights).sum()
    total.backward()
    step, numeric = 1e-6, np.zeros_like(value)
    for index in np.ndindex(value.shape):
        up, down = value.copy(), value.copy()
        up[index] += step
        down[index] -= step
        numeric[index] = ((_norm(up, ord, axis, False) - _norm(down, ord, axis, False)) * weights).sum() / (2 * step)
    np.testing.assert_allclose(x.grad, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    ("ord", "axis", "shape", "match"),
    [
        (2, (0, 1), (3, 4), r"^np\.linalg\.norm: the matrix norm ord=2 needs singular values, which no op computes; use ord='fro', 1, -1, inf or -inf, or compute it on x\.detach\(\)$"),
        ("nuc", None, (3, 4), r"the matrix norm ord='nuc' needs singular values"),
        ("fro", 0, (3, 4), r"^np\.linalg\.norm: ord='fro' is a matrix norm; a vector norm takes a number$"),
        (1, None, (2, 3, 4), r"^np\.linalg\.norm with ord=1 and no axis needs a 1-D or 2-D array, got 3-D$"),
        (None, 2, (3, 4), r"^np\.linalg\.norm: axis 2 is out of bounds for a 2-D array$"),
        (None, (0, 0), (3, 4), r"^np\.linalg\.norm: axis \(0, 0\) must name one axis or two different axes$"),
        (None, (0, 1, 2), (2, 3, 4), r"must name one axis or two different axes$"),
        (None, 0.5, (3, 4), r"^np\.linalg\.norm: an axis must be an int, got 0\.5$"),
    ],
)
def test_norms_without_an_op_form_are_refused(ord, axis, shape, match):  # noqa: A002
    x = autograd.Variable(np.ones(shape))
    with autograd.record(), pytest.raises(UsageError, match=match):
        np.linalg.norm(x, ord=ord, axis=axis)


class RowNormalized(nn.Block):
    """A custom forward that scales rows to unit length (as cosine-similarity heads do)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Dense(4)

    def forward(self, x):
        y = self.fc(x)
        return y / np.linalg.norm(y, axis=1, keepdims=True)


def test_a_traced_forward_with_a_norm_exports_as_ops_and_loads():
    net = RowNormalized()
    net.initialize()
    x = np.random.default_rng(6).normal(size=(5, 3)).astype(np.float32)
    want = net(x)
    buffer = io.BytesIO()
    modelpack.export(net, buffer, example=x)
    loaded = modelpack.load(io.BytesIO(buffer.getvalue()))
    np.testing.assert_allclose(loaded(x), want, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(loaded(x), axis=1), 1.0, rtol=1e-6)
