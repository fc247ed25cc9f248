"""Every ``modelpack.nn`` layer's forward output against PyTorch CPU, the reference oracle.

Inputs are float32 and outputs are compared with ``rtol=1e-5, atol=1e-6`` (``assert_close``).
Weight layouts are converted explicitly: Dense ``(units, in_units)`` goes to ``F.linear``,
Conv2D ``(O, C/G, kh, kw)`` to ``F.conv2d`` with the same groups, stride, padding, dilation.
Hypothesis draws shapes and options; array values come from a seeded numpy generator, with
weights scaled by 1/sqrt(fan_in) so a dot product's float32 rounding stays well below ``atol``
(measured: under half of it over 8000 random Dense/Conv2D cases).

Two justified exceptions, each widening as little as the arithmetic requires:

* GELU: torch's float32 kernel uses a vectorised erf whose absolute error reaches ~1.07e-6
  near |x| = 3.5, above ``atol``; the oracle is torch's GELU in float64, rounded to float32
  (ours is within 1.7e-7 relative of it). The tolerance is unchanged.
* BatchNorm/LayerNorm: y = γ·(x - μ)/σ + β rounds μ at the scale of |x| and then divides
  by σ, and adds terms that may cancel; any float32 implementation, torch's included, errs by
  a few units of roundoff u = 2^-24 times ``spread`` = |γ|·(max|x| + |μ|)/σ + |β|. Outputs
  may differ by ``NORM_ROUNDOFFS``·u·spread beyond ``atol + rtol·|y|``; over 6000 random
  cases (rows with σ² far below ε included) ours and torch differed by at most 5.8·u·spread.
  Running averages get the same allowance with spread = m·|old| + (1 - m)·max|x| (max|x|²
  for the variance), the scale at which their float32 batch statistics are rounded.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from modelpack import nn
from modelpack.errors import InputError
from modelpack.nn.activations import ACTIVATIONS

torch = pytest.importorskip(
    "torch", reason="torch is not installed: the live torch comparisons are skipped; the committed "
    "torch outputs still check every layer (test_layers_reference.py)"
)
F = torch.nn.functional

RTOL, ATOL = 1e-5, 1e-6
UNIT_ROUNDOFF = 2.0**-24  # float32
NORM_ROUNDOFFS = 16  # ~3x the largest measured normalisation difference (5.8 u·spread)

seeds = st.integers(0, 2**32 - 1)
activation_names = st.sampled_from(sorted(ACTIVATIONS))
# Layers with an ``activation`` option are checked with each one (and none) explicitly.
ACTIVATION_CHOICES = [None, *sorted(ACTIVATIONS)]


def _gelu_float64(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x.double()).to(x.dtype)


TORCH_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softrelu": F.softplus,
    "softsign": F.softsign,
    "gelu": _gelu_float64,
    "silu": F.silu,
}


def torch_activation(name: str | None, x: torch.Tensor) -> torch.Tensor:
    return x if name is None else TORCH_ACTIVATIONS[name](x)


def assert_close(
    ours: np.ndarray, expected: torch.Tensor | np.ndarray, spread: np.ndarray | None = None
) -> None:
    """float32 output of the expected shape, within ATOL + RTOL·|expected| of the oracle.

    ``spread`` (normalisation layers only) adds NORM_ROUNDOFFS·u·spread; see the docstring.
    """
    if isinstance(expected, torch.Tensor):
        expected = expected.detach().numpy()
    assert ours.dtype == np.float32
    assert ours.shape == expected.shape
    if spread is None:
        np.testing.assert_allclose(ours, expected, rtol=RTOL, atol=ATOL)
        return
    allowed = ATOL + RTOL * np.abs(expected) + NORM_ROUNDOFFS * UNIT_ROUNDOFF * spread
    error = np.abs(ours.astype(np.float64) - expected)
    bad = ~(error <= allowed)  # NaN fails too
    if bad.any():
        worst = np.unravel_index(np.argmax(np.where(bad, error / allowed, 0)), ours.shape)
        raise AssertionError(
            f"{bad.sum()} of {bad.size} elements differ; worst at {worst}: ours "
            f"{ours[worst]!r}, expected {expected[worst]!r}, allowed error {allowed[worst]:.3g}"
        )


def normal(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def t(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))


def test_every_activation_has_an_oracle() -> None:
    assert set(TORCH_ACTIVATIONS) == set(ACTIVATIONS)


# -- Dense -----------------------------------------------------------------------------------
@pytest.mark.parametrize("activation", ACTIVATION_CHOICES)
@settings(max_examples=10, deadline=None)
@given(
    batch=st.integers(1, 5),
    features=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    units=st.integers(1, 8),
    flatten=st.booleans(),
    use_bias=st.booleans(),
    seed=seeds,
)
def test_dense_matches_linear(
    activation: str | None, batch: int, features: list[int], units: int, flatten: bool,
    use_bias: bool, seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    x = normal(rng, (batch, *features))
    in_units = math.prod(features) if flatten else features[-1]
    layer = nn.Dense(units, activation=activation, use_bias=use_bias, flatten=flatten)
    layer.initialize(seed=seed)
    layer(x)  # infers in_units and finishes the deferred initialization
    assert layer.weight.shape == (units, in_units)

    weight = normal(rng, (units, in_units), 1 / math.sqrt(in_units))
    layer.weight.set_data(weight)
    bias = None
    if use_bias:
        bias = normal(rng, (units,))
        layer.bias.set_data(bias)
    flat = x.reshape(batch, -1) if flatten else x
    expected = F.linear(t(flat), t(weight), None if bias is None else t(bias))
    assert_close(layer(x), torch_activation(activation, expected))


def test_dense_casts_float64_input_to_float32() -> None:
    rng = np.random.default_rng(0)
    x64 = rng.standard_normal((3, 5))
    layer = nn.Dense(4, in_units=5)
    layer.initialize(seed=0)
    out = layer(x64)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, layer(x64.astype(np.float32)))
    expected = F.linear(t(x64.astype(np.float32)), t(layer.weight.data()), t(layer.bias.data()))
    assert_close(out, expected)


# -- activations -----------------------------------------------------------------------------
float32_arrays = hnp.arrays(
    np.float32,
    hnp.array_shapes(min_dims=1, max_dims=3, max_side=8),
    elements=st.floats(-100, 100, width=32),
)
# Far beyond where exp over- or underflows in float32 (|x| > ~88) and where sigmoid saturates.
EXTREMES = np.array(
    [-3e38, -1e30, -1e4, -100, -88.8, -50, -20, -5, -1e-30, -0.0, 0.0, 1e-30, 5, 20, 50,
     88.8, 100, 1e4, 1e30, 3e38],
    dtype=np.float32,
)


@settings(max_examples=60, deadline=None)
@given(name=activation_names, x=float32_arrays)
def test_activation_matches_torch(name: str, x: np.ndarray) -> None:
    assert_close(nn.Activation(name)(x), TORCH_ACTIVATIONS[name](t(x)))


@pytest.mark.parametrize(
    ("layer", "oracle"),
    [pytest.param(nn.Activation(name), TORCH_ACTIVATIONS[name], id=name) for name in ACTIVATIONS]
    + [
        pytest.param(nn.LeakyReLU(0.2), lambda x: F.leaky_relu(x, 0.2), id="leaky_relu"),
        pytest.param(nn.ELU(1.5), lambda x: F.elu(x, 1.5), id="elu"),
    ],
)
def test_activation_extremes_without_warnings(layer: nn.Block, oracle: Callable) -> None:
    # numpy's default error state (underflow is silent, as in every framework), but any
    # RuntimeWarning (overflow, invalid, divide) fails the test.
    with warnings.catch_warnings(), np.errstate(over="warn", divide="warn", invalid="warn"):
        warnings.simplefilter("error")
        out = layer(EXTREMES)
    assert np.isfinite(out).all()
    assert_close(out, oracle(t(EXTREMES)))


def test_gelu_relative_error_in_float64() -> None:
    # The erfc approximation's documented bound (1.2e-7 relative), against an exact erfc.
    x = np.linspace(-37.0, 37.0, 200_001)
    exact = (0.5 * t(x) * torch.special.erfc(-t(x) / math.sqrt(2.0))).numpy()
    ours = nn.Activation("gelu")(x)
    assert ours.dtype == np.float64
    keep = np.abs(exact) > np.finfo(np.float64).tiny
    np.testing.assert_allclose(ours[keep], exact[keep], rtol=1.2e-7, atol=0)


@settings(max_examples=40, deadline=None)
@given(alpha=st.floats(0.0, 1.0), x=float32_arrays)
def test_leaky_relu_matches_torch(alpha: float, x: np.ndarray) -> None:
    assert_close(nn.LeakyReLU(alpha)(x), F.leaky_relu(t(x), alpha))


@settings(max_examples=40, deadline=None)
@given(alpha=st.floats(0.1, 3.0), x=float32_arrays)
def test_elu_matches_torch(alpha: float, x: np.ndarray) -> None:
    assert_close(nn.ELU(alpha)(x), F.elu(t(x), alpha))




@settings(max_examples=30, deadline=None)
@given(shape=hnp.array_shapes(min_dims=2, max_dims=5, max_side=5), seed=seeds)
def test_flatten_matches_torch(shape: tuple[int, ...], seed: int) -> None:
    x = normal(np.random.default_rng(seed), shape)
    assert_close(nn.Flatten()(x), torch.flatten(t(x), 1))


@settings(max_examples=40, deadline=None)
@given(
    input_dim=st.integers(1, 20),
    output_dim=st.integers(1, 8),
    index_shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
    seed=seeds,
)
def test_embedding_matches_torch(
    input_dim: int, output_dim: int, index_shape: tuple[int, ...], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, input_dim, index_shape)
    table = normal(rng, (input_dim, output_dim))
    layer = nn.Embedding(input_dim, output_dim)
    layer.weight.set_data(table)
    assert_close(layer(indices), F.embedding(t(indices), t(table)))



# -- convolution and pooling -----------------------------------------------------------------
@st.composite
def conv_axis(draw: st.DrawFn) -> tuple[int, int, int, int, int]:
    """(kernel, stride, padding, dilation, size) along one spatial axis, size >= extent."""
    kernel, stride = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    padding, dilation = draw(st.integers(0, 2)), draw(st.integers(1, 2))
    smallest = max(1, dilation * (kernel - 1) + 1 - 2 * padding)
    return kernel, stride, padding, dilation, draw(st.integers(smallest, smallest + 5))


@st.composite
def conv_configs(draw: st.DrawFn) -> dict:
    rows, cols = draw(conv_axis()), draw(conv_axis())
    kernel, strides, padding, dilation, size = zip(rows, cols, strict=True)
    return {
        "batch": draw(st.integers(1, 3)),
        "groups": draw(st.integers(1, 3)),
        "in_per_group": draw(st.integers(1, 3)),
        "out_per_group": draw(st.integers(1, 3)),
        "kernel": kernel,
        "strides": strides,
        "padding": padding,
        "dilation": dilation,
        "size": size,
    }


@pytest.mark.parametrize("activation", ACTIVATION_CHOICES)
@settings(max_examples=12, deadline=None)
@given(cfg=conv_configs(), use_bias=st.booleans(), seed=seeds)
def test_conv2d_matches_torch(activation: str | None, cfg: dict, use_bias: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    g = cfg["groups"]
    channels, in_channels = g * cfg["out_per_group"], g * cfg["in_per_group"]
    x = normal(rng, (cfg["batch"], in_channels, *cfg["size"]))
    layer = nn.Conv2D(
        channels, cfg["kernel"], strides=cfg["strides"], padding=cfg["padding"],
        dilation=cfg["dilation"], groups=g, use_bias=use_bias, activation=activation,
    )
    layer.initialize(seed=seed)
    layer(x)  # infers in_channels
    assert layer.weight.shape == (channels, cfg["in_per_group"], *cfg["kernel"])

    fan_in = cfg["in_per_group"] * math.prod(cfg["kernel"])
    weight = normal(rng, layer.weight.shape, 1 / math.sqrt(fan_in))
    layer.weight.set_data(weight)
    bias = None
    if use_bias:
        bias = normal(rng, (channels,))
        layer.bias.set_data(bias)
    expected = F.conv2d(
        t(x), t(weight), None if bias is None else t(bias), stride=cfg["strides"],
        padding=cfg["padding"], dilation=cfg["dilation"], groups=g,
    )
    assert_close(layer(x), torch_activation(activation, expected))



@st.composite
def pool_axis(draw: st.DrawFn) -> tuple[int, int, int]:
    """(kernel, padding, size) along one axis: padding at most half the kernel, size fits."""
    kernel = draw(st.integers(1, 4))
    padding = draw(st.integers(0, kernel // 2))
    return kernel, padding, draw(st.integers(max(1, kernel - 2 * padding), 9))


@st.composite
def pool_configs(draw: st.DrawFn) -> dict:
    kernel, padding, size = zip(draw(pool_axis()), draw(pool_axis()), strict=True)
    return {
        "shape": (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *size),
        "kernel": kernel,
        "strides": draw(st.none() | st.tuples(st.integers(1, 3), st.integers(1, 3))),
        "padding": padding,
        "ceil_mode": draw(st.booleans()),
    }


@settings(max_examples=60, deadline=None)
@given(cfg=pool_configs(), seed=seeds)
def test_max_pool_matches_torch(cfg: dict, seed: int) -> None:
    x = normal(np.random.default_rng(seed), cfg["shape"])
    layer = nn.MaxPool2D(cfg["kernel"], cfg["strides"], cfg["padding"], ceil_mode=cfg["ceil_mode"])
    expected = F.max_pool2d(
        t(x), cfg["kernel"], cfg["strides"], cfg["padding"], ceil_mode=cfg["ceil_mode"]
    )
    assert_close(layer(x), expected)


@settings(max_examples=60, deadline=None)
@given(cfg=pool_configs(), count_include_pad=st.booleans(), seed=seeds)
def test_avg_pool_matches_torch(cfg: dict, count_include_pad: bool, seed: int) -> None:
    x = normal(np.random.default_rng(seed), cfg["shape"])
    layer = nn.AvgPool2D(
        cfg["kernel"], cfg["strides"], cfg["padding"], ceil_mode=cfg["ceil_mode"],
        count_include_pad=count_include_pad,
    )
    expected = F.avg_pool2d(
        t(x), cfg["kernel"], cfg["strides"], cfg["padding"], ceil_mode=cfg["ceil_mode"],
        count_include_pad=count_include_pad,
    )
    assert_close(layer(x), expected)


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_ceil_mode_keeps_one_window_over_an_input_smaller_than_the_pool(pool: str) -> None:
    # width 2 under a 3-wide pool: torch's (and MXNet's "full") rule keeps one window, cut short
    x = normal(np.random.default_rng(0), (2, 3, 4, 2))
    layer = (nn.MaxPool2D if pool == "max" else nn.AvgPool2D)((1, 3), (1, 2), ceil_mode=True)
    expected = (F.max_pool2d if pool == "max" else F.avg_pool2d)(t(x), (1, 3), (1, 2), ceil_mode=True)
    assert layer(x).shape == (2, 3, 4, 1)
    assert_close(layer(x), expected)
    with pytest.raises(InputError, match="smaller than pool size 3"):
        (nn.MaxPool2D if pool == "max" else nn.AvgPool2D)((1, 3), (1, 2))(x)  # floor: no window


@settings(max_examples=30, deadline=None)
@given(shape=hnp.array_shapes(min_dims=4, max_dims=4, max_side=7), seed=seeds)
def test_global_pools_match_adaptive_pools(shape: tuple[int, ...], seed: int) -> None:
    x = normal(np.random.default_rng(seed), shape)
    assert_close(nn.GlobalAvgPool2D()(x), F.adaptive_avg_pool2d(t(x), 1))
    assert_close(nn.GlobalMaxPool2D()(x), F.adaptive_max_pool2d(t(x), 1))


# -- normalisation ---------------------------------------------------------------------------
def norm_spread(
    x: np.ndarray, mean: np.ndarray, var: np.ndarray, epsilon: float,
    gamma: np.ndarray | float, beta: np.ndarray | float, reduce_axes: int | tuple[int, ...],
) -> np.ndarray:
    """|γ|·(max|x| + |μ|)/σ + |β| per element: the scale of a normalisation's float32 rounding.

    ``mean``, ``var``, ``gamma`` and ``beta`` broadcast against ``x`` (keepdims shapes).
    """
    x_scale = np.abs(x).max(axis=reduce_axes, keepdims=True) + np.abs(mean)
    terms = np.abs(gamma) * x_scale / np.sqrt(var + epsilon) + np.abs(beta)
    return np.broadcast_to(terms, x.shape)


def batchnorm_with_stats(
    rng: np.random.Generator, channels: int, *, momentum: float = 0.9, epsilon: float = 1e-5,
    scale: bool = True, axis: int = 1, use_global_stats: bool = False,
) -> tuple[nn.BatchNorm, dict[str, np.ndarray]]:
    """A BatchNorm with non-trivial gamma, beta and running statistics, and those arrays."""
    layer = nn.BatchNorm(axis=axis, momentum=momentum, epsilon=epsilon, scale=scale,
                         use_global_stats=use_global_stats)
    stats = {
        "gamma": rng.uniform(0.5, 2.0, channels).astype(np.float32),
        "beta": normal(rng, (channels,)),
        "running_mean": normal(rng, (channels,)),
        "running_var": rng.uniform(0.5, 2.0, channels).astype(np.float32),
    }
    for name, value in stats.items():
        getattr(layer, name).set_data(value)
    return layer, stats


def channels(vector: np.ndarray, ndim: int) -> np.ndarray:
    """A per-channel vector in float64, shaped to broadcast along axis 1."""
    return np.asarray(vector, dtype=np.float64).reshape((1, -1) + (1,) * (ndim - 2))


def torch_batch_norm(
    x: np.ndarray, stats: dict[str, np.ndarray], *, scale: bool, **kwargs: object
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """F.batch_norm on channels-at-axis-1 input, and the running statistics it updated."""
    running_mean, running_var = t(stats["running_mean"].copy()), t(stats["running_var"].copy())
    out = F.batch_norm(
        t(x), running_mean, running_var, weight=t(stats["gamma"]) if scale else None,
        bias=t(stats["beta"]), **kwargs,
    )
    return out, running_mean, running_var


def batchnorm_spread(
    x: np.ndarray, stats: dict[str, np.ndarray], mean: np.ndarray, var: np.ndarray,
    epsilon: float, scale: bool,
) -> np.ndarray:
    """``norm_spread`` for channels-at-axis-1 input normalised with ``mean`` and ``var``."""
    n = x.ndim
    gamma = channels(stats["gamma"], n) if scale else 1.0
    return norm_spread(x, channels(mean, n), channels(var, n), epsilon, gamma,
                  channels(stats["beta"], n), reduce_axes=(0, *range(2, n)))


batch_norm_shapes = st.sampled_from([2, 4]).flatmap(
    lambda ndim: hnp.array_shapes(min_dims=ndim, max_dims=ndim, max_side=5)
)


@settings(max_examples=40, deadline=None)
@given(
    shape=st.one_of(batch_norm_shapes, hnp.array_shapes(min_dims=2, max_dims=4, max_side=5)),
    axis_pick=st.integers(0, 3),
    channels_first=st.booleans(),
    epsilon=st.sampled_from([1e-5, 1e-3]),
    scale=st.booleans(),
    seed=seeds,
)
def test_batchnorm_inference_uses_running_stats(
    shape: tuple[int, ...], axis_pick: int, channels_first: bool, epsilon: float,
    scale: bool, seed: int,
) -> None:
    # Mostly axis=1 (Gluon's NCHW default); otherwise any axis, negative ones included.
    axis = 1 if channels_first else axis_pick % len(shape) - len(shape) * (axis_pick % 2)
    rng = np.random.default_rng(seed)
    x = normal(rng, shape, 2.0)
    layer, stats = batchnorm_with_stats(rng, shape[axis], epsilon=epsilon, scale=scale, axis=axis)
    x1 = np.moveaxis(x, axis, 1)  # torch wants channels at axis 1
    expected, _, _ = torch_batch_norm(x1, stats, scale=scale, training=False, eps=epsilon)
    terms = batchnorm_spread(x1, stats, stats["running_mean"], stats["running_var"],
                                 epsilon, scale)
    assert_close(np.moveaxis(layer(x), axis, 1), expected, terms)
    for name, value in stats.items():  # inference leaves every statistic alone
        np.testing.assert_array_equal(getattr(layer, name).data(), value)


@settings(max_examples=40, deadline=None)
@given(
    shape=batch_norm_shapes.filter(lambda s: math.prod(s) // s[1] >= 2),
    momentum=st.sampled_from([0.0, 0.1, 0.9, 0.99]),
    scale=st.booleans(),
    seed=seeds,
)
def test_batchnorm_training_uses_batch_stats_and_updates_running_ones(
    shape: tuple[int, ...], momentum: float, scale: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    layer, stats = batchnorm_with_stats(rng, shape[1], momentum=momentum, scale=scale)
    reduce_axes = (0, *range(2, len(shape)))
    for _ in range(2):  # two steps, so the update compounds on an updated average
        x = normal(rng, shape, 2.0) + 0.5
        # torch's momentum weighs the batch; Gluon's weighs the running average.
        expected, torch_mean, _ = torch_batch_norm(
            x, stats, scale=scale, training=True, momentum=1 - momentum, eps=1e-5
        )
        with nn.training():
            out = layer(x)
        x64 = x.astype(np.float64)
        # Gluon normalises with, and averages, the biased batch variance; torch averages the
        # unbiased one, so the expected running variance is computed here.
        batch_mean, batch_var = x64.mean(axis=reduce_axes), x64.var(axis=reduce_axes)
        assert_close(out, expected, batchnorm_spread(x, stats, batch_mean, batch_var, 1e-5, scale))

        old_mean, old_var = stats["running_mean"], stats["running_var"]
        x_max = np.abs(x64).max(axis=reduce_axes)
        mean_spread = momentum * np.abs(old_mean) + (1 - momentum) * x_max
        var_spread = momentum * old_var + (1 - momentum) * x_max**2
        running_mean, running_var = layer.running_mean.data(), layer.running_var.data()
        assert_close(running_mean, momentum * old_mean + (1 - momentum) * batch_mean, mean_spread)
        assert_close(running_var, momentum * old_var + (1 - momentum) * batch_var, var_spread)
        assert_close(running_mean, torch_mean, mean_spread)
        stats = {**stats, "running_mean": running_mean.copy(), "running_var": running_var.copy()}


def test_batchnorm_use_global_stats_ignores_training_mode() -> None:
    rng = np.random.default_rng(3)
    x = normal(rng, (4, 3, 5, 5))
    layer, stats = batchnorm_with_stats(rng, 3, use_global_stats=True)
    expected, _, _ = torch_batch_norm(x, stats, scale=True, training=False)
    with nn.training():
        out = layer(x)
    terms = batchnorm_spread(x, stats, stats["running_mean"], stats["running_var"], 1e-5, True)
    assert_close(out, expected, terms)
    np.testing.assert_array_equal(layer.running_mean.data(), stats["running_mean"])


@settings(max_examples=50, deadline=None)
@given(
    shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=6),
    axis_pick=st.integers(0, 7),
    epsilon=st.sampled_from([1e-5, 1e-3]),
    scale=st.booleans(),
    center=st.booleans(),
    seed=seeds,
)
def test_layernorm_matches_torch(
    shape: tuple[int, ...], axis_pick: int, epsilon: float, scale: bool, center: bool, seed: int
) -> None:
    # axis_pick 0..3 selects the last axis (the default); 4..7 any axis, positive or negative.
    axis = -1 if axis_pick < 4 else (axis_pick % len(shape)) - len(shape) * (axis_pick % 2)
    rng = np.random.default_rng(seed)
    x = normal(rng, shape, 3.0) + 1.0
    features = shape[axis]
    gamma = rng.uniform(0.5, 2.0, features).astype(np.float32)
    beta = normal(rng, (features,))
    layer = nn.LayerNorm(axis=axis, epsilon=epsilon, scale=scale, center=center)
    layer.gamma.set_data(gamma)
    layer.beta.set_data(beta)
    x_last = np.moveaxis(x, axis, -1)  # torch normalises trailing axes
    expected = F.layer_norm(
        t(x_last), (features,), t(gamma) if scale else None, t(beta) if center else None,
        eps=epsilon,
    )
    x64 = x_last.astype(np.float64)
    terms = norm_spread(
        x64, x64.mean(axis=-1, keepdims=True), x64.var(axis=-1, keepdims=True), epsilon,
        gamma if scale else 1.0, beta if center else 0.0, reduce_axes=-1,
    )
    assert_close(np.moveaxis(layer(x), axis, -1), expected, terms)
