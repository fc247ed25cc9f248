"""``nn.kernels.depthwise`` (a same-size depthwise convolution on the unpadded planes, each
tap's weight masked where it would read the padding) against the padded planes of
``shifted.depthwise_forward``, whose products and order of summation it keeps: the same bits,
non-finite inputs included. Also against the float64 reference of ``test_conv`` (within its
tolerance), and the dispatch that sends inference calls and input gradients here.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_conv import assert_backward_near, assert_near, record_calls, reference_forward, use_numpy_kernels

from modelpack import nn
from modelpack.nn.activations import in_place
from modelpack.nn.kernels import conv as kernels
from modelpack.nn.kernels import depthwise, parallel, shifted


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
    out = shifted.depthwise_forward(x, w, bias, g, x.shape[2:])
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
