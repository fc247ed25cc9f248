"""``gluon.loss``: Gluon's losses, one value per example (averaged over all other axes).

>>> loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()      # doctest: +SKIP
>>> with autograd.record(): l = loss_fn(net(X), y)      # doctest: +SKIP
>>> l.backward(); trainer.step(len(X))                  # doctest: +SKIP

Losses are Blocks written with numpy operators and ``nn.functional``, so the same code runs on
plain arrays and records its ops on the tape inside ``autograd.record()``. ``weight`` scales
the loss; ``sample_weight`` (broadcast against it) weights examples.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..nn import functional as F
from ..nn.block import Block

__all__ = [
    "Loss",
    "L1Loss",
    "L2Loss",
    "SoftmaxCrossEntropyLoss",
    "SoftmaxCELoss",
    "SigmoidBinaryCrossEntropyLoss",
    "SigmoidBCELoss",
    "HuberLoss",
]


class Loss(Block):
    """Base: ``weight`` and ``batch_axis``; ``forward(pred, label, sample_weight=None)``."""

    def __init__(self, weight: float | None = None, batch_axis: int = 0, prefix: str | None = None) -> None:
        super().__init__(prefix=prefix)
        self._weight = weight
        self._batch_axis = batch_axis

    def _finish(self, loss: Any, sample_weight: Any, weight: float | None = None) -> Any:
        """Apply the weights, then average over every axis but the batch axis."""
        if sample_weight is not None:
            loss = loss * sample_weight
        weight = self._weight if weight is None else weight
        if weight is not None:
            loss = loss * float(weight)
        axes = [axis for axis in range(loss.ndim) if axis != self._batch_axis % max(loss.ndim, 1)]
        return F.mean(loss, axis=axes) if axes else loss

    def __repr__(self) -> str:
        return f"{type(self).__name__}(batch_axis={self._batch_axis}, w={self._weight})"


def _like(label: Any, pred: Any) -> Any:
    """The label in the prediction's shape (Gluon reshapes, e.g. (N,) to (N, 1))."""
    if np.shape(label) == np.shape(pred):
        return label
    if int(np.prod(np.shape(label))) != int(np.prod(np.shape(pred))):
        raise InputError(
            f"label of shape {np.shape(label)} does not fit a prediction of shape {np.shape(pred)}"
        )
    return F.reshape(label, np.shape(pred))


class L2Loss(Loss):
    """``weight/2 · (pred - label)²`` (``weight`` defaults to 1)."""

    def __init__(self, weight: float = 1.0, batch_axis: int = 0, prefix: str | None = None) -> None:
        super().__init__(weight, batch_axis, prefix)

    def forward(self, pred: Any, label: Any, sample_weight: Any = None) -> Any:
        return self._finish(np.square(pred - _like(label, pred)), sample_weight, float(self._weight or 0) / 2)


class L1Loss(Loss):
    """``|pred - label|``."""

    def forward(self, pred: Any, label: Any, sample_weight: Any = None) -> Any:
        return self._finish(F.abs(pred - _like(label, pred)), sample_weight)


class HuberLoss(Loss):
    """``|d| - rho/2`` where ``|d| > rho``, else ``d² / (2·rho)``, with ``d = pred - label``."""

    def __init__(self, rho: float = 1.0, weight: float | None = None, batch_axis: int = 0,
                 prefix: str | None = None) -> None:
        super().__init__(weight, batch_axis, prefix)
        self._rho = float(rho)

    def forward(self, pred: Any, label: Any, sample_weight: Any = None) -> Any:
        distance = F.abs(pred - _like(label, pred))
        quadratic = np.square(distance) * (0.5 / self._rho)
        loss = F.where(distance > self._rho, distance - 0.5 * self._rho, quadratic)
        return self._finish(loss, sample_weight)


class SoftmaxCrossEntropyLoss(Loss):
    """``-log softmax(pred)[label]`` along ``axis``; ``sparse_label=False`` takes a distribution
    over classes as the label, ``from_logits=True`` a prediction that is already log-softmax."""

    def __init__(self, axis: int = -1, sparse_label: bool = True, from_logits: bool = False,
                 weight: float | None = None, batch_axis: int = 0, prefix: str | None = None) -> None:
        super().__init__(weight, batch_axis, prefix)
        self._axis = axis
        self._sparse_label = sparse_label
        self._from_logits = from_logits

    def forward(self, pred: Any, label: Any, sample_weight: Any = None) -> Any:
        log_prob = pred if self._from_logits else F.log_softmax(pred, self._axis)
        target = self._one_hot(label, pred) if self._sparse_label else _like(label, pred)
        return self._finish(-F.sum(log_prob * target, axis=self._axis, keepdims=True), sample_weight)

    def _one_hot(self, label: Any, pred: Any) -> np.ndarray:
        shape = np.shape(pred)
        axis = self._axis % len(shape)
        classes = np.asarray(label)
        if classes.ndim == len(shape):
            classes = np.squeeze(classes, axis=axis)
        if classes.shape != shape[:axis] + shape[axis + 1 :]:
            raise InputError(
                f"sparse labels of shape {np.shape(label)} do not fit a prediction of shape {shape}"
            )
        if classes.size and (classes.min() < 0 or classes.max() >= shape[axis] or np.any(classes % 1)):
            raise InputError(
                f"labels must be class numbers in [0, {shape[axis]}), found {classes.min()}..{classes.max()}"
            )
        positions = np.arange(shape[axis]).reshape([-1 if i == axis else 1 for i in range(len(shape))])
        dtype = pred.dtype if np.issubdtype(pred.dtype, np.floating) else np.float32
        return (np.expand_dims(classes, axis) == positions).astype(dtype)


class SigmoidBinaryCrossEntropyLoss(Loss):
    """Binary cross-entropy of ``sigmoid(pred)`` against labels in [0, 1], computed stably;
    ``from_sigmoid=True`` takes probabilities instead of logits."""

    def __init__(self, from_sigmoid: bool = False, weight: float | None = None, batch_axis: int = 0,
                 prefix: str | None = None) -> None:
        super().__init__(weight, batch_axis, prefix)
        self._from_sigmoid = from_sigmoid

    def forward(self, pred: Any, label: Any, sample_weight: Any = None) -> Any:
        label = _like(label, pred)
        if self._from_sigmoid:
            eps = 1e-12
            loss = -(F.log(pred + eps) * label + F.log(1.0 - pred + eps) * (1.0 - label))
        else:  # max(x, 0) - x·y + log(1 + e^-|x|): no overflow for any x
            loss = F.relu(pred) - pred * label + F.softrelu(-F.abs(pred))
        return self._finish(loss, sample_weight)


SoftmaxCELoss = SoftmaxCrossEntropyLoss
SigmoidBCELoss = SigmoidBinaryCrossEntropyLoss
