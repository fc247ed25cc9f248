"""``nn.kernels.winograd3d`` (k×3×3 on F(4×4, 3×3), the depth taps in the GEMMs' reduction)
against the float64 tap-by-tap reference of ``test_conv``, and the dispatch that sends a
Conv3D's inference calls, training forwards and both gradients there.

Tolerance: float32 within ``test_conv.assert_near``'s ``atol=1e-4·scale, rtol=1e-4``, as for
``winograd``: its transforms make the error about ten times im2col's (measured ~7e-6 of the
largest value on 32 → 32 channels, 864-term sums, forward and both gradients). float64 within
1e-10 of the largest value: the same arithmetic, rounded at float64.
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

from modelpack import autograd, nn
from modelpack.nn.kernels import backend, parallel, shifted, winograd3d
from modelpack.nn.kernels import conv as kernels


def _arrays(seed: int, batch: int, c: int, o: int, sizes: tuple[int, ...], depth_taps: int = 3,
            dtype: type = np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, c, *sizes)).astype(dtype)
    w = rng.standard_normal((o, c, depth_taps, 3, 3)).astype(dtype)
    return x, w, rng.standard_normal(o).astype(dtype)


def _geometry(padding: tuple[int, int, int], depth_taps: int = 3) -> kernels.Geometry:
    return kernels.Geometry((depth_taps, 3, 3), (1, 1, 1), padding, (1, 1, 1))


# (batch, channels in, out, input sizes, padding, depth taps): odd sizes and cut tiles, batch
# 1, a single position, padding wider than the kernel's reach (slices of zeros only), depth
# kernels of 1, 2 and 5 taps.
SHAPES = [
    (3, 4, 5, (5, 8, 8), (1, 1, 1), 3),
    (2, 3, 2, (4, 7, 5), (0, 0, 0), 3),
    (1, 2, 3, (3, 3, 3), (1, 1, 1), 3),
    (1, 3, 2, (1, 1, 1), (1, 1, 1), 3),
    (2, 2, 3, (2, 4, 9), (3, 2, 0), 3),
    (4, 5, 4, (6, 13, 4), (0, 1, 2), 1),
    (2, 3, 3, (5, 6, 6), (1, 1, 1), 2),
    (2, 2, 2, (7, 5, 5), (2, 1, 1), 5),
]


@pytest.mark.parametrize(("batch", "c", "o", "sizes", "padding", "taps"), SHAPES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_forward_matches_the_reference(batch, c, o, sizes, padding, taps, with_bias) -> None:
    g = _geometry(padding, taps)
    x, w, bias = _arrays(sum(sizes) + c, batch, c, o, sizes, taps)
    out = winograd3d.forward(x, w, bias if with_bias else None, g, g.out_sizes(sizes))
    expected = reference_forward(x, w, g)
    if with_bias:
        expected += bias.reshape(1, -1, 1, 1, 1)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    assert_near(out, expected)


@pytest.mark.parametrize(("batch", "c", "o", "sizes", "padding", "taps"), SHAPES)
def test_the_weight_gradient_matches_the_reference(batch, c, o, sizes, padding, taps) -> None:
    g = _geometry(padding, taps)
    x, w, _ = _arrays(sum(sizes) + o, batch, c, o, sizes, taps)
    grad = np.random.default_rng(1).standard_normal((batch, o, *g.out_sizes(sizes))).astype(np.float32)
    grad_w = winograd3d.weight_grad(grad, x, g, w.shape)
    assert grad_w.dtype == np.float32 and grad_w.shape == w.shape and grad_w.flags.c_contiguous
    assert_near(grad_w, reference_backward(x, w, grad, g)[1])


def test_float64_is_exact_to_its_rounding() -> None:
    g = _geometry((1, 1, 1))
    x, w, bias = _arrays(7, 3, 5, 4, (4, 9, 6), dtype=np.float64)
    out = winograd3d.forward(x, w, bias, g, g.out_sizes((4, 9, 6)))
    expected = reference_forward(x, w, g) + bias.reshape(1, -1, 1, 1, 1)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-10 * np.abs(expected).max())
    grad = np.random.default_rng(2).standard_normal(out.shape)
    grad_w, expected_w = winograd3d.weight_grad(grad, x, g, w.shape), reference_backward(x, w, grad, g)[1]
    np.testing.assert_allclose(grad_w, expected_w, rtol=0, atol=1e-10 * np.abs(expected_w).max())


@pytest.mark.parametrize(("block_values", "min_items"), [(1, 4), (36 * 6 * 9 * 4, 4), (36 * 6 * 9 * 6, 4),
                                                         (1 << 20, 1), (1 << 20, 4)])
def test_items_and_threads_agree(monkeypatch, block_values, min_items) -> None:
    """Items of one output depth, of a few (runs of 3 and 2, of 2, 2 and 1: a short last run
    after a longer one in the same scratch), of whole examples (several an item, a short last
    one), on 1 and 2 threads (the split forced): the results equal the
    reference, and the thread counts agree (the items are the same whatever the count; bit
    for bit where the BLAS allows, ``assert_split_equal``)."""
    monkeypatch.setattr(winograd3d, "BLOCK_VALUES", block_values)
    monkeypatch.setattr(winograd3d, "MIN_ITEMS", min_items)
    monkeypatch.setattr(parallel, "SPLIT_MIN_WORK", 0)
    g = _geometry((1, 1, 1))
    x, w, bias = _arrays(3, 7, 6, 4, (5, 9, 10))
    grad = np.random.default_rng(4).standard_normal((7, 4, 5, 9, 10)).astype(np.float32)
    before, outs, grads = parallel.threads(), [], []
    try:
        for threads in (1, 2):
            parallel.set_threads(threads)
            outs.append(winograd3d.forward(x, w, bias, g, (5, 9, 10)))
            grads.append(winograd3d.weight_grad(grad, x, g, w.shape))
    finally:
        parallel.set_threads(before)
    assert_near(outs[0], reference_forward(x, w, g) + bias.reshape(1, -1, 1, 1, 1))
    assert_near(grads[0], reference_backward(x, w, grad, g)[1])
    assert_split_equal(outs[1], outs[0])
    assert_split_equal(grads[1], grads[0])


@pytest.mark.parametrize(("c", "strides", "dilation", "groups", "kernel", "taken"), [
    (16, (1, 1, 1), (1, 1, 1), 1, (3, 3, 3), True),
    (16, (1, 1, 1), (1, 1, 1), 1, (1, 3, 3), True),
    (8, (1, 1, 1), (1, 1, 1), 1, (3, 3, 3), False),  # too few channels: the transforms cost what they save
    (16, (2, 2, 2), (1, 1, 1), 1, (3, 3, 3), False),
    (16, (1, 1, 1), (2, 1, 1), 1, (3, 3, 3), False),
    (16, (1, 1, 1), (1, 1, 1), 2, (3, 3, 3), False),
    (16, (1, 1, 1), (1, 1, 1), 1, (3, 3, 1), False),
])
@pytest.mark.parametrize("training", [False, True])
def test_the_dispatch(monkeypatch, c, strides, dilation, groups, kernel, taken, training) -> None:
    """Inference calls and training forwards of 3-D k×3×3 stride-1 ungrouped convolutions
    with enough channels come here, and a training forward's backward too: the weight's
    gradient in the same tiles, the input's the flipped kernel's forward."""
    use_numpy_kernels(monkeypatch)
    forwards = record_calls(monkeypatch, winograd3d, "forward")
    weight_grads = record_calls(monkeypatch, winograd3d, "weight_grad")
    g = kernels.Geometry(kernel, strides, tuple(k // 2 for k in kernel), dilation, groups)
    x, _, bias = _arrays(c, 2, c, 16, (4, 6, 6))
    w = np.random.default_rng(5).standard_normal((16, c // groups, *kernel)).astype(np.float32)
    out, saved = kernels.forward(x, w, bias, g, backward=training)
    assert bool(forwards) == taken
    assert_near(out, reference_forward(x, w, g) + bias.reshape(1, -1, 1, 1, 1))
    if training:
        grad = np.random.default_rng(6).standard_normal(out.shape).astype(np.float32)
        grad_x, grad_w = kernels.backward(grad, saved, w, g)
        assert saved.winograd == taken
        assert forwards == ([x.shape, grad.shape] if taken else [])
        assert weight_grads == ([grad.shape] if taken else [])
        expected_x, expected_w = reference_backward(x, w, grad, g)
        assert_near(grad_x, expected_x)
        assert_near(grad_w, expected_w)


def test_padding_past_the_kernels_reach_trains_elsewhere(monkeypatch) -> None:
    """A training forward whose input gradient is not the flipped convolution (padding of 3
    on a 3-tap axis) stays on the other paths; its inference call still comes here."""
    use_numpy_kernels(monkeypatch)
    calls = record_calls(monkeypatch, winograd3d, "forward")
    g = _geometry((3, 1, 1))
    x, w, _ = _arrays(8, 2, 16, 16, (2, 5, 5))
    kernels.forward(x, w, None, g, backward=False)
    assert len(calls) == 1
    out, saved = kernels.forward(x, w, None, g)
    assert not saved.winograd
    grad = np.random.default_rng(9).standard_normal(out.shape).astype(np.float32)
    expected_x, expected_w = reference_backward(x, w, grad, g)
    grad_x, grad_w = kernels.backward(grad, saved, w, g)
    assert_near(grad_x, expected_x)
    assert_near(grad_w, expected_w)


def test_its_input_gradient_never_falls_to_columns_it_did_not_save(monkeypatch) -> None:
    """The forward saved its input, not im2col's columns: where the flipped convolution is not
    ``winograd3d``'s and ``shifted`` declines it, the input's gradient is still computed (on
    im2col's GEMM of the flipped kernel), never left out."""
    use_numpy_kernels(monkeypatch)
    real = winograd3d.usable
    monkeypatch.setattr(winograd3d, "usable", lambda x, weight, g: real(x, weight, g) and x.shape[1] == 16)
    monkeypatch.setattr(shifted, "MIN_CHANNELS", 1 << 20)
    g = _geometry((1, 1, 1))
    x, w, _ = _arrays(10, 2, 16, 24, (3, 6, 6))
    out, saved = kernels.forward(x, w, None, g)
    assert saved.winograd
    grad = np.random.default_rng(10).standard_normal(out.shape).astype(np.float32)
    expected_x, expected_w = reference_backward(x, w, grad, g)
    grad_x, grad_w = kernels.backward(grad, saved, w, g)
    assert grad_x is not None
    assert_near(grad_x, expected_x)
    assert_near(grad_w, expected_w)


def test_a_conv3d_layer_trains_here_on_either_kernels(monkeypatch) -> None:
    """The layer's forward and gradients (input, weight, bias) go through this module on
    both kernel sets (numba when installed), equal to the reference and to each other's bits."""
    choices = ["numpy", "numba"] if backend.available() else ["numpy"]
    before = backend.name()
    calls = record_calls(monkeypatch, winograd3d, "weight_grad")
    layer = nn.Conv3D(16, 3, padding=1, in_channels=16)
    layer.initialize(init="xavier", seed=0)
    x, _, _ = _arrays(11, 2, 16, 16, (3, 7, 5))
    head = np.random.default_rng(12).standard_normal((2, 16, 3, 7, 5)).astype(np.float32)
    results = []
    try:
        for choice in choices:
            backend.use(choice)
            source = autograd.Variable(x)
            with autograd.record():
                out = layer(source)
            out.backward(head)
            results.append([np.asarray(out), source.grad, layer.weight.grad().copy(), layer.bias.grad().copy()])
    finally:
        backend.use(before)
    assert calls == [head.shape] * len(choices)
    w, g = layer.weight.data(), layer._geometry()
    out, grad_x, grad_w, grad_b = results[0]
    assert_near(out, reference_forward(x, w, g) + layer.bias.data().reshape(1, -1, 1, 1, 1))
    expected_x, expected_w = reference_backward(x, w, head, g)
    assert_near(grad_x, expected_x)
    assert_near(grad_w, expected_w)
    assert_near(grad_b, head.sum(axis=(0, 2, 3, 4)))
    for other in results[1:]:
        for ours, theirs in zip(results[0], other, strict=True):
            np.testing.assert_array_equal(ours, theirs)


def test_its_tiles_count_against_the_budget() -> None:
    """A hostile padding: the padded planes and tiles are refused before they are allocated,
    naming the file."""
    layer = nn.Conv3D(16, 3, padding=2000, in_channels=16)
    layer.initialize(seed=0)
    x = np.ones((1, 16, 1, 1, 1), np.float32)
    g = layer._geometry()
    assert winograd3d.usable(x, layer.weight.data(), g)
    assert_refused_by_budget(layer, x, 2**24, r"its Winograd tiles",
                             lambda: winograd3d.forward(x, layer.weight.data(), None, g, g.out_sizes((1, 1, 1))))
