"""Gradients of the rest of the Gluon catalogue against PyTorch autograd: N-D and transposed
convolutions, N-D pooling, reflection padding, instance and group norm, PReLU, SELU, Swish,
GELU (both kinds), and the layers that record through their children or ops (Identity,
Lambda, Concatenate). Same method and tolerances as ``test_autograd_layers.py``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_autograd_layers import RTOL, compare, seeds

from modelpack import nn

torch = pytest.importorskip("torch")
F = torch.nn.functional

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
LAYERS = {1: (nn.Conv1D, nn.Conv1DTranspose), 2: (nn.Conv2D, nn.Conv2DTranspose), 3: (nn.Conv3D, nn.Conv3DTranspose)}
SIZES = {1: (9,), 2: (6, 5), 3: (5, 5, 6)}  # >= the largest dilated kernel (5)


@settings(max_examples=40)
@given(dims=st.sampled_from([1, 2, 3]), transpose=st.booleans(), groups=st.sampled_from([1, 2]),
       kernel=st.integers(1, 3), stride=st.integers(1, 2), padding=st.integers(0, 1), dilation=st.integers(1, 2),
       activation=st.sampled_from([None, "relu", "softrelu"]), use_bias=st.booleans(), seed=seeds)
def test_convolutions_in_every_dimension(dims, transpose, groups, kernel, stride, padding, dilation, activation,
                                         use_bias, seed):
    x = np.random.default_rng(seed).normal(size=(2, 2 * groups, *SIZES[dims]))
    act = {None: lambda t: t, "relu": torch.relu, "softrelu": lambda t: F.softplus(t, threshold=50)}[activation]
    if transpose:
        output_padding = 1 if stride > 1 else 0
        layer: nn.Block = LAYERS[dims][1](2 * groups, kernel, strides=stride, padding=padding, dilation=dilation,
                                          output_padding=output_padding, groups=groups, activation=activation,
                                          use_bias=use_bias, dtype="float64")

        def reference(t: Any, weight: Any, bias: Any = None) -> Any:
            return act(CONV_T[dims](t, weight, bias, stride=stride, padding=padding, output_padding=output_padding,
                                    groups=groups, dilation=dilation))
    else:
        layer = LAYERS[dims][0](3 * groups, kernel, strides=stride, padding=padding, dilation=dilation, groups=groups,
                                activation=activation, use_bias=use_bias, dtype="float64")

        def reference(t: Any, weight: Any, bias: Any = None) -> Any:
            return act(CONV[dims](t, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups))

    compare(layer, x, reference, seed)


POOLS = {
    ("max", 1): (nn.MaxPool1D, F.max_pool1d), ("max", 3): (nn.MaxPool3D, F.max_pool3d),
    ("avg", 1): (nn.AvgPool1D, F.avg_pool1d), ("avg", 3): (nn.AvgPool3D, F.avg_pool3d),
}
GLOBAL = {
    ("max", 1): nn.GlobalMaxPool1D, ("max", 3): nn.GlobalMaxPool3D,
    ("avg", 1): nn.GlobalAvgPool1D, ("avg", 3): nn.GlobalAvgPool3D,
}


@settings(max_examples=30)
@given(kind=st.sampled_from(["max", "avg"]), dims=st.sampled_from([1, 3]), pool=st.integers(1, 3),
       stride=st.integers(1, 2), pad=st.integers(0, 1), ceil_mode=st.booleans(), seed=seeds)
def test_pooling_in_1_and_3_dimensions(kind, dims, pool, stride, pad, ceil_mode, seed):
    padding = min(pad, pool // 2)
    x = np.random.default_rng(seed).normal(size=(2, 2, *SIZES[dims]))
    layer_type, function = POOLS[(kind, dims)]
    options: dict[str, Any] = {"ceil_mode": ceil_mode}
    compare(layer_type(pool, stride, padding, **options), x,
            lambda t: function(t, pool, stride, padding, ceil_mode=ceil_mode), seed)
    axes = tuple(range(2, 2 + dims))
    if kind == "avg":
        compare(GLOBAL[(kind, dims)](), x, lambda t: t.mean(dim=axes, keepdim=True), seed)
    else:
        compare(GLOBAL[(kind, dims)](), x, lambda t: t.amax(dim=axes, keepdim=True), seed)


@settings(max_examples=15)
@given(pads=st.lists(st.integers(0, 3), min_size=4, max_size=4), seed=seeds)
def test_reflection_padding(pads, seed):
    x = np.random.default_rng(seed).normal(size=(2, 3, 5, 6))
    layer = nn.ReflectionPad2D([0, 0, 0, 0, *pads])
    compare(layer, x, lambda t: F.pad(t, (pads[2], pads[3], pads[0], pads[1]), mode="reflect"), seed)


@settings(max_examples=20)
@given(center=st.booleans(), scale=st.booleans(), shape=st.sampled_from([(2, 3, 5), (3, 2, 4, 3)]), seed=seeds)
def test_instance_and_group_norm(center, scale, shape, seed):
    x = 1 + 2 * np.random.default_rng(seed).normal(size=shape)
    compare(nn.InstanceNorm(epsilon=1e-3, center=center, scale=scale, dtype="float64"), x,
            lambda t, gamma, beta: F.instance_norm(t, weight=gamma, bias=beta, eps=1e-3), seed)
    channels = shape[1]
    groups = channels if channels % 2 else 2

    def grouped(t: Any, gamma: Any, beta: Any) -> Any:  # MXNet's per-group gamma, spread per channel
        per = channels // groups
        return F.group_norm(t, groups, gamma.repeat_interleave(per), beta.repeat_interleave(per), eps=1e-3)

    compare(nn.GroupNorm(groups, epsilon=1e-3, center=center, scale=scale, dtype="float64"), x, grouped, seed)


@settings(max_examples=20)
@given(channels=st.sampled_from([1, 3]), beta=st.floats(0.2, 3.0), seed=seeds)
def test_activation_catalogue(channels, beta, seed):
    x = 2 * np.random.default_rng(seed).normal(size=(4, 3, 2))
    compare(nn.PReLU(in_channels=channels, dtype="float64"), x, lambda t, alpha: F.prelu(t, alpha), seed)
    compare(nn.SELU(), x, F.selu, seed)
    compare(nn.Swish(beta), x, lambda t: t * torch.sigmoid(beta * t), seed)
    compare(nn.GELU("tanh"), x, lambda t: F.gelu(t, approximate="tanh"), seed)
    compare(nn.GELU(), x, F.gelu, seed, rtol=1e-6)


def test_identity_lambda_and_concatenate_record_through():
    x = np.random.default_rng(0).normal(size=(3, 4))
    compare(nn.Identity(), x, lambda t: t, 0)
    compare(nn.Lambda("tanh"), x, torch.tanh, 0)
    join = nn.Concatenate(axis=1)
    join.add(nn.Dense(2, in_units=4, dtype="float64"), nn.Identity(), nn.Dense(3, in_units=4, activation="tanh",
                                                                              dtype="float64"))

    def reference(t: Any, **p: Any) -> Any:
        first = F.linear(t, p["0.weight"], p["0.bias"])
        last = torch.tanh(F.linear(t, p["2.weight"], p["2.bias"]))
        return torch.cat([first, t, last], dim=1)

    compare(join, x, reference, 0, rtol=RTOL)
