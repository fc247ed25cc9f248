"""``nn.kernels.rowloops``: numpy's ufunc buffer held short while passes broadcast an operand
along long rows: set and restored, carried to the pool's threads, taken by the passes that
gain from it, and changing no bits."""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import pytest

from modelpack import autograd, nn
from modelpack.nn.kernels import backend, parallel, rowloops
from modelpack.nn.kernels import norm as norm_kernels

DEFAULT = np.getbufsize()


@pytest.fixture
def numpy_kernels_on_two_threads():
    """numpy's passes (the compiled loops use no ufuncs), split over two threads."""
    kernels, threads = backend.name(), parallel.threads()
    backend.use("numpy")
    parallel.set_threads(2)
    yield
    backend.use(kernels)
    parallel.set_threads(threads)


def test_long_rows_hold_the_buffer_and_put_it_back():
    with rowloops.long_rows(rowloops.LONG_ROWS):
        assert np.getbufsize() == rowloops.ROW_BUFFER
    assert np.getbufsize() == DEFAULT
    with pytest.raises(KeyError), rowloops.long_rows(rowloops.LONG_ROWS):
        raise KeyError("a pass failed")
    assert np.getbufsize() == DEFAULT
    with rowloops.long_rows(rowloops.LONG_ROWS - 1):  # short rows: numpy's buffering wins
        assert np.getbufsize() == DEFAULT


def test_the_setting_reaches_the_pools_threads(numpy_kernels_on_two_threads):
    seen: list[tuple[str, int]] = []
    with rowloops.long_rows(rowloops.LONG_ROWS):
        parallel.over_batch(lambda rows: seen.append((threading.current_thread().name, np.getbufsize())),
                            4, 1, min_elements=0)
    assert len({name for name, _ in seen}) == 2  # (the calling thread and a worker)
    assert [size for _, size in seen] == [rowloops.ROW_BUFFER] * 2
    parallel.over_batch(lambda rows: seen.append((threading.current_thread().name, np.getbufsize())),
                        4, 1, min_elements=0)
    assert [size for _, size in seen[2:]] == [DEFAULT] * 2  # outside, the worker's is numpy's again


def _requested(monkeypatch) -> list[int]:
    """The row lengths ``rowloops.long_rows`` is asked for, from now on."""
    lengths: list[int] = []
    original = rowloops.long_rows
    monkeypatch.setattr(rowloops, "long_rows", lambda length: lengths.append(length) or original(length))
    return lengths


@pytest.mark.parametrize(("shape", "run"), [
    ((4, 32, 48, 48), 2304),  # runs of 2304 values, planes larger than PLANE_ELEMENTS
    ((4, 16, 32, 32), None),  # planes laid out whole: contiguous operands, nothing buffered
    ((4, 128, 24, 24), 576),
    ((64, 1024), None),  # over features: runs of one value, planes grouped
    ((64, 4096), 4096),  # over features, rows too wide to group
    ((4, 4096), None),  # too few values a pass (2 of 4 rows a thread) to be worth setting
])
def test_batch_norms_elementwise_passes_over_long_runs_run_unbuffered(monkeypatch, numpy_kernels_on_two_threads,
                                                                      shape, run):
    """Its element-wise passes, and only those: its sums keep numpy's buffer (numpy 2.0's
    pairwise sums would follow it)."""
    monkeypatch.setattr(norm_kernels, "SPLIT_ELEMENTS", 1)  # on both threads
    for name in ("_rows_then_channels", "_dot"):
        original = getattr(norm_kernels, name)

        def checked(*args, _original=original):
            assert np.getbufsize() == DEFAULT
            return _original(*args)

        monkeypatch.setattr(norm_kernels, name, checked)
    lengths = _requested(monkeypatch)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    channels = shape[1]
    gamma, beta = rng.uniform(0.5, 1.5, channels).astype(np.float32), np.zeros(channels, np.float32)
    mean, var = np.zeros(channels, np.float32), np.ones(channels, np.float32)
    norm_kernels.batch_norm(x, 1, mean, var, gamma, beta, 1e-5, batch=False)
    _, stats, _ = norm_kernels.batch_norm_training(x, 1, gamma, beta, 1e-5)
    norm_kernels.batch_norm_backward(x, x, 1, stats, gamma)
    assert set(lengths) == (set() if run is None else {run})


def _pass_results(x: np.ndarray, head: np.ndarray, make) -> list[np.ndarray]:
    """Inference, then a training step's output and gradients, of a fresh layer (a training
    step moves BatchNorm's running statistics)."""
    layer = make()
    layer.initialize(seed=0)
    inference = layer(x)
    source = autograd.Variable(x)
    with autograd.record():
        out = layer(source)
    out.backward(head)
    return [inference, np.asarray(out), source.grad, *(p.grad() for p in layer.collect_params().values()
                                                     if p.grad_req != "null")]


@pytest.mark.parametrize("make", [
    lambda: nn.BatchNorm(in_channels=32),
    lambda: nn.Conv2D(32, 3, padding=1, in_channels=32),
    lambda: nn.Conv2DTranspose(32, 3, padding=1, in_channels=32),
])
def test_unbuffered_passes_change_no_bits(monkeypatch, numpy_kernels_on_two_threads, make):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 32, 48, 48)).astype(np.float32)
    head = rng.standard_normal(x.shape).astype(np.float32)  # (each keeps the input's sizes)
    ours = _pass_results(x, head, make)
    monkeypatch.setattr(rowloops, "long_rows", lambda length: contextlib.nullcontext())
    theirs = _pass_results(x, head, make)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_dense_adds_a_wide_bias_unbuffered(monkeypatch):
    lengths = _requested(monkeypatch)
    layer = nn.Dense(1024, in_units=8)
    layer.initialize(seed=0)
    x = np.random.default_rng(2).standard_normal((16, 8)).astype(np.float32)
    out = layer(x)
    np.testing.assert_allclose(out, x @ layer.weight.data().T + layer.bias.data(), rtol=1e-6, atol=1e-6)
    assert lengths == [1024]


def _formula(array, axes, gamma, beta):
    """The normalisation a new array per step, as the norms computed it before ``rowloops``."""
    mean = array.mean(axis=axes, keepdims=True, dtype=np.float32)
    var = array.var(axis=axes, keepdims=True, dtype=np.float32)
    out = (array - mean) / np.sqrt(var + np.float32(1e-5))
    out = out if gamma is None else out * gamma
    return out if beta is None else out + beta


@pytest.mark.parametrize(("make", "shape", "axes", "run"), [
    (lambda: nn.LayerNorm(in_channels=1024), (8, 1024), (1,), 1024),  # the runs: the features
    (lambda: nn.LayerNorm(axis=1, in_channels=600), (2, 600, 3), (1,), 1),  # not trailing: buffered
    (lambda: nn.LayerNorm(scale=False, in_channels=700), (4, 2, 700), (2,), 700),
    (lambda: nn.InstanceNorm(in_channels=4), (2, 4, 32, 32), (2, 3), 1024),
    (lambda: nn.GroupNorm(num_groups=2), (2, 4, 16, 16), (2,), 512),  # (2 channels of 256 a group)
])
def test_norms_run_in_place_unbuffered_along_their_statistics_runs(monkeypatch, make, shape, axes, run):
    lengths = _requested(monkeypatch)
    rng = np.random.default_rng(3)
    layer = make()
    layer.initialize(seed=0)
    x = rng.standard_normal(shape).astype(np.float32)
    layer(x)  # (shapes inferred)
    params = layer.collect_params()
    for param in params.values():
        param.set_data(rng.uniform(0.5, 1.5, param.shape).astype(np.float32))
    lengths.clear()
    out = layer(x)
    assert lengths == [run]
    gamma, beta = (p.data() for p in params.values())
    if isinstance(layer, nn.GroupNorm):
        groups = gamma.size
        expected = _formula(x.reshape(shape[0], groups, -1), axes, gamma.reshape(1, groups, 1),
                            beta.reshape(1, groups, 1)).reshape(shape)
    else:
        axis = 1 if isinstance(layer, nn.InstanceNorm) else axes[0]
        channel = [1] * len(shape)
        channel[axis] = -1
        scale = layer.get_config().get("scale", True) or isinstance(layer, nn.InstanceNorm)
        expected = _formula(x, axes, gamma.reshape(channel) if scale else None, beta.reshape(channel))
    np.testing.assert_array_equal(out, expected)  # the same bits as a new array per step


@pytest.mark.parametrize(("axis", "run"), [(-1, 1000), (1, 1)])
def test_softmaxes_run_in_place_unbuffered_along_the_last_axis(monkeypatch, axis, run):
    from modelpack.nn.ops import neural

    lengths = _requested(monkeypatch)
    x = (3 * np.random.default_rng(4).standard_normal((6, 7, 1000))).astype(np.float32)
    shifted = x - x.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    total = e.sum(axis=axis, keepdims=True)
    np.testing.assert_array_equal(neural.softmax(x, axis=axis), e / total)  # the same bits
    np.testing.assert_array_equal(neural.log_softmax(x, axis=axis), shifted - np.log(total))
    assert lengths == [run, run]


@pytest.mark.parametrize(("shape", "axes"), [((16, 1024), -1), ((2, 4, 24, 24), (2, 3)), ((3, 600, 2), 1)])
def test_the_norms_gradients_keep_their_bits(shape, axes):
    """The autograd helpers of LayerNorm, InstanceNorm and GroupNorm, in place and unbuffered,
    against the same steps a new array each."""
    from modelpack.autograd import layer_vjps

    rng = np.random.default_rng(5)
    x, grad = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
    x_hat, inv_std = layer_vjps._normalised(x, axes, 1e-5)
    mean = x.mean(axis=axes, keepdims=True, dtype=np.float32)
    expected_inv_std = 1 / np.sqrt(x.var(axis=axes, keepdims=True, dtype=np.float32) + np.float32(1e-5))
    np.testing.assert_array_equal(inv_std, expected_inv_std)
    np.testing.assert_array_equal(x_hat, (x - mean) * expected_inv_std)
    mean_grad = grad.mean(axis=axes, keepdims=True)
    mean_grad_x = (grad * x_hat).mean(axis=axes, keepdims=True)
    np.testing.assert_array_equal(layer_vjps._normalised_grad(grad, x_hat, inv_std, axes),
                                  inv_std * (grad - mean_grad - x_hat * mean_grad_x))


def test_trailing_run_is_the_reduced_axes_at_the_end():
    assert rowloops.trailing_run((2, 3, 4, 5), (2, 3)) == 20
    assert rowloops.trailing_run((2, 3, 4, 5), (-1,)) == 5
    assert rowloops.trailing_run((2, 3, 4, 5), (1, 3)) == 5  # axis 2 kept: the run stops there
    assert rowloops.trailing_run((2, 3, 4, 5), (1,)) == 1
    assert rowloops.trailing_run((2, 3), (0, 1)) == 6
    assert rowloops.trailing_run((2, 3, 4), -1) == rowloops.trailing_run((2, 3, 4), 2) == 4  # one axis
