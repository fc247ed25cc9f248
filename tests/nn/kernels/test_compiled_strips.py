"""``nn.kernels.compiled_strips`` (``strips.forward`` in 2-D as one numba loop per thread,
calling BLAS's GEMM itself) against numpy's path, the reference: the same bits where numpy
hands its GEMMs to BLAS too (within float32 rounding where a strip's output is too narrow for
it to, and numpy's matmul sums itself), with and without a bias, grouped, dilated, at several strides and strip sizes, with an activation, on
one or several threads; 1-D and 3-D convolutions, and a BLAS whose GEMM is not found, keep
numpy's path. Skipped when numba is not installed (CI's full pass requires it,
tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

from modelpack.nn.kernels import backend, blas, parallel, strips
from modelpack.nn.kernels.columns import Geometry

# (input shape, weight shape, kernel, strides, padding, dilation, groups, the same bits)
GEOMETRIES = [
    ((2, 3, 30, 31), (8, 3, 7, 7), (7, 7), (2, 2), (3, 3), (1, 1), 1, True),  # a 7×7/2 stem
    ((2, 6, 17, 19), (12, 3, 3, 3), (3, 3), (1, 2), (2, 1), (2, 1), 2, True),  # groups, dilation, strides
    ((1, 2, 9, 9), (4, 2, 3, 3), (3, 3), (1, 1), (0, 0), (1, 1), 1, True),  # unpadded
    ((2, 2, 11, 10), (4, 2, 2, 5), (2, 5), (3, 2), (1, 2), (2, 3), 1, False),  # one output column
]


def _bits(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array).view(np.uint32)


def _arrays(shape, wshape, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    weight = rng.standard_normal(wshape).astype(np.float32)
    bias = rng.standard_normal(wshape[0]).astype(np.float32)
    return x, weight, bias


def _forward(choice: str, x, weight, bias, g, activation=None) -> np.ndarray:
    backend.use(choice)
    return strips.forward(x, weight, bias, g, g.out_sizes(x.shape[2:]), activation)


@pytest.mark.parametrize(("shape", "wshape", "kernel", "strides", "padding", "dilation", "groups", "exact"),
                         GEOMETRIES)
@pytest.mark.parametrize("strip_bytes", [1, 700, 1 << 22])  # a row a strip; a few (the last short); all
def test_the_loop_gives_numpys_bits(numba_kernels, shape, wshape, kernel, strides, padding, dilation, groups, exact,
                                    strip_bytes, monkeypatch) -> None:
    from modelpack.nn.kernels import compiled_strips

    monkeypatch.setattr(strips, "STRIP_BYTES", strip_bytes)
    x, weight, bias = _arrays(shape, wshape)
    g = Geometry(kernel, strides, padding, dilation, groups)
    looped: list[int] = []
    original = compiled_strips.strips_2d
    monkeypatch.setattr(compiled_strips, "strips_2d", lambda *args: looped.append(1) or original(*args))
    for b in (None, bias):
        expected = _forward("numpy", x, weight, b, g)
        assert not looped
        got = _forward("numba", x, weight, b, g)
        assert looped, "numba's kernels run strips.forward's 2-D strips in the loop"
        if exact:
            assert np.array_equal(_bits(got), _bits(expected))
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * float(np.abs(expected).max()))
        looped.clear()


def test_the_activation_and_threads(numba_kernels, monkeypatch) -> None:
    """An activation applied to each thread's examples after the loop; split over 1, 2 and 3
    threads (an odd batch), the same bits."""
    monkeypatch.setattr(parallel, "SPLIT_MIN_WORK", 0)
    x, weight, bias = _arrays((5, 3, 30, 31), (8, 3, 7, 7), 1)
    g = Geometry((7, 7), (2, 2), (3, 3), (1, 1), 1)
    expected = _forward("numpy", x, weight, bias, g, lambda a: np.maximum(a, 0, out=a))
    assert (expected == 0).any()
    before = parallel.threads()
    try:
        for threads in (1, 2, 3):
            parallel.set_threads(threads)
            got = _forward("numba", x, weight, bias, g, lambda a: np.maximum(a, 0, out=a))
            assert np.array_equal(_bits(got), _bits(expected))
    finally:
        parallel.set_threads(before)


def test_a_blas_without_its_gemm_keeps_numpys_path(numba_kernels, monkeypatch) -> None:
    from modelpack.nn.kernels import compiled_strips

    monkeypatch.setattr(compiled_strips, "strips_2d", None)  # (a call would fail)
    monkeypatch.setattr(blas, "_sgemm", None)
    x, weight, bias = _arrays((2, 3, 30, 31), (8, 3, 7, 7))
    g = Geometry((7, 7), (2, 2), (3, 3), (1, 1), 1)
    assert np.array_equal(_bits(_forward("numba", x, weight, bias, g)), _bits(_forward("numpy", x, weight, bias, g)))
