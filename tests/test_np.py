"""``modelpack.np``: numpy with MXNet's ``ctx=`` on the creators, float32 by default."""

from __future__ import annotations

import numpy
import pytest

import modelpack
from modelpack import np, npx
from modelpack.errors import UsageError


def test_creators_take_ctx_and_give_float32_ndarrays():
    z = np.zeros((2, 3), ctx=npx.cpu())
    assert z.dtype == numpy.float32 and z.ctx == npx.cpu() and isinstance(z, numpy.ndarray)
    assert np.arange(3).dtype == numpy.int64  # integers stay integers (indices)
    assert np.arange(0, 1, 0.5, ctx=npx.cpu()).dtype == numpy.float32
    assert np.array([1.5, 2.0]).dtype == numpy.float32
    assert np.array([1.5], dtype="float64").dtype == numpy.float64  # asked for
    assert np.array(numpy.ones(2)).dtype == numpy.float64  # an existing array keeps its dtype
    assert np.ones_like(numpy.ones(2)).dtype == numpy.float64


def test_every_other_name_is_numpys():
    assert np.tanh is numpy.tanh and np.float32 is numpy.float32 and np.linalg is numpy.linalg


def test_functions_give_ndarrays_where_numpy_gives_arrays():
    """numpy's concatenate and stack drop the subclass; MXNet's np keeps its own, and d2l
    calls .asnumpy() on what np.concatenate gives (its attention heatmaps)."""
    a, b = numpy.ones((1, 2), numpy.float32), numpy.zeros((1, 2), numpy.float32)
    joined = np.concatenate([a, b], 0)
    assert type(joined) is np.ndarray and joined.asnumpy().tolist() == [[1, 1], [0, 0]]
    assert type(np.stack([a, b])) is np.ndarray and type(np.dot(a, b.T)) is np.ndarray
    assert all(type(i) is np.ndarray for i in np.nonzero(a))  # inside a tuple too
    assert np.shape(a) == (1, 2) and np.array_equal(a, a) is True  # anything else as it is
    assert np.concatenate.__name__ == "concatenate"


def test_random_draws_follow_modelpack_random_seed():
    modelpack.random.seed(3)
    a = np.random.normal(scale=0.01, size=(2, 2), ctx=npx.cpu())
    modelpack.random.seed(3)
    b = np.random.normal(scale=0.01, size=(2, 2))
    assert a.dtype == numpy.float32 and a.ctx == npx.cpu()
    numpy.testing.assert_array_equal(a, b)
    assert np.random.uniform(size=(3,)).shape == (3,)
    assert np.random.rand(2, 3).shape == (2, 3) and np.random.randn(4).dtype == numpy.float32
    assert np.random.randint(0, 5, size=(10,)).max() < 5
    assert np.random.default_rng is numpy.random.default_rng


def test_a_gpu_ctx_is_refused():
    with pytest.raises(UsageError, match="numpy on the CPU"):
        np.zeros(2, ctx="gpu(0)")


def test_numpy_is_mxnets_full_name_for_np():
    """MXNet's ``mxnet.numpy`` is ``mxnet.np``; d2l imports ``from mxnet.numpy.random import
    multinomial`` (its probability chapter)."""
    import modelpack.np as short
    import modelpack.numpy as full
    from modelpack.numpy.random import multinomial

    assert short is full is np is modelpack.numpy
    assert multinomial is np.random.multinomial and np.random is full.random


def test_every_numpy_draw_follows_modelpack_random_seed():
    """Each of numpy.random's functions draws from the "np" stream (not numpy's global
    generator), so a seed fixes it; continuous draws are float32, as MXNet makes them."""
    fair = np.ones(6) / 6
    draws = {
        "multinomial": lambda: np.random.multinomial(100, fair),
        "dirichlet": lambda: np.random.dirichlet([1.0, 2.0, 3.0], size=2),
        "binomial": lambda: np.random.binomial(10, 0.3, size=5),
        "poisson": lambda: np.random.poisson(2.0, size=5),
        "lognormal": lambda: np.random.lognormal(size=4),
        "random_sample": lambda: np.random.random_sample((2, 2)),
        "multivariate_normal": lambda: np.random.multivariate_normal([0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]], 3),
    }
    for name, draw in draws.items():
        modelpack.random.seed(11)
        first = draw()
        numpy.random.seed(0)  # numpy's global generator is not what they draw from
        modelpack.random.seed(11)
        numpy.testing.assert_array_equal(first, draw(), err_msg=name)
        assert type(first) is np.ndarray, name
    assert np.random.multinomial(100, fair).sum() == 100
    assert np.random.multinomial(100, fair).dtype == numpy.int64
    assert np.random.lognormal(size=2).dtype == numpy.float32
    assert np.random.lognormal(size=2, dtype="float64").dtype == numpy.float64
    assert isinstance(np.random.bytes(4), bytes) and len(np.random.bytes(4)) == 4
    assert np.random.Generator is numpy.random.Generator


def test_a_seed_through_np_random_seeds_every_stream():
    np.random.seed(5)
    a = (np.random.multinomial(10, [0.5, 0.5]), modelpack.random.generator("data").random())
    np.random.seed(5)
    b = (np.random.multinomial(10, [0.5, 0.5]), modelpack.random.generator("data").random())
    numpy.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]
