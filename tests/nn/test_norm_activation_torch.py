"""InstanceNorm, GroupNorm, SyncBatchNorm, PReLU, SELU, Swish and GELU against PyTorch CPU.

Tolerances are ``test_layers_torch``'s: ``rtol=1e-5, atol=1e-6`` on float32 outputs, plus for the
normalisations ``NORM_ROUNDOFFS`` float32 roundoffs of the output's spread (see there).
Where MXNet 1.9 differs from torch the oracle is adapted and the difference stated:
GroupNorm's gamma and beta hold one value per group (torch: per channel; repeated here), and
InstanceNorm and GroupNorm always apply gamma and beta (checked against MXNet's outputs by
hand: with ``scale=False, center=False`` and gamma 2, beta 1, MXNet 1.9.1 returns 2·y + 1).
GELU's oracle is torch in float64 rounded to float32, as in ``test_layers_torch``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_layers_torch import F, assert_close, norm_spread, normal, seeds, t, torch

from modelpack import nn
from modelpack.errors import InputError


@settings(max_examples=40, deadline=None)
@given(
    # torch refuses an instance of one value (ours gives beta there: (x − x)/sqrt(0 + ε) = 0).
    shape=hnp.array_shapes(min_dims=3, max_dims=5, min_side=1, max_side=5).filter(lambda s: min(s[1:]) > 1),
    axis_pick=st.integers(0, 5),
    epsilon=st.sampled_from([1e-5, 1e-3]),
    scale=st.booleans(),
    seed=seeds,
)
def test_instance_norm_matches_torch(
    shape: tuple[int, ...], axis_pick: int, epsilon: float, scale: bool, seed: int
) -> None:
    # axis_pick 0..2: the default axis 1; else any axis but the batch's, positive or negative.
    ndim = len(shape)
    axis = 1 if axis_pick < 3 else 1 + axis_pick % (ndim - 1) - ndim * (axis_pick % 2)
    rng = np.random.default_rng(seed)
    x = normal(rng, shape, 3.0) + 1.0
    channels = shape[axis]
    gamma, beta = rng.uniform(0.5, 2.0, channels).astype(np.float32), normal(rng, (channels,))
    layer = nn.InstanceNorm(axis=axis, epsilon=epsilon, scale=scale)
    layer.gamma.set_data(gamma)  # applied whatever scale says, as MXNet does
    layer.beta.set_data(beta)
    x1 = np.moveaxis(x, axis, 1)
    expected = F.instance_norm(t(x1), weight=t(gamma), bias=t(beta), eps=epsilon)
    x64 = x1.astype(np.float64)
    reduce_axes = tuple(range(2, ndim))
    terms = norm_spread(x64, x64.mean(axis=reduce_axes, keepdims=True), x64.var(axis=reduce_axes, keepdims=True),
                        epsilon, gamma.reshape((1, -1) + (1,) * (ndim - 2)),
                        beta.reshape((1, -1) + (1,) * (ndim - 2)), reduce_axes)
    assert_close(np.moveaxis(layer(x), axis, 1), expected, terms)


@settings(max_examples=40, deadline=None)
@given(
    groups=st.integers(1, 3),
    per_group=st.integers(1, 3),
    shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=5),  # torch: > 1 value per group
    batch=st.integers(1, 3),
    epsilon=st.sampled_from([1e-5, 1e-3]),
    seed=seeds,
)
def test_group_norm_matches_torch_with_per_group_gamma(
    groups: int, per_group: int, shape: tuple[int, ...], batch: int, epsilon: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x = normal(rng, (batch, groups * per_group, *shape), 2.0) - 0.5
    gamma, beta = rng.uniform(0.5, 2.0, groups).astype(np.float32), normal(rng, (groups,))
    layer = nn.GroupNorm(num_groups=groups, epsilon=epsilon)
    assert layer.gamma.shape == (groups,)  # MXNet 1.9: one gamma per group
    layer.gamma.set_data(gamma)
    layer.beta.set_data(beta)
    expected = F.group_norm(t(x), groups, t(np.repeat(gamma, per_group)), t(np.repeat(beta, per_group)), eps=epsilon)
    grouped = x.astype(np.float64).reshape(batch, groups, -1)
    terms = norm_spread(grouped, grouped.mean(axis=2, keepdims=True), grouped.var(axis=2, keepdims=True),
                        epsilon, gamma.reshape(1, -1, 1), beta.reshape(1, -1, 1), 2)
    assert_close(layer(x), expected, terms.reshape(x.shape))


def test_norms_apply_gamma_and_beta_whatever_scale_and_center_say():
    x = normal(np.random.default_rng(0), (2, 4, 3))
    for layer in (nn.InstanceNorm(scale=False, center=False, in_channels=4),
                  nn.GroupNorm(num_groups=2, scale=False, center=False)):
        layer.initialize()
        base = layer(x)
        layer.gamma.set_data(layer.gamma.data() * 2)
        layer.beta.set_data(layer.beta.data() + 1)
        np.testing.assert_allclose(layer(x), 2 * base + 1, rtol=1e-6, atol=1e-6)
        assert layer.gamma.grad_req == "null" and layer.beta.grad_req == "null"


def test_norm_refusals():
    with pytest.raises(InputError, match=r"GroupNorm\(num_groups=3\) needs .* C divisible by 3, got shape \(2, 4, 5\)"):
        nn.GroupNorm(3)(np.ones((2, 4, 5), np.float32))
    with pytest.raises(InputError, match=r"GroupNorm\(num_groups=1\) needs \(N, C, spatial...\)"):
        nn.GroupNorm()(np.ones((2, 4), np.float32))  # MXNet refuses 2-D input too
    with pytest.raises(InputError, match=r"InstanceNorm\(axis=1\) needs .* got shape \(2, 4\)"):
        nn.InstanceNorm()(np.ones((2, 4), np.float32))
    with pytest.raises(InputError, match=r"InstanceNorm\(axis=-3\) needs .* not the batch axis"):
        nn.InstanceNorm(axis=-3)(np.ones((2, 4, 5), np.float32))


def test_sync_batch_norm_is_batch_norm_on_axis_1():
    layer = nn.SyncBatchNorm(in_channels=3, num_devices=4, momentum=0.8)
    assert type(layer) is nn.BatchNorm
    assert layer.get_config() == nn.BatchNorm(in_channels=3, momentum=0.8).get_config()


# -- activations -------------------------------------------------------------------------------
float32_arrays = hnp.arrays(
    np.float32, hnp.array_shapes(min_dims=1, max_dims=4, max_side=6), elements=st.floats(-60, 60, width=32)
)


@settings(max_examples=40, deadline=None)
@given(x=float32_arrays, per_channel=st.booleans(), seed=seeds)
def test_prelu_matches_torch(x: np.ndarray, per_channel: bool, seed: int) -> None:
    channels = x.shape[1] if per_channel and x.ndim > 1 else 1
    alpha = np.random.default_rng(seed).uniform(-0.5, 0.5, channels).astype(np.float32)
    layer = nn.PReLU(in_channels=channels)
    layer.initialize()
    np.testing.assert_array_equal(layer.alpha.data(), np.full(channels, 0.25, np.float32))  # Gluon's default
    layer.alpha.set_data(alpha)
    assert_close(layer(x), F.prelu(t(x), t(alpha)))


def test_prelu_refuses_a_channel_count_it_was_not_built_for():
    layer = nn.PReLU(in_channels=4)
    layer.initialize()
    with pytest.raises(InputError, match=r"PReLU with 4 slopes needs 4 channels on axis 1, got shape \(1, 3, 4\)"):
        layer(np.ones((1, 3, 4), np.float32))


@settings(max_examples=40, deadline=None)
@given(x=float32_arrays, beta=st.floats(0.1, 3.0))
def test_selu_swish_gelu_match_torch(x: np.ndarray, beta: float) -> None:
    assert_close(nn.SELU()(x), F.selu(t(x)))
    beta32 = np.float32(beta)
    assert_close(nn.Swish(beta)(x), t(x) * torch.sigmoid(t(x) * float(beta32)))
    assert_close(nn.GELU()(x), F.gelu(t(x).double()).float())
    assert_close(nn.GELU("tanh")(x), F.gelu(t(x).double(), approximate="tanh").float())


def test_activation_layers_keep_float64():
    x = np.linspace(-3, 3, 7)
    for layer in (nn.SELU(), nn.Swish(0.5), nn.GELU(), nn.GELU("tanh")):
        assert layer(x).dtype == np.float64
    np.testing.assert_allclose(nn.Swish(1.0)(x), x / (1 + np.exp(-x)), rtol=1e-15)
