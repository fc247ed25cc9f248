"""``nn.kernels.col2im``: a strided col2im placed by phases (one GEMM and one add per block
shift) against the same sum placed tap by tap (``conv._col2im_last``, which the adjoint tests of
``test_conv`` check against the float64 reference); the two callers that take it (a transposed
convolution's forward, a strided convolution's input gradient) and those that do not; the
budget charges of the phases' buffers.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_conv import record_calls, use_numpy_kernels

from modelpack import nn
from modelpack.errors import LimitError
from modelpack.io.limits import Limits
from modelpack.nn.budget import ActivationBudget, limit_activations
from modelpack.nn.kernels import col2im, conv, transposed
from modelpack.nn.kernels.columns import Geometry, rows_of

# (input shape, output channels per group, kernel, strides, padding, output padding, groups)
GEOMETRIES = [
    ((1, 5, 3, 4), 3, (8, 8), (4, 4), (2, 2), (0, 0), 1),  # d2l's FCN upsampling, small: k = 2s
    ((3, 4, 5, 6), 2, (4, 4), (2, 2), (1, 1), (1, 0), 1),  # DCGAN's 4×4/2, an output padding
    ((2, 6, 5, 7), 2, (3, 3), (2, 2), (1, 0), (1, 1), 2),  # s does not divide k: zero taps
    ((2, 4, 5, 6), 3, (3, 5), (2, 3), (0, 2), (1, 2), 2),  # a stride per axis
    ((4, 6, 9), 4, (4,), (2,), (1,), (0,), 3),  # 1-D
    ((2, 4, 3, 4, 5), 2, (3, 2, 3), (2, 2, 3), (1, 0, 1), (0, 1, 2), 1),  # 3-D
    ((2, 3, 4, 4), 2, (2, 2), (3, 3), (0, 0), (2, 1), 1),  # s > k: no two taps meet
    ((2, 4, 1, 2), 2, (8, 4), (4, 2), (3, 1), (0, 0), 2),  # by windows, 2 outputs of 4 phases: empty ones
]


def _arrays(shape: tuple[int, ...], og: int, kernel: tuple[int, ...], groups: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(len(shape) * 10 + sum(kernel))
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((shape[1], og, *kernel)).astype(np.float32)
    return x, w


@pytest.mark.parametrize(("shape", "og", "kernel", "strides", "padding", "output_padding", "groups"), GEOMETRIES)
def test_phases_place_what_the_taps_place(shape, og, kernel, strides, padding, output_padding, groups,
                                          monkeypatch) -> None:
    """The same output as tap by tap (float32, within 1e-5: a GEMM of several taps' columns may
    round apart from one tap's), at any block size (one example at a time, or all)."""
    use_numpy_kernels(monkeypatch)
    x, w = _arrays(shape, og, kernel, groups)
    g = Geometry(kernel, strides, padding, (1,) * len(kernel), groups)
    full, sizes = transposed.transpose_sizes(x.shape[2:], g, output_padding)
    taps = conv._col2im_last(rows_of(x, groups), w, g, len(x), x.shape[2:], full, padding, sizes, "its output")
    phases = record_calls(monkeypatch, col2im, "by_phases")
    windows = record_calls(monkeypatch, col2im, "by_windows")
    whole = transposed.transpose_forward(x, w, None, g, output_padding)
    assert phases, "a strided, undilated transposed convolution goes by phases"
    assert bool(windows) == col2im.windows_usable(g)  # (which geometries: test_windows_where_they_win)
    np.testing.assert_allclose(whole, taps, rtol=1e-5, atol=1e-5)
    monkeypatch.setattr(col2im, "_BLOCK_BYTES", 1)  # one example a block
    monkeypatch.setattr(col2im, "_WINDOW_BLOCK_BYTES", 1)
    np.testing.assert_allclose(transposed.transpose_forward(x, w, None, g, output_padding), whole,
                               rtol=1e-5, atol=1e-5)
    bias = np.random.default_rng(1).standard_normal(w.shape[1] * groups).astype(np.float32)
    np.testing.assert_allclose(transposed.transpose_forward(x, w, bias, g, output_padding),
                               whole + bias.reshape(1, -1, *(1,) * len(kernel)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("shape", "og", "kernel", "strides", "padding", "output_padding", "groups"), GEOMETRIES)
def test_the_inputs_view_places_what_its_rows_place(shape, og, kernel, strides, padding, output_padding, groups,
                                                    monkeypatch) -> None:
    """A transposed convolution hands ``by_phases`` its input as a (G, N, P, C/G) view, not
    copied to ``rows_of``'s (G, N·P, C/G): the same output (within 1e-5, a GEMM per example
    may round apart from one over the block), by phases and by windows."""
    use_numpy_kernels(monkeypatch)
    x, w = _arrays(shape, og, kernel, groups)
    g = Geometry(kernel, strides, padding, (1,) * len(kernel), groups)
    full, sizes = transposed.transpose_sizes(x.shape[2:], g, output_padding)
    view = x.reshape(len(x), groups, shape[1] // groups, -1).transpose(1, 0, 3, 2)
    assert np.shares_memory(view, x)
    for block_bytes in (col2im._BLOCK_BYTES, 1):
        monkeypatch.setattr(col2im, "_BLOCK_BYTES", block_bytes)
        from_rows = col2im.by_phases(rows_of(x, groups), w, None, g, x.shape[2:], full, sizes, "its output")
        np.testing.assert_allclose(col2im.by_phases(view, w, None, g, x.shape[2:], full, sizes, "its output"),
                                   from_rows, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("threads", [2, 3])
def test_windows_split_over_threads_place_what_the_taps_place(threads, monkeypatch) -> None:
    """``by_windows`` with its batch split over the threads (forced), each thread padding its own
    examples: every example as tap by tap (within 1e-5), an odd batch's last chunk included."""
    from modelpack.nn.kernels import parallel

    use_numpy_kernels(monkeypatch)
    monkeypatch.setattr(parallel, "SPLIT_MIN_WORK", 0)
    monkeypatch.setattr(col2im, "_WINDOW_BLOCK_BYTES", 1)  # one example a block
    x, w = _arrays((5, 4, 3, 5), 3, (4, 4), 1)
    g = Geometry((4, 4), (2, 2), (1, 1), (1, 1), 1)
    full, sizes = transposed.transpose_sizes(x.shape[2:], g, (1, 0))
    taps = conv._col2im_last(rows_of(x, 1), w, g, len(x), x.shape[2:], full, (1, 1), sizes, "its output")
    windows = record_calls(monkeypatch, col2im, "by_windows")
    before = parallel.threads()
    try:
        parallel.set_threads(threads)
        out = transposed.transpose_forward(x, w, None, g, (1, 0))
    finally:
        parallel.set_threads(before)
    assert windows
    np.testing.assert_allclose(out, taps, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("strides", "dilation"), [((1, 1), (1, 1)), ((2, 2), (2, 1))])
def test_unit_strides_and_dilation_go_tap_by_tap(strides, dilation, monkeypatch) -> None:
    use_numpy_kernels(monkeypatch)
    x, w = _arrays((2, 3, 4, 5), 2, (3, 3), 1)
    phases = record_calls(monkeypatch, col2im, "by_phases")
    taps = record_calls(monkeypatch, transposed, "_col2im_last")
    transposed.transpose_forward(x, w, None, Geometry((3, 3), strides, (1, 1), dilation), (0, 0))
    assert taps and not phases


@pytest.mark.parametrize(("kernel", "strides", "padding", "groups"),
                         [((3, 3), (2, 2), (1, 1), 1), ((1, 1), (2, 2), (0, 0), 1), ((3,), (2,), (1,), 2),
                          ((3, 2, 3), (2, 1, 2), (1, 0, 1), 1),
                          ((2, 2), (2, 2), (0, 0), 1), ((4,), (2,), (1,), 2), ((4, 4), (2, 2), (1, 1), 2),
                          ((4, 2, 2), (2, 1, 2), (1, 0, 1), 1)])
def test_a_strided_convolutions_input_gradient_goes_by_phases(kernel, strides, padding, groups, monkeypatch) -> None:
    """The input's gradient of a strided convolution laid out channels last (a ResNet stage's
    3×3/2 and its 1×1/2 shortcut, grouped 1-D, 3-D, 2×2/2, DCGAN's 4/2 in 1-D; by windows:
    DCGAN's discriminator 4×4/2 grouped, 3-D): by phases, as the taps place it."""
    use_numpy_kernels(monkeypatch)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, *(7,) * len(kernel))).astype(np.float32)
    w = rng.standard_normal((6, 4 // groups, *kernel)).astype(np.float32)
    g = Geometry(kernel, strides, padding, (1,) * len(kernel), groups)
    out, saved = conv.forward(x, w, None, g, last=True)
    grad = rng.standard_normal(out.shape).astype(np.float32)
    phases = record_calls(monkeypatch, col2im, "by_phases")
    grad_x, _ = conv.backward(grad, saved, w, g, need_weight=False)
    assert phases, "a strided convolution's input gradient goes by phases"
    full = tuple(n + 2 * p for n, p in zip(x.shape[2:], padding, strict=True))
    taps = conv._col2im_last(rows_of(grad, groups), w, g, len(x), out.shape[2:], full, padding, x.shape[2:], "x")
    np.testing.assert_allclose(grad_x, taps, rtol=1e-5, atol=1e-5)


# (kernel, stride, padding) of a transposed convolution on 1×8×4×4: d2l's FCN upsampling,
# smaller, whose stride does not divide its kernel (by shifts), and a 4×4 at stride 2 (by windows).
BY_SHIFTS, BY_WINDOWS = (33, 16, 8), (4, 2, 1)


def _limited(limit: int, geometry: tuple[int, int, int]) -> tuple[nn.Conv2DTranspose, np.ndarray]:
    """The layer of ``geometry``, its model's forward limited to ``limit`` bytes of activations."""
    kernel, stride, padding = geometry
    layer = nn.Conv2DTranspose(8, kernel, strides=stride, padding=padding, in_channels=8)
    layer.initialize(seed=0)
    limit_activations(layer, ActivationBudget("hostile.mpk", Limits(max_activation_bytes=limit)))
    return layer, np.ones((1, 8, 4, 4), np.float32)


@pytest.mark.parametrize(("geometry", "what"), [
    (BY_SHIFTS, "its weights by phase"), (BY_SHIFTS, "its products"), (BY_SHIFTS, "the sums it adds into"),
    (BY_WINDOWS, "its weights by phase"), (BY_WINDOWS, "its input padded for windows"),
    (BY_WINDOWS, "its products"),
])
def test_its_buffers_count_against_the_budget(geometry, what, monkeypatch) -> None:
    """The weight laid out by phase; by shifts, a block's products (16 positions × 256 phases ×
    8 channels: 128 KB) and its sums (5×16 by 5×16 positions, 8 channels: 200 KB); by windows,
    the padded input and a block's columns and products: each is charged before it is made,
    so a budget that holds what comes before but not it refuses the call, naming it and the file."""
    use_numpy_kernels(monkeypatch)
    charged: list[tuple[int, str]] = []
    original = col2im.budget.charge
    monkeypatch.setattr(col2im.budget, "charge", lambda size, what: charged.append((size, what)) or original(size, what))
    layer, x = _limited(1 << 30, geometry)
    layer(x)
    at = [name for _, name in charged].index(what)
    before = sum(size for size, _ in charged[:at])
    layer, x = _limited(before + charged[at][0] // 2, geometry)
    with pytest.raises(LimitError, match=rf"hostile\.mpk: .*{what}"):
        layer(x)


@pytest.mark.parametrize(("kernel", "strides", "expected"), [
    ((4, 4), (2, 2), True), ((4, 1), (2, 1), True), ((4, 2, 2), (2, 1, 2), True),
    ((4,), (2,), False),  # 1-D: two shifts' adds cost less than the windows' copy
    ((3, 3), (2, 2), False),  # the stride does not divide the kernel: zero taps in the windows
    ((2, 2), (2, 2), False),  # a window of one input: by_phases' one GEMM and one add
    ((64, 64), (32, 32), False),  # 1,024 phases, a placing call each
])
def test_windows_where_they_win(kernel, strides, expected) -> None:
    g = Geometry(kernel, strides, (0,) * len(kernel), (1,) * len(kernel), 1)
    assert col2im.windows_usable(g) is expected
