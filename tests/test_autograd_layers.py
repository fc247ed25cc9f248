"""The gradient of every registered layer (input and parameters) against PyTorch autograd.

Layers run in float64 inside ``autograd.record()``; the output is backpropagated with a
random head gradient, and the gradients of the input and of every trained parameter are
compared with torch's for the same functional computation (``F.linear``, ``F.conv2d``,
``F.max_pool2d``, ``F.batch_norm``, ...), weights converted as in ``test_nn_layers.py``.
Hypothesis draws configs and shapes; values come from a seeded numpy generator.

Tolerance: ``rtol=1e-9, atol=1e-11``: float64 on both sides, the same arithmetic summed in
another order (see ``test_autograd_ops.py``). GELU-fused layers get ``rtol=atol=1e-6``: our
rational erfc errs by up to 1.2e-7 relative in each Φ(x) of the gradient, and a layer sums
tens of such terms (|weight|, |head| ~ 1) into one input gradient, where they may cancel;
measured: at most 3e-8 absolute. A float32 case checks gradients keep their dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modelpack.random
from modelpack import autograd, nn
from modelpack.autograd.rules import PASS_THROUGH, RULES
from modelpack.nn import registry
from modelpack.nn.activations import ACTIVATIONS

torch = pytest.importorskip("torch")
F = torch.nn.functional

RTOL, ATOL = 1e-9, 1e-11
seeds = st.integers(0, 2**32 - 1)
activations = st.sampled_from([None, *sorted(ACTIVATIONS)])
TORCH_ACTIVATIONS: dict[str | None, Callable[[Any], Any]] = {
    None: lambda t: t,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    # torch's softplus returns x itself past x = 20 (its default threshold): ours stays exact.
    "softrelu": lambda t: F.softplus(t, threshold=50),
    "softsign": F.softsign,
    "gelu": F.gelu,
    "silu": F.silu,
}


def compare(
    layer: nn.Block,
    x: np.ndarray,
    reference: Callable[..., Any],
    seed: int,
    *,
    train: bool = True,
    rtol: float = RTOL,
    x_grad: bool = True,
) -> None:
    atol = ATOL if rtol == RTOL else rtol
    """Run ``layer`` on ``x`` with autograd and ``reference(x, **params)`` with torch; compare
    outputs, the input's gradient and every trained parameter's gradient."""
    rng = np.random.default_rng(seed)
    layer.initialize(init=nn.init.Normal(0.5), seed=seed)
    layer(x)  # deferred shapes are filled in
    for name, param in layer.collect_params().items():  # random values: biases and statistics too
        if param.grad_req == "null" and "running" not in name:
            continue  # BatchNorm/LayerNorm's unused gamma/beta (scale/center=False) stay 1/0
        value = rng.normal(size=param.shape) if "var" not in name else rng.uniform(0.5, 2, param.shape)
        param.set_data(value.astype(param.dtype))
    params = {name: param.data().copy() for name, param in layer.collect_params().items()}
    variable = autograd.Variable(x) if x_grad else x
    with autograd.record(train_mode=train):
        out = layer(variable)
    head = rng.normal(size=out.shape).astype(out.dtype)
    out.backward(head)

    tensors = {name: torch.tensor(value, requires_grad=layer.collect_params()[name].grad_req != "null")
               for name, value in params.items()}
    x_tensor = torch.tensor(x, requires_grad=x_grad and np.issubdtype(x.dtype, np.floating))
    expected = reference(x_tensor, **tensors)
    expected.backward(torch.tensor(head))
    np.testing.assert_allclose(out.value, expected.detach().numpy(), rtol=rtol, atol=atol, err_msg="output")
    if x_grad:
        assert variable.grad is not None and variable.grad.dtype == x.dtype
        np.testing.assert_allclose(variable.grad, x_tensor.grad.numpy(), rtol=rtol, atol=atol, err_msg="input")
    for name, param in layer.collect_params().items():
        if param.grad_req == "null":
            continue
        assert param.grad().dtype == param.dtype, name
        np.testing.assert_allclose(param.grad(), tensors[name].grad.numpy(), rtol=rtol, atol=atol, err_msg=name)


def test_every_layer_type_records_one_node_or_runs_on_variables():
    """A registered type has a rule (one node, one VJP), or is a container or pass-through
    layer whose forward only calls recorded layers and ops."""
    uncovered = []
    for name in registry.known_layers():
        entry = registry.layer_type(name)
        mro = entry.cls.__mro__
        if not (entry.container or any(c in RULES or c in PASS_THROUGH for c in mro)):
            uncovered.append(name)
    assert uncovered == []


@settings(max_examples=30)
@given(units=st.integers(1, 5), activation=activations, use_bias=st.booleans(), flatten=st.booleans(),
       seed=seeds)
def test_dense(units, activation, use_bias, flatten, seed):
    x = np.random.default_rng(seed).normal(size=(3, 2, 4))
    layer = nn.Dense(units, activation=activation, use_bias=use_bias, flatten=flatten, dtype="float64")

    def reference(t: Any, weight: Any, bias: Any = None) -> Any:
        rows = t.reshape(t.shape[0], -1) if flatten else t
        return TORCH_ACTIVATIONS[activation](F.linear(rows, weight, bias))

    compare(layer, x, reference, seed, rtol=1e-6 if activation == "gelu" else RTOL)


@settings(max_examples=40)
@given(channels=st.integers(1, 4), groups=st.sampled_from([1, 2]), kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       strides=st.tuples(st.integers(1, 2), st.integers(1, 2)), padding=st.tuples(st.integers(0, 2), st.integers(0, 1)),
       dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)), activation=activations, use_bias=st.booleans(),
       seed=seeds)
def test_conv2d(channels, groups, kernel, strides, padding, dilation, activation, use_bias, seed):
    x = np.random.default_rng(seed).normal(size=(2, 2 * groups, 7, 6))
    layer = nn.Conv2D(channels * groups, kernel, strides=strides, padding=padding, dilation=dilation,
                      groups=groups, activation=activation, use_bias=use_bias, dtype="float64")

    def reference(t: Any, weight: Any, bias: Any = None) -> Any:
        out = F.conv2d(t, weight, bias, stride=strides, padding=padding, dilation=dilation, groups=groups)
        return TORCH_ACTIVATIONS[activation](out)

    compare(layer, x, reference, seed, rtol=1e-6 if activation == "gelu" else RTOL)


pool_options = dict(
    pool=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    strides=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    pad=st.tuples(st.integers(0, 1), st.integers(0, 1)),
    ceil_mode=st.booleans(),
    seed=seeds,
)


@settings(max_examples=40)
@given(**pool_options, count_include_pad=st.booleans(), kind=st.sampled_from(["max", "avg"]))
def test_pooling(pool, strides, pad, ceil_mode, seed, count_include_pad, kind):
    padding = tuple(min(p, k // 2) for p, k in zip(pad, pool, strict=True))
    x = np.random.default_rng(seed).normal(size=(2, 3, 6, 5))
    if kind == "max":
        layer: nn.Block = nn.MaxPool2D(pool, strides, padding, ceil_mode=ceil_mode)
        reference: Callable[..., Any] = lambda t: F.max_pool2d(t, pool, strides, padding, ceil_mode=ceil_mode)  # noqa: E731
    else:
        layer = nn.AvgPool2D(pool, strides, padding, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
        reference = lambda t: F.avg_pool2d(t, pool, strides, padding, ceil_mode=ceil_mode,  # noqa: E731
                                           count_include_pad=count_include_pad)
    compare(layer, x, reference, seed)


def test_max_pool_tie_goes_to_the_first_maximum_like_torch():
    x = np.ones((1, 1, 4, 4))
    compare(nn.MaxPool2D(2, 1), x, lambda t: F.max_pool2d(t, 2, 1), 0)
    compare(nn.GlobalMaxPool2D(), x, lambda t: F.adaptive_max_pool2d(t, 1), 0)


@settings(max_examples=10)
@given(seed=seeds)
def test_global_pooling(seed):
    x = np.random.default_rng(seed).normal(size=(2, 3, 4, 5))
    compare(nn.GlobalAvgPool2D(), x, lambda t: t.mean(dim=(2, 3), keepdim=True), seed)
    compare(nn.GlobalMaxPool2D(), x, lambda t: F.adaptive_max_pool2d(t, 1), seed)


@settings(max_examples=30)
@given(shape=st.sampled_from([(6, 3), (4, 3, 5), (2, 3, 4, 2)]), axis=st.sampled_from([1, -1]),
       train=st.booleans(), center=st.booleans(), scale=st.booleans(), seed=seeds)
def test_batch_norm(shape, axis, train, center, scale, seed):
    x = 3 + 2 * np.random.default_rng(seed).normal(size=shape)
    layer = nn.BatchNorm(axis=axis, momentum=0.8, epsilon=1e-3, center=center, scale=scale, dtype="float64")

    def reference(t: Any, gamma: Any, beta: Any, running_mean: Any, running_var: Any) -> Any:
        moved = t.movedim(axis, 1)
        out = F.batch_norm(moved, running_mean.detach().clone(), running_var.detach().clone(),
                           gamma if scale else None, beta if center else None,
                           training=train, momentum=0.2, eps=1e-3)
        return out.movedim(1, axis)

    compare(layer, x, reference, seed, train=train)


@settings(max_examples=20)
@given(shape=st.sampled_from([(4, 5), (3, 2, 4)]), axis=st.sampled_from([-1, 1]), center=st.booleans(),
       scale=st.booleans(), seed=seeds)
def test_layer_norm(shape, axis, center, scale, seed):
    x = 1 + np.random.default_rng(seed).normal(size=shape)
    layer = nn.LayerNorm(axis=axis, epsilon=1e-3, center=center, scale=scale, dtype="float64")

    def reference(t: Any, gamma: Any, beta: Any) -> Any:
        moved = t.movedim(axis, -1)
        out = F.layer_norm(moved, (moved.shape[-1],), gamma if scale else None, beta if center else None, eps=1e-3)
        return out.movedim(-1, axis)

    compare(layer, x, reference, seed)


@settings(max_examples=20)
@given(seed=seeds)
def test_embedding_accumulates_repeated_rows(seed):
    indices = np.random.default_rng(seed).integers(0, 4, size=(3, 5))  # repeats are certain
    compare(nn.Embedding(4, 3, dtype="float64"), indices, lambda t, weight: F.embedding(t, weight), seed,
            x_grad=False)


@settings(max_examples=30)
@given(name=st.sampled_from(sorted(ACTIVATIONS)), alpha=st.floats(0.05, 2.0), seed=seeds)
def test_activation_layers(name, alpha, seed):
    x = 2 * np.random.default_rng(seed).normal(size=(3, 4))
    compare(nn.Activation(name), x, TORCH_ACTIVATIONS[name], seed, rtol=1e-6 if name == "gelu" else RTOL)
    compare(nn.LeakyReLU(alpha), x, lambda t: F.leaky_relu(t, alpha), seed)
    compare(nn.ELU(alpha), x, lambda t: F.elu(t, alpha), seed)


def test_flatten():
    x = np.random.default_rng(0).normal(size=(2, 3, 4))
    compare(nn.Flatten(), x, lambda t: t.reshape(2, -1), 0)


def test_dropout_gradient_is_the_mask_it_drew():
    x = np.random.default_rng(0).normal(size=(50, 40))
    layer = nn.Dropout(0.3, axes=(1,))
    modelpack.random.seed(5)
    variable = autograd.Variable(x)
    with autograd.record():
        out = layer(variable)
    out.backward(np.full(x.shape, 2.0))
    modelpack.random.seed(5)
    with nn.training():
        mask = layer.mask(x.shape, x.dtype)  # the same draw from the same stream
    assert mask is not None and mask.shape == (50, 1) and 0 < (mask == 0).mean() < 1
    np.testing.assert_array_equal(out.value, x * mask)
    np.testing.assert_array_equal(variable.grad, np.broadcast_to(2.0 * mask, x.shape))
    with autograd.record(train_mode=False):  # inference: the identity, gradient passed through
        out = layer(variable)
    out.backward()
    np.testing.assert_array_equal(variable.grad, np.broadcast_to(2.0 * mask, x.shape) + 1)


def test_float32_gradients_keep_float32():
    net = nn.Sequential()
    net.add(nn.Conv2D(4, 3, padding=1, activation="relu"), nn.BatchNorm(), nn.MaxPool2D(), nn.Flatten(),
            nn.Dense(5, activation="gelu"), nn.LayerNorm(), nn.Dense(2))
    net.initialize(seed=0)
    x = np.random.default_rng(0).normal(size=(2, 3, 6, 6)).astype(np.float32)
    with autograd.record():
        loss = net(x).sum()
    loss.backward()
    for name, param in net.collect_params().items():
        if param.grad_req != "null":
            assert param.grad().dtype == np.float32 and np.isfinite(param.grad()).all(), name
            assert np.abs(param.grad()).sum() > 0, name
