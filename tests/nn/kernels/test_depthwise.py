"""``nn.kernels.depthwise``: its padded planes (``padded_forward``, ``padded_backward``: any
stride, padding and dilation) against the float64 reference of ``test_conv`` (within its
tolerance); the same-size convolution on the unpadded planes (``forward``, each tap's weight
masked where it would read the padding) against the padded planes, whose products and order
of summation it keeps: the same bits, non-finite inputs included; and the dispatch that sends
inference calls and input gradients to each.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_conv import (
    assert_backward_near,
    assert_near,
    assert_refused_by_budget,
    backward_at_thread_counts,
    record_calls,
    reference_backward,
    reference_forward,
    use_numpy_kernels,
)
from test_shifted import stride_one

from modelpack import nn
from modelpack.nn.activations import in_place
from modelpack.nn.kernels import conv as kernels
from modelpack.nn.kernels import depthwise, parallel


@st.composite
def same_size(draw: st.DrawFn) -> tuple[kernels.Geometry, tuple[int, ...], int, int]:
    """(geometry, input sizes, batch, channels): a depthwise convolution at stride 1 whose
    output keeps the input's sizes (odd dilated spans padded by half), 1–3 spatial axes."""
    dims = draw(st.integers(1, 3))
    kernel, padding, dilation, sizes = [], [], [], []
    for _ in range(dims):
        k, d = draw(st.sampled_from((1, 3, 5) if dims < 3 else (1, 3))), draw(st.integers(1, 2))
        span = d * (k - 1) + 1
        kernel.append(k), dilation.append(d), padding.append((span - 1) // 2)
        sizes.append(draw(st.integers(span, span + (6 if dims < 3 else 2))))
    channels = draw(st.integers(1, 5))
    g = kernels.Geometry(tuple(kernel), (1,) * dims, tuple(padding), tuple(dilation), channels)
    return g, tuple(sizes), draw(st.integers(1, 5)), channels


def _padded(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, g: kernels.Geometry,
            activation: str | None = None) -> np.ndarray:
    out = depthwise.padded_forward(x, w, bias, g, x.shape[2:])
    if activation is not None:
        in_place(activation)(out)
    return out


@settings(max_examples=100, deadline=None)
@given(drawn=same_size(), seed=st.integers(0, 2**32 - 1), with_bias=st.booleans(),
       activation=st.sampled_from([None, "relu"]))
def test_the_same_bits_as_the_padded_planes(drawn, seed, with_bias, activation) -> None:
    g, sizes, batch, c = drawn
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, c, *sizes)).astype(np.float32)
    w = rng.standard_normal((c, 1, *g.kernel)).astype(np.float32)
    bias = rng.standard_normal(c).astype(np.float32) if with_bias else None
    assert depthwise.usable(x, w, g, g.out_sizes(sizes))
    out = depthwise.forward(x, w, bias, g, in_place(activation))
    np.testing.assert_array_equal(out, _padded(x, w, bias, g, activation))
    expected = reference_forward(x, w, g) + (0 if bias is None else bias.reshape(1, -1, *(1,) * len(sizes)))
    assert_near(out, np.maximum(expected, 0) if activation == "relu" else expected)


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("where", [(0, 0, 0, 0), (1, 2, 3, 6), (2, 3, 6, 0), (2, 3, 6, 6)])
def test_a_non_finite_input_gives_what_zero_padding_gives(value, where) -> None:
    """An infinity or NaN on a plane's edge, where masked taps of the neighbouring row, plane
    or example read it (0·inf would be NaN there): the chunk is recomputed on padded planes."""
    rng = np.random.default_rng(1)
    g = kernels.Geometry((3, 3), (1, 1), (1, 1), (1, 1), 4)
    x = rng.standard_normal((3, 4, 7, 7)).astype(np.float32)
    x[where] = value
    w = rng.standard_normal((4, 1, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    out = depthwise.forward(x, w, bias, g, in_place("relu"))
    np.testing.assert_array_equal(out, _padded(x, w, bias, g, "relu"))


def test_chunks_on_the_threads_give_the_same_bits(monkeypatch) -> None:
    """The batch split over two threads (the first and last example each with a chunk's edge)
    gives what one thread gives."""
    rng = np.random.default_rng(2)
    g = kernels.Geometry((3, 3), (1, 1), (1, 1), (1, 1), 6)
    x = rng.standard_normal((5, 6, 9, 8)).astype(np.float32)
    w = rng.standard_normal((6, 1, 3, 3)).astype(np.float32)
    before = parallel.threads()
    monkeypatch.setattr(parallel, "ELEMENTWISE_MIN_ELEMENTS", 1)
    try:
        parallel.set_threads(1)
        whole = depthwise.forward(x, w, None, g)
        parallel.set_threads(2)
        split = depthwise.forward(x, w, None, g)
    finally:
        parallel.set_threads(before)
    np.testing.assert_array_equal(split, whole)
    np.testing.assert_array_equal(whole, _padded(x, w, None, g))


@pytest.mark.parametrize(("multiplier", "padding", "strides", "taken"), [
    (1, (1, 1), (1, 1), True),  # MobileNet's 3×3
    (2, (1, 1), (1, 1), False),  # two outputs per channel: the padded planes
    (1, (0, 0), (1, 1), False),  # a smaller output
    (1, (2, 2), (1, 1), False),  # a larger one
    (1, (1, 1), (2, 2), False),  # strided: im2col
])
def test_inference_comes_here_on_the_numpy_path(monkeypatch, multiplier, padding, strides, taken) -> None:
    use_numpy_kernels(monkeypatch)
    calls = record_calls(monkeypatch, depthwise, "forward")
    rng = np.random.default_rng(3)
    g = kernels.Geometry((3, 3), strides, padding, (1, 1), 6)
    x = rng.standard_normal((4, 6, 9, 9)).astype(np.float32)
    w = rng.standard_normal((6 * multiplier, 1, 3, 3)).astype(np.float32)
    out, _ = kernels.forward(x, w, None, g, backward=False)
    assert bool(calls) is taken
    assert_near(out, reference_forward(x, w, g))


def test_a_kernel_wider_than_its_input_is_not_taken(monkeypatch) -> None:
    """A 3×3 kernel on 1×1 planes (padded by 1, the output 1×1 too): its taps' shifts reach
    past a whole example, so it stays on the padded planes."""
    use_numpy_kernels(monkeypatch)
    calls = record_calls(monkeypatch, depthwise, "forward")
    rng = np.random.default_rng(6)
    g = kernels.Geometry((3, 3), (1, 1), (1, 1), (1, 1), 1)
    x = rng.standard_normal((3, 1, 1, 1)).astype(np.float32)
    w = rng.standard_normal((1, 1, 3, 3)).astype(np.float32)
    out, _ = kernels.forward(x, w, None, g, backward=False)
    assert not calls
    assert_near(out, reference_forward(x, w, g))


def test_the_input_gradient_of_a_same_size_depthwise_convolution_comes_here(monkeypatch) -> None:
    """A training backward of a same-size depthwise 3 computes its input's gradient here (the
    flipped kernel's correlation of the output's gradient), equal to the reference's (in 1-D:
    2-D ones train on ``banded``)."""
    use_numpy_kernels(monkeypatch)
    calls = record_calls(monkeypatch, depthwise, "forward")
    rng = np.random.default_rng(4)
    g = kernels.Geometry((3,), (1,), (1,), (1,), 6)
    x = rng.standard_normal((3, 6, 56)).astype(np.float32)
    w = rng.standard_normal((6, 1, 3)).astype(np.float32)
    out, saved = kernels.forward(x, w, None, g)
    grad = rng.standard_normal(out.shape).astype(np.float32)
    assert_backward_near(grad, saved, x, w, g)
    assert calls == [grad.shape]


def test_a_folded_block_with_its_relu_matches_the_layers(monkeypatch) -> None:
    """Conv (depthwise), BatchNorm, ReLU in a Sequential at inference (folded, the ReLU in
    place per chunk) against the same layers run one by one."""
    use_numpy_kernels(monkeypatch)
    calls = record_calls(monkeypatch, depthwise, "forward")
    net = nn.Sequential()
    net.add(nn.Conv2D(8, 3, padding=1, groups=8, in_channels=8), nn.BatchNorm(in_channels=8), nn.Activation("relu"))
    net.initialize(seed=0)
    x = np.random.default_rng(5).standard_normal((4, 8, 10, 10)).astype(np.float32)
    fused = net(x)
    assert calls
    unfused = x
    for layer in net:
        unfused = layer(unfused)
    np.testing.assert_allclose(fused, unfused, rtol=1e-5, atol=1e-5)


def test_its_weight_planes_count_against_the_budget(monkeypatch) -> None:
    """A wide kernel on large planes: its taps' weight planes (225 of one example's size here,
    ~33 MB with their masks, where the output takes 128 KB) are refused before they are made,
    naming the file."""
    from modelpack.errors import LimitError
    from modelpack.io.limits import Limits
    from modelpack.nn.budget import ActivationBudget, limit_activations

    use_numpy_kernels(monkeypatch)
    calls = record_calls(monkeypatch, depthwise, "forward")
    layer = nn.Conv2D(8, 15, padding=7, in_channels=8, groups=8)
    layer.initialize(seed=0)
    x = np.ones((1, 8, 64, 64), np.float32)
    assert depthwise.usable(x, layer.weight.data(), layer._geometry(), (64, 64))
    limit_activations(layer, ActivationBudget("hostile.mpk", Limits(max_activation_bytes=4 << 20)))
    with pytest.raises(LimitError, match=r"hostile\.mpk: .*its taps' weight planes"):
        layer(x)
    assert calls


# -- the padded planes ------------------------------------------------------------------------


def _assert_depthwise_forward_near(g: kernels.Geometry, sizes: tuple[int, ...], batch: int, c: int, seed: int,
                                   multiplier: int, with_bias: bool) -> None:
    """``depthwise.padded_forward`` against the float64 reference, bias added."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, c, *sizes)).astype(np.float32)
    w = rng.standard_normal((c * multiplier, 1, *g.kernel)).astype(np.float32)
    bias = rng.standard_normal(c * multiplier).astype(np.float32) if with_bias else None
    out = depthwise.padded_forward(x, w, bias, g, g.out_sizes(sizes))
    expected = reference_forward(x, w, g)
    if bias is not None:
        expected += bias.reshape(1, -1, *(1,) * len(sizes))
    assert_near(out, expected)


@settings(max_examples=80, deadline=None)
@given(drawn=stride_one(), seed=st.integers(0, 2**32 - 1), multiplier=st.integers(1, 3), with_bias=st.booleans())
def test_depthwise_forward_matches_the_reference(drawn, seed, multiplier, with_bias) -> None:
    """One input channel per group, ``multiplier`` outputs each (output c·M + i reads input c),
    1–3 spatial axes, padded and dilated."""
    g, sizes, batch, c, _ = drawn
    g = kernels.Geometry(g.kernel, g.strides, g.padding, g.dilation, c)
    _assert_depthwise_forward_near(g, sizes, batch, c, seed, multiplier, with_bias)


def test_depthwise_inference_comes_here_on_the_numpy_path(monkeypatch) -> None:
    """On the numpy kernels a stride-1 depthwise inference forward is the taps' multiply-adds
    (split over the batch on ``parallel``'s threads), equal to im2col's einsum; strided, it
    is not (im2col won at two threads). (In 1-D: 2-D ones are ``banded``'s.)"""
    use_numpy_kernels(monkeypatch)
    calls = record_calls(monkeypatch, depthwise, "padded_forward")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 6, 81)).astype(np.float32)
    w = rng.standard_normal((12, 1, 3)).astype(np.float32)
    for strides, taken in (((1,), True), ((2,), False)):
        calls.clear()
        g = kernels.Geometry((3,), strides, (1,), (1,), 6)
        out, _ = kernels.forward(x, w, None, g, backward=False)
        assert bool(calls) is taken
        assert_near(out, reference_forward(x, w, g))


@pytest.mark.parametrize(("multiplier", "taken"), [(1, True), (2, False)])
def test_a_depthwise_input_gradient_is_the_flipped_depthwise_forward(monkeypatch, multiplier, taken) -> None:
    """At stride 1 with one output per channel, a depthwise convolution's input gradient is the
    taps' multiply-adds of the flipped kernel, here on padded planes (unpadded, so the flipped
    one's output is larger than its input; MobileNet's same-size one is ``forward``'s); with a
    multiplier the flipped convolution is not depthwise, and im2col's einsum computes it.
    Either way the reference's. (In 1-D: 2-D ones train on ``banded``.)"""
    use_numpy_kernels(monkeypatch)
    calls = record_calls(monkeypatch, depthwise, "padded_forward")
    rng = np.random.default_rng(10)
    g = kernels.Geometry((3,), (1,), (0,), (1,), 6)
    x = rng.standard_normal((4, 6, 72)).astype(np.float32)
    w = rng.standard_normal((6 * multiplier, 1, 3)).astype(np.float32)
    out, saved = kernels.forward(x, w, None, g)
    calls.clear()  # (the training forward's own taps run there too)
    grad = rng.standard_normal(out.shape).astype(np.float32)
    assert_backward_near(grad, saved, x, w, g)
    assert bool(calls) is taken


@st.composite
def strided(draw: st.DrawFn) -> tuple[kernels.Geometry, tuple[int, ...], int, int]:
    """(geometry, input sizes, batch, channels) of a depthwise convolution at strides 1–3 per
    axis, 1–3 spatial axes, padded and dilated: its taps fall in every phase plane, or in some."""
    dims = draw(st.integers(1, 3))
    kernel, strides, padding, dilation, sizes = [], [], [], [], []
    for _ in range(dims):
        k, d, s = draw(st.integers(1, 4 if dims < 3 else 3)), draw(st.integers(1, 2)), draw(st.integers(1, 3))
        p = draw(st.integers(0, k))
        span = d * (k - 1) + 1
        kernel.append(k), strides.append(s), padding.append(p), dilation.append(d)
        sizes.append(draw(st.integers(max(1, span - 2 * p), max(1, span - 2 * p) + (9 if dims < 3 else 4))))
    channels = draw(st.integers(1, 4))
    g = kernels.Geometry(tuple(kernel), tuple(strides), tuple(padding), tuple(dilation), channels)
    return g, tuple(sizes), draw(st.integers(1, 5)), channels


@settings(max_examples=120, deadline=None)
@given(drawn=strided(), seed=st.integers(0, 2**32 - 1), multiplier=st.integers(1, 2), with_bias=st.booleans())
def test_a_strided_depthwise_forward_matches_the_reference(drawn, seed, multiplier, with_bias) -> None:
    """At a stride the taps read the input's phase planes: any strides, kernels, padding and
    dilation (the padding wider than the input's edge, or none)."""
    g, sizes, batch, c = drawn
    _assert_depthwise_forward_near(g, sizes, batch, c, seed, multiplier, with_bias)


def test_a_depthwise_forwards_blocks_do_not_change_its_bits(monkeypatch) -> None:
    """A block per channel, or every channel of an example in one: the same bits (each value
    is the same products summed in the taps' order), strided and not, with a multiplier."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 5, 11, 10)).astype(np.float32)
    w = rng.standard_normal((10, 1, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(10).astype(np.float32)
    for strides in ((1, 1), (2, 2), (2, 3)):
        g = kernels.Geometry((3, 3), strides, (1, 1), (1, 1), 5)
        out_sizes = g.out_sizes(x.shape[2:])
        monkeypatch.setattr(depthwise, "BLOCK_ELEMENTS", 1)
        one = depthwise.padded_forward(x, w, bias, g, out_sizes)
        monkeypatch.setattr(depthwise, "BLOCK_ELEMENTS", 1 << 20)
        np.testing.assert_array_equal(depthwise.padded_forward(x, w, bias, g, out_sizes), one)
        assert_near(one, reference_forward(x, w, g) + bias.reshape(1, -1, 1, 1))


def test_large_same_size_depthwise_planes_come_here_not_to_the_unpadded_ones(monkeypatch) -> None:
    """MobileNet's 3×3 on planes whose chunk of the batch outgrows the cache runs on the
    blocks of padded planes (``depthwise.usable`` declines it), with the same result (in 1-D:
    2-D ones are ``banded``'s)."""
    use_numpy_kernels(monkeypatch)
    calls = record_calls(monkeypatch, depthwise, "padded_forward")
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 4, 81)).astype(np.float32)
    w = rng.standard_normal((4, 1, 3)).astype(np.float32)
    g = kernels.Geometry((3,), (1,), (1,), (1,), 4)
    assert depthwise.usable(x, w, g, (81,))
    monkeypatch.setattr(depthwise, "MAX_CHUNK_ELEMENTS", -(-2 // parallel.threads()) * 4 * 81 - 1)
    assert not depthwise.usable(x, w, g, (81,))
    out, _ = kernels.forward(x, w, None, g, backward=False)
    assert calls
    np.testing.assert_array_equal(out, depthwise.forward(x, w, None, g))


@settings(max_examples=100, deadline=None)
@given(drawn=strided(), seed=st.integers(0, 2**32 - 1), multiplier=st.integers(1, 2), block=st.sampled_from([1, 1 << 16]))
def test_a_depthwise_backward_matches_the_reference(drawn, seed, multiplier, block) -> None:
    """The input's and weight's gradients of a depthwise convolution from its input (no columns):
    any strides, kernels, padding and dilation, a block per channel or whole examples."""
    g, sizes, batch, c = drawn
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, c, *sizes)).astype(np.float32)
    w = rng.standard_normal((c * multiplier, 1, *g.kernel)).astype(np.float32)
    grad = rng.standard_normal((batch, c * multiplier, *g.out_sizes(sizes))).astype(np.float32)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(depthwise, "BLOCK_ELEMENTS", block)
        grad_x, grad_w = depthwise.padded_backward(grad, x, w, g)
    expected_x, expected_w = reference_backward(x, w, grad, g)
    assert grad_x is not None and grad_w is not None
    assert_near(grad_x, expected_x)
    assert_near(grad_w, expected_w)


def test_a_large_depthwise_training_forward_keeps_no_columns_and_its_bits_ignore_the_threads(
        monkeypatch) -> None:
    """A training forward of a depthwise convolution on planes too large for the cache saves its
    input (deferred); the backward's gradients are the reference's, the same bits at one
    thread and at two. A small one keeps im2col's columns. (In 1-D: 2-D ones are ``banded``'s.)"""
    use_numpy_kernels(monkeypatch)
    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 1)
    calls = record_calls(monkeypatch, depthwise, "padded_backward")
    rng = np.random.default_rng(13)
    g = kernels.Geometry((3,), (1,), (1,), (1,), 6)
    x = rng.standard_normal((5, 6, 132)).astype(np.float32)
    w = rng.standard_normal((6, 1, 3)).astype(np.float32)
    assert not kernels.forward(x, w, None, g)[1].deferred
    monkeypatch.setattr(depthwise, "MAX_CHUNK_ELEMENTS", 6 * 132 - 1)
    out, saved = kernels.forward(x, w, None, g)
    assert saved.deferred and saved.cols is x
    grad = rng.standard_normal(out.shape).astype(np.float32)
    assert_backward_near(grad, saved, x, w, g)
    results = backward_at_thread_counts(grad, saved, w, g)
    assert calls
    for one, two in zip(*results, strict=True):
        np.testing.assert_array_equal(one, two)


def test_a_depthwise_backwards_planes_count_against_the_budget() -> None:
    """A hostile padding: the backward's padded planes (about 3 GB here) are refused before
    they are allocated, naming the file."""
    layer = nn.Conv2D(2, 3, padding=8000, in_channels=2, groups=2)
    layer.initialize(seed=0)
    x = np.ones((1, 2, 1, 1), np.float32)
    g = layer._geometry()
    grad = np.ones((1, 2, *g.out_sizes((1, 1))), np.float32)
    assert_refused_by_budget(layer, x, 2**20, r"padding the input by \(8000, 8000\)",
                             lambda: depthwise.padded_backward(grad, x, layer.weight.data(), g))
