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
    whole = transposed.transpose_forward(x, w, None, g, output_padding)
    assert phases, "a strided, undilated transposed convolution goes by phases"
    np.testing.assert_allclose(whole, taps, rtol=1e-5, atol=1e-5)
    monkeypatch.setattr(col2im, "_BLOCK_BYTES", 1)  # one example a block
    np.testing.assert_allclose(transposed.transpose_forward(x, w, None, g, output_padding), whole,
                               rtol=1e-5, atol=1e-5)


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
                          ((3, 2, 3), (2, 1, 2), (1, 0, 1), 1)])
def test_a_strided_convolutions_input_gradient_goes_by_phases(kernel, strides, padding, groups, monkeypatch) -> None:
    """The input's gradient of a strided convolution laid out channels last (a ResNet stage's
    3×3/2 and its 1×1/2 shortcut, grouped 1-D, 3-D): by phases, as the taps place it."""
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


def _limited_fcn(limit: int) -> tuple[nn.Conv2DTranspose, np.ndarray]:
    """A 32×32 kernel at stride 16 on 1×8×4×4 (the FCN's upsampling, smaller), its model's
    forward limited to ``limit`` bytes of activations."""
    layer = nn.Conv2DTranspose(8, 32, strides=16, padding=8, in_channels=8)
    layer.initialize(seed=0)
    limit_activations(layer, ActivationBudget("hostile.mpk", Limits(max_activation_bytes=limit)))
    return layer, np.ones((1, 8, 4, 4), np.float32)


def test_its_weights_by_phase_count_against_the_budget(monkeypatch) -> None:
    """The weight laid out by phase (as large as the weight, ~260 KB here) is charged before it
    is made, naming the file."""
    use_numpy_kernels(monkeypatch)
    layer, x = _limited_fcn(128 << 10)
    with pytest.raises(LimitError, match=r"hostile\.mpk: .*its weights by phase"):
        layer(x)


@pytest.mark.parametrize("what", ["its products", "the sums it adds into"])
def test_its_blocks_count_against_the_budget(what, monkeypatch) -> None:
    """A block's products (16 positions × 256 phases × 8 channels: 128 KB) and its sums
    (5×16 by 5×16 positions, 8 channels: 200 KB) are charged before they are made: a budget
    that holds what comes before but not them refuses the call, naming them."""
    use_numpy_kernels(monkeypatch)
    charged: list[tuple[int, str]] = []
    original = col2im.budget.charge
    monkeypatch.setattr(col2im.budget, "charge", lambda size, what: charged.append((size, what)) or original(size, what))
    layer, x = _limited_fcn(1 << 30)
    layer(x)
    at = [name for _, name in charged].index(what)
    before = sum(size for size, _ in charged[:at])
    layer, x = _limited_fcn(before + charged[at][0] // 2)
    with pytest.raises(LimitError, match=rf"hostile\.mpk: .*{what}"):
        layer(x)
