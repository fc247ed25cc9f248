"""``gluon.loss`` values and gradients against PyTorch's losses (``reduction="none"``).

Float64, so the stated tolerance is the op tests' ``rtol=1e-9, atol=1e-12`` (the same
formulas in another order). Gluon averages each example's loss over its non-batch axes;
torch's per-element losses are averaged the same way before comparing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelpack import autograd, gluon
from modelpack.errors import InputError

torch = pytest.importorskip("torch")
F = torch.nn.functional

RTOL, ATOL = 1e-9, 1e-12
seeds = st.integers(0, 2**32 - 1)


def compare(loss_fn: Any, pred: np.ndarray, label: np.ndarray, reference: Any, seed: int,
            sample_weight: np.ndarray | None = None) -> None:
    """Our per-example loss and d(Σ loss)/d(pred) against torch's."""
    variable = autograd.Variable(pred)
    with autograd.record():
        loss = loss_fn(variable, label, sample_weight)
    loss.backward()
    tensor = torch.tensor(pred, requires_grad=True)
    expected = reference(tensor)
    expected.sum().backward()
    assert loss.shape == (pred.shape[0],)
    np.testing.assert_allclose(loss.value, expected.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(variable.grad, tensor.grad.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(loss_fn(pred, label, sample_weight), loss.value, rtol=0, atol=0)  # eager = recorded


def per_example(values: Any) -> Any:
    return values.reshape(values.shape[0], -1).mean(dim=1)


@settings(max_examples=20)
@given(batch=st.integers(1, 5), classes=st.integers(2, 6), seed=seeds, weighted=st.booleans())
def test_softmax_cross_entropy_sparse(batch, classes, seed, weighted):
    rng = np.random.default_rng(seed)
    pred = 3 * rng.normal(size=(batch, classes))
    label = rng.integers(0, classes, size=batch)
    weight = rng.uniform(0.5, 2, size=(batch, 1)) if weighted else None
    torch_weight = torch.tensor(weight[:, 0]) if weighted else 1.0
    compare(gluon.loss.SoftmaxCrossEntropyLoss(), pred, label,
            lambda t: F.cross_entropy(t, torch.tensor(label), reduction="none") * torch_weight, seed, weight)


@settings(max_examples=10)
@given(seed=seeds)
def test_softmax_cross_entropy_dense_labels_and_other_axis(seed):
    rng = np.random.default_rng(seed)
    pred = rng.normal(size=(4, 3, 5))  # classes on axis 1, 5 positions per example
    probs = rng.dirichlet(np.ones(3), size=(4, 5)).transpose(0, 2, 1)
    compare(gluon.loss.SoftmaxCrossEntropyLoss(axis=1, sparse_label=False), pred, probs,
            lambda t: per_example(F.cross_entropy(t, torch.tensor(probs), reduction="none")), seed)
    label = rng.integers(0, 3, size=(4, 5))
    compare(gluon.loss.SoftmaxCrossEntropyLoss(axis=1), pred, label,
            lambda t: per_example(F.cross_entropy(t, torch.tensor(label), reduction="none")), seed)


@settings(max_examples=20)
@given(shape=st.sampled_from([(4,), (3, 2), (2, 3, 2)]), seed=seeds)
def test_regression_losses(shape, seed):
    rng = np.random.default_rng(seed)
    pred, label = rng.normal(size=shape), rng.normal(size=shape)
    target = torch.tensor(label)
    compare(gluon.loss.L2Loss(), pred, label, lambda t: per_example(F.mse_loss(t, target, reduction="none") / 2), seed)
    compare(gluon.loss.L1Loss(), pred, label, lambda t: per_example(F.l1_loss(t, target, reduction="none")), seed)
    compare(gluon.loss.HuberLoss(rho=0.7), pred, label,
            lambda t: per_example(F.smooth_l1_loss(t, target, reduction="none", beta=0.7)), seed)


@settings(max_examples=20)
@given(shape=st.sampled_from([(5,), (3, 4)]), seed=seeds)
def test_sigmoid_binary_cross_entropy(shape, seed):
    rng = np.random.default_rng(seed)
    logits, label = 6 * rng.normal(size=shape), rng.uniform(size=shape)
    target = torch.tensor(label)
    compare(gluon.loss.SigmoidBinaryCrossEntropyLoss(), logits, label,
            lambda t: per_example(F.binary_cross_entropy_with_logits(t, target, reduction="none")), seed)
    probs = rng.uniform(0.05, 0.95, size=shape)
    # from_sigmoid adds eps = 1e-12 inside each log, as Gluon does: torch's BCE has none, hence atol.
    variable = autograd.Variable(probs)
    with autograd.record():
        loss = gluon.loss.SigmoidBinaryCrossEntropyLoss(from_sigmoid=True)(variable, label)
    expected = per_example(F.binary_cross_entropy(torch.tensor(probs), target, reduction="none"))
    np.testing.assert_allclose(loss.value, expected.numpy(), rtol=1e-9, atol=1e-10)


def test_loss_weight_scales_and_label_is_reshaped():
    pred = np.array([[1.0], [2.0]])
    assert gluon.loss.L2Loss(weight=4.0)(pred, np.array([0.0, 0.0])).tolist() == [2.0, 8.0]
    assert gluon.loss.L1Loss(weight=3.0)(pred, np.zeros((2, 1))).tolist() == [3.0, 6.0]


def test_bad_labels_are_refused():
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    with pytest.raises(InputError, match=r"labels must be class numbers in \[0, 3\), found 0\.\.3"):
        loss_fn(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(InputError, match=r"sparse labels of shape \(3,\) do not fit a prediction of shape \(2, 3\)"):
        loss_fn(np.zeros((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(InputError, match=r"label of shape \(3,\) does not fit a prediction of shape \(2, 1\)"):
        gluon.loss.L2Loss()(np.zeros((2, 1)), np.zeros(3))
