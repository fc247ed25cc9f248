"""``nn.kernels.compiled_col2im`` (``col2im.by_windows`` in 2-D as one numba loop per thread,
calling BLAS's GEMM itself) against numpy's path, the reference: the same bits, with and
without a bias, grouped, with output padding and empty phases, a block at a time or one
example at a time, split over threads; only 2-D float32 convolutions, with numpy's BLAS's GEMM
found, take it. Skipped when numba is not installed (CI's full pass requires it,
tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
from test_conv import record_calls

from modelpack.nn.kernels import backend, blas, col2im, parallel, transposed
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
    looped: list[int] = []
    original = compiled_col2im.windows_2d
    monkeypatch.setattr(compiled_col2im, "windows_2d", lambda *args: looped.append(1) or original(*args))
    for b in (None, bias):
        expected = _forward("numpy", x, w, b, g, output_padding)
        assert windows and not looped
        got = _forward("numba", x, w, b, g, output_padding)
        assert looped, "numba's kernels run by_windows's 2-D blocks in the loop"
        assert np.array_equal(_bits(got), _bits(expected))
        looped.clear()


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
    phases interleave (3×4 outputs of 2×2 phases: rows 0, 2 of row phase 0 from blocks 0, 1,
    row 1 from block 1; columns 1 and 0, 2), and the rest of the output (the first example,
    the other group's channels, the last column) is left alone."""
    from modelpack.nn.kernels import compiled_col2im

    count, cg, blocks_y, blocks_x = 2, 3, 2, 2
    first_rows = np.array([[0, 0, 2], [1, 1, 1]], np.int64)  # (first row, first block, rows)
    first_columns = np.array([[1, 0, 1], [0, 0, 2]], np.int64)  # (first column, first block, columns)
    products = np.arange(1, blocks_y * count * blocks_x * 4 * cg + 1, dtype=np.float32)
    products[0] = -0.0
    out = np.full((count + 1, 2 * cg, 3, 4), 7, np.float32)
    compiled_col2im.place_blocks(out, products, first_rows, first_columns, np.empty(0, np.float32), count,
                                 blocks_x, cg, 1, 1)
    made = products.reshape(blocks_y, count, blocks_x, 2, 2, cg)
    expected = np.full_like(out, 7)
    for py, (y0, i0, rows) in enumerate(first_rows):
        for px, (x0, j0, columns) in enumerate(first_columns):
            phase = made[i0:i0 + rows, :, j0:j0 + columns, py, px]  # (rows, count, columns, cg)
            expected[1:, cg:, y0:y0 + 2 * rows:2, x0:x0 + 2 * columns:2] = phase.transpose(1, 3, 0, 2)
    assert np.array_equal(_bits(out), _bits(expected))
    assert np.signbit(out[1, cg, 0, 1]) and out[1, cg, 0, 1] == 0


def test_three_dimensions_and_other_blases_keep_numpys_adds(numba_kernels, monkeypatch) -> None:
    """Where ``backend.gemm_loops`` offers no loop (3-D; a BLAS whose GEMM is not found), numpy's
    path runs: its bits, and the loop never called."""
    from modelpack.nn.kernels import compiled_col2im

    looped: list[int] = []
    original = compiled_col2im.windows_2d
    monkeypatch.setattr(compiled_col2im, "windows_2d", lambda *args: looped.append(1) or original(*args))
    x, w, bias = _arrays((2, 4, 3, 4, 5), 2, (4, 2, 2), 1)
    g = Geometry((4, 2, 2), (2, 1, 2), (1, 0, 1), (1, 1, 1), 1)
    got = _forward("numba", x, w, bias, g, (0, 0, 1))
    assert np.array_equal(_bits(got), _bits(_forward("numpy", x, w, bias, g, (0, 0, 1))))
    x, w, bias = _arrays((3, 4, 5, 6), 2, (4, 4), 1)
    g = Geometry((4, 4), (2, 2), (1, 1), (1, 1), 1)
    monkeypatch.setattr(blas, "_sgemm", None)
    got = _forward("numba", x, w, bias, g, (1, 0))
    assert np.array_equal(_bits(got), _bits(_forward("numpy", x, w, bias, g, (1, 0))))
    assert not looped


def test_its_scratch_counts_against_the_budget(numba_kernels, monkeypatch) -> None:
    """The loop's columns and every phase's products (more than numpy's one phase's): charged
    before they are made, so a budget that holds what comes before but not them refuses."""
    from test_col2im import BY_WINDOWS, _limited

    from modelpack.errors import LimitError

    backend.use("numba")
    charged: list[tuple[int, str]] = []
    original = col2im.budget.charge
    monkeypatch.setattr(col2im.budget, "charge", lambda size, what: charged.append((size, what)) or original(size, what))
    made: list[int] = []
    from modelpack.nn.kernels import compiled_col2im as loop

    windows_2d = loop.windows_2d
    monkeypatch.setattr(loop, "windows_2d", lambda *args: made.append(args[5].nbytes + args[6].nbytes) or windows_2d(*args))
    layer, x = _limited(1 << 30, BY_WINDOWS)
    layer(x)
    at = [name for _, name in charged].index("its products")
    assert made and charged[at][0] >= sum(made)  # one thread here: its scratch, all of it
    before = sum(size for size, _ in charged[:at])
    layer, x = _limited(before + charged[at][0] // 2, BY_WINDOWS)
    with pytest.raises(LimitError, match=r"hostile\.mpk: .*its products"):
        layer(x)
