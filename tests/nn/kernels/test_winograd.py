"""``nn.kernels.winograd`` (F(4×4, 3×3)) against the float64 tap-by-tap reference of
``test_conv``, and the dispatch that sends inference calls and input gradients there.

Tolerance: float32 within ``test_conv.assert_near``'s ``atol=1e-4·scale, rtol=1e-4``. The
transforms' coefficients (up to 8 in Aᵀ, 1/24 in G) make the error about ten times im2col's:
measured ~6e-6 of the largest output on 128 channels (1,152-term sums), under the 1e-4 stated.
float64 within 1e-10 of the largest value: the same arithmetic, rounded at float64.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_conv import (
    assert_near,
    assert_refused_by_budget,
    assert_split_equal,
    record_calls,
    reference_backward,
    reference_forward,
    use_numpy_kernels,
)

from modelpack import nn
from modelpack.nn.kernels import backend, parallel, winograd
from modelpack.nn.kernels import conv as kernels


def _arrays(seed: int, batch: int, c: int, o: int, sizes: tuple[int, int], dtype: type = np.float32
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, c, *sizes)).astype(dtype)
    w = rng.standard_normal((o, c, 3, 3)).astype(dtype)
    return x, w, rng.standard_normal(o).astype(dtype)


@pytest.fixture(params=["numpy", "numba"])
def transforms(request, monkeypatch) -> str:
    """Each side of the transforms: numpy's GEMMs, and numba's loops (``compiled_winograd``,
    skipped without the accel extra)."""
    if request.param == "numba":
        request.getfixturevalue("numba_kernels")
        backend.use("numba")
    else:
        use_numpy_kernels(monkeypatch)
    return request.param


@pytest.mark.parametrize("padding", [(1, 1), (0, 0), (2, 1), (0, 2), (5, 3)])
@pytest.mark.parametrize(("batch", "c", "o", "sizes"), [
    (3, 4, 5, (8, 8)), (2, 3, 2, (7, 5)), (1, 2, 3, (3, 3)), (4, 6, 4, (13, 4)), (2, 1, 1, (4, 9)),
])
@pytest.mark.parametrize("with_bias", [True, False])
def test_forward_matches_the_reference(transforms, padding, batch, c, o, sizes, with_bias) -> None:
    """Any padding, sizes that are not whole tiles (the last row and column of tiles cut),
    with or without a bias; a C-contiguous float32 output."""
    g = kernels.Geometry((3, 3), (1, 1), padding, (1, 1))
    x, w, bias = _arrays(sum(sizes) + c, batch, c, o, sizes)
    out = winograd.forward(x, w, bias if with_bias else None, g, g.out_sizes(sizes))
    expected = reference_forward(x, w, g)
    if with_bias:
        expected += bias.reshape(1, -1, 1, 1)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    assert_near(out, expected)


def test_float64_is_exact_to_its_rounding(transforms) -> None:
    """(numpy's transforms, whichever kernels are in use: the compiled ones are float32's.)"""
    g = kernels.Geometry((3, 3), (1, 1), (1, 1), (1, 1))
    x, w, bias = _arrays(7, 3, 5, 4, (9, 6), np.float64)
    out = winograd.forward(x, w, bias, g, g.out_sizes((9, 6)))
    expected = reference_forward(x, w, g) + bias.reshape(1, -1, 1, 1)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-10 * np.abs(expected).max())


@pytest.mark.parametrize("block_values", [1, 36 * 4 * 9 * 2, 1 << 20])
def test_blocks_of_examples_and_threads_agree(transforms, monkeypatch, block_values) -> None:
    """Blocks of one, two (a short last one) or all of a thread's examples, on 1 and 2 threads
    (the split forced): every example equals the reference, and the thread counts agree
    (bit for bit where the BLAS allows, ``assert_split_equal``)."""
    monkeypatch.setattr(winograd, "BLOCK_VALUES", block_values)
    monkeypatch.setattr(parallel, "SPLIT_MIN_WORK", 0)
    g = kernels.Geometry((3, 3), (1, 1), (1, 1), (1, 1))
    x, w, bias = _arrays(3, 7, 9, 4, (11, 12))
    before, outs = parallel.threads(), []
    try:
        for threads in (1, 2):
            parallel.set_threads(threads)
            outs.append(winograd.forward(x, w, bias, g, (11, 12)))
    finally:
        parallel.set_threads(before)
    assert_near(outs[0], reference_forward(x, w, g) + bias.reshape(1, -1, 1, 1))
    assert_split_equal(outs[1], outs[0])


@pytest.mark.parametrize(("c", "strides", "dilation", "groups", "kernel", "taken"), [
    (32, (1, 1), (1, 1), 1, (3, 3), True),
    (16, (1, 1), (1, 1), 1, (3, 3), False),  # too few channels: the transforms cost what they save
    (32, (2, 2), (1, 1), 1, (3, 3), False),
    (32, (1, 1), (2, 2), 1, (3, 3), False),
    (32, (1, 1), (1, 1), 2, (3, 3), False),
    (32, (1, 1), (1, 1), 1, (3, 2), False),
])
def test_the_inference_dispatch(monkeypatch, c, strides, dilation, groups, kernel, taken) -> None:
    use_numpy_kernels(monkeypatch)
    monkeypatch.setattr(winograd, "MIN_TILES", 1)  # (the shapes' rules, on a small batch)
    calls = record_calls(monkeypatch, winograd, "forward")
    g = kernels.Geometry(kernel, strides, (1, 1), dilation, groups)
    rng = np.random.default_rng(c)
    x = rng.standard_normal((2, c, 8, 8)).astype(np.float32)
    w = rng.standard_normal((32, c // groups, *kernel)).astype(np.float32)
    out = kernels.forward(x, w, None, g, backward=False)[0]
    assert bool(calls) == taken
    assert_near(out, reference_forward(x, w, g))


def test_the_compiled_transforms_hold_winograds_matrices(numba_kernels) -> None:
    """``compiled_winograd`` writes Bᵀ's and Aᵀ's entries out as arithmetic: column by column
    they are ``winograd.BT``'s and ``winograd.AT``'s."""
    from modelpack.nn.kernels import compiled_winograd

    for j, unit in enumerate(np.eye(6, dtype=np.float32)):
        assert list(compiled_winograd._bt.py_func(*unit)) == list(winograd.BT[:, j])
        assert list(compiled_winograd._at.py_func(*unit)) == list(winograd.AT[:, j])


def test_the_compiled_transforms_give_numpys_results(numba_kernels, monkeypatch) -> None:
    """The same blocks and GEMMs, the transforms' sums in another order: equal to float32
    rounding (against each other, as against the reference)."""
    g = kernels.Geometry((3, 3), (1, 1), (1, 1), (1, 1))
    x, w, bias = _arrays(11, 5, 24, 20, (18, 13))
    backend.use("numba")
    from modelpack.nn.kernels import compiled_winograd  # (numba's: imported once it is there)

    calls = record_calls(monkeypatch, compiled_winograd, "input_tiles")
    compiled = winograd.forward(x, w, bias, g, (18, 13))
    assert calls
    use_numpy_kernels(monkeypatch)
    assert_near(compiled, winograd.forward(x, w, bias, g, (18, 13)))


@pytest.mark.parametrize(("transforms", "c", "taken"), [
    ("numpy", 16, False), ("numba", 16, True), ("numba", 8, False),
], indirect=["transforms"])
def test_with_the_compiled_transforms_sixteen_channels_take_it(transforms, monkeypatch, c, taken) -> None:
    monkeypatch.setattr(winograd, "MIN_TILES", 1)
    calls = record_calls(monkeypatch, winograd, "forward")
    g = kernels.Geometry((3, 3), (1, 1), (1, 1), (1, 1))
    x, w, _ = _arrays(c, 2, c, c, (8, 8))
    out = kernels.forward(x, w, None, g, backward=False)[0]
    assert bool(calls) == taken
    assert_near(out, reference_forward(x, w, g))


@pytest.mark.parametrize(("transforms", "c", "padding", "taken"), [
    ("numba", 32, (1, 1), True), ("numba", 48, (0, 2), True), ("numba", 16, (1, 1), False),
    ("numpy", 32, (1, 1), False),
], indirect=["transforms"])
def test_a_training_forward_takes_it_on_the_compiled_transforms(transforms, monkeypatch, c, padding, taken) -> None:
    """Its forward, then the backward's own columns for the weight's gradient: both
    gradients equal the reference's (with numpy's transforms im2col keeps its columns)."""
    monkeypatch.setattr(winograd, "MIN_TILES", 1)
    calls = record_calls(monkeypatch, winograd, "forward")
    g = kernels.Geometry((3, 3), (1, 1), padding, (1, 1))
    x, w, bias = _arrays(c, 3, c, c, (9, 7))
    out, saved = kernels.forward(x, w, bias, g)
    assert (calls[:1] == [x.shape]) == taken
    assert_near(out, reference_forward(x, w, g) + bias.reshape(1, -1, 1, 1))
    grad = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    grad_x, grad_w = kernels.backward(grad, saved, w, g)
    expected_x, expected_w = reference_backward(x, w, grad, g)
    assert_near(grad_x, expected_x)
    assert_near(grad_w, expected_w)


@pytest.mark.parametrize(("c", "o", "side", "taken"), [(32, 32, 4, True), (32, 48, 8, True), (32, 16, 8, False)])
def test_the_input_gradient_is_the_flipped_winograd_forward(monkeypatch, c, o, side, taken) -> None:
    """A training forward's input gradient: the output's gradient correlated with the flipped
    kernel (here from ``o`` channels onto ``c``), both gradients equal to the reference."""
    use_numpy_kernels(monkeypatch)
    monkeypatch.setattr(winograd, "MIN_TILES", 1)
    calls = record_calls(monkeypatch, winograd, "forward")
    g = kernels.Geometry((3, 3), (1, 1), (1, 1), (1, 1))
    x, w, _ = _arrays(side, 3, c, o, (side, side))
    _, saved = kernels.forward(x, w, None, g)
    grad = np.random.default_rng(1).standard_normal((3, o, side, side)).astype(np.float32)
    grad_x, grad_w = kernels.backward(grad, saved, w, g)
    assert calls == ([grad.shape] if taken else [])
    expected_x, expected_w = reference_backward(x, w, grad, g)
    assert_near(grad_x, expected_x)
    assert_near(grad_w, expected_w)


def test_its_tiles_count_against_the_budget(transforms) -> None:
    """A hostile padding: the padded planes and tiles are refused before they are allocated,
    naming the file."""
    layer = nn.Conv2D(32, 3, padding=4000, in_channels=32)
    layer.initialize(seed=0)
    x = np.ones((2, 32, 1, 1), np.float32)
    g = layer._geometry()
    assert winograd.usable(x, layer.weight.data(), g)
    assert_refused_by_budget(layer, x, 2**24, r"its Winograd tiles",
                             lambda: winograd.forward(x, layer.weight.data(), None, g, g.out_sizes((1, 1))))


@pytest.mark.parametrize(("batch", "c", "o", "side", "threads", "taken"), [
    (2, 64, 64, 16, 2, True),  # 32 tiles, 64 channels, an example a thread
    (2, 64, 160, 16, 2, False),  # more than MAX_CHANNELS out: im2col's GEMM wins
    (2, 160, 64, 16, 2, False),  # more than MAX_CHANNELS in
    (7, 64, 64, 8, 2, False),  # 28 tiles: the weight's transform is not paid back
    (32, 64, 64, 4, 2, True),  # 32 tiles of one each
    (1, 64, 64, 32, 2, False),  # 64 tiles, but fewer examples than threads
    (1, 64, 64, 32, 1, True),
])
def test_it_is_taken_where_it_wins(monkeypatch, batch, c, o, side, threads, taken) -> None:
    """Winograd is taken for 32 to ``MAX_CHANNELS`` channels, ``MIN_TILES`` tiles or more in the
    batch and an example per thread at least; elsewhere the other paths, the same results."""
    use_numpy_kernels(monkeypatch)
    before = parallel.threads()
    parallel.set_threads(threads)
    try:
        calls = record_calls(monkeypatch, winograd, "forward")
        g = kernels.Geometry((3, 3), (1, 1), (1, 1), (1, 1))
        x, w, _ = _arrays(batch, batch, c, o, (side, side))
        out = kernels.forward(x, w, None, g, backward=False)[0]
    finally:
        parallel.set_threads(before)
    assert bool(calls) == taken
    assert_near(out, reference_forward(x, w, g))


def _gradient_case(seed: int, batch: int, c: int, o: int, sizes: tuple[int, int], padding: tuple[int, int]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, kernels.Geometry]:
    g = kernels.Geometry((3, 3), (1, 1), padding, (1, 1))
    x, w, _ = _arrays(seed, batch, c, o, sizes)
    grad = np.random.default_rng(seed + 1).standard_normal((batch, o, *g.out_sizes(sizes))).astype(np.float32)
    return x, w, grad, g


@pytest.mark.parametrize("padding", [(1, 1), (0, 0), (2, 1), (0, 2), (5, 3)])
@pytest.mark.parametrize(("batch", "c", "o", "sizes"), [
    (3, 4, 5, (8, 8)), (2, 3, 2, (7, 5)), (1, 2, 3, (3, 3)), (4, 6, 4, (13, 4)), (9, 5, 7, (6, 10)),
])
@pytest.mark.parametrize("min_tiles_per_run", [1, 1 << 20])
def test_the_gradients_match_the_reference(numba_kernels, monkeypatch, padding, batch, c, o, sizes,
                                           min_tiles_per_run) -> None:
    """The forward's transpose in Winograd's domain, in runs of the batch (a run's blocks on
    one thread) and in blocks split over the threads (few tiles): any padding (wider than the
    kernel's reach too: tiles wholly on it), sizes that are not whole tiles (the gradient's
    last tiles cut), both gradients equal to the float64 reference; without the input's, the
    same weight gradient bit for bit."""
    backend.use("numba")
    monkeypatch.setattr(winograd, "MIN_TILES_PER_RUN", min_tiles_per_run)
    x, w, grad, g = _gradient_case(sum(sizes) + c, batch, c, o, sizes, padding)
    grad_x, grad_w = winograd.gradients(grad, x, w, g)
    assert grad_w.dtype == np.float32 and grad_w.flags.c_contiguous
    assert grad_x is not None and grad_x.dtype == np.float32 and grad_x.shape == x.shape
    expected_x, expected_w = reference_backward(x, w, grad, g)
    assert_near(grad_x, expected_x)
    assert_near(grad_w, expected_w)
    alone, only_w = winograd.gradients(grad, x, w, g, need_x=False)
    assert alone is None
    np.testing.assert_array_equal(only_w.view(np.uint32), grad_w.view(np.uint32))


@pytest.mark.parametrize(("top", "left", "sizes"), [(1, 1, (8, 8)), (0, 0, (7, 5)), (2, 1, (5, 9)), (5, 3, (3, 3))])
def test_the_compiled_input_gradient_is_the_input_transforms_transpose(numba_kernels, top, left, sizes) -> None:
    """``input_gradient`` is ``input_tiles``'s adjoint: ⟨tiles(x), dV⟩ = ⟨x, input_gradient(dV)⟩
    for random x and dV (float64 sums of the float32 values, within float32 rounding), and it
    writes every value of its examples (none left from before) and no other example's."""
    from modelpack.nn.kernels import compiled_winograd

    rng = np.random.default_rng(sum(sizes) + top)
    batch, c = 3, 2
    out_sizes = (sizes[0] + 2 * top - 2, sizes[1] + 2 * left - 2)
    rows, cols = (-(-size // winograd.TILE) for size in out_sizes)
    x = rng.standard_normal((batch, c, *sizes)).astype(np.float32)
    tiles = np.empty((36, c, 2 * rows * cols), np.float32)
    compiled_winograd.input_tiles(x, 1, 2, top, left, rows, cols, tiles)
    dv = rng.standard_normal(tiles.shape).astype(np.float32)
    grad_x = np.full(x.shape, np.nan, np.float32)
    compiled_winograd.input_gradient(dv, 1, 2, top, left, rows, cols, grad_x)
    assert np.isnan(grad_x[0]).all() and not np.isnan(grad_x[1:]).any()
    forward = np.sum(tiles.astype(np.float64) * dv)
    transposed = np.sum(x[1:].astype(np.float64) * grad_x[1:])
    assert abs(forward - transposed) <= 1e-5 * np.sum(np.abs(tiles.astype(np.float64) * dv))


@pytest.mark.parametrize("min_tiles_per_run", [1, 1 << 20])
@pytest.mark.parametrize("block_values", [1, 36 * 11 * 12 * 3, 1 << 20])
def test_the_gradients_blocks_and_threads_agree(numba_kernels, monkeypatch, min_tiles_per_run,
                                                block_values) -> None:
    """Blocks of one example, of a few (a short last one) or of the whole batch, in runs or
    not, on 1 and 2 threads (the split forced): the reference's values, and the same bits at
    either thread count (the blocks and runs come from the shapes alone)."""
    backend.use("numba")
    monkeypatch.setattr(winograd, "MIN_TILES_PER_RUN", min_tiles_per_run)
    monkeypatch.setattr(winograd, "BLOCK_VALUES", block_values)
    monkeypatch.setattr(parallel, "SPLIT_MIN_WORK", 0)
    x, w, grad, g = _gradient_case(5, 7, 5, 6, (11, 12), (1, 1))
    before, results = parallel.threads(), []
    try:
        for threads in (1, 2):
            parallel.set_threads(threads)
            results.append(winograd.gradients(grad, x, w, g))
    finally:
        parallel.set_threads(before)
    expected_x, expected_w = reference_backward(x, w, grad, g)
    assert_near(results[0][0], expected_x)
    assert_near(results[0][1], expected_w)
    assert_split_equal(results[1][0], results[0][0])
    assert_split_equal(results[1][1], results[0][1])


@pytest.mark.parametrize(("transforms", "c", "o", "strides", "taken"), [
    ("numba", 32, 32, (1, 1), True),  # after Winograd's training forward
    ("numba", 16, 16, (1, 1), True),  # after ``shifted``'s deferred forward
    ("numba", 128, 16, (1, 1), True),
    ("numba", 160, 16, (1, 1), False),  # more than MAX_CHANNELS
    ("numba", 16, 64, (1, 1), False),  # im2col's forward, its columns kept
    ("numba", 8, 8, (1, 1), False),  # fewer than MIN_CHANNELS_COMPILED (the compiled loops take it)
    ("numba", 32, 32, (2, 2), False),
    ("numpy", 32, 32, (1, 1), False),
], indirect=["transforms"])
@pytest.mark.parametrize("need_x", [True, False])
def test_a_deferred_forwards_gradients_take_it(transforms, monkeypatch, c, o, strides, taken, need_x) -> None:
    """The backward of a training forward that kept its input (no columns): both gradients in
    Winograd's domain on the compiled transforms (the input's only when asked for), the
    reference's either way."""
    calls = record_calls(monkeypatch, winograd, "gradients")
    g = kernels.Geometry((3, 3), strides, (1, 1), (1, 1))
    x, w, bias = _arrays(c + o, 4, c, o, (12, 12))
    out, saved = kernels.forward(x, w, bias, g)
    grad = np.random.default_rng(2).standard_normal(out.shape).astype(np.float32)
    grad_x, grad_w = kernels.backward(grad, saved, w, g, need_x=need_x)
    assert bool(calls) == taken
    expected_x, expected_w = reference_backward(x, w, grad, g)
    if need_x:
        assert_near(grad_x, expected_x)
    else:
        assert grad_x is None
    assert_near(grad_w, expected_w)


def test_a_training_forward_and_its_backward_share_the_weights_transform(numba_kernels, monkeypatch) -> None:
    """The transform a training forward makes is kept for its backward's input gradient
    (``derived``, while the weight's bits stay): one transform a step, not two; after the
    weight changes, a fresh one."""
    backend.use("numba")
    calls = record_calls(monkeypatch, winograd, "transformed_weight")
    g = kernels.Geometry((3, 3), (1, 1), (1, 1), (1, 1))
    x, w, bias = _arrays(9, 8, 32, 32, (8, 8))  # 32 tiles: Winograd trains
    for step in range(2):
        out, saved = kernels.forward(x, w, bias, g)
        grad = np.ones(out.shape, np.float32)
        grad_x, grad_w = kernels.backward(grad, saved, w, g)
        assert len(calls) == step + 1
        assert_near(grad_x, reference_backward(x, w, grad, g)[0])
        w -= 0.01 * grad_w  # a step: the kept transform is stale
def test_the_compiled_gradient_transform_holds_winograds_matrix(numba_kernels) -> None:
    """``compiled_winograd._a`` writes A = Aᵀ's transpose out as arithmetic: row by row it is
    ``winograd.AT``'s columns."""
    from modelpack.nn.kernels import compiled_winograd

    for p, unit in enumerate(np.eye(4, dtype=np.float32)):
        assert list(compiled_winograd._a.py_func(*unit)) == list(winograd.AT[p])


@pytest.mark.parametrize("batch", [1, 4])
def test_the_weight_gradients_tiles_count_against_the_budget(numba_kernels, monkeypatch, batch) -> None:
    """A hostile padding: the tiles of the weight's gradient are refused before they are
    allocated, naming the file, in blocks (one example: one run) and in runs."""
    backend.use("numba")
    monkeypatch.setattr(winograd, "MIN_TILES_PER_RUN", 1)
    layer = nn.Conv2D(32, 3, padding=2000, in_channels=32)
    layer.initialize(seed=0)
    x = np.ones((batch, 32, 1, 1), np.float32)
    g = layer._geometry()
    grad = np.ones((batch, 32, *g.out_sizes((1, 1))), np.float32)
    assert winograd.gradients_usable(x, layer.weight.data(), g)
    assert_refused_by_budget(layer, x, 2**24, r"its Winograd tiles",
                             lambda: winograd.gradients(grad, x, layer.weight.data(), g))
