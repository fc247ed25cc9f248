"""MXNet 1.9.1's ``mxnet.metric``: evaluation metrics that accumulate over batches.

>>> from modelpack import metric
>>> nll = metric.NegativeLogLikelihood()
>>> nll.get()                                   # nothing seen yet: nan, as MXNet
('nll-loss', nan)
>>> nll.update(labels, preds); nll.get()                                  # doctest: +SKIP
('nll-loss', 0.9485599994659424)

Every class, argument, name, alias and value is MXNet 1.9.1's (checked against values that
real MXNet wrote, tests/reference/mxnet_metric.json, by scripts/make_mxnet_metric_refs.py):
``update(labels, preds)`` adds to the running ``sum_metric`` and ``num_inst`` (and their
``global_`` twins, which ``reset_local`` keeps), and ``get()`` gives ``(name, sum_metric /
num_inst)``, nan before any update. ``labels`` and ``preds`` are arrays or lists of arrays,
paired in order; a single array counts as a list of one after the two lengths are compared
(MXNet's ``check_label_shapes``, so a batch of labels and a batch of predictions, one row
each, also pass when their first dimensions agree).

What is accepted: modelpack's arrays (numpy mode, and legacy ``as_nd_ndarray()`` ones), plain
numpy arrays, and anything with ``asnumpy()``. MXNet's metrics take numpy-mode arrays only
where they call no legacy operator (``Accuracy`` and ``Perplexity`` refuse them there); here
they all do.

The running sums are accumulated in float64 as MXNet's are under the numpy it is built with
(numpy 1.x turns ``0.0 + float32`` into float64; numpy 2 would keep float32), so the values
are MXNet's whichever numpy runs here. The float32 batch sums that MXNet takes with its
own ``nd.sum`` (``Loss``, ``Perplexity``) replay its compensated summation. Deliberate
differences: a metric given numpy-mode
arrays works where MXNet's ``Accuracy`` and ``Perplexity`` raise; failed checks raise
``UsageError`` (a ValueError) where MXNet asserts; ``CompositeEvalMetric.get_metric`` raises
for an index out of range (MXNet returns the ValueError instead of raising it).
"""

from __future__ import annotations

import json
import math
import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy

from .errors import UnsupportedFeatureError, UsageError

__all__ = [
    "EvalMetric",
    "CompositeEvalMetric",
    "Accuracy",
    "TopKAccuracy",
    "F1",
    "MCC",
    "Perplexity",
    "MAE",
    "MSE",
    "RMSE",
    "CrossEntropy",
    "NegativeLogLikelihood",
    "PearsonCorrelation",
    "PCC",
    "Loss",
    "Torch",
    "Caffe",
    "CustomMetric",
    "np",
    "create",
    "register",
    "alias",
    "check_label_shapes",
]

_numeric_types = (float, int, numpy.generic)


def _is_array(value: Any) -> bool:
    """What MXNet's metrics take as one array (MXNet: an NDArray, numpy mode's included)."""
    return isinstance(value, numpy.ndarray) or (hasattr(value, "asnumpy") and hasattr(value, "shape"))


def _host(value: Any) -> numpy.ndarray:
    """``value.asnumpy()``: a plain numpy array of an array's values."""
    if isinstance(value, numpy.ndarray):
        return numpy.array(value, subok=False, copy=True)
    if hasattr(value, "asnumpy"):
        return numpy.asarray(value.asnumpy())
    raise UsageError(
        f"metric: labels and predictions are arrays or lists of arrays, got {type(value).__name__} "
        f"{value!r:.60}"
    )


def _f64(value: Any) -> Any:
    """A batch's numpy scalar as MXNet's numpy (1.x) adds it to a Python number: a float32 or
    integer scalar becomes float64 there (``0.0 + float32``); numpy 2 would keep float32."""
    if isinstance(value, numpy.floating):
        return numpy.float64(value)
    return value


def check_label_shapes(labels: Any, preds: Any, wrap: bool = False, shape: bool = False) -> tuple[Any, Any]:
    """MXNet's: the lengths (or, with ``shape``, the shapes) of ``labels`` and ``preds`` must
    agree (ValueError); with ``wrap`` a single array becomes a list of one, after the check."""
    if not shape:
        label_shape, pred_shape = len(labels), len(preds)
    else:
        label_shape, pred_shape = labels.shape, preds.shape
    if label_shape != pred_shape:
        raise ValueError(f"Shape of labels {label_shape} does not match shape of predictions {pred_shape}")
    if wrap:
        if _is_array(labels):
            labels = [labels]
        if _is_array(preds):
            preds = [preds]
    return labels, preds


class EvalMetric:
    """Base class of the metrics: ``update`` (the subclass's), ``get``, ``reset``,
    ``reset_local``, ``get_global``, ``get_name_value``, ``get_config``, ``update_dict``."""

    num_inst: Any
    sum_metric: Any
    global_num_inst: Any
    global_sum_metric: Any

    def __init__(self, name: str, output_names: Any = None, label_names: Any = None, **kwargs: Any) -> None:
        self.name = str(name)
        self.output_names = output_names
        self.label_names = label_names
        self._has_global_stats = kwargs.pop("has_global_stats", False)
        self._kwargs = kwargs
        self.reset()

    def __str__(self) -> str:
        return f"EvalMetric: {dict(self.get_name_value())}"

    def get_config(self) -> dict[str, Any]:
        """The arguments that ``metric.create(**config)`` rebuilds this metric from."""
        config = self._kwargs.copy()
        config.update(
            {
                "metric": self.__class__.__name__,
                "name": self.name,
                "output_names": self.output_names,
                "label_names": self.label_names,
            }
        )
        return config

    def update_dict(self, label: Any, pred: Any) -> None:
        """``update`` with dicts of named arrays (``output_names``/``label_names`` pick, in order)."""
        pred = (
            [pred[name] for name in self.output_names]
            if self.output_names is not None
            else list(pred.values())
        )
        label = (
            [label[name] for name in self.label_names]
            if self.label_names is not None
            else list(label.values())
        )
        self.update(label, pred)

    def update(self, labels: Any, preds: Any) -> None:
        raise NotImplementedError()

    def reset(self) -> None:
        """Forget every update, the global statistics too."""
        self.num_inst = 0
        self.sum_metric = 0.0
        self.global_num_inst = 0
        self.global_sum_metric = 0.0

    def reset_local(self) -> None:
        """Forget the updates since the last reset for ``get``; ``get_global`` keeps them."""
        self.num_inst = 0
        self.sum_metric = 0.0

    def get(self) -> tuple[Any, Any]:
        """``(name, value)``: ``sum_metric / num_inst``, nan before any update."""
        if self.num_inst == 0:
            return (self.name, float("nan"))
        return (self.name, self.sum_metric / self.num_inst)

    def get_global(self) -> tuple[Any, Any]:
        """``get`` over every update since ``reset`` (``reset_local`` does not clear it)."""
        if self._has_global_stats:
            if self.global_num_inst == 0:
                return (self.name, float("nan"))
            return (self.name, self.global_sum_metric / self.global_num_inst)
        return self.get()

    def get_name_value(self) -> list[tuple[Any, Any]]:
        """``get()`` as a list of ``(name, value)`` pairs."""
        name, value = self.get()
        if not isinstance(name, list):
            name = [name]
        if not isinstance(value, list):
            value = [value]
        return list(zip(name, value, strict=False))

    def get_global_name_value(self) -> list[tuple[Any, Any]]:
        """``get_global()`` as a list of ``(name, value)`` pairs."""
        if self._has_global_stats:
            name, value = self.get_global()
            if not isinstance(name, list):
                name = [name]
            if not isinstance(value, list):
                value = [value]
            return list(zip(name, value, strict=False))
        return self.get_name_value()

    def _add(self, value: Any, count: Any) -> None:
        value = _f64(value)
        self.sum_metric += value
        self.global_sum_metric += value
        self.num_inst += count
        self.global_num_inst += count


# --- the registry: metric.create('acc'), create('nll_loss'), create([...]), aliases ---------
_REGISTRY: dict[str, type] = {}


def register(klass: type, name: str | None = None) -> type:
    """Register an ``EvalMetric`` subclass under ``name`` (its class name), lower-cased."""
    if not (isinstance(klass, type) and issubclass(klass, EvalMetric)):
        raise UsageError("Can only register subclass of EvalMetric")
    name = (klass.__name__ if name is None else name).lower()
    if name in _REGISTRY:
        old = _REGISTRY[name]
        warnings.warn(
            f"New metric {klass.__module__}.{klass.__name__} registered with name {name} is "
            f"overriding existing metric {old.__module__}.{old.__name__}",
            UserWarning,
            stacklevel=2,
        )
    _REGISTRY[name] = klass
    return klass


def alias(*aliases: str) -> Callable[[type], type]:
    """A class decorator registering the class under each of ``aliases`` too."""

    def reg(klass: type) -> type:
        for name in aliases:
            register(klass, name)
        return klass

    return reg


def _create(*args: Any, **kwargs: Any) -> EvalMetric:
    if args:
        name, args = args[0], args[1:]
    else:
        try:
            name = kwargs.pop("metric")
        except KeyError:
            raise UsageError(
                "metric.create: name the metric (a name, an EvalMetric, a list or a function)"
            ) from None
    if isinstance(name, EvalMetric):
        if args or kwargs:
            raise UsageError("metric is already an instance. Additional arguments are invalid")
        return name
    if isinstance(name, dict):
        return _create(**name)
    if not isinstance(name, str):
        raise UsageError(f"metric must be of string type, got {type(name).__name__}")
    if name.startswith("["):
        if args or kwargs:
            raise UsageError("metric.create: a JSON metric takes no other arguments")
        name, kwargs = json.loads(name)
        return _create(name, **kwargs)
    if name.startswith("{"):
        if args or kwargs:
            raise UsageError("metric.create: a JSON metric takes no other arguments")
        return _create(**json.loads(name))
    key = name.lower()
    if key not in _REGISTRY:
        raise UsageError(
            f"metric {name!r} is not registered (known: {', '.join(sorted(_REGISTRY))}); "
            "register it with metric.register first"
        )
    return _REGISTRY[key](*args, **kwargs)


def create(metric: Any, *args: Any, **kwargs: Any) -> EvalMetric:
    """A metric from a name (``'acc'``, ``'rmse'``, ...), an ``EvalMetric`` (itself), a list of
    those (a ``CompositeEvalMetric``), a config dict or JSON, or a function
    ``feval(label, pred)`` (a ``CustomMetric``)."""
    if callable(metric) and not isinstance(metric, EvalMetric):
        return CustomMetric(metric, *args, **kwargs)
    if isinstance(metric, list):
        composite = CompositeEvalMetric()
        for child in metric:
            composite.add(create(child, *args, **kwargs))
        return composite
    return _create(metric, *args, **kwargs)


@register
@alias("composite")
class CompositeEvalMetric(EvalMetric):
    """Several metrics updated together; ``get()`` gives ``([names], [values])``."""

    def __init__(
        self, metrics: Any = None, name: str = "composite", output_names: Any = None, label_names: Any = None
    ) -> None:
        super().__init__(name, output_names=output_names, label_names=label_names, has_global_stats=True)
        self.metrics = [create(i) for i in (metrics or [])]

    def add(self, metric: Any) -> None:
        """Add a child metric (anything ``create`` takes)."""
        self.metrics.append(create(metric))

    def get_metric(self, index: int) -> EvalMetric:
        """The child metric at ``index``."""
        try:
            return self.metrics[index]
        except IndexError:
            raise ValueError(f"Metric index {index} is out of range 0 and {len(self.metrics)}") from None

    def update_dict(self, labels: Any, preds: Any) -> None:
        if self.label_names is not None:
            labels = OrderedDict([i for i in labels.items() if i[0] in self.label_names])
        if self.output_names is not None:
            preds = OrderedDict([i for i in preds.items() if i[0] in self.output_names])
        for metric in self.metrics:
            metric.update_dict(labels, preds)

    def update(self, labels: Any, preds: Any) -> None:
        for metric in self.metrics:
            metric.update(labels, preds)

    def reset(self) -> None:
        for metric in getattr(self, "metrics", ()):
            metric.reset()

    def reset_local(self) -> None:
        for metric in getattr(self, "metrics", ()):
            metric.reset_local()

    def _gather(self, which: str) -> tuple[list[Any], list[Any]]:
        names: list[Any] = []
        values: list[Any] = []
        for metric in self.metrics:
            name, value = getattr(metric, which)()
            if isinstance(name, str):
                name = [name]
            if isinstance(value, _numeric_types):
                value = [value]
            names.extend(name)
            values.extend(value)
        return (names, values)

    def get(self) -> tuple[list[Any], list[Any]]:
        return self._gather("get")

    def get_global(self) -> tuple[list[Any], list[Any]]:
        return self._gather("get_global")

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"metrics": [i.get_config() for i in self.metrics]})
        return config


@register
@alias("acc")
class Accuracy(EvalMetric):
    """The fraction of predictions equal to the label; a prediction whose shape differs from
    its label's is a score per class (the arg-max along ``axis`` is the prediction). Labels and
    predictions are compared as int32 (``1.7`` counts as class 1)."""

    def __init__(
        self, axis: int = 1, name: str = "accuracy", output_names: Any = None, label_names: Any = None
    ) -> None:
        super().__init__(
            name, axis=axis, output_names=output_names, label_names=label_names, has_global_stats=True
        )
        self.axis = axis

    def update(self, labels: Any, preds: Any) -> None:
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred_label in zip(labels, preds, strict=False):
            label, pred_label = _host(label), _host(pred_label)
            if pred_label.shape != label.shape:
                pred_label = numpy.argmax(pred_label, axis=self.axis)
            pred_flat = pred_label.astype("int32").flat
            label_flat = label.astype("int32").flat
            check_label_shapes(label_flat, pred_flat)
            num_correct = (pred_flat == label_flat).sum()
            self._add(num_correct, len(pred_flat))


@register
@alias("top_k_accuracy", "top_k_acc")
class TopKAccuracy(EvalMetric):
    """The fraction of labels among the ``top_k`` highest scores (``top_k`` > 1; name
    ``top_k_accuracy_<k>``)."""

    def __init__(
        self, top_k: int = 1, name: str = "top_k_accuracy", output_names: Any = None, label_names: Any = None
    ) -> None:
        super().__init__(
            name, top_k=top_k, output_names=output_names, label_names=label_names, has_global_stats=True
        )
        self.top_k = top_k
        if not self.top_k > 1:
            raise UsageError("Please use Accuracy if top_k is no more than 1")
        self.name += f"_{self.top_k}"

    def update(self, labels: Any, preds: Any) -> None:
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred_label in zip(labels, preds, strict=False):
            pred_label = _host(pred_label)
            if len(pred_label.shape) > 2:
                raise UsageError("Predictions should be no more than 2 dims")
            pred_label = numpy.argpartition(pred_label.astype("float32"), -self.top_k)
            label = _host(label).astype("int32")
            check_label_shapes(label, pred_label)
            num_samples = pred_label.shape[0]
            num_dims = len(pred_label.shape)
            if num_dims == 1:
                # MXNet adds this to sum_metric only (its global sum misses 1-D predictions)
                self.sum_metric += _f64((pred_label.ravel() == label.ravel()).sum())
            elif num_dims == 2:
                num_classes = pred_label.shape[1]
                top_k = min(num_classes, self.top_k)
                for j in range(top_k):
                    num_correct = _f64((pred_label[:, num_classes - 1 - j].ravel() == label.ravel()).sum())
                    self.sum_metric += num_correct
                    self.global_sum_metric += num_correct
            self.num_inst += num_samples
            self.global_num_inst += num_samples


class _BinaryClassificationMetrics:
    """True/false positives/negatives of a two-class prediction (F1's and MCC's counts)."""

    def __init__(self) -> None:
        self.reset_stats()

    def update_binary_stats(self, label: Any, pred: Any) -> None:
        pred = _host(pred)
        label = _host(label).astype("int32")
        pred_label = numpy.argmax(pred, axis=1)
        check_label_shapes(label, pred)
        if len(numpy.unique(label)) > 2:
            raise ValueError(f"{self.__class__.__name__} currently only supports binary classification.")
        pred_true = pred_label == 1
        pred_false = 1 - pred_true
        label_true = label == 1
        label_false = 1 - label_true
        true_pos = (pred_true * label_true).sum()
        false_pos = (pred_true * label_false).sum()
        false_neg = (pred_false * label_true).sum()
        true_neg = (pred_false * label_false).sum()
        self.true_positives += true_pos
        self.global_true_positives += true_pos
        self.false_positives += false_pos
        self.global_false_positives += false_pos
        self.false_negatives += false_neg
        self.global_false_negatives += false_neg
        self.true_negatives += true_neg
        self.global_true_negatives += true_neg

    @staticmethod
    def _ratio(hits: Any, misses: Any) -> float:
        return float(hits) / (hits + misses) if hits + misses > 0 else 0.0

    @property
    def precision(self) -> float:
        return self._ratio(self.true_positives, self.false_positives)

    @property
    def global_precision(self) -> float:
        return self._ratio(self.global_true_positives, self.global_false_positives)

    @property
    def recall(self) -> float:
        return self._ratio(self.true_positives, self.false_negatives)

    @property
    def global_recall(self) -> float:
        return self._ratio(self.global_true_positives, self.global_false_negatives)

    @property
    def fscore(self) -> float:
        precision, recall = self.precision, self.recall
        return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0

    @property
    def global_fscore(self) -> float:
        precision, recall = self.global_precision, self.global_recall
        return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0

    def matthewscc(self, use_global: bool = False) -> float:
        if use_global:
            if not self.global_total_examples:
                return 0.0
            counts = (
                self.global_true_positives,
                self.global_false_positives,
                self.global_false_negatives,
                self.global_true_negatives,
            )
        else:
            if not self.total_examples:
                return 0.0
            counts = (self.true_positives, self.false_positives, self.false_negatives, self.true_negatives)
        true_pos, false_pos, false_neg, true_neg = (float(c) for c in counts)
        terms = [true_pos + false_pos, true_pos + false_neg, true_neg + false_pos, true_neg + false_neg]
        denom = 1.0
        for t in filter(lambda t: t != 0.0, terms):
            denom *= t
        return ((true_pos * true_neg) - (false_pos * false_neg)) / math.sqrt(denom)

    @property
    def total_examples(self) -> Any:
        return self.false_negatives + self.false_positives + self.true_negatives + self.true_positives

    @property
    def global_total_examples(self) -> Any:
        return (
            self.global_false_negatives
            + self.global_false_positives
            + self.global_true_negatives
            + self.global_true_positives
        )

    def local_reset_stats(self) -> None:
        self.false_positives = 0
        self.false_negatives = 0
        self.true_positives = 0
        self.true_negatives = 0

    def reset_stats(self) -> None:
        self.local_reset_stats()
        self.global_false_positives = 0
        self.global_false_negatives = 0
        self.global_true_positives = 0
        self.global_true_negatives = 0


@register
class F1(EvalMetric):
    """F1 of a two-class prediction (scores of shape (N, 2); class 1 is positive):
    ``average="macro"`` averages each update's F1, ``"micro"`` is the F1 of all counts."""

    def __init__(
        self, name: str = "f1", output_names: Any = None, label_names: Any = None, average: str = "macro"
    ) -> None:
        self.average = average
        self.metrics = _BinaryClassificationMetrics()
        EvalMetric.__init__(
            self, name=name, output_names=output_names, label_names=label_names, has_global_stats=True
        )

    def update(self, labels: Any, preds: Any) -> None:
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds, strict=False):
            self.metrics.update_binary_stats(label, pred)
        if self.average == "macro":
            self.sum_metric += self.metrics.fscore
            self.global_sum_metric += self.metrics.global_fscore
            self.num_inst += 1
            self.global_num_inst += 1
            self.metrics.reset_stats()
        else:
            self.sum_metric = self.metrics.fscore * self.metrics.total_examples
            self.global_sum_metric = self.metrics.global_fscore * self.metrics.global_total_examples
            self.num_inst = self.metrics.total_examples
            self.global_num_inst = self.metrics.global_total_examples

    def reset(self) -> None:
        self.sum_metric = 0.0
        self.num_inst = 0
        self.global_num_inst = 0
        self.global_sum_metric = 0.0
        self.metrics.reset_stats()

    def reset_local(self) -> None:
        self.sum_metric = 0.0
        self.num_inst = 0
        self.metrics.local_reset_stats()


@register
class MCC(EvalMetric):
    """Matthews correlation coefficient of a two-class prediction (as ``F1``: scores of shape
    (N, 2), ``average`` ``"macro"`` or ``"micro"``)."""

    def __init__(
        self, name: str = "mcc", output_names: Any = None, label_names: Any = None, average: str = "macro"
    ) -> None:
        self._average = average
        self._metrics = _BinaryClassificationMetrics()
        EvalMetric.__init__(
            self, name=name, output_names=output_names, label_names=label_names, has_global_stats=True
        )

    def update(self, labels: Any, preds: Any) -> None:
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds, strict=False):
            self._metrics.update_binary_stats(label, pred)
        if self._average == "macro":
            self.sum_metric += self._metrics.matthewscc()
            self.global_sum_metric += self._metrics.matthewscc(use_global=True)
            self.num_inst += 1
            self.global_num_inst += 1
            self._metrics.reset_stats()
        else:
            self.sum_metric = self._metrics.matthewscc() * self._metrics.total_examples
            self.global_sum_metric = (
                self._metrics.matthewscc(use_global=True) * self._metrics.global_total_examples
            )
            self.num_inst = self._metrics.total_examples
            self.global_num_inst = self._metrics.global_total_examples

    def reset(self) -> None:
        self.sum_metric = 0.0
        self.num_inst = 0.0
        self.global_sum_metric = 0.0
        self.global_num_inst = 0.0
        self._metrics.reset_stats()

    def reset_local(self) -> None:
        self.sum_metric = 0.0
        self.num_inst = 0.0
        self._metrics.local_reset_stats()


@register
class Perplexity(EvalMetric):
    """``exp`` of the mean negative log-probability of the labels (probabilities below 1e-10
    count as 1e-10); labels equal to ``ignore_label`` (None: none) are left out."""

    def __init__(
        self,
        ignore_label: Any,
        axis: int = -1,
        name: str = "perplexity",
        output_names: Any = None,
        label_names: Any = None,
    ) -> None:
        super().__init__(
            name,
            ignore_label=ignore_label,
            output_names=output_names,
            label_names=label_names,
            has_global_stats=True,
        )
        self.ignore_label = ignore_label
        self.axis = axis

    def update(self, labels: Any, preds: Any) -> None:
        if len(labels) != len(preds):
            raise UsageError(f"Perplexity: {len(labels)} labels for {len(preds)} predictions")
        loss = 0.0
        num: Any = 0
        for label, pred in zip(labels, preds, strict=False):
            label, pred = _host(label), _host(pred)
            if label.size != pred.size / pred.shape[-1]:
                raise UsageError(f"shape mismatch: {label.shape} vs. {pred.shape}")
            label = label.reshape((label.size,))
            pred = _pick(pred, label.astype("int32"), self.axis)
            if self.ignore_label is not None:
                ignore = (label == self.ignore_label).astype(pred.dtype)
                num -= _f64(_nd_sum(ignore))
                pred = pred * (1 - ignore) + ignore
            loss -= _f64(_nd_sum(numpy.log(numpy.maximum(pred.dtype.type(1e-10), pred))))
            num += pred.size
        self.sum_metric += loss
        self.global_sum_metric += loss
        self.num_inst += num
        self.global_num_inst += num

    def get(self) -> tuple[Any, Any]:
        if self.num_inst == 0:
            return (self.name, float("nan"))
        return (self.name, math.exp(self.sum_metric / self.num_inst))

    def get_global(self) -> tuple[Any, Any]:
        if self.global_num_inst == 0:
            return (self.name, float("nan"))
        return (self.name, math.exp(self.global_sum_metric / self.global_num_inst))


def _pick(data: numpy.ndarray, index: numpy.ndarray, axis: int) -> numpy.ndarray:
    """MXNet's ``pick(data, index, axis)`` (mode 'clip'): ``index``'s shape is ``data``'s
    without ``axis``."""
    axis = axis % data.ndim
    expected = data.shape[:axis] + data.shape[axis + 1 :]
    if index.shape != expected:
        raise UsageError(
            f"pick: index of shape {index.shape} for data of shape {data.shape} along axis {axis} "
            f"(expected {expected})"
        )
    index = numpy.clip(index, 0, data.shape[axis] - 1).astype(numpy.int64)
    return numpy.take_along_axis(data, numpy.expand_dims(index, axis), axis).squeeze(axis)


def _nd_sum(values: numpy.ndarray) -> Any:
    """MXNet's ``ndarray.sum(x).asscalar()``: a scalar of ``x``'s dtype, summed in MXNet's order
    with its compensation (numpy's pairwise float32 sum is often an ulp off it)."""
    from .ndarray.op import sequential_reduce

    return sequential_reduce(values, tuple(range(values.ndim)), False, "sum")[()]


def _columns(value: numpy.ndarray) -> numpy.ndarray:
    return value.reshape(value.shape[0], 1) if len(value.shape) == 1 else value


class _Regression(EvalMetric):
    """MAE, MSE, RMSE: one value per (label, pred) pair, averaged over the pairs (not over the
    elements: a batch counts once, whatever its size)."""

    def __init__(self, name: str, output_names: Any = None, label_names: Any = None) -> None:
        super().__init__(name, output_names=output_names, label_names=label_names, has_global_stats=True)

    @staticmethod
    def _error(label: numpy.ndarray, pred: numpy.ndarray) -> Any:
        raise NotImplementedError

    def update(self, labels: Any, preds: Any) -> None:
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds, strict=False):
            self._add(self._error(_columns(_host(label)), _columns(_host(pred))), 1)


@register
class MAE(_Regression):
    """Mean absolute error."""

    def __init__(self, name: str = "mae", output_names: Any = None, label_names: Any = None) -> None:
        super().__init__(name, output_names=output_names, label_names=label_names)

    @staticmethod
    def _error(label: numpy.ndarray, pred: numpy.ndarray) -> Any:
        return numpy.abs(label - pred).mean()


@register
class MSE(_Regression):
    """Mean squared error."""

    def __init__(self, name: str = "mse", output_names: Any = None, label_names: Any = None) -> None:
        super().__init__(name, output_names=output_names, label_names=label_names)

    @staticmethod
    def _error(label: numpy.ndarray, pred: numpy.ndarray) -> Any:
        return ((label - pred) ** 2.0).mean()


@register
class RMSE(_Regression):
    """Root mean squared error (of each batch, then averaged over the batches)."""

    def __init__(self, name: str = "rmse", output_names: Any = None, label_names: Any = None) -> None:
        super().__init__(name, output_names=output_names, label_names=label_names)

    @staticmethod
    def _error(label: numpy.ndarray, pred: numpy.ndarray) -> Any:
        return numpy.sqrt(((label - pred) ** 2.0).mean())


class _LogLikelihood(EvalMetric):
    """CrossEntropy and NegativeLogLikelihood: ``-log(p[label] + eps)`` summed over the rows
    of (N, C) probabilities, averaged over the rows."""

    def __init__(self, eps: float, name: str, output_names: Any, label_names: Any) -> None:
        super().__init__(
            name, eps=eps, output_names=output_names, label_names=label_names, has_global_stats=True
        )
        self.eps = eps

    def update(self, labels: Any, preds: Any) -> None:
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds, strict=False):
            label, pred = _host(label).ravel(), _host(pred)
            num_examples = pred.shape[0]
            if label.shape[0] != num_examples:
                raise UsageError(
                    f"{type(self).__name__}: {label.shape[0]} labels for {num_examples} rows of predictions"
                )
            prob = pred[numpy.arange(num_examples, dtype=numpy.int64), numpy.int64(label)]
            self._add((-numpy.log(prob + self.eps)).sum(), num_examples)


@register
@alias("ce")
class CrossEntropy(_LogLikelihood):
    """Cross-entropy of (N, C) probabilities and N class labels, per example."""

    def __init__(
        self,
        eps: float = 1e-12,
        name: str = "cross-entropy",
        output_names: Any = None,
        label_names: Any = None,
    ) -> None:
        super().__init__(eps, name, output_names, label_names)


@register
@alias("nll_loss")
class NegativeLogLikelihood(_LogLikelihood):
    """Negative log-likelihood of (N, C) probabilities and N class labels, per example."""

    def __init__(
        self, eps: float = 1e-12, name: str = "nll-loss", output_names: Any = None, label_names: Any = None
    ) -> None:
        super().__init__(eps, name, output_names, label_names)


@register
@alias("pearsonr")
class PearsonCorrelation(EvalMetric):
    """Pearson correlation of labels and predictions (in float64): ``"macro"`` averages each
    pair's coefficient, ``"micro"`` is the coefficient of everything seen (running moments)."""

    def __init__(
        self,
        name: str = "pearsonr",
        output_names: Any = None,
        label_names: Any = None,
        average: str = "macro",
    ) -> None:
        self.average = average
        super().__init__(name, output_names=output_names, label_names=label_names, has_global_stats=True)
        if self.average == "micro":
            self.reset_micro()

    def reset_micro(self) -> None:
        self._sse_p: Any = 0
        self._mean_p: Any = 0
        self._sse_l: Any = 0
        self._mean_l: Any = 0
        self._pred_nums = 0
        self._label_nums = 0
        self._conv: Any = 0

    def reset(self) -> None:
        self.num_inst = 0
        self.sum_metric = 0.0
        self.global_num_inst = 0
        self.global_sum_metric = 0.0
        if self.average == "micro":
            self.reset_micro()

    def update_variance(self, new_values: Any, *aggregate: Any) -> tuple[Any, Any, Any]:
        count, mean, m_2 = aggregate
        count += len(new_values)
        delta = new_values - mean
        mean += numpy.sum(delta / count)
        delta_2 = new_values - mean
        m_2 += numpy.sum(delta * delta_2)
        return count, mean, m_2

    def update_cov(self, label: Any, pred: Any) -> None:
        self._conv = self._conv + numpy.sum((label - self._mean_l) * (pred - self._mean_p))

    def update(self, labels: Any, preds: Any) -> None:
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds, strict=False):
            check_label_shapes(label, pred, False, True)
            label = _host(label).ravel().astype(numpy.float64)
            pred = _host(pred).ravel().astype(numpy.float64)
            if self.average == "macro":
                self._add(numpy.corrcoef(pred, label)[0, 1], 1)
            else:
                self.global_num_inst += 1
                self.num_inst += 1
                self._label_nums, self._mean_l, self._sse_l = self.update_variance(
                    label, self._label_nums, self._mean_l, self._sse_l
                )
                self.update_cov(label, pred)
                self._pred_nums, self._mean_p, self._sse_p = self.update_variance(
                    pred, self._pred_nums, self._mean_p, self._sse_p
                )

    def get(self) -> tuple[Any, Any]:
        if self.num_inst == 0:
            return (self.name, float("nan"))
        if self.average == "macro":
            return (self.name, self.sum_metric / self.num_inst)
        n = self._label_nums
        pearsonr = self._conv / (
            (n - 1) * numpy.sqrt(self._sse_p / (n - 1)) * numpy.sqrt(self._sse_l / (n - 1))
        )
        return (self.name, pearsonr)


@register
class PCC(EvalMetric):
    """Multiclass Matthews correlation (the Pearson correlation of the confusion matrix) of
    every update since the last reset; predictions are class scores or class ids."""

    lcm: numpy.ndarray
    gcm: numpy.ndarray

    def __init__(
        self,
        name: str = "pcc",
        output_names: Any = None,
        label_names: Any = None,
        has_global_stats: bool = True,
    ) -> None:
        self.k = 2
        super().__init__(
            name=name, output_names=output_names, label_names=label_names, has_global_stats=has_global_stats
        )

    def _grow(self, inc: int) -> None:
        self.lcm = numpy.pad(self.lcm, ((0, inc), (0, inc)), "constant", constant_values=(0))
        self.gcm = numpy.pad(self.gcm, ((0, inc), (0, inc)), "constant", constant_values=(0))
        self.k += inc

    @staticmethod
    def _calc_mcc(cmat: numpy.ndarray) -> Any:
        n = cmat.sum()
        x = cmat.sum(axis=1)
        y = cmat.sum(axis=0)
        cov_xx = numpy.sum(x * (n - x))
        cov_yy = numpy.sum(y * (n - y))
        if cov_xx == 0 or cov_yy == 0:
            return float("nan")
        i = cmat.diagonal()
        cov_xy = numpy.sum(i * n - x * y)
        return cov_xy / (cov_xx * cov_yy) ** 0.5

    def update(self, labels: Any, preds: Any) -> None:
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds, strict=False):
            label = _host(label).astype("int32", copy=False)
            pred = _host(pred)
            pred = pred.argmax(axis=1) if pred.shape != label.shape else pred.astype("int32", copy=False)
            n = max(pred.max(), label.max())
            if n >= self.k:
                self._grow(int(n) + 1 - self.k)
            bcm = numpy.zeros((self.k, self.k))
            for i, j in zip(pred, label, strict=False):
                bcm[i, j] += 1
            self.lcm += bcm
            self.gcm += bcm
        self.num_inst += 1
        self.global_num_inst += 1

    @property
    def sum_metric(self) -> Any:
        return self._calc_mcc(self.lcm) * self.num_inst

    @property
    def global_sum_metric(self) -> Any:
        return self._calc_mcc(self.gcm) * self.global_num_inst

    def reset(self) -> None:
        self.global_num_inst = 0.0
        self.gcm = numpy.zeros((self.k, self.k))
        self.reset_local()

    def reset_local(self) -> None:
        self.num_inst = 0.0
        self.lcm = numpy.zeros((self.k, self.k))


@register
class Loss(EvalMetric):
    """The mean of the elements of ``preds`` (losses); labels are ignored."""

    def __init__(self, name: str = "loss", output_names: Any = None, label_names: Any = None) -> None:
        super().__init__(name, output_names=output_names, label_names=label_names, has_global_stats=True)

    def update(self, _: Any, preds: Any) -> None:
        if _is_array(preds):
            preds = [preds]
        for pred in preds:
            pred = _host(pred)
            self._add(_nd_sum(pred), pred.size)


@register
class Torch(Loss):
    """``Loss`` named ``torch`` (MXNet's name for losses computed by Torch modules)."""

    def __init__(self, name: str = "torch", output_names: Any = None, label_names: Any = None) -> None:
        super().__init__(name, output_names=output_names, label_names=label_names)


@register
class Caffe(Loss):
    """``Loss`` named ``caffe``."""

    def __init__(self, name: str = "caffe", output_names: Any = None, label_names: Any = None) -> None:
        super().__init__(name, output_names=output_names, label_names=label_names)


@register
class CustomMetric(EvalMetric):
    """A metric from ``feval(label, pred)`` on numpy arrays, returning a value (one instance)
    or a ``(sum_metric, num_inst)`` pair."""

    def __init__(
        self,
        feval: Callable[..., Any],
        name: str | None = None,
        allow_extra_outputs: bool = False,
        output_names: Any = None,
        label_names: Any = None,
    ) -> None:
        if name is None:
            name = feval.__name__
            if name.find("<") != -1:
                name = f"custom({name})"
        super().__init__(
            name,
            feval=feval,
            allow_extra_outputs=allow_extra_outputs,
            output_names=output_names,
            label_names=label_names,
            has_global_stats=True,
        )
        self._feval = feval
        self._allow_extra_outputs = allow_extra_outputs

    def update(self, labels: Any, preds: Any) -> None:
        if not self._allow_extra_outputs:
            labels, preds = check_label_shapes(labels, preds, True)
        for pred, label in zip(preds, labels, strict=False):
            reval = self._feval(_host(label), _host(pred))
            if isinstance(reval, tuple):
                sum_metric, num_inst = reval
                self._add(sum_metric, num_inst)
            else:
                self._add(reval, 1)

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError("CustomMetric cannot be serialized")


def np(
    numpy_feval: Callable[..., Any], name: str | None = None, allow_extra_outputs: bool = False
) -> CustomMetric:
    """A ``CustomMetric`` from a function of numpy arrays (MXNet's ``metric.np``)."""

    def feval(label: Any, pred: Any) -> Any:
        return numpy_feval(label, pred)

    feval.__name__ = numpy_feval.__name__
    return CustomMetric(feval, name, allow_extra_outputs)


def __getattr__(name: str) -> Any:
    raise UnsupportedFeatureError.missing(__name__, name, f"metric has {', '.join(__all__)}")
