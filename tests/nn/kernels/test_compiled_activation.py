"""``nn.kernels.compiled_activation`` (ReLU's gradient as a numba loop) against numpy's
``g * (out > 0)``, the reference: the same bits, signed zeros and NaNs included, directly and
through autograd; arrays the loop does not take fall back to numpy. Skipped when numba is not
installed (CI's full pass requires it, tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelpack import autograd, npx
from modelpack.nn import activations
from modelpack.nn.kernels import backend


def _reference(grad: np.ndarray, out: np.ndarray) -> np.ndarray:
    return grad * (out > 0)


def _bits(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array).view(np.uint8)


@pytest.mark.filterwarnings("ignore:invalid value encountered in multiply")  # inf · 0, as numpy's
@settings(max_examples=30, deadline=None)
@given(shape=st.sampled_from([(0,), (1,), (7,), (3, 5), (2, 3, 4, 5), (4, 16, 9, 9)]),
       seed=st.integers(0, 2**32 - 1))
def test_the_loop_gives_numpys_bits(numba_kernels, shape, seed):
    rng = np.random.default_rng(seed)
    grad = rng.standard_normal(shape).astype(np.float32)
    out = np.maximum(rng.standard_normal(shape).astype(np.float32), 0)
    if grad.size >= 4:  # zeros of both signs, and a NaN and an infinite gradient
        flat_out, flat_grad = out.reshape(-1), grad.reshape(-1)
        flat_out[:2] = (0.0, -0.0)
        flat_grad[:4] = (-1.5, np.nan, np.inf, -0.0)
    backend.use("numba")
    got = activations.relu_grad(grad, out)
    assert got.dtype == np.float32 and got.shape == shape
    assert np.array_equal(_bits(got), _bits(_reference(grad, out)))


def test_arrays_the_loop_does_not_take_fall_back_to_numpy(numba_kernels):
    rng = np.random.default_rng(0)
    grad = rng.standard_normal((6, 8)).astype(np.float32)
    out = np.maximum(rng.standard_normal((6, 8)).astype(np.float32), 0)
    backend.use("numba")
    for g, o in ((grad[:, ::2], out[:, ::2]), (grad.astype(np.float64), out.astype(np.float64)),
                 (grad, out.astype(np.float64)), (grad[:1], out)):  # strided, float64, mixed, broadcast
        assert np.array_equal(activations.relu_grad(g, o), _reference(g, o))


@pytest.mark.parametrize("choice", ["numpy", "numba"])
def test_relus_gradient_through_autograd(numba_kernels, choice):
    """npx.relu's VJP on either kernels: the incoming gradient where the output is positive."""
    backend.use(choice)
    rng = np.random.default_rng(1)
    data = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    head = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    x = autograd.Variable(data)
    with autograd.record():
        y = npx.relu(x)
    y.backward(head)
    assert np.array_equal(_bits(x.grad), _bits(head * (data > 0)))
