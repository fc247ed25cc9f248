"""``nn.kernels.shifted`` (an inference convolution as one GEMM per tap, no im2col) against the
float64 tap-by-tap reference of ``test_conv``, and the dispatch that sends inference calls
there.

Tolerance: float32 within ``atol=1e-4·scale, rtol=1e-4`` (``test_conv.assert_near``): the taps
are summed in a different order than im2col's single GEMM sums them.
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
    record_calls,
    reference_backward,
    reference_forward,
    use_numpy_kernels,
)

from modelpack import Limits, autograd, nn
from modelpack.errors import LimitError
from modelpack.nn.budget import ActivationBudget, limit_activations
from modelpack.nn.kernels import conv as kernels
from modelpack.nn.kernels import conv_grads, depthwise, im2col, parallel, shifted


@st.composite
def stride_one(draw: st.DrawFn) -> tuple[kernels.Geometry, tuple[int, ...], int, int, int]:
    """(geometry, input sizes, batch, input channels, output channels) at stride 1, ungrouped,
    1–3 spatial axes, with padding, dilation and non-square kernels."""
    dims = draw(st.integers(1, 3))
    kernel, padding, dilation, sizes = [], [], [], []
    for _ in range(dims):
        k, d = draw(st.integers(1, 4 if dims < 3 else 3)), draw(st.integers(1, 2))
        p = draw(st.integers(0, k))
        span = d * (k - 1) + 1
        kernel.append(k), padding.append(p), dilation.append(d)
        sizes.append(draw(st.integers(max(1, span - 2 * p), max(1, span - 2 * p) + (7 if dims < 3 else 3))))
    g = kernels.Geometry(tuple(kernel), (1,) * dims, tuple(padding), tuple(dilation))
    return g, tuple(sizes), draw(st.integers(1, 6)), draw(st.integers(1, 5)), draw(st.integers(1, 4))


@settings(max_examples=120, deadline=None)
@given(drawn=stride_one(), seed=st.integers(0, 2**32 - 1), with_bias=st.booleans())
def test_forward_matches_the_reference(drawn, seed, with_bias) -> None:
    """Any stride-1 geometry, whether or not the dispatch would send it here (the arithmetic
    does not depend on the sizes the thresholds pick)."""
    g, sizes, batch, c, o = drawn
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, c, *sizes)).astype(np.float32)
    w = rng.standard_normal((o, c, *g.kernel)).astype(np.float32)
    bias = rng.standard_normal(o).astype(np.float32) if with_bias else None
    out = shifted.forward(x, w, bias, g, g.out_sizes(sizes))
    expected = reference_forward(x, w, g)
    if bias is not None:
        expected += bias.reshape(1, -1, *(1,) * len(sizes))
    assert out.dtype == np.float32 and out.flags.c_contiguous
    assert_near(out, expected)


@pytest.mark.parametrize(("batch", "examples"), [(9, 4), (9, 2), (7, 4), (1, 4), (5, 1), (5, 64), (6, 64), (11, 3)])
def test_blocks_of_examples_equal_the_reference(monkeypatch, batch, examples) -> None:
    """Blocks of up to ``examples`` examples a GEMM (at least ``MIN_BLOCKS`` of them), their
    planes end to end (a last block shorter), float64, equal the reference in every example
    (no example's sums read its neighbour's plane), and give the same bits on 1, 2 and 3
    threads (the split forced)."""
    monkeypatch.setattr(parallel, "SPLIT_MIN_WORK", 0)
    rng = np.random.default_rng(batch + examples)
    g = kernels.Geometry((3, 2), (1, 1), (1, 0), (1, 2))
    x = rng.standard_normal((batch, 3, 6, 5))
    w = rng.standard_normal((4, 3, 3, 2))
    before, outs = parallel.threads(), []
    try:
        for threads in (1, 2, 3):
            parallel.set_threads(threads)
            outs.append(shifted.last_axis_forward(x, w, None, g, g.out_sizes(x.shape[2:]), examples))
    finally:
        parallel.set_threads(before)
    assert outs[0].dtype == np.float64
    np.testing.assert_allclose(outs[0], reference_forward(x, w, g), rtol=1e-12, atol=1e-12)
    for other in outs[1:]:
        np.testing.assert_array_equal(other, outs[0])


@pytest.mark.parametrize(("inputs", "outputs", "per_tap"), [(8, 4, True), (9, 4, True), (7, 4, False), (4, 4, False)])
def test_many_inputs_an_output_take_a_gemm_per_tap(monkeypatch, inputs, outputs, per_tap) -> None:
    """From ``PER_TAP_MIN_RATIO`` inputs an output on, a GEMM per tap over several calls of
    ``EXAMPLES_PER_CALL`` examples (float64, a last call shorter), else the blocks; either way
    the reference in every example."""
    calls = record_calls(monkeypatch, shifted, "_per_tap")
    rng = np.random.default_rng(inputs)
    g = kernels.Geometry((3, 2), (1, 1), (1, 1), (1, 2))
    x = rng.standard_normal((2 * shifted.EXAMPLES_PER_CALL + 1, inputs, 6, 5))
    w = rng.standard_normal((outputs, inputs, 3, 2))
    bias = rng.standard_normal(outputs)
    out = shifted.forward(x, w, bias, g, g.out_sizes(x.shape[2:]))
    assert bool(calls) is per_tap and out.dtype == np.float64
    expected = reference_forward(x, w, g) + bias.reshape(1, -1, 1, 1)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("batch", "blocks"), [(8, shifted.MIN_BLOCKS), (3, 3), (1, 1)])
def test_a_small_batch_is_never_one_block_the_threads_cannot_share(monkeypatch, batch, blocks) -> None:
    """However many examples a block could hold, the batch is dealt into ``MIN_BLOCKS`` blocks
    (one whole block ran its GEMM on BLAS's threads, which then spun on the cores)."""
    dealt: list[int] = []
    original = parallel.split
    monkeypatch.setattr(parallel, "split", lambda run, count, work: dealt.append(count) or original(run, count, work))
    g = kernels.Geometry((3, 3), (1, 1), (1, 1), (1, 1))
    x = np.random.default_rng(batch).standard_normal((batch, 4, 6, 6))
    w = np.random.default_rng(0).standard_normal((5, 4, 3, 3))
    out = shifted.last_axis_forward(x, w, None, g, (6, 6), 1 << 20)
    assert dealt == [blocks]
    np.testing.assert_allclose(out, reference_forward(x, w, g), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("side", "examples"), [(64, 1), (16, shifted.BLOCK_COLUMNS // (48 * 18 * 18))])
def test_large_planes_take_an_example_a_gemm_smaller_ones_blocks(monkeypatch, side, examples) -> None:
    """16 outputs on the padded grid of 64×64 (64·66 positions each) reach
    ``LAST_AXIS_MIN_VALUES``: an example a GEMM; of 16×16, blocks of examples whose columns
    (16 channels × 3 leading taps, 18×18 planes) hold up to ``BLOCK_COLUMNS`` values. Either
    way, the reference's convolution."""
    g = kernels.Geometry((3, 3), (1, 1), (1, 1), (1, 1))
    x = np.random.default_rng(5).standard_normal((2, 16, side, side)).astype(np.float32)
    w = np.random.default_rng(6).standard_normal((16, 16, 3, 3)).astype(np.float32)
    taken: list[int] = []
    original = shifted.last_axis_forward
    monkeypatch.setattr(shifted, "last_axis_forward", lambda *args: taken.append(args[-1]) or original(*args))
    out = shifted.forward(x, w, None, g, (side, side))
    assert taken == [examples]
    assert shifted.large(x, 16, g, (side, side)) is (side == 64)
    assert_near(out, reference_forward(x, w, g))


@st.composite
def last_axis(draw: st.DrawFn) -> tuple[kernels.Geometry, tuple[int, ...], int, int, int]:
    """(geometry, input sizes, batch, input channels, output channels) at stride 1, in 1–4
    groups: 1–3 axes, padding, dilation, any kernel (one tap along its last axis too)."""
    g, sizes, batch, _, _ = draw(stride_one())
    groups = draw(st.integers(1, 4))
    g = kernels.Geometry(g.kernel, g.strides, g.padding, g.dilation, groups)
    return g, sizes, batch, groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))


@settings(max_examples=120, deadline=None)
@given(drawn=last_axis(), seed=st.integers(0, 2**32 - 1), with_bias=st.booleans(), channels_last=st.booleans(),
       examples=st.integers(1, 4))
def test_the_last_axis_forward_matches_the_reference(drawn, seed, with_bias, channels_last, examples) -> None:
    """Any stride-1 geometry, grouped or not, whatever the thresholds say, in blocks of 1–4
    examples; an input in channels-last memory too."""
    g, sizes, batch, c, o = drawn
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *sizes, c)).astype(np.float32)
    x = np.moveaxis(x, -1, 1) if channels_last else np.ascontiguousarray(np.moveaxis(x, -1, 1))
    w = rng.standard_normal((o, c // g.groups, *g.kernel)).astype(np.float32)
    bias = rng.standard_normal(o).astype(np.float32) if with_bias else None
    out = shifted.last_axis_forward(x, w, bias, g, g.out_sizes(sizes), examples)
    expected = reference_forward(x, w, g)
    if bias is not None:
        expected += bias.reshape(1, -1, *(1,) * len(sizes))
    assert out.dtype == np.float32 and out.flags.c_contiguous
    assert_near(out, expected)


@pytest.mark.parametrize(("groups", "in_channels", "side", "taken"), [
    (32, 128, 16, True),  # ResNeXt's 4 × 4 a group: 128·4·9·16·18 = 1.3 M multiply-adds an example
    (32, 128, 8, False),  # 0.37 M: below GROUPED_MIN_WORK (2^20 here)
    (4, 128, 16, False),  # 32 × 32 a group: wider than GROUPED_MAX_WIDTH
    (128, 128, 16, False),  # depthwise
])
def test_large_narrow_grouped_inference_comes_here(monkeypatch, groups, in_channels, side, taken) -> None:
    use_numpy_kernels(monkeypatch)
    monkeypatch.setattr(shifted, "GROUPED_MIN_WORK", 1 << 20)
    calls = record_calls(monkeypatch, shifted, "last_axis_forward")
    layer = nn.Conv2D(128, 3, padding=1, groups=groups, in_channels=in_channels)
    layer.initialize(seed=0)
    x = np.random.default_rng(8).standard_normal((2, in_channels, side, side)).astype(np.float32)
    out = layer(x)
    assert bool(calls) is taken
    expected, _ = kernels.forward(x, layer.weight.array(), layer.bias.array(), layer._geometry(), last=False)
    assert_near(out, expected)
    with autograd.record():  # a training forward keeps im2col's columns for its backward
        layer(x)
    assert len(calls) == int(taken)


def _layer_input(channels: int, side: int) -> tuple[nn.Conv2D, np.ndarray]:
    layer = nn.Conv2D(8, 3, padding=1, in_channels=channels)
    layer.initialize(seed=0)
    return layer, np.random.default_rng(2).standard_normal((2, channels, side, side)).astype(np.float32)


@pytest.mark.parametrize(("channels", "side", "taken"), [
    (shifted.MIN_CHANNELS, 17, True),
    (shifted.MIN_CHANNELS - 1, 17, False),  # a narrow input: im2col
    (shifted.MIN_CHANNELS, 16, False),  # 256 positions, IM2COL_MAX_POSITIONS: im2col's one GEMM
])
def test_inference_calls_take_it_where_it_is_faster(monkeypatch, channels, side, taken) -> None:
    use_numpy_kernels(monkeypatch)
    calls: list[tuple[int, ...]] = []
    original = shifted.forward

    def counted(x, *args):
        calls.append(x.shape)
        return original(x, *args)

    monkeypatch.setattr(shifted, "forward", counted)
    layer, x = _layer_input(channels, side)
    out = layer(x)
    assert bool(calls) is taken
    # Either way, the same convolution as im2col's (the training path's) columns give.
    expected, _ = kernels.forward(x, layer.weight.array(), layer.bias.array(), layer._geometry(), last=False)
    assert_near(out, expected)


def test_a_training_forward_keeps_im2col(monkeypatch) -> None:
    """A forward whose backward reuses the columns never comes here, unless it has so few
    outputs (``conv.DEFERRED_MAX_OUTPUTS``) that it defers the columns to the backward."""
    use_numpy_kernels(monkeypatch)  # (numba's loops take this narrow a convolution first)
    monkeypatch.setattr(shifted, "forward", lambda *args: pytest.fail("shifted path taken in training"))
    monkeypatch.setattr(kernels, "DEFERRED_MAX_OUTPUTS", 7)  # the layer has 8
    layer, x = _layer_input(shifted.MIN_CHANNELS, 16)
    out, saved = kernels.forward(x, layer.weight.array(), layer.bias.array(), layer._geometry(), backward=True)
    assert out.shape == (2, 8, 16, 16) and saved.cols.shape[-1] != x.shape[-1] and not saved.deferred


@pytest.mark.parametrize("need_x", [True, False])
@pytest.mark.parametrize(("side", "on_the_grid"), [(16, False), (17, True)])
def test_a_narrow_training_forward_defers_its_columns_to_the_backward(monkeypatch, need_x, side,
                                                                      on_the_grid) -> None:
    """At most ``DEFERRED_MAX_OUTPUTS`` outputs: the forward runs here and keeps the input; the
    backward gathers the columns block by block (up to ``IM2COL_MAX_POSITIONS`` positions) or
    takes ``last_axis_weight_grad`` (beyond), and both gradients equal the reference."""
    use_numpy_kernels(monkeypatch)  # (numba's loops take this narrow a convolution first)
    layer, x = _layer_input(shifted.MIN_CHANNELS, side)
    assert layer.weight.shape[0] <= kernels.DEFERRED_MAX_OUTPUTS
    w, g = layer.weight.array(), layer._geometry()
    out, saved = kernels.forward(x, w, None, g, backward=True)
    assert saved.deferred and saved.cols is x
    assert_near(out, reference_forward(x, w, g))
    grad = np.random.default_rng(3).standard_normal(out.shape).astype(np.float32)
    calls = record_calls(monkeypatch, shifted, "last_axis_weight_grad")
    grad_x, grad_w = kernels.backward(grad, saved, w, g, need_x=need_x)
    assert bool(calls) is on_the_grid
    _assert_gradients(grad_x, grad_w, x, w, grad, g, need_x)


def _assert_gradients(grad_x: np.ndarray | None, grad_w: np.ndarray | None, x: np.ndarray, w: np.ndarray,
                      grad: np.ndarray, g: kernels.Geometry, need_x: bool) -> None:
    """The gradients near the reference; no input gradient where none was asked for."""
    expected_x, expected_w = reference_backward(x, w, grad, g)
    assert_near(grad_w, expected_w)
    if need_x:
        assert_near(grad_x, expected_x)
    else:
        assert grad_x is None


@pytest.mark.parametrize("need_x", [True, False])
def test_a_wide_training_forward_on_large_planes_defers_too(monkeypatch, need_x) -> None:
    """More than ``DEFERRED_MAX_OUTPUTS`` outputs, on large planes (``shifted.large``): deferred,
    the weight's gradient on ``last_axis_weight_grad`` (numpy's kernels: on the compiled ones a
    3×3's takes ``winograd.weight_grad``); the gradients equal the reference."""
    use_numpy_kernels(monkeypatch)
    rng = np.random.default_rng(7)
    g = kernels.Geometry((3, 3), (1, 1), (1, 1), (1, 1))
    x = rng.standard_normal((3, shifted.MIN_CHANNELS, 62, 63)).astype(np.float32)
    w = rng.standard_normal((kernels.DEFERRED_MAX_OUTPUTS + 3, shifted.MIN_CHANNELS, 3, 3)).astype(np.float32)
    assert shifted.large(x, w.shape[0], g, (62, 63))
    out, saved = kernels.forward(x, w, None, g, backward=True)
    assert saved.deferred and saved.cols is x
    assert_near(out, reference_forward(x, w, g))
    grad = rng.standard_normal(out.shape).astype(np.float32)
    calls = record_calls(monkeypatch, shifted, "last_axis_weight_grad")
    grad_x, grad_w = kernels.backward(grad, saved, w, g, need_x=need_x)
    assert len(calls) == 1
    _assert_gradients(grad_x, grad_w, x, w, grad, g, need_x)


@settings(max_examples=60, deadline=None)
@given(drawn=stride_one(), seed=st.integers(0, 2**32 - 1))
def test_the_last_axis_weight_gradient_matches_the_reference(drawn, seed) -> None:
    """Any stride-1 geometry (one tap along the last axis too), whatever the thresholds say;
    its blocks' sums in order: the same bits at 1 and 2 threads."""
    g, sizes, batch, c, o = drawn
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, c, *sizes)).astype(np.float32)
    w = rng.standard_normal((o, c, *g.kernel)).astype(np.float32)
    grad = rng.standard_normal((batch, o, *g.out_sizes(sizes))).astype(np.float32)
    before = parallel.threads()
    try:
        parallel.set_threads(1)
        one = shifted.last_axis_weight_grad(grad, x, g, w.shape)
        parallel.set_threads(2)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(parallel, "SPLIT_MIN_WORK", 0)
            two = shifted.last_axis_weight_grad(grad, x, g, w.shape)
    finally:
        parallel.set_threads(before)
    np.testing.assert_array_equal(one, two)
    assert_near(two, reference_backward(x, w, grad, g)[1])


@settings(max_examples=80, deadline=None)
@given(drawn=stride_one(), seed=st.integers(0, 2**32 - 1), per=st.integers(1, 4))
def test_a_deferred_weight_gradient_matches_the_reference(drawn, seed, per) -> None:
    """The weight's gradient of a deferred forward, gathered block by block: any stride-1
    geometry and block size, including a last block the batch does not fill."""
    g, sizes, batch, c, o = drawn
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, c, *sizes)).astype(np.float32)
    w = rng.standard_normal((o, c, *g.kernel)).astype(np.float32)
    out_sizes = g.out_sizes(sizes)
    grad = rng.standard_normal((batch, o, *out_sizes)).astype(np.float32)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv_grads, "EXAMPLES_PER_BLOCK", per)
        ours = conv_grads.weight_deferred(grad, x, g, out_sizes, w.shape)
    assert_near(ours, reference_backward(x, w, grad, g)[1])


@pytest.mark.parametrize("kernel_choice", ["numpy", "numba"])
def test_a_deferred_backward_gathers_no_whole_batch_columns(monkeypatch, request, kernel_choice) -> None:
    """The whole batch's columns are never gathered (on numba's kernels too, which leave an
    ungrouped convolution to this path); the gradients equal the reference's, across several
    blocks."""
    if kernel_choice == "numba":
        request.getfixturevalue("numba_kernels")
        from modelpack.nn.kernels import backend

        backend.use("numba")
    else:
        use_numpy_kernels(monkeypatch)
    monkeypatch.setattr(conv_grads, "weight_last", lambda *args: pytest.fail("whole-batch columns"))
    monkeypatch.setattr(im2col, "columns_last", lambda *args: pytest.fail("whole-batch columns"))
    layer, _ = _layer_input(shifted.MIN_CHANNELS, 12)
    x = np.random.default_rng(4).standard_normal((2 * conv_grads.EXAMPLES_PER_BLOCK + 1, shifted.MIN_CHANNELS, 12, 12))
    x = x.astype(np.float32)
    w, g = layer.weight.array(), layer._geometry()
    out, saved = kernels.forward(x, w, None, g, backward=True)
    assert saved.deferred
    grad = np.random.default_rng(5).standard_normal(out.shape).astype(np.float32)
    assert_backward_near(grad, saved, x, w, g)


@pytest.mark.parametrize("groups", [1, 4, shifted.MIN_CHANNELS])
def test_its_padded_planes_count_against_the_budget(monkeypatch, groups) -> None:
    """A hostile padding: the padded planes (about 4 GB here) are refused before they are
    allocated, naming the file, as im2col's padded copy is (the grouped and depthwise paths on
    the numpy kernels too)."""
    use_numpy_kernels(monkeypatch)
    channels = shifted.MIN_CHANNELS
    layer = nn.Conv2D(1 if groups == 1 else channels, 3, padding=8000, in_channels=channels, groups=groups)
    layer.initialize(seed=0)
    x = np.ones((1, channels, 1, 1), np.float32)
    g = layer._geometry()
    if groups == channels:
        assert depthwise.padded_usable(layer.weight.array(), g)
    elif groups > 1:
        assert shifted.grouped_usable(x, layer.weight.array(), g, g.out_sizes((1, 1)))
    else:
        assert shifted.usable(channels, g, g.out_sizes((1, 1)))
    limit_activations(layer, ActivationBudget("hostile.mpk", Limits(max_activation_bytes=2**20)))
    with pytest.raises(LimitError, match=r"hostile\.mpk: .*padding the input by \(8000, 8000\): the activations"):
        layer(x)


def test_on_16x16_an_input_gradient_stays_here_an_inference_call_takes_im2col() -> None:
    g = kernels.Geometry((3, 3), (1, 1), (1, 1), (1, 1))
    assert shifted.faster(shifted.MIN_CHANNELS, g, (16, 16), gradient=True)
    assert not shifted.faster(shifted.MIN_CHANNELS, g, (16, 16))
    assert not shifted.faster(shifted.MIN_CHANNELS, g, (16, 15), gradient=True)


@pytest.mark.parametrize("last", [True, False])
@pytest.mark.parametrize(("kernel", "padding", "dilation"), [((3, 3), (1, 1), (1, 1)), ((3, 2), (2, 0), (2, 1))])
@pytest.mark.parametrize(("width", "here"), [(17, True), (15, False)])
def test_the_input_gradient_at_stride_1_comes_here(monkeypatch, last, kernel, padding, dilation, width,
                                                   here) -> None:
    """A training backward of an ungrouped stride-1 convolution wide enough for ``shifted``
    (in and out) computes the input's gradient there (a correlation of the output's gradient with the
    flipped kernel), equal to the reference's adjoint; the weight's gradient is untouched. On
    planes of at most ``IM2COL_MAX_POSITIONS`` (16×15), the same correlation on im2col's columns.
    (numpy's kernels: with the compiled ones, Winograd takes a 3×3's first.)"""
    use_numpy_kernels(monkeypatch)
    calls = record_calls(monkeypatch, shifted, "forward")
    gathered = record_calls(monkeypatch, im2col, "forward_last")
    rng = np.random.default_rng(3)
    g = kernels.Geometry(kernel, (1, 1), padding, dilation)
    x = rng.standard_normal((2, shifted.MIN_CHANNELS, 16, width)).astype(np.float32)
    w = rng.standard_normal((shifted.MIN_CHANNELS, shifted.MIN_CHANNELS, *kernel)).astype(np.float32)
    out, saved = kernels.forward(x, w, None, g, last=last)
    gathered.clear()  # (the forward's own columns, where it keeps them)
    grad = rng.standard_normal(out.shape).astype(np.float32)
    assert_backward_near(grad, saved, x, w, g)
    assert shifted.faster(shifted.MIN_CHANNELS, g, x.shape[2:]) is here
    assert (calls, gathered) == (([grad.shape], []) if here else ([], [grad.shape]))


@settings(max_examples=120, deadline=None)
@given(drawn=stride_one(), seed=st.integers(0, 2**32 - 1))
def test_the_input_gradient_on_the_planes_matches_the_reference(drawn, seed) -> None:
    """``grad_input`` for any stride-1 geometry (padding up to the kernel's size, dilation,
    1–3 axes), whether or not the dispatch would send it here."""
    g, sizes, batch, c, o = drawn
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, c, *sizes)).astype(np.float32)
    w = rng.standard_normal((o, c, *g.kernel)).astype(np.float32)
    grad = rng.standard_normal((batch, o, *g.out_sizes(sizes))).astype(np.float32)
    grad_x = shifted.grad_input(grad, w, g, x.shape)
    assert grad_x.dtype == np.float32 and grad_x.shape == x.shape
    assert_near(grad_x, reference_backward(x, w, grad, g)[0])


def test_the_input_gradient_on_the_planes_in_float64() -> None:
    """Every example of a batch split over the threads, to float64 rounding."""
    rng = np.random.default_rng(5)
    g = kernels.Geometry((5, 5), (1, 1), (2, 2), (1, 1))
    x = rng.standard_normal((9, 6, 14, 13))
    w = rng.standard_normal((16, 6, 5, 5))
    grad = rng.standard_normal((9, 16, *g.out_sizes(x.shape[2:])))
    np.testing.assert_allclose(shifted.grad_input(grad, w, g, x.shape), reference_backward(x, w, grad, g)[0],
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("channels", "strides", "kernel", "taken"), [
    (6, (1, 1), (3, 3), True),  # LeNet's second convolution's input
    (shifted.MIN_CHANNELS - 1, (1, 1), (3, 3), True),
    (shifted.MIN_CHANNELS, (1, 1), (3, 3), False),  # wide: the flipped correlation
    (6, (2, 2), (3, 3), False),  # strided: col2im
    (6, (1, 1), (1, 1), False),  # one tap: a single GEMM already
])
def test_a_narrow_inputs_gradient_comes_here(monkeypatch, channels, strides, kernel, taken) -> None:
    calls = record_calls(monkeypatch, shifted, "grad_input")
    rng = np.random.default_rng(6)
    g = kernels.Geometry(kernel, strides, (0, 0), (1, 1))
    x = rng.standard_normal((3, channels, 10, 9)).astype(np.float32)
    w = rng.standard_normal((16, channels, *kernel)).astype(np.float32)
    out, saved = kernels.forward(x, w, None, g)
    calls.clear()  # (the training forward's own taps run there too)
    grad = rng.standard_normal(out.shape).astype(np.float32)
    assert_backward_near(grad, saved, x, w, g)
    assert bool(calls) is taken


def test_the_planes_of_the_input_gradient_count_against_the_budget() -> None:
    """A hostile padding: the padded planes of the gradient are refused before they are
    allocated, naming the file."""
    layer = nn.Conv2D(2, 3, padding=8000, in_channels=1)
    layer.initialize(seed=0)
    x = np.ones((1, 1, 1, 1), np.float32)
    g = layer._geometry()
    grad = np.ones((1, 2, *g.out_sizes((1, 1))), np.float32)
    assert shifted.grad_input_usable(layer.weight.array(), g)
    assert_refused_by_budget(layer, x, 2**20, r"its taps' products on the padded planes",
                             lambda: shifted.grad_input(grad, layer.weight.array(), g, x.shape))


def test_a_deferred_weight_gradients_block_products_count_against_the_budget() -> None:
    """Many examples of a small input: the blocks' weight-sized products (9.4 MB here, where
    the scratch is ~10 KB) are refused before they are made, naming the file."""
    g = kernels.Geometry((3, 3), (1, 1), (1, 1), (1, 1), 1)
    layer = nn.Conv2D(16, 3, padding=1, in_channels=16)
    layer.initialize(seed=0)
    x = np.ones((4096, 16, 1, 1), np.float32)
    grad = np.ones((4096, 16, 1, 1), np.float32)
    assert_refused_by_budget(layer, x, 2**20, r"its blocks' weight-gradient products",
                             lambda: conv_grads.weight_deferred(grad, x, g, (1, 1), layer.weight.shape))


def test_the_last_axis_weight_gradients_columns_count_against_the_budget() -> None:
    """Its padded planes, columns and gradient rows (an example a thread) are charged before
    they are made, naming the file."""
    g = kernels.Geometry((3, 3), (1, 1), (1, 1), (1, 1), 1)
    layer = nn.Conv2D(16, 3, padding=1, in_channels=16)
    layer.initialize(seed=0)
    x = np.ones((2, 16, 20, 20), np.float32)
    grad = np.ones((2, 16, 20, 20), np.float32)
    assert_refused_by_budget(layer, x, 2**12, r"its columns, an example a thread",
                             lambda: shifted.last_axis_weight_grad(grad, x, g, layer.weight.shape))


@pytest.mark.parametrize(("forward", "what"), [
    (lambda x, w, g: shifted._per_tap(x, w, None, g, (20, 20)), r"padding the input by \(1, 1\)"),
    (lambda x, w, g: shifted.last_axis_forward(x, w, None, g, (20, 20), 4), r"padding the input by \(1, 1\)"),
])
def test_the_forwards_planes_count_against_the_budget(forward, what) -> None:
    """A GEMM per tap's padded planes and the blocks' are charged before they are made."""
    g = kernels.Geometry((3, 3), (1, 1), (1, 1), (1, 1), 1)
    layer = nn.Conv2D(4, 3, padding=1, in_channels=16)
    layer.initialize(seed=0)
    x = np.ones((4, 16, 20, 20), np.float32)
    assert_refused_by_budget(layer, x, 2**12, what, lambda: forward(x, layer.weight.array(), g))
