"""``nn.kernels.pool`` and ``nn.kernels.norm`` against direct references: pooling window by
window (a loop over output positions, the window clipped to the input as torch defines it),
BatchNorm from its textbook formulas in float64. Shapes, strides, padding, ceil mode and
dimensions from hypothesis; gradients through the layers' autograd rules.

Tolerances: pooling selects or averages inputs, so float32 results are within ``1e-6``
(absolute, inputs ~ N(0, 1)) of the float64 reference; BatchNorm within ``rtol=1e-4,
atol=1e-4`` (float32 statistics over up to a few hundred values).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_conv import assert_refused_by_budget, assert_split_equal

from modelpack import autograd, nn
from modelpack.nn import pooling
from modelpack.nn.kernels import norm as norm_kernels
from modelpack.nn.kernels import parallel
from modelpack.nn.kernels import pool as pool_kernels

MAX_POOL = {1: nn.MaxPool1D, 2: nn.MaxPool2D, 3: nn.MaxPool3D}
AVG_POOL = {1: nn.AvgPool1D, 2: nn.AvgPool2D, 3: nn.AvgPool3D}


def _out_size(n: int, k: int, s: int, p: int, ceil: bool) -> int:
    span = n + 2 * p - k
    out = (-(-span // s) if ceil else span // s) + 1
    return out - 1 if ceil and (out - 1) * s >= n + p else out


def reference_pool(x, grad, kind, pool, strides, padding, ceil, include_pad):
    """(output, input gradient) window by window in float64."""
    dims = len(pool)
    x64, g64 = x.astype(np.float64), grad.astype(np.float64)
    outs = tuple(_out_size(n, k, s, p, ceil) for n, k, s, p in zip(x.shape[2:], pool, strides, padding, strict=True))
    result = np.zeros((*x.shape[:2], *outs))
    grad_x = np.zeros_like(x64)
    for position in itertools.product(*map(range, outs)):
        starts = [o * s - p for o, s, p in zip(position, strides, padding, strict=True)]
        lo = [max(a, 0) for a in starts]
        hi = [min(a + k, n) for a, k, n in zip(starts, pool, x.shape[2:], strict=True)]
        window = (slice(None), slice(None), *(slice(a, b) for a, b in zip(lo, hi, strict=True)))
        at = (slice(None), slice(None), *position)
        values = x64[window].reshape(*x.shape[:2], -1)
        if kind == "max":
            result[at] = values.max(axis=-1)
            first = values.argmax(axis=-1)  # the first maximum in scan order, as torch
            hits = np.zeros_like(values)
            np.put_along_axis(hits, first[..., None], 1.0, axis=-1)
            grad_x[window] += (hits * g64[at][..., None]).reshape(x64[window].shape)
        else:
            if include_pad:
                count = np.prod([min(a + k, n + p) - a for a, k, n, p in
                                 zip(starts, pool, x.shape[2:], padding, strict=True)])
            else:
                count = np.prod([b - a for a, b in zip(lo, hi, strict=True)])
            result[at] = values.sum(axis=-1) / count
            grad_x[window] += (g64[at] / count)[(Ellipsis, *(None,) * dims)]
    return result, grad_x


@st.composite
def pools(draw):
    dims = draw(st.integers(1, 3))
    pool = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    strides = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    padding = tuple(draw(st.integers(0, k // 2)) for k in pool)
    sizes = tuple(draw(st.integers(k, k + (5 if dims < 3 else 2))) for k in pool)
    return dims, pool, strides, padding, sizes, draw(st.booleans()), draw(st.booleans())


def _through_autograd(layer, x, grad):
    variable = autograd.Variable(x)
    with autograd.record():
        out = layer(variable)
    out.backward(grad)
    return out.value, variable.grad


@settings(max_examples=80, deadline=None)
@given(drawn=pools(), kind=st.sampled_from(["max", "avg"]), batch=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_pooling_matches_the_window_by_window_reference(drawn, kind, batch, seed):
    dims, pool, strides, padding, sizes, ceil, include_pad = drawn
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 2, *sizes)).astype(np.float32)
    if kind == "max":
        layer = MAX_POOL[dims](pool, strides, padding, ceil_mode=ceil)
    else:
        layer = AVG_POOL[dims](pool, strides, padding, ceil_mode=ceil, count_include_pad=include_pad)
    out_shape = layer(x).shape
    grad = rng.standard_normal(out_shape).astype(np.float32)
    out, grad_x = _through_autograd(layer, x, grad)
    expected, expected_grad = reference_pool(x, grad, kind, pool, strides, padding, ceil, include_pad)
    assert out.dtype == np.float32 and grad_x.dtype == np.float32
    # float32 sums of a window, in another order than the reference's: a few ulps of the
    # result (an average of 4.56 was 2 ulps, 1.0e-6, off; an absolute bound alone fails it)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(grad_x, expected_grad, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize(("pool", "strides", "padding", "ceil", "sizes"), [
    ((3,), (2,), (0,), False, (498,)), ((3,), (2,), (1,), True, (17,)), ((5,), (2,), (2,), True, (12,)),
    ((3, 3), (2, 2), (1, 1), False, (9, 11)), ((1, 3, 3), (1, 2, 2), (0, 1, 1), True, (2, 7, 8)),
    ((4,), (2,), (1,), True, (4,)), ((7,), (2,), (3,), False, (20,)),
])
def test_running_windows_equal_the_offsets_views(monkeypatch, kind, pool, strides, padding, ceil, sizes):
    """The last axis folded from the stride-1 windows (``_fold_running``) gives the bits of its
    offsets' strided views, padding and ceil mode's clipped windows included."""
    x = np.random.default_rng(3).standard_normal((3, 2, *sizes)).astype(np.float32)
    assert not pool_kernels._runs((5, 4, 0), 20, True)  # (its passes would cost more)
    layer = (MAX_POOL if kind == "max" else AVG_POOL)[len(pool)](pool, strides, padding, ceil_mode=ceil)
    assert pool_kernels._runs((pool[-1], strides[-1], padding[-1]), sizes[-1], True)
    running = layer(x)
    monkeypatch.setattr(pool_kernels, "_runs", lambda *_: False)
    np.testing.assert_array_equal(running, layer(x))


def test_running_windows_are_charged_before_they_are_allocated(monkeypatch):
    """numpy's passes (``compiled_pool``'s loop, which allocates nothing, folds a 3/2 window)."""
    monkeypatch.setattr(pool_kernels.backend, "compiled", lambda: None)
    x = np.zeros((2, 4, 498), np.float32)  # the output, 2·4·248 values, is charged three times
    assert_refused_by_budget(nn.MaxPool1D(3, 2), x, 3 * 4 * 2 * 4 * 248 + x.nbytes - 1, "its running windows",
                             lambda: nn.MaxPool1D(3, 2)(x))


def test_a_pool_far_larger_than_its_input_reads_only_where_they_overlap():
    """Offsets whose taps land only in the padding are skipped before the loops over the
    window's offsets: a 4096-wide pool padded by 2048 on a one-position axis has one offset
    that reads the input, and a 3D one runs forward and backward through that one offset
    (not 4096³ of them)."""
    assert pool_kernels._offsets(4096, 4096, 2048, 1, 1) == [(2048, (0, 1))]
    x = np.arange(2, dtype=np.float32).reshape(1, 2, 1, 1, 1)
    out, grad_x = _through_autograd(nn.MaxPool3D(4096, padding=2048), x, np.ones((1, 2, 1, 1, 1), np.float32))
    np.testing.assert_array_equal(out, x)
    np.testing.assert_array_equal(grad_x, np.ones_like(x))


def reference_batch_norm(x, axis, gamma, beta, grad):
    """Batch statistics: output and the gradients of x, gamma and beta, in float64."""
    x64, g64 = np.moveaxis(x.astype(np.float64), axis, -1), np.moveaxis(grad.astype(np.float64), axis, -1)
    m = x64.size // x64.shape[-1]
    mean = x64.reshape(-1, x64.shape[-1]).mean(axis=0)
    var = ((x64 - mean) ** 2).reshape(-1, x64.shape[-1]).mean(axis=0)
    x_hat = (x64 - mean) / np.sqrt(var + 1e-5)
    out = x_hat * gamma + beta
    flat_g, flat_hat = g64.reshape(-1, x64.shape[-1]), x_hat.reshape(-1, x64.shape[-1])
    grad_beta, grad_gamma = flat_g.sum(axis=0), (flat_g * flat_hat).sum(axis=0)
    grad_x = gamma / np.sqrt(var + 1e-5) / m * (m * g64 - grad_beta - x_hat * grad_gamma)
    return np.moveaxis(out, -1, axis), np.moveaxis(grad_x, -1, axis), grad_gamma, grad_beta


@settings(max_examples=40, deadline=None)
@given(shape=st.sampled_from([(5, 3), (4, 3, 7), (3, 4, 5, 6), (2, 3, 2, 3, 4)]), axis=st.sampled_from([1, -1]),
       seed=st.integers(0, 2**32 - 1))
def test_batch_norm_matches_its_formulas(shape, axis, seed):
    rng = np.random.default_rng(seed)
    x = (2 + 3 * rng.standard_normal(shape)).astype(np.float32)
    channels = shape[axis]
    gamma, beta = rng.standard_normal(channels).astype(np.float32), rng.standard_normal(channels).astype(np.float32)
    layer = nn.BatchNorm(axis=axis, in_channels=channels)
    layer.initialize()
    layer.gamma.set_data(gamma)
    layer.beta.set_data(beta)
    grad = rng.standard_normal(shape).astype(np.float32)
    out, grad_x = _through_autograd(layer, x, grad)
    expected, expected_x, expected_gamma, expected_beta = reference_batch_norm(x, axis % len(shape), gamma, beta, grad)
    for ours, theirs in ((out, expected), (grad_x, expected_x), (layer.gamma.grad(), expected_gamma),
                         (layer.beta.grad(), expected_beta)):
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_batch_norm_inference_is_one_scale_and_shift():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 5)).astype(np.float32)
    mean, var = rng.standard_normal(3).astype(np.float32), rng.uniform(0.5, 2, 3).astype(np.float32)
    gamma, beta = rng.standard_normal(3).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    out, stats = norm_kernels.batch_norm(x, 1, mean, var, gamma, beta, 1e-5, batch=False)
    expected = (x - mean[:, None]) / np.sqrt(var[:, None] + 1e-5) * gamma[:, None] + beta[:, None]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert not stats.batch


def test_per_channel_planes_change_no_bits(monkeypatch):
    """Per-channel operands laid out as whole planes (``norm.PLANE_ELEMENTS``) give the same
    bits as broadcasting one value per channel: forward and every gradient, in training."""
    rng = np.random.default_rng(5)
    x = (1 + 2 * rng.standard_normal((6, 8, 5, 7))).astype(np.float32)
    grad = rng.standard_normal(x.shape).astype(np.float32)
    assert 8 * 35 <= norm_kernels.PLANE_ELEMENTS  # the planes are used at this size
    results = []
    for limit in (norm_kernels.PLANE_ELEMENTS, 0):  # planes, then plain broadcasting
        monkeypatch.setattr(norm_kernels, "PLANE_ELEMENTS", limit)
        layer = nn.BatchNorm(in_channels=8)
        layer.initialize()
        layer.gamma.set_data(rng.standard_normal(8).astype(np.float32) if not results else results[0][3])
        out, grad_x = _through_autograd(layer, x, grad)
        inference = layer(x)  # the running statistics the step updated
        results.append((out, grad_x, inference, layer.gamma.data(), layer.gamma.grad(), layer.beta.grad()))
    for ours, theirs in zip(*results, strict=True):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("batch", [7, 9, 2])  # groups of 3 rows: 1 left over, none, fewer than a group
@pytest.mark.parametrize("strided", [False, True])
def test_grouped_planes_change_no_bits(monkeypatch, batch, strided):
    """Per-channel operands grouped over several examples (``norm.GROUP_ROWS``: BatchNorm over
    features) give the bits of one plane per example, rows left over and strided inputs
    included: forward, every gradient, and inference after."""
    rng = np.random.default_rng(batch)
    whole = (1 + 2 * rng.standard_normal((batch, 10))).astype(np.float32)
    x = whole[:, ::2] if strided else whole[:, :5].copy()
    grad = rng.standard_normal(x.shape).astype(np.float32)
    gamma = rng.standard_normal(5).astype(np.float32)
    monkeypatch.setattr(norm_kernels, "GROUP_MIN_ELEMENTS", 0)
    monkeypatch.setattr(norm_kernels, "GROUP_ELEMENTS", 15)  # 3 planes of 5 channels
    results = []
    for rows in (3, 1 << 30):  # groups of 3, then one plane per example
        monkeypatch.setattr(norm_kernels, "GROUP_ROWS", rows)
        grouped = 3 if rows == 3 and batch >= 3 else 1
        assert norm_kernels._per_channel(gamma, x.reshape(batch, 5, 1)).shape[0] == grouped
        layer = nn.BatchNorm(in_channels=5)
        layer.initialize()
        layer.gamma.set_data(gamma)
        out, grad_x = _through_autograd(layer, x, grad)
        results.append((out, grad_x, layer(x), layer.gamma.grad(), layer.beta.grad()))
    for ours, theirs in zip(*results, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_a_grouped_pass_writes_into_a_strided_output():
    """``norm._apply`` with grouped planes and a strided ``out``: every value lands in ``out``
    (its rows are regrouped by splitting the first axis, a view whatever the strides)."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((7, 4, 1)).astype(np.float32)
    values = rng.standard_normal(4).astype(np.float32)
    operand = np.repeat(values[None, :, None], 3, axis=0)  # 3 planes
    out = np.zeros((7, 4, 2), np.float32)[:, :, :1]
    norm_kernels._apply(np.multiply, a, operand, out)
    np.testing.assert_array_equal(out, a * values[None, :, None])


@pytest.mark.parametrize("row_block", [1, 2400, 6000, 1 << 18])  # rows a block: 1, 2, 5 (2 left), all 12
def test_scalar_runs_change_no_bits(monkeypatch, row_block):
    """Long runs scaled and shifted as rows in blocks (``norm.SCALAR_RUNS``, ``ROW_BLOCK``)
    give the bits of one broadcast pass: training forward and inference."""
    rng = np.random.default_rng(6)
    x = (1 + 2 * rng.standard_normal((4, 3, 40, 30))).astype(np.float32)
    gamma, beta = rng.standard_normal(3).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    mean, var = rng.standard_normal(3).astype(np.float32), rng.uniform(0.5, 2, 3).astype(np.float32)
    monkeypatch.setattr(norm_kernels, "ROW_BLOCK", row_block)
    results = []
    for limit in (1 << 30, 1):  # broadcast, then rows
        monkeypatch.setattr(norm_kernels, "SCALAR_RUNS", limit)
        results.append((norm_kernels.batch_norm_training(x, 1, gamma, beta, 1e-5)[0],
                        norm_kernels.batch_norm(x, 1, mean, var, gamma, beta, 1e-5, batch=False)[0]))
    for ours, theirs in zip(*results, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_threaded_passes_equal_the_single_threaded_ones(monkeypatch):
    """The batch split over threads computes what one thread does, bit for bit: each element
    is computed alone (pooling; a convolution's GEMMs as far as the BLAS allows, see
    ``assert_split_equal``), or partial sums come from the same chunks of the batch whatever
    the thread count (BatchNorm's statistics and gradients)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 16, 64, 64)).astype(np.float32)
    assert x.size >= max(parallel.MIN_ELEMENTS, parallel.ELEMENTWISE_MIN_ELEMENTS)  # every pass is split
    monkeypatch.setattr(norm_kernels, "SPLIT_ELEMENTS", x.size)  # BatchNorm's too
    layers = [nn.Conv2D(16, 3, padding=1, in_channels=16), nn.MaxPool2D(3, 2, 1), nn.AvgPool2D(2),
              nn.BatchNorm(in_channels=16)]
    for layer in layers:
        layer.initialize(seed=0)
    heads = [rng.standard_normal(layer(x).shape).astype(np.float32) for layer in layers]
    before = parallel.threads()
    try:
        results = []
        for count in (1, 2, 3):
            parallel.set_threads(count)
            results.append([_through_autograd(layer, x, head) for layer, head in zip(layers, heads, strict=True)])
    finally:
        parallel.set_threads(before)
    for other in results[1:]:
        for layer, ours, theirs in zip(layers, results[0], other, strict=True):
            for a, b in zip(ours, theirs, strict=True):
                if isinstance(layer, nn.Conv2D):  # its GEMMs: as the BLAS splits them
                    assert_split_equal(b, a, err_msg="Conv2D")
                else:
                    np.testing.assert_array_equal(a, b, err_msg=type(layer).__name__)


def test_a_forked_child_gets_its_own_pool():
    """The parent's pool threads do not exist after fork: a child's pass must not wait on them."""
    import multiprocessing

    before = parallel.threads()
    parallel.set_threads(2)
    try:
        x = np.random.default_rng(0).standard_normal((4, 8, 64, 64)).astype(np.float32)
        parallel.copy(np.empty_like(x), x)  # the parent's pool exists now
        context = multiprocessing.get_context("fork")
        with context.Pool(1) as pool:
            assert pool.apply_async(_copy_in_child).get(timeout=60)
    finally:
        parallel.set_threads(before)


def _copy_in_child() -> bool:
    x = np.arange(4 * 8 * 64 * 64, dtype=np.float32).reshape(4, 8, 64, 64)
    out = np.empty_like(x)
    parallel.copy(out, x)
    return bool(np.array_equal(out, x))


def test_a_reductions_fixed_chunks_run_in_one_group_per_thread(monkeypatch):
    """More chunks than threads (a reduction's ``REDUCTION_CHUNKS``): each thread takes a run
    of consecutive chunks, the caller the first, and the results come in the chunks' order;
    below an element-wise pass's size they all run on the calling thread."""
    import threading

    before = parallel.threads()
    parallel.set_threads(2)
    try:
        seen: list[tuple[int, str]] = []

        def part(rows: slice) -> int:
            seen.append((rows.start, threading.current_thread().name))
            return rows.start

        big = parallel.ELEMENTWISE_MIN_ELEMENTS
        parts = parallel.over_batch(part, 8, big, chunks=parallel.REDUCTION_CHUNKS)
        assert parts == [0, 2, 4, 6]
        caller = threading.current_thread().name
        threads_of = dict(seen)
        assert threads_of[0] == threads_of[2] == caller
        assert threads_of[4] == threads_of[6] != caller
        seen.clear()
        assert parallel.over_batch(part, 8, big - 1, chunks=parallel.REDUCTION_CHUNKS) == [0, 2, 4, 6]
        assert {name for _, name in seen} == {caller}
    finally:
        parallel.set_threads(before)


@pytest.mark.parametrize("positions", [7, 256, pooling.BLAS_MEAN_POSITIONS, pooling.BLAS_MEAN_POSITIONS + 1])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_global_average_pooling_is_the_mean(positions, dtype):
    """The BLAS product with ones (float32 and float64, up to ``BLAS_MEAN_POSITIONS``) and
    ``mean`` elsewhere both give the float64 mean within the dtype's rounding of a sum of
    ``positions`` values of order 1 (rtol 1e-6 float64 ... 2e-3 float16)."""
    x = (1 + np.random.default_rng(positions).standard_normal((3, 5, positions))).astype(dtype)
    out = nn.GlobalAvgPool1D()(x)
    assert out.dtype == dtype and out.shape == (3, 5, 1)
    tolerance = {np.float16: 2e-3, np.float32: 1e-5, np.float64: 1e-12}[dtype]
    np.testing.assert_allclose(out[..., 0], x.astype(np.float64).mean(axis=2), rtol=tolerance, atol=tolerance)


def test_scale_shift_into_a_strided_output():
    """Rows of an ``out`` whose examples and channels do not merge would be a copy: written
    whole, as one broadcast pass."""
    rng = np.random.default_rng(8)
    source = rng.standard_normal((2, 3, 4096)).astype(np.float32)
    scale, shift = rng.standard_normal(3).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    out = np.zeros((3, 2, 4096), np.float32).transpose(1, 0, 2)
    norm_kernels._scale_shift(source, out, (scale, scale[None, :, None]), (shift, shift[None, :, None]))
    np.testing.assert_array_equal(out, source * scale[None, :, None] + shift[None, :, None])


@pytest.mark.parametrize("shape", [(5, 3, 4, 6), (300, 64)])  # planes, and grouped rows over features
def test_batch_norm_in_place_gives_its_bits_and_needs_a_contiguous_array(shape):
    rng = np.random.default_rng(7)
    x = (1 + 2 * rng.standard_normal(shape)).astype(np.float32)
    c = shape[1]
    mean, var = rng.standard_normal(c).astype(np.float32), rng.uniform(0.5, 2, c).astype(np.float32)
    gamma, beta = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    expected = norm_kernels.batch_norm(x, 1, mean, var, gamma, beta, 1e-5, batch=False)[0]
    overwritten = x.copy()
    result = norm_kernels.batch_norm(overwritten, 1, mean, var, gamma, beta, 1e-5, batch=False, in_place=True)[0]
    assert result is overwritten
    np.testing.assert_array_equal(overwritten, expected)
    with pytest.raises(ValueError, match="C-contiguous"):
        norm_kernels.batch_norm(x[::2], 1, mean, var, gamma, beta, 1e-5, batch=False, in_place=True)
