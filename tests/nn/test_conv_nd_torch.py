"""1-D and 3-D convolution and pooling, every transposed convolution, and ReflectionPad2D,
against PyTorch CPU (``Conv2D`` and 2-D pooling: ``test_layers_torch.py``).

Tolerances are ``test_layers_torch``'s: float32 outputs within ``rtol=1e-5, atol=1e-6`` of
torch's, weights scaled by 1/sqrt(fan_in) so that a dot product's rounding stays well under
``atol`` (for a transposed convolution the fan-in is in_channels/groups · prod(kernel), an upper
bound of the taps any output sums). Pooling and padding select or average inputs: same bound.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_layers_torch import F, assert_close, normal, seeds, t, torch_activation

from modelpack import nn
from modelpack.errors import InputError, UsageError

CONV = {1: nn.Conv1D, 2: nn.Conv2D, 3: nn.Conv3D}
CONV_T = {1: nn.Conv1DTranspose, 2: nn.Conv2DTranspose, 3: nn.Conv3DTranspose}
TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
TORCH_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
POOLS = {
    (1, "max"): nn.MaxPool1D, (3, "max"): nn.MaxPool3D, (1, "avg"): nn.AvgPool1D, (3, "avg"): nn.AvgPool3D,
}


@st.composite
def conv_configs(draw: st.DrawFn, dims: int, transpose: bool = False) -> dict:
    axes = []
    for _ in range(dims):
        kernel, stride = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        padding, dilation = draw(st.integers(0, 2)), draw(st.integers(1, 2))
        extent = dilation * (kernel - 1) + 1
        if transpose:
            output_padding = draw(st.integers(0, stride - 1))
            smallest = max(1, -(-(2 * padding - extent - output_padding + 1) // stride) + 1)
        else:
            output_padding, smallest = 0, max(1, extent - 2 * padding)
        axes.append((kernel, stride, padding, dilation, output_padding,
                     draw(st.integers(smallest, smallest + (3 if dims == 3 else 5)))))
    kernel, strides, padding, dilation, output_padding, size = (tuple(v) for v in zip(*axes, strict=True))
    return {
        "batch": draw(st.integers(1, 2)), "groups": draw(st.integers(1, 2)),
        "in_per_group": draw(st.integers(1, 3)), "out_per_group": draw(st.integers(1, 3)),
        "kernel": kernel, "strides": strides, "padding": padding, "dilation": dilation,
        "output_padding": output_padding, "size": size,
    }


@pytest.mark.parametrize("dims", [1, 3])
@pytest.mark.parametrize("activation", [None, "relu", "tanh"])
@settings(max_examples=12, deadline=None)
@given(data=st.data(), use_bias=st.booleans(), seed=seeds)
def test_conv_matches_torch(dims: int, activation: str | None, data: st.DataObject, use_bias: bool, seed: int) -> None:
    cfg = data.draw(conv_configs(dims))
    rng = np.random.default_rng(seed)
    g = cfg["groups"]
    channels, in_channels = g * cfg["out_per_group"], g * cfg["in_per_group"]
    x = normal(rng, (cfg["batch"], in_channels, *cfg["size"]))
    layer = CONV[dims](channels, cfg["kernel"], strides=cfg["strides"], padding=cfg["padding"],
                       dilation=cfg["dilation"], groups=g, use_bias=use_bias, activation=activation)
    layer.initialize(seed=seed)
    layer(x)  # infers in_channels
    assert layer.weight.shape == (channels, cfg["in_per_group"], *cfg["kernel"])
    weight = normal(rng, layer.weight.shape, 1 / math.sqrt(cfg["in_per_group"] * math.prod(cfg["kernel"])))
    layer.weight.set_data(weight)
    bias = normal(rng, (channels,)) if use_bias else None
    if use_bias:
        layer.bias.set_data(bias)
    expected = TORCH_CONV[dims](t(x), t(weight), None if bias is None else t(bias), stride=cfg["strides"],
                                padding=cfg["padding"], dilation=cfg["dilation"], groups=g)
    assert_close(layer(x), torch_activation(activation, expected))


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("activation", [None, "sigmoid"])
@settings(max_examples=15, deadline=None)
@given(data=st.data(), use_bias=st.booleans(), seed=seeds)
def test_conv_transpose_matches_torch(
    dims: int, activation: str | None, data: st.DataObject, use_bias: bool, seed: int
) -> None:
    cfg = data.draw(conv_configs(dims, transpose=True))
    rng = np.random.default_rng(seed)
    g = cfg["groups"]
    channels, in_channels = g * cfg["out_per_group"], g * cfg["in_per_group"]
    x = normal(rng, (cfg["batch"], in_channels, *cfg["size"]))
    layer = CONV_T[dims](channels, cfg["kernel"], strides=cfg["strides"], padding=cfg["padding"],
                         output_padding=cfg["output_padding"], dilation=cfg["dilation"], groups=g,
                         use_bias=use_bias, activation=activation)
    layer.initialize(seed=seed)
    layer(x)  # infers in_channels: MXNet's weight layout (in, out/groups, *kernel)
    assert layer.weight.shape == (in_channels, cfg["out_per_group"], *cfg["kernel"])
    weight = normal(rng, layer.weight.shape, 1 / math.sqrt(cfg["in_per_group"] * math.prod(cfg["kernel"])))
    layer.weight.set_data(weight)
    bias = normal(rng, (channels,)) if use_bias else None
    if use_bias:
        layer.bias.set_data(bias)
    expected = TORCH_CONV_T[dims](
        t(x), t(weight), None if bias is None else t(bias), stride=cfg["strides"], padding=cfg["padding"],
        output_padding=cfg["output_padding"], groups=g, dilation=cfg["dilation"],
    )
    assert_close(layer(x), torch_activation(activation, expected))


def test_conv_transpose_output_size_and_refusals():
    layer = nn.Conv2DTranspose(4, 3, strides=2, padding=1, output_padding=1, in_channels=2)
    layer.initialize(seed=0)
    assert layer(np.ones((1, 2, 5, 5), np.float32)).shape == (1, 4, 10, 10)  # as MXNet computes
    with pytest.raises(UsageError, match=r"output_padding \(2, 2\) must be smaller than strides \(2, 2\)"):
        nn.Conv2DTranspose(4, 3, strides=2, output_padding=2)
    tiny = nn.Conv1DTranspose(2, 1, padding=1, in_channels=1)
    tiny.initialize(seed=0)
    with pytest.raises(InputError, match=r"Conv1DTranspose: input of spatial size \(1,\) gives an empty output \(-1,\)"):
        tiny(np.ones((1, 1, 1), np.float32))
    with pytest.raises(InputError, match="Conv3D expects a 5-D NCDHW input, got shape"):
        nn.Conv3D(2, 1)(np.ones((1, 1, 3, 3), np.float32))


def test_conv_transpose_takes_output_padding_fifth_as_gluon():
    """Gluon's positional order: channels, kernel_size, strides, padding, output_padding, dilation."""
    by_position = nn.Conv2DTranspose(4, 3, 2, 1, 1, 2, in_channels=2)
    assert by_position.get_config() == nn.Conv2DTranspose(
        4, 3, strides=2, padding=1, output_padding=1, dilation=2, in_channels=2).get_config()
    assert by_position.get_config()["output_padding"] == [1, 1]
    with pytest.raises(TypeError, match="Conv2DTranspose\\(\\) got multiple values for argument 'output_padding'"):
        nn.Conv2DTranspose(4, 3, 2, 1, 1, output_padding=1)


@st.composite
def pool_configs(draw: st.DrawFn, dims: int) -> dict:
    axes = []
    for _ in range(dims):
        kernel = draw(st.integers(1, 3))
        padding = draw(st.integers(0, kernel // 2))
        # torch's 3-D pools refuse an input smaller than the kernel even when padding covers it.
        smallest = kernel if dims == 3 else max(1, kernel - 2 * padding)
        axes.append((kernel, padding, draw(st.integers(smallest, 7))))
    kernel, padding, size = (tuple(v) for v in zip(*axes, strict=True))
    return {
        "shape": (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *size),
        "kernel": kernel, "padding": padding, "ceil_mode": draw(st.booleans()),
        "strides": draw(st.none() | st.tuples(*(st.integers(1, 3) for _ in range(dims)))),
    }


@pytest.mark.parametrize(("dims", "kind"), sorted(POOLS))
@settings(max_examples=40, deadline=None)
@given(data=st.data(), count_include_pad=st.booleans(), seed=seeds)
def test_pool_matches_torch(dims: int, kind: str, data: st.DataObject, count_include_pad: bool, seed: int) -> None:
    cfg = data.draw(pool_configs(dims))
    x = normal(np.random.default_rng(seed), cfg["shape"])
    options = {"count_include_pad": count_include_pad} if kind == "avg" else {}
    layer = POOLS[dims, kind](cfg["kernel"], cfg["strides"], cfg["padding"], ceil_mode=cfg["ceil_mode"], **options)
    oracle = getattr(F, f"{kind}_pool{dims}d")
    expected = oracle(t(x), cfg["kernel"], cfg["strides"], cfg["padding"], ceil_mode=cfg["ceil_mode"], **options)
    assert_close(layer(x), expected)


@pytest.mark.parametrize("dims", [1, 3])
@settings(max_examples=20, deadline=None)
@given(data=st.data(), seed=seeds)
def test_global_pools_match_adaptive_pools(dims: int, data: st.DataObject, seed: int) -> None:
    shape = data.draw(hnp.array_shapes(min_dims=dims + 2, max_dims=dims + 2, max_side=5))
    x = normal(np.random.default_rng(seed), shape)
    avg = {1: nn.GlobalAvgPool1D, 3: nn.GlobalAvgPool3D}[dims]()
    top = {1: nn.GlobalMaxPool1D, 3: nn.GlobalMaxPool3D}[dims]()
    assert_close(avg(x), getattr(F, f"adaptive_avg_pool{dims}d")(t(x), 1))
    assert_close(top(x), getattr(F, f"adaptive_max_pool{dims}d")(t(x), 1))


@settings(max_examples=30, deadline=None)
@given(shape=hnp.array_shapes(min_dims=4, max_dims=4, min_side=2, max_side=6), data=st.data(), seed=seeds)
def test_reflection_pad_matches_torch(shape: tuple[int, ...], data: st.DataObject, seed: int) -> None:
    h, w = shape[2:]
    top, bottom = data.draw(st.integers(0, h - 1)), data.draw(st.integers(0, h - 1))
    left, right = data.draw(st.integers(0, w - 1)), data.draw(st.integers(0, w - 1))
    x = normal(np.random.default_rng(seed), shape)
    layer = nn.ReflectionPad2D((0, 0, 0, 0, top, bottom, left, right))
    assert_close(layer(x), F.pad(t(x), (left, right, top, bottom), mode="reflect"))


def test_reflection_pad_int_and_refusals():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    assert_close(nn.ReflectionPad2D(2)(x), F.pad(t(x), (2, 2, 2, 2), mode="reflect"))
    with pytest.raises(InputError, match=r"padding \(4, 4\) must be smaller than the size 4 it mirrors"):
        nn.ReflectionPad2D(4)(x)
    with pytest.raises(UsageError, match="may only pad the last two axes"):
        nn.ReflectionPad2D((1, 1, 0, 0, 1, 1, 1, 1))

