"""``nn.kernels.compiled_shifted`` (``shifted.last_axis_forward`` in 2-D as one numba loop per
thread, calling BLAS's GEMM itself) against numpy's path, the reference: the same bits as its
GEMM of an example at a time (the loop's), within float32 rounding of its wider blocks', with
and without a bias, grouped, dilated, padded unevenly, kernels of one column or one row, on
one or several threads; 1-D and 3-D convolutions, and a BLAS whose GEMM is not found, keep
numpy's path. Skipped when numba is not installed (CI's full pass requires it,
tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelpack.nn.kernels import backend, blas, parallel, shifted
from modelpack.nn.kernels.columns import Geometry

# (batch, input channels, output channels, height, width, kernel, padding, dilation, groups)
GEOMETRIES = [
    (5, 16, 16, 12, 11, (3, 3), (1, 1), (1, 1), 1),  # ResNet's 3×3, small planes
    (4, 8, 12, 9, 10, (3, 5), (2, 1), (2, 1), 2),  # grouped, dilated, uneven padding
    (3, 6, 4, 7, 7, (1, 3), (0, 1), (1, 2), 1),  # one row of taps
    (3, 6, 4, 7, 7, (3, 1), (1, 0), (1, 1), 2),  # one column: no last-axis sums
    (2, 3, 5, 6, 9, (2, 4), (0, 3), (1, 1), 1),  # even kernel, padding wider than the kernel
]


def _bits(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array).view(np.uint32)


def _forward(choice: str, x, w, bias, g, examples: int) -> np.ndarray:
    backend.use(choice)
    out_sizes = g.out_sizes(x.shape[2:])
    return shifted.last_axis_forward(x, w, bias, g, out_sizes, examples)


def _arrays(seed: int, n, c, o, h, w, kernel, groups, with_bias):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weight = rng.standard_normal((o, c // groups, *kernel)).astype(np.float32)
    bias = rng.standard_normal(o).astype(np.float32) if with_bias else None
    return x, weight, bias


@settings(max_examples=20, deadline=None)
@given(case=st.sampled_from(GEOMETRIES), with_bias=st.booleans(), examples=st.sampled_from([1, 2, 5]),
       seed=st.integers(0, 2**16))
def test_the_loop_gives_numpys_bits(numba_kernels, case, with_bias, examples, seed) -> None:
    n, c, o, h, w, kernel, padding, dilation, groups = case
    x, weight, bias = _arrays(seed, n, c, o, h, w, kernel, groups, with_bias)
    g = Geometry(kernel, (1, 1), padding, dilation, groups)
    expected = _forward("numpy", x, weight, bias, g, 1)  # an example a GEMM, as the loop's
    blocked = _forward("numpy", x, weight, bias, g, examples)
    from modelpack.nn.kernels import compiled_shifted as loop

    looped: list[int] = []
    original = loop.last_axis_2d
    loop.last_axis_2d = lambda *args: looped.append(1) or original(*args)
    try:
        got = _forward("numba", x, weight, bias, g, examples)
    finally:
        loop.last_axis_2d = original
    assert looped, "numba's kernels run last_axis_forward's 2-D blocks in the loop"
    assert np.array_equal(_bits(got), _bits(expected))
    # numpy's blocks of examples make wider GEMMs, whose sums BLAS may round apart
    np.testing.assert_allclose(got, blocked, rtol=1e-5, atol=1e-5 * float(np.abs(blocked).max()))


@pytest.mark.parametrize("threads", [2, 3])
def test_split_over_threads_the_same_bits(numba_kernels, threads, monkeypatch) -> None:
    monkeypatch.setattr(parallel, "SPLIT_MIN_WORK", 0)
    x, weight, bias = _arrays(1, 5, 16, 16, 12, 11, (3, 3), 1, True)
    g = Geometry((3, 3), (1, 1), (1, 1), (1, 1), 1)
    one = _forward("numba", x, weight, bias, g, 1)
    before = parallel.threads()
    try:
        parallel.set_threads(threads)
        split = _forward("numba", x, weight, bias, g, 1)
    finally:
        parallel.set_threads(before)
    assert np.array_equal(_bits(split), _bits(one))


def test_a_blas_without_its_gemm_keeps_numpys_path(numba_kernels, monkeypatch) -> None:
    from modelpack.nn.kernels import compiled_shifted

    monkeypatch.setattr(compiled_shifted, "last_axis_2d", None)  # (a call would fail)
    monkeypatch.setattr(blas, "_sgemm", None)
    x, weight, bias = _arrays(2, 3, 16, 16, 12, 11, (3, 3), 1, True)
    g = Geometry((3, 3), (1, 1), (1, 1), (1, 1), 1)
    assert np.array_equal(_bits(_forward("numba", x, weight, bias, g, 2)),
                          _bits(_forward("numpy", x, weight, bias, g, 2)))
