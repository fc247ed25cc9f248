"""``nn.kernels.compiled_depthwise`` (through ``direct``): a stride-1 depthwise convolution of a
3×3 or 5×5 kernel, every tap's sum in a register, against the phase planes' loops (the same
forward bits), the numpy path and the float64 reference (float32 tolerance,
``test_conv.assert_near``: the gradients add the same products in other orders). Skipped without numba.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_conv import assert_forward_and_gradients_near, assert_near, at_thread_counts, record_calls
from test_direct import (
    activated_and_expected,
    assert_same_bits_on_one_and_three_threads,
    assert_stacked_as_alone,
    loop_arrays,
    through,
)

from modelpack.nn.kernels import backend, direct, parallel
from modelpack.nn.kernels import conv as kernels

PASSES = ("forward", "grad_input", "grad_weight")
# The loops that read the planes in place, where the output is the input's size.
SAME = ("forward_same", "grad_input_same", "grad_weight_same")


@pytest.fixture(scope="module")
def depthwise_loops(numba_kernels) -> Iterator[object]:
    """``compiled_depthwise`` (each test puts the kernels on numba itself)."""
    from modelpack.nn.kernels import compiled_depthwise

    yield compiled_depthwise


@st.composite
def stride_one(draw: st.DrawFn) -> tuple[kernels.Geometry, tuple[int, int], int, int]:
    """(geometry, input sizes, batch, stack positions) of a stride-1 depthwise convolution of a
    kernel the loops take, any dilation and padding (up to one wider than d·(k − 1)); a small
    ``STACK_POSITIONS`` stacks a few examples, the last stack short."""
    from modelpack.nn.kernels import compiled_depthwise

    side = draw(st.sampled_from(compiled_depthwise.SIDES))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple(draw(st.integers(0, d * (side - 1) + 1)) for d in dilation)
    sizes = tuple(max(1, d * (side - 1) + 1 - 2 * p) + draw(st.integers(0, 6)) for p, d in zip(padding, dilation,
                                                                                               strict=True))
    channels = draw(st.integers(2, 5))  # (one channel is an ungrouped convolution: im2col's on small planes)
    g = kernels.Geometry((side, side), (1, 1), padding, dilation, channels)
    stack = draw(st.sampled_from([1, 300, compiled_depthwise.STACK_POSITIONS]))
    return g, sizes, draw(st.integers(1, 5)), stack


@settings(max_examples=60, deadline=None)
@given(drawn=stride_one(), seed=st.integers(0, 2**32 - 1))
def test_the_loops_give_the_planes_bits_and_the_numpy_paths_values(depthwise_loops, drawn, seed) -> None:
    """Ordinary and transposed (``test_direct.through``): the forwards (the convolution's and
    the transposed one's input gradient) are the phase planes' loops' bits; every result is
    near the numpy path's. The input's gradient runs here only where its padding allows."""
    g, sizes, batch, stack = drawn
    x, w, b = loop_arrays(seed, g, sizes, batch, 1, 1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(depthwise_loops, "STACK_POSITIONS", stack)
        calls = {name: record_calls(patch, depthwise_loops, name) for name in PASSES + SAME}
        ours = through("numba", x, w, b, g)
    crops = any(p > d * (k - 1) for k, p, d in zip(g.kernel, g.padding, g.dilation, strict=True))
    same = direct._same_size(g) and g.kernel[0] in depthwise_loops.SAME_SIDES
    forward, backward, weight = SAME if same else PASSES
    assert calls[forward] and calls[weight] and bool(calls[backward]) != crops
    with pytest.MonkeyPatch.context() as patch:  # the phase planes' loops
        patch.setattr(depthwise_loops, "SIDES", ())
        patch.setattr(depthwise_loops, "SAME_SIDES", ())
        patch.setattr(direct, "CHANNELS_LAST_MIN_CHANNELS", 2**31)
        planes = through("numba", x, w, b, g)
    reference = through("numpy", x, w, b, g)
    assert len(ours) == len(planes) == len(reference)
    assert ours[0].tobytes() == planes[0].tobytes()
    for compiled, expected in zip(ours, reference, strict=True):
        assert compiled.dtype == np.float32
        assert_near(compiled, expected.astype(np.float64))


@st.composite
def same_size(draw: st.DrawFn) -> tuple[kernels.Geometry, tuple[int, int], int]:
    """(geometry, input sizes, batch) of a 3×3 depthwise convolution whose output is the input's
    size (padded by the dilation), planes from 1×1 up (narrower than the kernel's reach too)."""
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    g = kernels.Geometry((3, 3), (1, 1), dilation, dilation, draw(st.integers(2, 5)))
    return g, (draw(st.integers(1, 9)), draw(st.integers(1, 9))), draw(st.integers(1, 4))


@settings(max_examples=60, deadline=None)
@given(drawn=same_size(), seed=st.integers(0, 2**32 - 1))
def test_the_same_size_loops_give_the_wide_planes_bits(depthwise_loops, drawn, seed) -> None:
    """Read in place, masked, the forwards and the input's gradients (ordinary and transposed)
    are bit for bit what the wide planes give: each sum adds the same products in the same
    order, a tap outside the plane w·0 as the zero padding does; the weight's gradients near
    them (dot products in vector-wide partial sums, a plane at a time here, a stack there).
    The planes at the array's ends (batch 1: each channel's first or last) read from the edge
    plane."""
    g, sizes, batch = drawn
    x, w, b = loop_arrays(seed, g, sizes, batch, 1, 1)
    with pytest.MonkeyPatch.context() as patch:
        calls = {name: record_calls(patch, depthwise_loops, name) for name in SAME}
        ours = through("numba", x, w, b, g)
    assert all(calls[name] for name in SAME)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(depthwise_loops, "SAME_SIDES", ())
        wide = through("numba", x, w, b, g)
    weights = (2, 5)  # the convolution's and the transposed one's weight gradient
    assert len(ours) == len(wide) == 6
    assert [a.tobytes() for i, a in enumerate(ours) if i not in weights] == \
        [a.tobytes() for i, a in enumerate(wide) if i not in weights]
    for i in weights:
        assert_near(ours[i], wide[i].astype(np.float64))


def test_a_tap_outside_the_plane_reads_nothing_of_its_neighbours(depthwise_loops, monkeypatch) -> None:
    """A run reads its neighbours' values where its taps fall outside its plane, and drops them:
    infinities and NaN in one channel change nothing in the others (w·inf would be NaN)."""
    backend.use("numba")
    calls = record_calls(monkeypatch, depthwise_loops, "forward_same")
    g = kernels.Geometry((3, 3), (1, 1), (1, 1), (1, 1), 3)
    x, w, b = loop_arrays(3, g, (4, 5), 2, 1, 1)
    clean = kernels.forward(x, w, b, g)[0]
    x[:, 1] = np.where(np.arange(20).reshape(4, 5) % 2, np.inf, np.nan)
    dirty = kernels.forward(x, w, b, g)[0]
    assert len(calls) == 2  # (both read in place)
    assert dirty[:, [0, 2]].tobytes() == clean[:, [0, 2]].tobytes()
    assert np.isnan(dirty[:, 1]).all()


@pytest.mark.parametrize("side", [3, 5])
def test_stacked_examples_give_what_one_at_a_time_gives(depthwise_loops, monkeypatch, side) -> None:
    """7 examples of 6×7 in stacks of 3 (the last one short): the forward and the input's
    gradient are the bits of one example at a time (each sum keeps its order), the weight's
    gradient near them (its dot products run over the stack)."""
    g = kernels.Geometry((side, side), (1, 1), (side // 2, side // 2), (1, 1), 4)
    x, w, b = loop_arrays(side, g, (6, 7), 7, 1, 1)
    padded = (6 + side - 1) * (7 + side - 1)
    monkeypatch.setattr(depthwise_loops, "STACK_POSITIONS", 3 * padded)
    assert depthwise_loops.scratch(False, 7, (6, 7), (6, 7), g.kernel, g.padding, g.dilation)[0][0] == 3 * (5 + side)
    stacked = through("numba", x, w, b, g)
    monkeypatch.setattr(depthwise_loops, "STACK_POSITIONS", 1)
    assert_stacked_as_alone(stacked, through("numba", x, w, b, g))


@pytest.mark.parametrize("padding", [(1, 1), (0, 1)])  # in place, and on the wide planes
def test_the_bits_do_not_depend_on_the_thread_count(depthwise_loops, small_passes_split, padding) -> None:
    g = kernels.Geometry((3, 3), (1, 1), padding, (1, 1), 16)
    x, w, b = loop_arrays(4, g, (19, 19), 12, 1, 1)
    assert x.size * 9 >= parallel.MIN_ELEMENTS
    assert direct._in_registers("forward", 16, w.shape, g, depthwise_loops.SIDES)
    assert_same_bits_on_one_and_three_threads(x, w, b, g)


@pytest.mark.parametrize(("shape", "split"), [
    ((8, 32, 16, 16), False),  # 0.59 M multiply-adds and 256 planes: 0.75 M
    ((32, 32, 16, 16), False),  # 3.0 M
    ((4, 1024, 7, 7), True),  # 1.8 M, and 4,096 planes: 4.3 M
    ((8, 512, 14, 14), True),
])
def test_a_pass_goes_to_the_threads_once_its_planes_and_taps_are_enough(depthwise_loops, monkeypatch, shape,
                                                                          split) -> None:
    """``parallel.SPLIT_MIN_WORK``, each plane counted ``PLANE_WORK``: every pass on one slice
    of the channels, or on one a thread (two here), as the weighted work says."""
    backend.use("numba")
    slices: dict[tuple[str, int], set[tuple[int, int]]] = {}  # (loop, threads) → its slices
    for name in SAME:
        original = getattr(depthwise_loops, name)
        monkeypatch.setattr(depthwise_loops, name, lambda *args, name=name, original=original: slices.setdefault(
            (name, parallel.threads()), set()).add(args[-6:-4]) or original(*args))
    g = kernels.Geometry((3, 3), (1, 1), (1, 1), (1, 1), shape[1])
    x, w, b = loop_arrays(5, g, shape[2:], shape[0], 1, 1)
    weighted = math.prod(shape) * 9 + direct.PLANE_WORK * shape[0] * shape[1]
    assert (weighted >= parallel.SPLIT_MIN_WORK) == split
    at_thread_counts(lambda: through("numba", x, w, b, g))
    channels = shape[1]
    halves = [(0, channels // 2), (channels // 2, channels)] if split else [(0, channels)]
    assert slices == {**{(name, 1): {(0, channels)} for name in SAME}, **{(name, 2): set(halves) for name in SAME}}


@pytest.mark.parametrize(("kernel", "strides", "padding", "multiplier", "passes"), [
    ((3, 3), (1, 1), (1, 1), 1, SAME),  # MobileNet's: the output the input's size
    ((5, 5), (1, 1), (2, 2), 1, PASSES),  # MobileNetV3's (25 taps: not in place)
    ((3, 3), (1, 1), (0, 0), 1, PASSES),  # no padding
    ((3, 3), (1, 1), (3, 1), 1, ("forward", "grad_weight")),  # wider than d·(k − 1): the input's gradient crops
    ((3, 3), (2, 2), (1, 1), 1, ()),  # strided
    ((7, 7), (1, 1), (3, 3), 1, ()),  # no register sums for 7×7
    ((3, 5), (1, 1), (1, 2), 1, ()),  # not square
    ((3, 3), (1, 1), (1, 1), 2, ()),  # two outputs per channel: not depthwise
])
def test_what_runs_in_registers(depthwise_loops, monkeypatch, kernel, strides, padding, multiplier, passes) -> None:
    calls = {name: record_calls(monkeypatch, depthwise_loops, name) for name in PASSES + SAME}
    backend.use("numba")
    g = kernels.Geometry(kernel, strides, padding, (1, 1), 6)
    assert_forward_and_gradients_near(*loop_arrays(7, g, (9, 9), 2, 1, multiplier), g, training=True)
    assert tuple(name for name in PASSES + SAME if calls[name]) == passes


def test_the_loops_zero_their_own_scratch(depthwise_loops) -> None:
    """``direct`` hands the loops uninitialised scratch: given scratch full of NaN, every pass
    gives the bits it gives on zeros (the padded border and the junk columns are zeroed inside)."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 2, 5, 6)).astype(np.float32)
    w = rng.standard_normal((2, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(2).astype(np.float32)
    grad = rng.standard_normal((3, 2, 5, 6)).astype(np.float32)
    geometry = (1, 1, 1, 1)  # padding, dilation

    def run(fill: float) -> list[np.ndarray]:
        results = []
        for name, first, second, shape in [("forward", x, w, (3, 2, 5, 6)), ("grad_input", grad, w, (3, 2, 5, 6)),
                                           ("grad_weight", grad, x, (2, 1, 3, 3))]:
            planes, wide = depthwise_loops.scratch(name == "grad_input", 3, (5, 6), (5, 6), (3, 3), (1, 1), (1, 1))
            result = np.empty(shape, np.float32)
            scratch = (np.full(planes, fill, np.float32), np.full(wide, fill, np.float32))
            if name == "forward":  # (every channel: the loops take a slice of them)
                depthwise_loops.forward(first, second, b, result, *scratch, 0, 2, *geometry)
            else:
                getattr(depthwise_loops, name)(first, second, result, *scratch, 0, 2, *geometry)
            results.append(result)
        return results

    for clean, dirty in zip(run(0.0), run(np.nan), strict=True):
        assert not np.isnan(dirty).any()
        assert clean.tobytes() == dirty.tobytes()


def test_the_same_size_loops_fill_their_own_scratch(depthwise_loops) -> None:
    """``direct`` hands the ``*_same`` loops uninitialised scratch: given an edge plane full of
    NaN and every flag set, they give the bits they give on zeros (every flag written inside;
    the edge plane's margins are read only where a flag drops the value), whatever their output
    held (the weight's gradient is a sum). One example: each channel's plane is at an end of
    the array."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 2, 5, 6)).astype(np.float32)
    w = rng.standard_normal((2, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(2).astype(np.float32)
    edge, masks = depthwise_loops.same_scratch((5, 6), (3, 3), (1, 1))

    def run(fill: float, flag: bool) -> list[np.ndarray]:
        scratch = (np.full(edge, fill, np.float32), np.full(masks, flag))
        forward, backward, weight = (np.full_like(array, fill) for array in (x, x, w))
        depthwise_loops.forward_same(x, w, b, forward, *scratch, 0, 2, 1, 1, 1, 1)
        depthwise_loops.grad_input_same(x, w, backward, *scratch, 0, 2, 1, 1, 1, 1)
        depthwise_loops.grad_weight_same(x, x, weight, *scratch, 0, 2, 1, 1, 1, 1)
        return [forward, backward, weight]

    for clean, dirty in zip(run(0.0, False), run(np.nan, True), strict=True):
        assert not np.isnan(dirty).any()
        assert clean.tobytes() == dirty.tobytes()


@pytest.mark.parametrize("name", SAME)
def test_the_same_size_loops_refuse_a_kernel_but_3x3(depthwise_loops, name) -> None:
    """They sum nine taps: a 5×5 kernel (were ``SAME_SIDES`` to name it) is refused, not summed
    in part."""
    x = np.ones((1, 2, 6, 6), np.float32)
    w = np.ones((2, 1, 5, 5), np.float32)
    edge, masks = depthwise_loops.same_scratch((6, 6), (5, 5), (2, 2))
    scratch = (np.empty(edge, np.float32), np.empty(masks, np.bool_))
    arguments = {"forward_same": (x, w, np.zeros(2, np.float32), np.empty_like(x)),
                 "grad_input_same": (x, w, np.empty_like(x)), "grad_weight_same": (x, x, np.empty_like(w))}[name]
    with pytest.raises(ValueError, match="3×3 kernel only"):
        getattr(depthwise_loops, name)(*arguments, *scratch, 0, 2, 2, 2, 1, 1)


def test_the_same_size_loops_scratch_counts_against_the_budget(depthwise_loops) -> None:
    """A 3×3 depthwise convolution padded by 1 on 1×1×1024×1024 planes: one thread's edge plane
    and flags (~13 MB) are refused, naming them, before the output is counted."""
    from modelpack import Limits, nn
    from modelpack.errors import LimitError
    from modelpack.nn.budget import ActivationBudget, limit_activations

    backend.use("numba")
    layer = nn.Conv2D(1, 3, padding=1, groups=1, in_channels=1)
    layer.initialize(seed=0)
    edge, masks = depthwise_loops.same_scratch((1024, 1024), (3, 3), (1, 1))
    assert 4 * math.prod(edge) + math.prod(masks) > 12 * 2**20
    limit_activations(layer, ActivationBudget("big.mpk", Limits(max_activation_bytes=12 * 2**20)))
    with pytest.raises(LimitError, match=r"big\.mpk: .*a plane and its taps' masks"):
        layer(np.ones((1, 1, 1024, 1024), np.float32))


def test_the_scratch_counts_against_the_budget(depthwise_loops) -> None:
    """A hostile padding (the padded planes 256 MB a thread, the input 1×1) is refused before
    anything is allocated, naming the scratch, not the channels-last loops'."""
    from modelpack import Limits, nn
    from modelpack.errors import LimitError
    from modelpack.nn.budget import ActivationBudget, limit_activations

    backend.use("numba")
    layer = nn.Conv2D(4, 3, padding=4000, groups=4, in_channels=4)
    layer.initialize(seed=0)
    g = layer._geometry()
    assert direct._in_registers("forward", 4, layer.weight.shape, g, depthwise_loops.SIDES)
    limit_activations(layer, ActivationBudget("hostile.mpk", Limits(max_activation_bytes=2**20)))
    with pytest.raises(LimitError, match=r"hostile\.mpk: .*padding the input by \(4000, 4000\)") as raised:
        layer(np.ones((1, 4, 1, 1), np.float32))
    assert "channels last" not in str(raised.value)
    assert math.prod(depthwise_loops.scratch(False, 1, (1, 1), (7999, 7999), g.kernel, g.padding, g.dilation)[0]) \
        * 4 > 2**20


def test_a_layers_own_activation_runs_on_each_slice_of_the_channels(depthwise_loops, monkeypatch,
                                                                    small_passes_split) -> None:
    """The loops split the channels over the threads (two here): a depthwise layer's own ReLU
    overwrites each thread's channels of every example (more examples than channels: a slice of
    the batch would leave some out), with the bits of the layer run plain and the activation
    after it."""
    backend.use("numba")
    chunks: list[tuple[int, ...]] = []
    original = depthwise_loops.forward_same  # (3×3, padded 1: the output the input's size)
    monkeypatch.setattr(depthwise_loops, "forward_same", lambda *args: chunks.append(args[-6:-4]) or original(*args))
    x = np.random.default_rng(6).standard_normal((70, 64, 5, 5)).astype(np.float32)
    layer, expected = activated_and_expected(x, 64, 3, "relu", padding=1, groups=64)
    chunks.clear()
    outs = at_thread_counts(lambda: layer(x))
    # the whole of the channels at one thread, two slices of them at two
    assert x.size * 9 >= parallel.MIN_ELEMENTS and chunks[0] == (0, 64) and sorted(chunks[1:]) == [(0, 32), (32, 64)]
    for out in outs:
        np.testing.assert_array_equal(out, expected)
        assert (out >= 0).all() and (out == 0).any()
