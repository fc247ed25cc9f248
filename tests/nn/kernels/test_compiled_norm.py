"""``nn.kernels.compiled_norm`` (BatchNorm's passes as numba loops) against the numpy passes,
the reference: the same training forward and backward through both, whole and in chunks on the
pool, and the same bits whatever the thread count.

Tolerance: float32 within ``rtol=1e-4, atol=1e-4`` (values of order 1): the loops sum in
float64, numpy in float32. Skipped when numba is not installed (CI's full pass requires it,
tests/conftest.py).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from modelpack.nn.kernels import backend, parallel
from modelpack.nn.kernels import norm as norm_kernels


def _through(choice: str, x: np.ndarray, grad: np.ndarray, gamma: np.ndarray | None, beta: np.ndarray,
             axis: int) -> tuple[np.ndarray, ...]:
    """Training forward and backward of BatchNorm's kernels on ``choice``."""
    backend.use(choice)
    out, stats, var = norm_kernels.batch_norm_training(x, axis, gamma, beta, 1e-5)
    grad_x, grad_gamma, grad_beta = norm_kernels.batch_norm_backward(grad, x, axis, stats, gamma)
    return out, stats.mean, stats.inv_std, var, grad_x, grad_gamma, grad_beta


@settings(max_examples=30, deadline=None)
@given(shape=st.sampled_from([(5, 3), (40, 70), (4, 3, 7), (3, 4, 5, 6), (6, 8, 9, 9)]), axis=st.sampled_from([1, -1]),
       scale=st.booleans(), chunked=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_the_loops_match_numpy(numba_kernels, shape, axis, scale, chunked, seed):
    rng = np.random.default_rng(seed)
    x = (2 + 3 * rng.standard_normal(shape)).astype(np.float32)
    grad = rng.standard_normal(shape).astype(np.float32)
    channels = shape[axis]
    gamma = rng.standard_normal(channels).astype(np.float32) if scale else None
    beta = rng.standard_normal(channels).astype(np.float32)
    limit = norm_kernels.SPLIT_ELEMENTS
    norm_kernels.SPLIT_ELEMENTS = 1 if chunked else limit  # several chunks, on the pool
    try:
        expected = _through("numpy", x, grad, gamma, beta, axis % len(shape))
        ours = _through("numba", x, grad, gamma, beta, axis % len(shape))
    finally:
        norm_kernels.SPLIT_ELEMENTS = limit
    for got, want in zip(ours, expected, strict=True):
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@settings(max_examples=20, deadline=None)
@given(shape=st.sampled_from([(5, 3), (40, 70), (4, 3, 7), (3, 4, 5, 6), (2, 8, 9, 9)]), seed=st.integers(0, 2**32 - 1))
def test_inference_through_the_loops_gives_numpys_bits(numba_kernels, shape, seed):
    """At inference the loops run the whole normalisation in one pass, x·scale + shift with
    numpy's two roundings (no fused multiply-add): the same bits as numpy's two passes."""
    rng = np.random.default_rng(seed)
    x = (2 + 3 * rng.standard_normal(shape)).astype(np.float32)
    mean, var, gamma, beta = (rng.standard_normal(shape[1]).astype(np.float32) for _ in range(4))
    results = []
    for choice in ("numpy", "numba"):
        backend.use(choice)
        results.append(norm_kernels.batch_norm(x, 1, mean, np.abs(var), gamma, beta, 1e-5, batch=False)[0])
    np.testing.assert_array_equal(*results)


def test_inference_in_place_takes_the_in_place_loop(numba_kernels, monkeypatch):
    """A loaded model's BatchNorm written over the convolution's output (``nn.fusion``) runs
    ``scale_shift_in_place``: handed one array as both input and output, ``scale_shift``
    fails numba's overlap check and runs unvectorised (32×16×32×32, one thread: 169 → 66 µs).
    The bits of numpy's passes."""
    from modelpack.nn.kernels import compiled_norm

    rng = np.random.default_rng(7)
    x = (2 + 3 * rng.standard_normal((4, 6, 5, 5))).astype(np.float32)
    mean, var, gamma, beta = (rng.standard_normal(6).astype(np.float32) for _ in range(4))
    backend.use("numpy")
    expected = norm_kernels.batch_norm(x, 1, mean, np.abs(var), gamma, beta, 1e-5, batch=False)[0]
    backend.use("numba")
    calls: list[str] = []
    for name in ("scale_shift", "scale_shift_in_place"):
        loop = getattr(compiled_norm, name)
        monkeypatch.setattr(compiled_norm, name, lambda *a, _loop=loop, _name=name: calls.append(_name) or _loop(*a))
    written = x.copy()
    assert norm_kernels.batch_norm(written, 1, mean, np.abs(var), gamma, beta, 1e-5, batch=False,
                                   in_place=True)[0] is written
    assert calls == ["scale_shift_in_place"]
    np.testing.assert_array_equal(written, expected)


def test_strided_input_takes_numpys_passes(numba_kernels):
    """The loops are compiled for C-contiguous arrays (they sweep short runs as whole rows): a
    strided view (every other example) goes to numpy's passes, exactly their bits."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 5, 3)).astype(np.float32)[::2]
    grad = rng.standard_normal((8, 5, 3)).astype(np.float32)[::2]
    beta = np.zeros(5, np.float32)
    assert norm_kernels._loops(x) is None and norm_kernels._loops(np.ascontiguousarray(x)) is not None
    for a, b in zip(_through("numba", x, grad, None, beta, 1), _through("numpy", x, grad, None, beta, 1), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_loops_run_only_on_float32(numba_kernels):
    """float64 goes to numpy's passes (the loops are compiled for float32): exactly its bits."""
    rng = np.random.default_rng(1)
    x, grad = rng.standard_normal((4, 3, 5)), rng.standard_normal((4, 3, 5))
    beta = np.zeros(3)
    numpy_side = _through("numpy", x, grad, None, beta, 1)
    numba_side = _through("numba", x, grad, None, beta, 1)
    assert norm_kernels._loops(x) is None and norm_kernels._loops(x.astype(np.float32)) is not None
    for a, b in zip(numba_side, numpy_side, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_loops_give_the_same_bits_on_any_thread_count(numba_kernels, monkeypatch):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 16, 16, 16)).astype(np.float32)
    grad = rng.standard_normal(x.shape).astype(np.float32)
    gamma, beta = rng.standard_normal(16).astype(np.float32), rng.standard_normal(16).astype(np.float32)
    monkeypatch.setattr(norm_kernels, "SPLIT_ELEMENTS", 1)
    monkeypatch.setattr(parallel, "ELEMENTWISE_MIN_ELEMENTS", 1)  # the chunks go to the pool
    before = parallel.threads()
    try:
        results = []
        for count in (1, 2, 3):
            parallel.set_threads(count)
            results.append(_through("numba", x, grad, gamma, beta, 1))
    finally:
        parallel.set_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            np.testing.assert_array_equal(a, b)


def test_scaling_in_place_gives_the_out_of_place_bits(numba_kernels):
    """Training scales the centred values where they are (``scale_shift_in_place``): the same
    bits as ``scale_shift`` into another array, for short runs (whole rows) and long ones
    (a channel at a time), on rows [first, stop) only."""
    from modelpack.nn.kernels import compiled_norm

    rng = np.random.default_rng(4)
    for shape in [(6, 1024, 1), (6, 5, 3), (5, 3, compiled_norm.SHORT_RUNS + 7)]:
        x = (2 + 3 * rng.standard_normal(shape)).astype(np.float32)
        scale, shift = (rng.standard_normal(shape[1]).astype(np.float32) for _ in range(2))
        expected = x.copy()
        compiled_norm.scale_shift(x, expected, scale, shift, 1, 4)
        ours = x.copy()
        compiled_norm.scale_shift_in_place(ours, scale, shift, 1, 4)
        np.testing.assert_array_equal(ours, expected)
        np.testing.assert_array_equal(ours[:1], x[:1])
        np.testing.assert_array_equal(ours[4:], x[4:])


def test_the_fused_passes_give_the_stored_passes_bits(numba_kernels):
    """``run_statistics`` then ``centred_scale_shift`` (long runs, no centred values kept) give
    the bits of ``statistics`` then ``scale_shift_in_place``, on rows [first, stop) only."""
    from modelpack.nn.kernels import compiled_norm

    rng = np.random.default_rng(5)
    shape = (5, 3, compiled_norm.SHORT_RUNS + 7)
    x = (2 + 3 * rng.standard_normal(shape)).astype(np.float32)
    scale, shift = (rng.standard_normal(shape[1]).astype(np.float32) for _ in range(2))
    expected = np.zeros_like(x)
    means, squares = compiled_norm.statistics(x, expected, 1, 4)
    compiled_norm.scale_shift_in_place(expected, scale, shift, 1, 4)
    ours = np.zeros_like(x)
    fused_means, fused_squares = compiled_norm.run_statistics(x, 1, 4)
    compiled_norm.centred_scale_shift(x, ours, fused_means.astype(np.float32), scale, shift, 1, 4)
    np.testing.assert_array_equal(fused_means, means)
    np.testing.assert_array_equal(fused_squares, squares)
    np.testing.assert_array_equal(ours, expected)
    assert not ours[:1].any() and not ours[4:].any()


def test_training_keeps_centred_values_only_for_short_runs(numba_kernels, monkeypatch):
    """Long runs take the fused passes (``statistics`` is never called), short runs the stored
    ones; both agree with numpy's passes."""
    from modelpack.nn.kernels import compiled_norm

    rng = np.random.default_rng(6)
    for inner, fused in ((compiled_norm.SHORT_RUNS, True), (compiled_norm.SHORT_RUNS - 1, False)):
        x = rng.standard_normal((4, 3, inner)).astype(np.float32)
        gamma, beta = (rng.standard_normal(3).astype(np.float32) for _ in range(2))
        expected = _through("numpy", x, x, gamma, beta, 1)[0]
        calls: list[str] = []
        for name in ("statistics", "run_statistics"):
            loop = getattr(compiled_norm, name)
            monkeypatch.setattr(compiled_norm, name, lambda *a, _loop=loop, _name=name, _calls=calls: _calls.append(_name) or _loop(*a))
        backend.use("numba")
        out = norm_kernels.batch_norm_training(x, 1, gamma, beta, 1e-5)[0]
        monkeypatch.undo()
        assert calls == ["run_statistics" if fused else "statistics"]
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
