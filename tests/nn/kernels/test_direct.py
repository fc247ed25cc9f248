"""The compiled loops (``nn.kernels.compiled`` via ``direct``, the ``accel`` extra) against the
numpy path, the reference: the same inputs through both, forward and backward, ordinary and
transposed, for the convolutions they take (depthwise and narrow grouped, 1-D and 2-D, strided,
dilated, padded).

Tolerance: float32 within ``atol=1e-4·scale, rtol=1e-4`` (``test_conv.assert_near``): both
sum the same products in different orders (the loops tap by tap, numpy in a GEMM). Where the
order is the same, bits are compared: the loops' results do not depend on the thread count.
Skipped when numba is not installed (CI's full pass requires it, tests/conftest.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_conv import assert_forward_and_gradients_near, assert_near, at_thread_counts, record_calls

from modelpack.nn.kernels import backend, direct, parallel
from modelpack.nn.kernels import conv as kernels
from modelpack.nn.kernels import transposed as transposed_kernels


@pytest.fixture
def no_register_planes(numba_kernels, monkeypatch) -> None:
    """``compiled_depthwise`` out of the way (it takes stride-1 3×3 and 5×5 depthwise
    convolutions first), so that its tests reach the channels-last loops they test."""
    from modelpack.nn.kernels import compiled_depthwise

    monkeypatch.setattr(compiled_depthwise, "SIDES", ())
    monkeypatch.setattr(compiled_depthwise, "SAME_SIDES", ())


@pytest.fixture
def restore_backend() -> Iterator[None]:
    before = backend.name()
    yield
    backend.use(before)


def _axes(draw: st.DrawFn, max_kernel: int, room: int) -> tuple[tuple[int, ...], ...]:
    """(kernel, strides, padding, dilation, input sizes) of 1 or 2 spatial axes, each input at
    least as wide as the padded kernel's span and up to ``room`` wider."""
    dims = draw(st.integers(1, 2))
    kernel, padding, dilation, sizes, strides = [], [], [], [], []
    for _ in range(dims):
        k, d = draw(st.integers(1, max_kernel)), draw(st.integers(1, 2))
        strides.append(draw(st.integers(1, 3)))
        p = draw(st.integers(0, k))
        span = d * (k - 1) + 1
        kernel.append(k), padding.append(p), dilation.append(d)
        sizes.append(draw(st.integers(max(1, span - 2 * p), max(1, span - 2 * p) + room)))
    return tuple(kernel), tuple(strides), tuple(padding), tuple(dilation), tuple(sizes)


@st.composite
def narrow(draw: st.DrawFn) -> tuple[kernels.Geometry, tuple[int, ...], int, int, int]:
    """(geometry, input sizes, batch, channels per group, outputs per group) that the loops take."""
    kernel, strides, padding, dilation, sizes = _axes(draw, 4, 9)
    cg, og = draw(st.sampled_from([(1, 1), (1, 2), (2, 1), (2, 3), (4, 4), (8, 8)]))
    groups = draw(st.integers(2, 4))
    g = kernels.Geometry(kernel, strides, padding, dilation, groups)
    return g, sizes, draw(st.integers(1, 3)), cg, og


def loop_arrays(seed: int, g: kernels.Geometry, sizes: tuple[int, ...], batch: int, cg: int, og: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, cg * g.groups, *sizes)).astype(np.float32)
    w = rng.standard_normal((og * g.groups, cg, *g.kernel)).astype(np.float32)
    return x, w, rng.standard_normal(og * g.groups).astype(np.float32)


def through(choice: str, x: np.ndarray, w: np.ndarray, b: np.ndarray, g: kernels.Geometry
             ) -> tuple[np.ndarray, ...]:
    """Forward and backward of the convolution and of the transposed one, on ``choice``."""
    backend.use(choice)
    out, saved = kernels.forward(x, w, b, g)
    assert saved.direct == (choice == "numba")
    grad = np.cos(np.arange(out.size, dtype=out.dtype)).reshape(out.shape)
    grad_x, grad_w = kernels.backward(grad, saved, w, g)
    # The transposed convolution of the same weight, taking ``out``'s shape back to x's.
    output_padding = tuple(n + 2 * p - ((o - 1) * s + d * (k - 1) + 1) for n, p, o, s, d, k in
                           zip(x.shape[2:], g.padding, out.shape[2:], g.strides, g.dilation, g.kernel,
                               strict=True))
    if any(a >= s for a, s in zip(output_padding, g.strides, strict=True)):
        return out, grad_x, grad_w  # not a transposed convolution MXNet allows
    up = transposed_kernels.transpose_forward(grad, w, np.linspace(-1, 1, x.shape[1], dtype=x.dtype), g, output_padding)
    up_x, up_w = transposed_kernels.transpose_backward(x, grad, w, g)
    return out, grad_x, grad_w, up, up_x, up_w


@settings(max_examples=60, deadline=None)
@given(drawn=narrow(), seed=st.integers(0, 2**32 - 1))
def test_the_loops_match_the_numpy_path(numba_kernels, drawn, seed) -> None:
    g, sizes, batch, cg, og = drawn
    x, w, b = loop_arrays(seed, g, sizes, batch, cg, og)
    ours = through("numba", x, w, b, g)
    reference = through("numpy", x, w, b, g)
    assert len(ours) == len(reference)
    for compiled, expected in zip(ours, reference, strict=True):
        assert compiled is not None and expected is not None
        assert compiled.dtype == expected.dtype == np.float32
        assert_near(compiled, expected.astype(np.float64))


@pytest.mark.parametrize("strides", [(1, 1), (2, 2), (1, 2)])
def test_the_bits_do_not_depend_on_the_thread_count(numba_kernels, small_passes_split, strides) -> None:
    """Forward, input gradient and weight gradient (a sum over the batch in fixed chunks) are
    the same bits on one thread and on three: a checkpoint resumes exactly elsewhere."""
    g = kernels.Geometry((3, 3), strides, (1, 1), (1, 1), 16)
    x, w, b = loop_arrays(1, g, (32, 31), 8, 1, 1)
    assert x.size >= parallel.MIN_ELEMENTS  # large enough to be split
    assert_same_bits_on_one_and_three_threads(x, w, b, g)


@pytest.mark.parametrize(("strides", "dilation"), [((1, 1), (1, 1)), ((2, 2), (1, 1)), ((1, 2), (2, 1))])
def test_stacked_examples_give_what_one_at_a_time_gives(numba_kernels, monkeypatch, small_passes_split, strides,
                                                        dilation) -> None:
    """Small planes are stacked, several examples one below the other (``compiled.stacked``; 7
    examples of 7×9 in stacks of 3: a short last stack too): the forward and the input's
    gradient are the same bits as one example at a time (each output's sum keeps its order),
    the weight's gradient equal within float32's rounding (its partial sums run longer); and
    the bits do not depend on the thread count."""
    from modelpack.nn.kernels import compiled

    g = kernels.Geometry((3, 3), strides, (1, 1), dilation, 6)
    x, w, b = loop_arrays(3, g, (7, 9), 7, 1, 2)
    monkeypatch.setattr(compiled, "STACK_POSITIONS", 3 * 9 * 11)
    assert compiled.stacked((7, 9), strides, (1, 1), 7) == {(1, 1): 3, (2, 2): 7, (1, 2): 5}[strides]
    stacked = through("numba", x, w, b, g)
    assert_same_bits_on_one_and_three_threads(x, w, b, g)
    monkeypatch.setattr(compiled, "STACK_POSITIONS", 1)
    assert_stacked_as_alone(stacked, through("numba", x, w, b, g))


def assert_stacked_as_alone(stacked: tuple[np.ndarray, ...], alone: tuple[np.ndarray, ...]) -> None:
    """``through``'s results with examples stacked and one at a time: the same bits but for the
    weight's gradients (their dot products run over the stack: near)."""
    for name, together, apart in zip(["out", "grad_x", "grad_w", "up", "up_x", "up_w"], stacked, alone, strict=True):
        if name.endswith("_w"):
            assert_near(together, apart.astype(np.float64))
        else:
            assert together.tobytes() == apart.tobytes(), name


@pytest.mark.parametrize("strides", [(1, 1), (2, 2)])
def test_channels_taken_together_give_what_one_at_a_time_gives(numba_kernels, strides) -> None:
    """The forward takes a group's outputs, the input's gradient its inputs, ``OUT_BLOCK`` at a
    time and the rest one by one: with 5 channels a group, moving channel 0 to the end moves it
    from a block to the rest, and every channel's result keeps its bits (zeros' signs too)."""
    from modelpack.nn.kernels import compiled

    assert compiled.OUT_BLOCK == 4
    g = kernels.Geometry((3, 3), strides, (1, 1), (1, 1), 2)
    x, w, b = loop_arrays(4, g, (9, 8), 3, 5, 5)
    x[0, :, 0] = -0.0
    out = direct.forward(x, w, b, g)
    grad = np.cos(np.arange(out.size, dtype=np.float32)).reshape(out.shape)
    grad[1, :, 0] = -0.0
    turned = np.r_[1:5, 0, 6:10, 5]  # each group's first channel last
    assert out[:, turned].tobytes() == direct.forward(x, w[turned], b[turned], g).tobytes()
    grad_x = direct.grad_input(grad, w, g, x.shape)
    assert grad_x[:, turned].tobytes() == direct.grad_input(grad, w[:, np.r_[1:5, 0]], g, x.shape).tobytes()


def test_blocked_channels_bits_do_not_depend_on_the_thread_count(numba_kernels, small_passes_split) -> None:
    """Five channels a group (a block of ``OUT_BLOCK`` and one more), every pass: the same
    bits at one thread and at three."""
    g = kernels.Geometry((3, 3), (1, 1), (1, 1), (1, 1), 4)
    x, w, b = loop_arrays(2, g, (32, 31), 8, 5, 5)
    assert x.size >= parallel.MIN_ELEMENTS
    assert_same_bits_on_one_and_three_threads(x, w, b, g)


def assert_same_bits_on_one_and_three_threads(x: np.ndarray, w: np.ndarray, b: np.ndarray,
                                               g: kernels.Geometry) -> None:
    """``through`` on the loops gives the same bytes at 1 and at 3 threads (the count put back)."""
    results = []
    before = parallel.threads()
    try:
        for count in (1, 3):
            parallel.set_threads(count)
            results.append(through("numba", x, w, b, g))
    finally:
        parallel.set_threads(before)
    for one, three in zip(*results, strict=True):
        assert one.tobytes() == three.tobytes()


@pytest.mark.parametrize(("kernel", "strides", "cg", "dtype", "taken"), [
    ((3, 3), (2, 2), 1, np.float32, True),  # depthwise, strided
    ((5,), (1,), 1, np.float32, True),  # 1-D
    ((3, 3), (1, 1), 1, np.float64, False),  # float64: numpy only
    ((3, 3, 3), (1, 1, 1), 1, np.float32, False),  # 3-D: numpy only
    ((3, 3), (1, 2), 1, np.float32, True),  # unequal strides: phase planes per axis
    ((3, 3), (1, 1), 8, np.float32, True),  # 8 × 8 per group
    ((3, 3), (1, 1), 16, np.float32, False),  # 16 × 16 per group: BLAS wins
    ((3, 3), (1, 1), 1, np.float16, False),
])
def test_what_the_loops_take(numba_kernels, kernel, strides, cg, dtype, taken) -> None:
    backend.use("numba")
    dims = len(kernel)
    g = kernels.Geometry(kernel, strides, (1,) * dims, (1,) * dims, 2)
    x, w = np.zeros((1, 2 * cg, *(6,) * dims), dtype), np.zeros((2 * cg, cg, *kernel), dtype)
    assert direct.usable(x, w, g) is taken
    ungrouped = kernels.Geometry(kernel, strides, (1,) * dims, (1,) * dims, 1)  # as narrow, one group
    assert not direct.usable(x[:, :cg], w[:cg], ungrouped)
    backend.use("numpy")
    assert not direct.usable(x, w, g)


@pytest.mark.parametrize(("kernel", "strides", "sizes", "cg", "og", "taken"), [
    ((5, 5), (1, 1), (28, 28), 1, 6, True),  # LeNet's first layer
    ((7, 7), (2, 2), (32, 31), 3, 8, True),  # a narrow stem, strided
    ((5,), (1,), (1000,), 2, 8, True),  # 1-D
    ((5, 5), (1, 1), (14, 14), 6, 16, True),  # LeNet's second layer
    ((3, 3), (1, 1), (16, 16), 8, 16, True),  # 128 wide, 2,304 taps × positions
    ((3, 3), (1, 1), (8, 8), 3, 8, False),  # too few taps × positions: im2col
    ((3, 3), (1, 1), (32, 32), 16, 16, False),  # too wide: im2col
    ((5, 5), (1, 1), (28, 28), 3, 48, False),  # too wide: im2col
])
def test_narrow_ungrouped_convolutions_with_many_taps_take_the_loops(numba_kernels, kernel, strides, sizes, cg,
                                                                      og, taken) -> None:
    g = kernels.Geometry(kernel, strides, tuple(k // 2 for k in kernel), (1,) * len(kernel), 1)
    x, w, b = loop_arrays(3, g, sizes, 3, cg, og)
    backend.use("numba")
    assert direct.usable(x, w, g) is taken
    if taken:
        for compiled, expected in zip(through("numba", x, w, b, g), through("numpy", x, w, b, g), strict=True):
            assert_near(compiled, expected.astype(np.float64))


@pytest.mark.parametrize(("channels", "side", "groups", "last"), [(6, 9, 3, False), (128, 7, 128, True)],
                         ids=["planes", "channels-last"])
def test_read_only_operands_run_through_the_loops(numba_kernels, channels, side, groups, last) -> None:
    """A parameter of ``load(..., mmap=True)`` or an input from ``np.frombuffer`` is read-only,
    a type of its own to numba: the loops take it (forward and both gradients) as they take a
    writable one, and give the same results; the caller's arrays are left as they were."""
    g = kernels.Geometry((3, 3), (1, 1), (1, 1), (1, 1), groups)
    x, w, b = loop_arrays(9, g, (side, side), 2, channels // groups, 1)
    assert direct._channels_last(channels, w.shape, g, (side, side)) is last
    for array in (x, w, b):
        array.flags.writeable = False
    backend.use("numba")
    out, saved = kernels.forward(x, w, b, g)
    assert saved.direct
    grads = kernels.backward(np.cos(out), saved, w, g)
    backend.use("numpy")
    out_numpy, saved_numpy = kernels.forward(x, w, b, g)
    assert_near(out, out_numpy.astype(np.float64))
    for ours, reference in zip(grads, kernels.backward(np.cos(out), saved_numpy, w, g), strict=True):
        assert_near(ours, reference.astype(np.float64))
    assert not any(array.flags.writeable for array in (x, w, b))


def test_the_layers_train_the_same_on_both(numba_kernels) -> None:
    """A depthwise layer through autograd: output and every gradient agree across the paths."""
    from modelpack import autograd, nn

    x = np.random.default_rng(5).standard_normal((4, 6, 9, 9)).astype(np.float32)
    results = []
    for choice in ("numpy", "numba"):
        backend.use(choice)
        layer = nn.Conv2D(12, 3, padding=1, strides=2, groups=6, in_channels=6)
        layer.initialize(init="xavier", seed=0)
        variable = autograd.Variable(x)
        with autograd.record():
            out = layer(variable)
        out.backward(np.ones(out.shape, np.float32))
        results.append((out.value, variable.grad, layer.weight.grad(), layer.bias.grad()))
    for compiled, expected in zip(results[1], results[0], strict=True):
        assert_near(compiled, expected)


def test_the_switch(restore_backend, monkeypatch) -> None:
    backend.use("numpy")
    assert backend.name() == "numpy" and backend.compiled() is None
    with pytest.raises(ValueError, match="MODELPACK_KERNELS must be one of auto, numpy, numba, got 'cuda'"):
        backend.use("cuda")
    monkeypatch.setattr(backend, "available", lambda: False)
    with pytest.raises(ImportError, match=r"MODELPACK_KERNELS=numba needs numba: pip install 'modelpack\[accel\]'"):
        backend.use("numba")
    backend.use("auto")
    assert backend.name() == "numpy"


def test_the_environment_variable_chooses(restore_backend, monkeypatch) -> None:
    monkeypatch.setenv("MODELPACK_KERNELS", "numpy")
    monkeypatch.setattr(backend, "_chosen", None)
    assert backend.name() == "numpy"
    monkeypatch.setenv("MODELPACK_KERNELS", "auto")
    monkeypatch.setattr(backend, "_chosen", None)
    assert backend.name() == ("numba" if backend.available() else "numpy")


def test_the_loops_scratch_counts_against_the_budget(numba_kernels) -> None:
    """A hostile padding with a stride that keeps the output tiny: the loops' padded scratch
    planes (256 MB each here) are refused before they are allocated, as numpy's padded copy is."""
    from modelpack import Limits, nn
    from modelpack.errors import LimitError
    from modelpack.nn.budget import ActivationBudget, limit_activations

    backend.use("numba")
    layer = nn.Conv2D(4, 3, strides=4096, padding=4000, groups=4, in_channels=4)
    layer.initialize(seed=0)
    x = np.ones((1, 4, 1, 1), np.float32)
    assert direct.usable(x, layer.weight.data(), layer._geometry())
    limit_activations(layer, ActivationBudget("hostile.mpk", Limits(max_activation_bytes=2**20)))
    with pytest.raises(LimitError, match=r"hostile\.mpk: .*padding the input by \(4000, 4000\): the activations"):
        layer(x)


@pytest.mark.parametrize(("outs", "blocks"), [(1, False), (3, False), (4, True), (9, True)])
def test_only_groups_of_a_block_or_more_get_the_blocks_room(numba_kernels, outs, blocks) -> None:
    """The wide buffer holds OUT_BLOCK more planes only where a group has that many outputs: a
    depthwise convolution of large planes charges and allocates no more than before blocks."""
    from modelpack.nn.kernels import compiled

    planes, wide = compiled.scratch(1, (56, 56), (3, 3), (1, 1), (1, 1), (1, 1), 1, outs)
    plane = math.prod(planes[2:])  # (58 × 58: one example's plane, unstacked)
    _, alone = compiled.scratch(1, (56, 56), (3, 3), (1, 1), (1, 1), (1, 1), 1, 1)
    assert wide - alone == (compiled.OUT_BLOCK * plane if blocks else 0)
    g = kernels.Geometry((3, 3), (1, 1), (1, 1), (1, 1), 2)
    x, w, b = loop_arrays(5, g, (9, 9), 2, 3, outs)
    ours = through("numba", x, w, b, g)
    for compiled_result, expected in zip(ours, through("numpy", x, w, b, g), strict=True):
        assert_near(compiled_result, expected.astype(np.float64))


# -- depthwise on small planes of many channels: channels last -----------------------------------


@st.composite
def many_channels(draw: st.DrawFn) -> tuple[kernels.Geometry, tuple[int, ...], int]:
    """(geometry, input sizes, batch) of a depthwise convolution that runs channels last: at
    most 7×7 outputs of a 5×5 kernel, within ``CHANNELS_LAST_MAX_TAP_POSITIONS``."""
    kernel, strides, padding, dilation, sizes = _axes(draw, 5, 6)
    channels = draw(st.sampled_from([direct.CHANNELS_LAST_MIN_CHANNELS, direct.CHANNELS_LAST_MIN_CHANNELS + 3]))
    g = kernels.Geometry(kernel, strides, padding, dilation, channels)
    # (a wide padding of a large kernel can make more positions than run channels last: not this test's)
    assume(math.prod(g.out_sizes(sizes)) * math.prod(kernel) <= direct.CHANNELS_LAST_MAX_TAP_POSITIONS)
    return g, sizes, draw(st.integers(1, 3))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drawn=many_channels(), seed=st.integers(0, 2**32 - 1))
def test_channels_last_matches_the_planes_loops(no_register_planes, drawn, seed) -> None:
    """The forward takes the same taps in the same order as the phase planes' loops: the same
    bits. The gradients add the same products in another order: near them, as all three are
    near the numpy path, the reference."""
    g, sizes, batch = drawn
    x, w, b = loop_arrays(seed, g, sizes, batch, 1, 1)
    out_sizes = g.out_sizes(x.shape[2:])
    assert direct._channels_last(x.shape[1], w.shape, g, out_sizes)
    backend.use("numba")
    grad = np.cos(np.arange(batch * x.shape[1] * math.prod(out_sizes), dtype=np.float32)).reshape(
        batch, x.shape[1], *out_sizes)

    def passes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (direct.forward(x, w, b, g), direct.grad_input(grad, w, g, x.shape),
                direct.grad_weight(grad, x, g, w.shape))

    last = passes()
    with pytest.MonkeyPatch.context() as patch:  # the planes' loops
        patch.setattr(direct, "CHANNELS_LAST_MIN_CHANNELS", 2**31)
        planes = passes()
    assert last[0].tobytes() == planes[0].tobytes()
    for ours, theirs in zip(last[1:], planes[1:], strict=True):
        assert_near(ours, theirs.astype(np.float64))
    backend.use("numpy")
    out, saved = kernels.forward(x, w, b, g)
    assert_near(last[0], out.astype(np.float64))
    for ours, reference in zip(last[1:], kernels.backward(grad, saved, w, g), strict=True):
        assert_near(ours, reference.astype(np.float64))


def test_the_register_sums_are_taken_for_the_kernels_direct_is_told_of(numba_kernels) -> None:
    """``compiled._register_sums`` (inside the loops) and ``REGISTER_KERNELS`` (which ``direct``
    reads) name the same kernels: the bits alone cannot tell the register sums from the passes."""
    from modelpack.nn.kernels import compiled

    shapes = [(k, k) for k in range(1, 8)] + [(3, 5), (5, 3)]
    taken = [shape for shape in shapes if compiled._register_sums(np.zeros((*shape, 4), np.float32))]
    assert taken == list(compiled.REGISTER_KERNELS) == [(3, 3), (5, 5)]


@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize(("strides", "padding", "dilation", "side"), [
    ((1, 1), (1, 1), (1, 1), 7), ((2, 2), (1, 1), (1, 1), 9), ((1, 2), (2, 0), (2, 1), 8), ((1, 1), (0, 0), (1, 1), 5),
    ((1, 1), (2, 2), (1, 1), 7), ((1, 1), (2, 2), (2, 2), 9),  # 'same' for 5×5, for 3×3 dilated by 2
])
def test_register_sums_run_channels_last_with_the_planes_bits(no_register_planes, kernel, strides, padding,
                                                              dilation, side) -> None:
    """The 3×3 and 5×5 forwards' sums held in registers (``compiled._nine_taps``,
    ``_twenty_five_taps``) add the taps in the planes' loops' order: the same bits, at any
    stride and dilation; 131 channels (a block of ``compiled._LAY_BLOCK`` and a remainder).
    The input's gradient, gathered so at stride 1 with 'same' padding and scattered elsewhere,
    is near the planes' loops' and numpy's."""
    g = kernels.Geometry((kernel, kernel), strides, padding, dilation, 131)
    x, w, b = loop_arrays(side, g, (side + kernel - 3, side + kernel - 3), 2, 1, 1)  # (the 5×5 reaches further)
    backend.use("numba")
    assert direct._channels_last(x.shape[1], w.shape, g, g.out_sizes(x.shape[2:]))
    grad = np.random.default_rng(side).standard_normal((2, 131, *g.out_sizes(x.shape[2:]))).astype(np.float32)
    last = direct.forward(x, w, b, g)
    last_grad = direct.grad_input(grad, w, g, x.shape)  # at stride 1, 'same': gathered (register sums)
    with pytest.MonkeyPatch.context() as patch:  # the planes' loops
        patch.setattr(direct, "CHANNELS_LAST_MIN_CHANNELS", 2**31)
        planes = direct.forward(x, w, b, g)
        planes_grad = direct.grad_input(grad, w, g, x.shape)
    assert last.tobytes() == planes.tobytes()
    assert_near(last_grad, planes_grad.astype(np.float64))
    backend.use("numpy")
    out, saved = kernels.forward(x, w, b, g)
    assert_near(last, out.astype(np.float64))
    assert_near(last_grad, kernels.backward(grad, saved, w, g, need_weight=False)[0].astype(np.float64))


@pytest.mark.parametrize(("channels", "side", "kernel", "multiplier", "taken"), [
    (1024, 7, 3, 1, True),  # MobileNet's last depthwise layer
    (128, 7, 5, 1, True),
    (512, 14, 3, 1, True),
    (512, 15, 3, 1, False),  # 225 positions: the planes' runs are long enough
    (240, 14, 5, 1, True),  # 5×5: its sums in registers (compiled.REGISTER_KERNELS), up to 14×14
    (240, 28, 5, 1, False),  # ... but not 28×28
    (128, 7, 7, 1, False),  # 7×7: 49 taps a position, no register sums: the planes' runs
    (64, 7, 3, 1, False),  # few channels
    (128, 7, 3, 2, False),  # two outputs per channel
])
def test_what_runs_channels_last(no_register_planes, monkeypatch, channels, side, kernel, multiplier, taken
                                 ) -> None:
    """``_channels_last``'s rule (with the register planes, ``test_compiled_depthwise``, out of the
    way: the stride-1 3×3 and 5×5 of these go there first)."""
    from modelpack.nn.kernels import compiled

    names = ("depthwise_last_forward", "depthwise_last_grad_input", "depthwise_last_grad_weight")
    calls = {name: record_calls(monkeypatch, compiled, name) for name in names}
    backend.use("numba")
    g = kernels.Geometry((kernel, kernel), (1, 1), (kernel // 2,) * 2, (1, 1), channels)
    assert_forward_and_gradients_near(*loop_arrays(7, g, (side, side), 2, 1, multiplier), g, training=True)
    assert [name for name in names if calls[name]] == (list(names) if taken else [])


def test_channels_last_bits_do_not_depend_on_the_thread_count(no_register_planes, small_passes_split) -> None:
    g = kernels.Geometry((3, 3), (1, 1), (1, 1), (1, 1), direct.CHANNELS_LAST_MIN_CHANNELS)
    x, w, b = loop_arrays(2, g, (7, 7), 12, 1, 1)
    assert direct._channels_last(x.shape[1], w.shape, g, (7, 7)) and x.size >= parallel.MIN_ELEMENTS  # split
    assert_same_bits_on_one_and_three_threads(x, w, b, g)


def test_the_channels_last_scratch_counts_against_the_budget(numba_kernels) -> None:
    """As the planes' scratch: a hostile padding (its padded example 32 GB, the output 2×2) is
    refused before anything is allocated."""
    from modelpack import Limits, nn
    from modelpack.errors import LimitError
    from modelpack.nn.budget import ActivationBudget, limit_activations

    backend.use("numba")
    channels = direct.CHANNELS_LAST_MIN_CHANNELS
    layer = nn.Conv2D(channels, 3, strides=4096, padding=4000, groups=channels, in_channels=channels)
    layer.initialize(seed=0)
    x = np.ones((1, channels, 1, 1), np.float32)
    g = layer._geometry()
    assert direct._channels_last(channels, layer.weight.shape, g, g.out_sizes(x.shape[2:]))
    limit_activations(layer, ActivationBudget("hostile.mpk", Limits(max_activation_bytes=2**20)))
    with pytest.raises(LimitError, match=r"hostile\.mpk: .*padding the input by \(4000, 4000\), channels last"):
        layer(x)


def test_a_transposed_convolution_charges_the_channels_last_scratch(numba_kernels) -> None:
    """Its forward is ``grad_input``: a stride of 10^5 with the padding to match keeps the
    output 5×5 while the padded scratch would be 10^10 values a channel; refused first."""
    from modelpack import Limits, nn
    from modelpack.errors import LimitError
    from modelpack.nn.budget import ActivationBudget, limit_activations

    backend.use("numba")
    channels = direct.CHANNELS_LAST_MIN_CHANNELS
    layer = nn.Conv2DTranspose(channels, 3, strides=100_000, padding=49_999, groups=channels,
                               in_channels=channels)
    layer.initialize(seed=0)
    x = np.ones((1, channels, 2, 2), np.float32)
    limit_activations(layer, ActivationBudget("hostile.mpk", Limits(max_activation_bytes=2**20)))
    with pytest.raises(LimitError, match=r"hostile\.mpk: .*padding the input by \(49999, 49999\), channels last"):
        layer(x)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_a_layers_own_activation_runs_on_each_chunk_in_the_loops(numba_kernels, monkeypatch, small_passes_split,
                                                                  activation) -> None:
    """LeNet's first convolution with its sigmoid (or a ReLU): the loops take it and apply the
    activation to each chunk of the batch on its thread (two threads), with the bits of the
    activation layer run after it."""

    backend.use("numba")
    chunks: list[int] = []
    original = direct.forward

    def spy(x, weight, bias, g, activation=None):
        def counted(out):
            chunks.append(out.shape[0])
            return activation(out)

        return original(x, weight, bias, g, None if activation is None else counted)

    monkeypatch.setattr(direct, "forward", spy)
    x = np.random.default_rng(5).standard_normal((4, 1, 28, 28)).astype(np.float32)
    layer, expected = activated_and_expected(x, 6, 5, activation, padding=2)
    assert len(chunks) == 0  # (the plain layer has no activation to hand over)
    for out in at_thread_counts(lambda: layer(x)):
        np.testing.assert_array_equal(out, expected)
    assert chunks == [4, 2, 2]  # the whole batch at one thread, two chunks of it at two


def activated_and_expected(x: np.ndarray, channels: int, kernel: int, activation: str, **options: int
                           ) -> tuple[object, np.ndarray]:
    """A Conv2D with its own ``activation``, and what it should give on ``x``: the same layer
    without it, then the activation as a layer of its own."""
    from modelpack import nn

    layer = nn.Conv2D(channels, kernel, activation=activation, in_channels=x.shape[1], **options)
    layer.initialize(seed=0)
    plain = nn.Conv2D(channels, kernel, in_channels=x.shape[1], **options)
    plain.initialize(seed=0)
    plain.weight.set_data(layer.weight.data())
    return layer, nn.Activation(activation)(plain(x))
