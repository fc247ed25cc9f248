"""``nn.kernels.banded`` (a 2-D depthwise convolution as GEMMs of the padded rows with banded
matrices of the taps) against the float64 reference of ``test_conv``: its forward, the
weight's and the input's gradients over odd geometries (strides 1–3, dilation, padding wider
than the input's edge or none, 1×1 planes, kernels wider than the tiles, batch 1, blocks of
the batch, non-contiguous inputs), and the dispatch that sends large planes here.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_conv import (
    assert_near,
    assert_refused_by_budget,
    backward_at_thread_counts,
    record_calls,
    reference_backward,
    reference_forward,
    use_numpy_kernels,
)

from modelpack import Limits, nn
from modelpack.errors import LimitError
from modelpack.nn.budget import ActivationBudget, limit_activations
from modelpack.nn.kernels import banded, depthwise
from modelpack.nn.kernels import conv as kernels


@st.composite
def geometries(draw: st.DrawFn) -> tuple[kernels.Geometry, tuple[int, int], int, int]:
    """(geometry, input sizes, batch, channels): 2-D, strides 1–3, kernels 1–4 (dilated by up
    to 2), padding up to the kernel's size, inputs from the smallest the kernel allows."""
    kernel, strides, padding, dilation, sizes = [], [], [], [], []
    for _ in range(2):
        k, d, s = draw(st.integers(1, 4)), draw(st.integers(1, 2)), draw(st.integers(1, 3))
        p = draw(st.integers(0, k))
        span = d * (k - 1) + 1
        kernel.append(k), strides.append(s), padding.append(p), dilation.append(d)
        sizes.append(draw(st.integers(max(1, span - 2 * p), max(1, span - 2 * p) + 12)))
    channels = draw(st.integers(1, 4))
    g = kernels.Geometry(tuple(kernel), tuple(strides), tuple(padding), tuple(dilation), channels)
    return g, (sizes[0], sizes[1]), draw(st.integers(1, 4)), channels


def _arrays(g: kernels.Geometry, sizes: tuple[int, int], batch: int, c: int, multiplier: int, seed: int,
            transposed: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, weight, the output's gradient); x a non-contiguous view when ``transposed``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, c, *sizes)).astype(np.float32)
    if transposed:
        x = np.ascontiguousarray(x.swapaxes(2, 3)).swapaxes(2, 3)
    w = rng.standard_normal((c * multiplier, 1, *g.kernel)).astype(np.float32)
    grad = rng.standard_normal((batch, c * multiplier, *g.out_sizes(sizes))).astype(np.float32)
    return x, w, grad


@settings(max_examples=150, deadline=None)
@given(drawn=geometries(), seed=st.integers(0, 2**32 - 1), multiplier=st.integers(1, 2),
       with_bias=st.booleans(), tile=st.sampled_from([1, 3, banded.TILE]), block=st.sampled_from([1, 1 << 9, 1 << 20]),
       transposed=st.booleans())
def test_forward_matches_the_reference(drawn, seed, multiplier, with_bias, tile, block, transposed) -> None:
    """Any geometry, ``multiplier`` outputs per channel, in tiles of 1, 3 or ``TILE`` columns,
    a block of one example or the whole batch."""
    g, sizes, batch, c = drawn
    x, w, _ = _arrays(g, sizes, batch, c, multiplier, seed, transposed)
    bias = np.random.default_rng(seed).standard_normal(c * multiplier).astype(np.float32) if with_bias else None
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(banded, "TILE", tile)
        patch.setattr(banded, "BLOCK_ELEMENTS", block)
        out = banded.forward(x, w, bias, g, g.out_sizes(sizes))
    expected = reference_forward(x, w, g) + (0 if bias is None else bias.reshape(1, -1, 1, 1))
    assert_near(out, expected)


@settings(max_examples=150, deadline=None)
@given(drawn=geometries(), seed=st.integers(0, 2**32 - 1), tile=st.sampled_from([1, 3, banded.TILE]),
       block=st.sampled_from([1, 1 << 9, 1 << 20]), transposed=st.booleans())
def test_the_gradients_match_the_reference(drawn, seed, tile, block, transposed) -> None:
    """The weight's gradient (``multiplier`` 1 and 2) and the input's (by phases, every
    residue of the strides, some reached by no tap)."""
    g, sizes, batch, c = drawn
    for multiplier in (1, 2):
        x, w, grad = _arrays(g, sizes, batch, c, multiplier, seed, transposed)
        expected_x, expected_w = reference_backward(x, w, grad, g)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(banded, "TILE", tile)
            patch.setattr(banded, "BLOCK_ELEMENTS", block)
            assert_near(banded.grad_weight(grad, x, g, w.shape), expected_w)
            if multiplier == 1:
                assert_near(banded.grad_input(grad, w, g, x.shape), expected_x)


def test_float64() -> None:
    """A float64 layer computes in float64 (its GEMMs too): within 1e-12 of the reference."""
    rng = np.random.default_rng(3)
    g = kernels.Geometry((3, 3), (2, 1), (1, 2), (1, 2), 3)
    x = rng.standard_normal((2, 3, 9, 11))
    w = rng.standard_normal((3, 1, 3, 3))
    grad = rng.standard_normal((2, 3, *g.out_sizes((9, 11))))
    expected_x, expected_w = reference_backward(x, w, grad, g)
    np.testing.assert_allclose(banded.forward(x, w, None, g, g.out_sizes((9, 11))), reference_forward(x, w, g),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(banded.grad_input(grad, w, g, x.shape), expected_x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(banded.grad_weight(grad, x, g, w.shape), expected_w, rtol=1e-12, atol=1e-12)


def test_an_activation_is_applied_to_every_channel() -> None:
    """``activation`` runs on each thread's channels once they are all written."""
    rng = np.random.default_rng(4)
    g = kernels.Geometry((3, 3), (1, 1), (1, 1), (1, 1), 5)
    x = rng.standard_normal((2, 5, 7, 7)).astype(np.float32)
    w = rng.standard_normal((5, 1, 3, 3)).astype(np.float32)
    out = banded.forward(x, w, None, g, (7, 7), lambda a: np.maximum(a, 0, out=a))
    assert_near(out, np.maximum(reference_forward(x, w, g), 0))


@pytest.mark.parametrize(("strides", "sizes", "taken"), [((1, 1), (9, 9), False), ((1, 1), (72, 72), True),
                                                         ((2, 2), (72, 72), True), ((2, 2), (24, 24), True),
                                                         ((2, 2), (16, 16), False)])
def test_inference_comes_here_but_for_small_same_size_planes(monkeypatch, strides, sizes, taken) -> None:
    """On the numpy kernels a 2-D depthwise inference forward runs here, strided too, except
    at stride 1 on planes small enough for ``depthwise``'s unpadded chunks, and on inputs under
    ``MIN_ELEMENTS`` values (8×16×16×16: 32768)."""
    use_numpy_kernels(monkeypatch)
    calls = record_calls(monkeypatch, banded, "forward")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 16, *sizes)).astype(np.float32)
    w = rng.standard_normal((16, 1, 3, 3)).astype(np.float32)
    g = kernels.Geometry((3, 3), strides, (1, 1), (1, 1), 16)
    out, _ = kernels.forward(x, w, None, g, backward=False)
    assert bool(calls) is taken
    assert_near(out, reference_forward(x, w, g))


@pytest.mark.parametrize(("kernel", "taken"), [((3, 3), False), ((5, 5), True), ((7, 7), True), ((3, 5), True)])
def test_inference_of_more_taps_than_the_taps_path_takes_comes_here(monkeypatch, kernel, taken) -> None:
    """Small same-size planes stay on ``depthwise``'s taps up to ``depthwise.MAX_TAPS`` taps; a
    5×5 kernel on them (MobileNetV3's) comes here, where the GEMMs' cost grows with the width."""
    use_numpy_kernels(monkeypatch)
    calls = record_calls(monkeypatch, banded, "forward")
    rng = np.random.default_rng(6)
    x = rng.standard_normal((8, 48, 14, 14)).astype(np.float32)  # (above MIN_ELEMENTS)
    w = rng.standard_normal((48, 1, *kernel)).astype(np.float32)
    g = kernels.Geometry(kernel, (1, 1), (kernel[0] // 2, kernel[1] // 2), (1, 1), 48)
    assert depthwise.usable(x, w, g, (14, 14))
    out, _ = kernels.forward(x, w, None, g, backward=False)
    assert bool(calls) is taken
    assert_near(out, reference_forward(x, w, g))


@pytest.mark.parametrize("strides", [(1, 1), (2, 2)])
def test_a_training_forward_keeps_no_columns_and_its_bits_ignore_the_threads(monkeypatch, strides) -> None:
    """A training forward saves its input (deferred) and its backward runs here: the
    reference's gradients, the same bits at one thread and at two (each channel's sums are its
    own). One with two outputs per channel goes elsewhere (``grad_input`` takes one), and one
    under ``MIN_ELEMENTS`` values."""
    use_numpy_kernels(monkeypatch)
    calls = record_calls(monkeypatch, banded, "grad_weight")
    rng = np.random.default_rng(6)
    g = kernels.Geometry((3, 3), strides, (1, 1), (1, 1), 6)
    x = rng.standard_normal((5, 6, 11, 12)).astype(np.float32)
    w = rng.standard_normal((6, 1, 3, 3)).astype(np.float32)
    assert not kernels.forward(x, w, None, g)[1].deferred
    monkeypatch.setattr(banded, "MIN_ELEMENTS", x.size)
    two = np.concatenate([w, w])
    out, saved = kernels.forward(x, two, None, g)
    kernels.backward(np.ones_like(out), saved, two, g)
    assert not calls
    out, saved = kernels.forward(x, w, None, g)
    assert saved.deferred and saved.cols is x
    grad = rng.standard_normal(out.shape).astype(np.float32)
    results = backward_at_thread_counts(grad, saved, w, g)
    assert calls
    for one, two_threads, expected in zip(*results, reference_backward(x, w, grad, g), strict=True):
        np.testing.assert_array_equal(one, two_threads)
        assert_near(one, expected)


def test_its_padded_planes_count_against_the_budget(monkeypatch) -> None:
    """A hostile padding: the padded planes (about 1 GB here, with a 1×1 output) are refused
    before they are allocated, naming the file."""
    use_numpy_kernels(monkeypatch)
    layer = nn.Conv2D(2, 3, strides=16000, padding=8000, in_channels=2, groups=2)
    layer.initialize(seed=0)
    x = np.ones((1, 2, 1, 1), np.float32)
    monkeypatch.setattr(banded, "MIN_ELEMENTS", 1)
    assert banded.usable(x, layer.weight.data(), layer._geometry())
    limit_activations(layer, ActivationBudget("hostile.mpk", Limits(max_activation_bytes=2**20)))
    with pytest.raises(LimitError, match=r"hostile\.mpk: .*padding the input by \(8000, 8000\): the activations"):
        layer(x)


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("strides", [(1, 1), (2, 2)])
def test_a_non_finite_input_gives_what_the_taps_give(value, strides) -> None:
    """An infinity or NaN reaches only the outputs whose taps read it, as on ``shifted``'s
    padded planes (the band's zeros would make a tile's row NaN): its channel is recomputed
    there, the others are not."""
    rng = np.random.default_rng(7)
    g = kernels.Geometry((3, 3), strides, (1, 1), (1, 1), 3)
    x = rng.standard_normal((2, 3, 20, 20)).astype(np.float32)
    x[1, 2, 5, 9] = value
    w = rng.standard_normal((3, 1, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(3).astype(np.float32)
    out = banded.forward(x, w, bias, g, g.out_sizes((20, 20)))
    expected = kernels.forward(x, w, bias, g, last=False)[0]
    assert np.isfinite(out).sum() == np.isfinite(expected).sum() > 0
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("strides", [(1, 1), (2, 2)])
def test_a_non_finite_gradient_reaches_what_the_taps_reach(strides) -> None:
    """The input's gradient, from an output gradient holding an infinity: its phases'
    channels recomputed as the forward's are, the non-finite positions im2col's."""
    rng = np.random.default_rng(8)
    g = kernels.Geometry((3, 3), strides, (1, 1), (1, 1), 3)
    x = rng.standard_normal((2, 3, 20, 20)).astype(np.float32)
    w = rng.standard_normal((3, 1, 3, 3)).astype(np.float32)
    grad = rng.standard_normal((2, 3, *g.out_sizes((20, 20)))).astype(np.float32)
    grad[0, 1, 4, 6] = np.inf
    expected = kernels.backward(grad, kernels.forward(x, w, None, g, last=False)[1], w, g, need_weight=False)[0]
    ours = banded.grad_input(grad, w, g, x.shape)
    assert expected is not None and np.isfinite(ours).sum() == np.isfinite(expected).sum() > 0
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("gradient", ["grad_input", "grad_weight"])
def test_the_backwards_planes_count_against_the_budget(gradient) -> None:
    """A hostile padding: each gradient's padded planes (over 1 MB each here) are refused before
    they are allocated, naming the file."""
    layer = nn.Conv2D(2, 3, padding=300, in_channels=2, groups=2)
    layer.initialize(seed=0)
    x = np.ones((1, 2, 1, 1), np.float32)
    g = layer._geometry()
    grad = np.ones((1, 2, *g.out_sizes((1, 1))), np.float32)
    w = layer.weight.data()
    run = {"grad_input": lambda: banded.grad_input(grad, w, g, x.shape),
           "grad_weight": lambda: banded.grad_weight(grad, x, g, w.shape)}[gradient]
    assert_refused_by_budget(layer, x, 2**20, r"padding the input by \(300, 300\)", run)


def test_only_blas_types_come_here(monkeypatch) -> None:
    """float16 has no BLAS GEMM (numpy's own loop would run), so it goes elsewhere; a weight of
    another float type is cast to the input's."""
    g = kernels.Geometry((3, 3), (2, 2), (1, 1), (1, 1), 3)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    w = rng.standard_normal((3, 1, 3, 3))
    monkeypatch.setattr(banded, "MIN_ELEMENTS", 1)
    assert banded.usable(x, w, g) and banded.usable(x.astype(np.float64), w, g)
    assert not banded.usable(x.astype(np.float16), w, g)
    out = banded.forward(x, w, None, g, g.out_sizes((9, 9)))
    assert out.dtype == np.float32
    assert_near(out, reference_forward(x, w.astype(np.float32), g))
