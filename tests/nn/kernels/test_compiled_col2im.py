"""``nn.kernels.compiled_col2im`` (``col2im.by_windows``'s products laid out by a numba loop)
against numpy's strided adds, the reference: the same bits, with and without a bias, grouped,
with output padding and empty phases, a block at a time or one example a time, split over
threads; only 2-D float32 outputs take it. Skipped when numba is not installed (CI's full
pass requires it, tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
from test_conv import record_calls

from modelpack.nn.kernels import backend, col2im, parallel, transposed
from modelpack.nn.kernels.columns import Geometry

# (input shape, output channels per group, kernel, strides, padding, output padding, groups):
# transposed convolutions ``by_windows`` takes
GEOMETRIES = [
    ((3, 4, 5, 6), 2, (4, 4), (2, 2), (1, 1), (1, 0), 1),  # DCGAN's 4×4/2, an output padding
    ((2, 6, 4, 3), 3, (4, 4), (2, 2), (1, 1), (0, 0), 2),  # grouped
    ((2, 4, 1, 2), 2, (8, 4), (4, 2), (3, 1), (0, 0), 2),  # 2 outputs of 4 phases: empty ones
    ((2, 3, 3, 5), 4, (6, 4), (3, 2), (2, 0), (2, 1), 1),  # a stride per axis
    ((5, 8, 4, 4), 5, (4, 1), (2, 1), (1, 0), (0, 0), 1),  # one axis unstrided
]


def _arrays(shape, og, kernel, groups):
    rng = np.random.default_rng(sum(shape) + sum(kernel))
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((shape[1], og, *kernel)).astype(np.float32)
    bias = rng.standard_normal(og * groups).astype(np.float32)
    return x, w, bias


def _bits(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array).view(np.uint32)


def _forward(choice, x, w, bias, g, output_padding):
    backend.use(choice)
    return transposed.transpose_forward(x, w, bias, g, output_padding)


@pytest.mark.parametrize(("shape", "og", "kernel", "strides", "padding", "output_padding", "groups"), GEOMETRIES)
@pytest.mark.parametrize("block_bytes", [col2im._WINDOW_BLOCK_BYTES, 1])
def test_the_loop_lays_out_numpys_bits(numba_kernels, shape, og, kernel, strides, padding, output_padding, groups,
                                       block_bytes, monkeypatch) -> None:
    monkeypatch.setattr(col2im, "_WINDOW_BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(transposed.direct, "usable", lambda *_: False)  # (narrow groups' own loops)
    x, w, bias = _arrays(shape, og, kernel, groups)
    g = Geometry(kernel, strides, padding, (1, 1), groups)
    assert col2im.windows_usable(g)
    from modelpack.nn.kernels import compiled_col2im

    windows = record_calls(monkeypatch, col2im, "by_windows")
    placed = record_calls(monkeypatch, compiled_col2im, "place_phases")
    for b in (None, bias):
        expected = _forward("numpy", x, w, b, g, output_padding)
        assert windows and not placed
        got = _forward("numba", x, w, b, g, output_padding)
        assert placed, "numba's kernels lay out by_windows's 2-D products in the loop"
        assert np.array_equal(_bits(got), _bits(expected))
        placed.clear()


@pytest.mark.parametrize("threads", [2, 3])
def test_split_over_threads_the_same_bits(numba_kernels, threads, monkeypatch) -> None:
    """Each thread's blocks laid out by its own loop: every example as on one thread, an odd
    batch's last chunk included."""
    monkeypatch.setattr(parallel, "SPLIT_MIN_WORK", 0)
    monkeypatch.setattr(col2im, "_WINDOW_BLOCK_BYTES", 1)
    x, w, bias = _arrays((5, 4, 3, 5), 3, (4, 4), 1)
    g = Geometry((4, 4), (2, 2), (1, 1), (1, 1), 1)
    one = _forward("numba", x, w, bias, g, (1, 0))
    before = parallel.threads()
    try:
        parallel.set_threads(threads)
        split = _forward("numba", x, w, bias, g, (1, 0))
    finally:
        parallel.set_threads(before)
    assert np.array_equal(_bits(split), _bits(one))


def test_without_a_bias_products_are_copied_signed_zeros_kept(numba_kernels) -> None:
    """A product of -0 stays -0 (``+ 0`` would make it +0), every phase's values land where the
    phases interleave (3×4 outputs of 2×2 phases, rows 0 and 2 of phase 0, columns 1 and 0, 2),
    and the rest of the output (the first example and channel, the last column) is left alone."""
    from modelpack.nn.kernels import compiled_col2im

    count, channels = 2, 3
    first_rows = np.array([[0, 2], [1, 1]], np.int64)  # (first row, rows) per row phase
    first_columns = np.array([[1, 1], [0, 2]], np.int64)  # (first column, columns) per column phase
    sizes = [r * c * channels * count for (_, r) in first_rows for (_, c) in first_columns]
    starts = np.cumsum([0, *sizes[:-1]], dtype=np.int64)
    products = np.arange(1, sum(sizes) + 1, dtype=np.float32)
    products[0] = -0.0
    out = np.full((count + 1, channels + 1, 3, 4), 7, np.float32)
    compiled_col2im.place_phases(out, products, starts, first_rows, first_columns, np.empty(0, np.float32),
                                 count, channels, 1, 1)
    expected = np.full_like(out, 7)
    for p, ((y0, rows), (x0, columns)) in enumerate((r, c) for r in first_rows for c in first_columns):
        made = products[starts[p]:starts[p] + sizes[p]].reshape(rows, count, columns, channels)
        expected[1:, 1:, y0:y0 + 2 * rows:2, x0:x0 + 2 * columns:2] = made.transpose(1, 3, 0, 2)
    assert np.array_equal(_bits(out), _bits(expected))
    assert np.signbit(out[1, 1, 0, 1]) and out[1, 1, 0, 1] == 0


def test_three_dimensions_keep_numpys_adds(numba_kernels, monkeypatch) -> None:
    x, w, bias = _arrays((2, 4, 3, 4, 5), 2, (4, 2, 2), 1)
    g = Geometry((4, 2, 2), (2, 1, 2), (1, 0, 1), (1, 1, 1), 1)
    backend.use("numba")
    assert col2im._placer(np.empty((1, 1, 1, 1, 1), np.float32), 3) is None
    assert col2im._placer(np.empty((1, 1, 1, 1), np.float64), 2) is None
    assert col2im._placer(np.empty((1, 1, 1, 1), np.float32), 2) is not None
    got = _forward("numba", x, w, bias, g, (0, 0, 1))
    assert np.array_equal(_bits(got), _bits(_forward("numpy", x, w, bias, g, (0, 0, 1))))
