"""Layer behaviour that needs no oracle: refusals, Dropout's statistics, error messages.

Numerics against torch live in ``test_layers_torch.py`` (live, when torch is installed) and
``test_layers_reference.py`` (committed torch outputs, always).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from modelpack import nn
from modelpack.errors import InputError, ModelpackError, UsageError
from modelpack.nn.kernels import blas


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.Activation("swishy"),
        lambda: nn.Dense(3, activation="swishy"),
        lambda: nn.Conv2D(3, 3, activation="swishy"),
    ],
    ids=["Activation", "Dense", "Conv2D"],
)
def test_unknown_activation_is_named(make: Callable[[], nn.Block]) -> None:
    with pytest.raises(ModelpackError, match="'swishy'"):
        make()


# -- Dropout, Flatten, Embedding -------------------------------------------------------------
@pytest.mark.parametrize(("make", "message"), [
    (lambda: nn.Conv2D(4, 3, groups=3), r"channels \(4\) must be divisible by groups \(3\)"),
    (lambda: nn.Conv2D(6, 3, groups=3, in_channels=4), r"in_channels \(4\) must be divisible by groups \(3\)"),
    (lambda: nn.Dropout(1.5), r"Dropout rate must be in \[0, 1\), got 1.5"),
    (lambda: nn.MaxPool2D(2, padding=2), r"padding \(2, 2\) must be at most half of pool_size \(2, 2\)"),
    (lambda: nn.GroupNorm(0), r"num_groups must be positive, got 0"),
])
def test_layer_arguments_that_cannot_work_are_usage_errors(make, message) -> None:
    # A ModelpackError (and still a ValueError): a converter building layers from a file's
    # attributes words it for the node that gave them.
    with pytest.raises(UsageError, match=message):
        make()


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.9])
def test_dropout_is_identity_at_inference(rate: float) -> None:
    x = np.random.default_rng(0).standard_normal((4, 5, 6)).astype(np.float32)
    np.testing.assert_array_equal(nn.Dropout(rate)(x), x)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_dropout_scales_kept_elements_while_training(rate: float) -> None:
    x = np.random.default_rng(1).uniform(1.0, 2.0, (100, 1000)).astype(np.float32)
    layer = nn.Dropout(rate)
    with nn.training():
        out = layer(x)
    dropped = out == 0
    np.testing.assert_allclose(out[~dropped], x[~dropped] / (1 - rate), rtol=1e-6)
    # Binomial fraction: 6 standard deviations is a flake rate of ~1e-9.
    tolerance = 6 * math.sqrt(rate * (1 - rate) / x.size)
    assert abs(dropped.mean() - rate) < tolerance
    np.testing.assert_array_equal(layer(x), x)  # inference again outside the block


def test_dropout_shares_mask_along_axes() -> None:
    x = np.ones((200, 7), dtype=np.float32)
    with nn.training():
        out = nn.Dropout(0.5, axes=(1,))(x)
    rows_dropped = (out == 0).all(axis=1)
    rows_kept = (out == 2).all(axis=1)
    assert (rows_dropped | rows_kept).all()
    assert rows_dropped.any() and rows_kept.any()


@pytest.mark.parametrize("bad", [[0, 5], [-1, 2]], ids=["too_large", "negative"])
def test_embedding_rejects_out_of_range_index(bad: list[int]) -> None:
    layer = nn.Embedding(5, 3)
    layer.initialize(seed=0)
    with pytest.raises(InputError, match="out of range"):
        layer(np.array(bad))


@pytest.mark.parametrize(
    "layer",
    [nn.Conv2D(2, 3), nn.MaxPool2D(), nn.AvgPool2D(), nn.GlobalAvgPool2D(), nn.GlobalMaxPool2D()],
    ids=lambda layer: type(layer).__name__,
)
def test_spatial_layers_reject_3d_input(layer: nn.Block) -> None:
    layer.initialize(seed=0)
    with pytest.raises(InputError, match="4-D NCHW"):
        layer(np.zeros((2, 3, 8), dtype=np.float32))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("extra", [-1, 0, 5, 2 * (1 << 14) + 3])
def test_relu_is_numpys_maximum_bit_for_bit(dtype, extra) -> None:
    """Large arrays are compared with a block of zeros (``activations._ZEROS_BLOCK``) rather
    than a scalar: the same bits as ``np.maximum(x, 0)`` whatever the size's remainder,
    signed zeros, infinities and NaNs of either sign included; non-contiguous views too."""
    from modelpack.nn import activations

    size = activations._ZEROS_BLOCK + extra
    x = np.random.default_rng(size).standard_normal(size).astype(dtype)
    x[:8] = [np.nan, -np.nan, 0.0, -0.0, np.inf, -np.inf, 1e-40, -1e-40]
    for array in (x, x.reshape(1, -1), x[::2]):
        expected = np.maximum(array, np.zeros((), dtype))
        into = array.copy()
        for out in (activations.relu(array), activations.relu_into(into, into)):  # a new array; in place
            assert out.dtype == dtype and out.shape == array.shape
            bits = [np.ascontiguousarray(a).view(np.uint8) for a in (out, expected)]
            np.testing.assert_array_equal(*bits)
        assert np.shares_memory(activations.relu_into(into, into), into)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_sigmoid_in_place_steps_are_the_formulas_bits(dtype) -> None:
    """``sigmoid`` negates, exponentiates, adds one and inverts in place on one array: the
    bits of ``1 / (1 + exp(-x))``, overflow to the limit 0 included (no warning), for arrays,
    views and 0-d inputs."""
    import warnings

    from modelpack.nn import activations

    x = (np.random.default_rng(1).standard_normal(5000) * 40).astype(dtype)
    x[:6] = [np.nan, np.inf, -np.inf, 0.0, -0.0, np.finfo(dtype).min]
    with np.errstate(over="ignore"):
        expected = (1 / (1 + np.exp(-x))).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for array, want in ((x, expected), (x[::3], expected[::3]), (x[7:8].reshape(()), expected[7])):
            out = activations.sigmoid(array)
            assert out.dtype == dtype and out.shape == np.shape(want)
            assert np.asarray(out).tobytes() == np.asarray(want).tobytes()


@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_bias_and_activation_in_place_are_the_separate_ops(activation, use_bias):
    """Dense writes its bias and activation over the product: the bits of doing each apart."""
    layer = nn.Dense(300, activation=activation, use_bias=use_bias, in_units=70)
    layer.initialize(init="normal", seed=2)
    if use_bias:
        layer.bias.set_data(np.random.default_rng(1).standard_normal(300).astype(np.float32))
    x = np.random.default_rng(0).standard_normal((60, 70)).astype(np.float32)
    with blas.for_product(60, 300, 70):  # the layer's product, on the BLAS threads it uses
        expected = x @ layer.weight.data().T
    expected = expected + layer.bias.data() if use_bias else expected
    expected = nn.activations.get_activation(activation)(expected) if activation else expected
    np.testing.assert_array_equal(layer(x), expected, strict=True)


def test_dense_with_a_wider_bias_promotes_as_numpy_does():
    layer = nn.Dense(3, activation="relu", in_units=2)
    layer.initialize(seed=0)
    layer.bias.cast("float64")
    layer.bias.set_data(np.array([0.1, -5.0, 0.3]))
    out = layer(np.ones((4, 2), np.float32))
    assert out.dtype == np.float64  # not squeezed into the product's float32
    expected = np.maximum(np.ones((4, 2), np.float32) @ layer.weight.data().T + layer.bias.data(), 0)
    np.testing.assert_array_equal(out, expected)
