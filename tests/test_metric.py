"""``modelpack.metric``: MXNet 1.9.1's ``mxnet.metric`` value for value
(tests/reference/mxnet_metric.json, written with MXNet by scripts/make_mxnet_metric_refs.py):
every step of every case, with legacy and with numpy-mode arrays, ``create``'s names, the
refusals, and the d2l calls (information-theory's NLL, recommender-systems' RMSE)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as onp
import pytest
from reference_cases import make_metric, mean_abs

import modelpack.metric as metric
import modelpack.ndarray as nd
from modelpack import np as mnp
from modelpack.errors import UnsupportedFeatureError, UsageError

REFERENCE = json.loads((Path(__file__).with_name("reference") / "mxnet_metric.json").read_text())
METRICS = REFERENCE["metrics"]


# how an array reaches the metric: MXNet's reference used legacy NDArrays
KINDS = {
    "legacy": lambda a: nd.array(a, dtype=a.dtype),
    "numpy_mode": lambda a: mnp.array(a, dtype=a.dtype),
    "plain_numpy": lambda a: a,
}


def build(value: Any, kind: str) -> Any:
    if isinstance(value, dict) and "array" in value:
        return KINDS[kind](onp.asarray(value["array"], dtype=value["dtype"]).reshape(value["shape"]))
    if isinstance(value, list):
        return [build(v, kind) for v in value]
    return value


def same(value: Any, expected: Any, rel: float = 0.0) -> bool:
    if isinstance(expected, list):
        return (
            isinstance(value, (list, tuple))
            and len(value) == len(expected)
            and all(same(v, e, rel) for v, e in zip(value, expected, strict=False))
        )
    if isinstance(expected, float) and math.isnan(expected):
        return isinstance(value, (float, onp.floating)) and math.isnan(value)
    if rel and isinstance(expected, float):
        return value == pytest.approx(expected, rel=rel)
    return value == expected


# Perplexity takes MXNet's own float32 log, whose last bit may differ from numpy's
RELATIVE = {"Perplexity": 1e-6}


def state(m: metric.EvalMetric) -> dict[str, Any]:
    out = {
        "get": list(m.get()),
        "get_global": list(m.get_global()),
        "num_inst": getattr(m, "num_inst", None),
        "get_name_value": [list(p) for p in m.get_name_value()],
    }
    if not isinstance(m, metric.CompositeEvalMetric):
        out["sum_metric"] = m.sum_metric
    return out


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("case", sorted(METRICS))
def test_every_step_equals_mxnets(case, kind):
    spec = METRICS[case]
    reference = spec["reference"]
    m = make_metric(metric, spec)
    got = state(m)
    for key, expected in reference["initial"].items():
        if key in got:
            assert same(got[key], expected), (case, "initial", key, got[key], expected)
    rel = RELATIVE.get(spec["class"], 0.0)
    for number, (step, expected_state) in enumerate(zip(spec["steps"], reference["after"], strict=False)):
        if step == "reset_local":
            m.reset_local()
        elif step == "reset":
            m.reset()
        elif "error" in expected_state:
            with pytest.raises((ValueError, UsageError)):
                m.update(build(step["labels"], kind), build(step["preds"], kind))
            return
        else:
            m.update(build(step["labels"], kind), build(step["preds"], kind))
        got = state(m)
        for key, expected in expected_state.items():
            if key == "get_type":
                value = got["get"][1]
                names = [type(v).__name__ for v in value] if isinstance(value, list) else type(value).__name__
                assert names == expected, (case, number, key)
            elif key in got:
                assert same(got[key], expected, rel), (case, number, key, got[key], expected)


@pytest.mark.parametrize("name", sorted(REFERENCE["create"]))
def test_create_by_name_as_mxnet(name):
    expected = REFERENCE["create"][name]
    m = metric.create(name, **expected["kwargs"])
    assert type(m).__name__ == expected["class"] and m.name == expected["name"]
    config = m.get_config()
    config.pop("metrics", None)
    assert config == expected["config"]
    rebuilt = metric.create(**config)  # (TopKAccuracy's name gains a second _k, as in MXNet)
    assert type(rebuilt) is type(m) and rebuilt.name.startswith(m.name)


def test_create_other_forms():
    acc = metric.Accuracy()
    assert metric.create(acc) is acc
    composite = metric.create([acc, "rmse"])
    assert isinstance(composite, metric.CompositeEvalMetric) and composite.get_metric(0) is acc
    assert (
        isinstance(metric.create(mean_abs), metric.CustomMetric)
        and metric.create(mean_abs).name == "mean_abs"
    )
    assert metric.create(lambda label, pred: 0.0).name == "custom(<lambda>)"
    assert isinstance(metric.create('["top_k_accuracy", {"top_k": 3}]'), metric.TopKAccuracy)
    assert isinstance(metric.create('{"metric": "mae"}'), metric.MAE)
    assert isinstance(metric.np(mean_abs), metric.CustomMetric)
    with pytest.raises(UsageError, match="not registered"):
        metric.create("nosuch")
    with pytest.raises(UsageError, match="already an instance"):
        metric.create(acc, 3)
    with pytest.raises(ValueError, match="out of range"):
        composite.get_metric(5)
    with pytest.raises(NotImplementedError):
        metric.create(mean_abs).get_config()


def test_register_a_users_metric():
    class Twice(metric.EvalMetric):
        def __init__(self) -> None:
            super().__init__("twice")

        def update(self, labels: Any, preds: Any) -> None:
            self.sum_metric += 2.0
            self.num_inst += 1

    metric.register(Twice)
    try:
        m = metric.create("TWICE")
        m.update(None, None)
        assert m.get() == ("twice", 2.0) and str(m) == "EvalMetric: {'twice': 2.0}"
        with pytest.warns(UserWarning, match="overriding"):
            metric.register(Twice)
    finally:
        metric._REGISTRY.pop("twice")
    with pytest.raises(UsageError):
        metric.register(int)


def test_nothing_seen_is_nan_and_shapes_are_checked():
    for cls in (metric.Accuracy, metric.MAE, metric.RMSE, metric.NegativeLogLikelihood, metric.Loss):
        name, value = cls().get()
        assert math.isnan(value)
    m = metric.Accuracy()
    with pytest.raises(ValueError, match="does not match"):
        m.update([nd.array([1, 0])], [nd.array([[0.3, 0.7]]), nd.array([[0.3, 0.7]])])
    with pytest.raises(UsageError, match="arrays"):
        metric.MAE().update([[1.0, 2.0]], [[1.0, 2.0]])  # lists of numbers are not arrays (MXNet: no asnumpy)
    with pytest.raises(ValueError, match="binary"):
        metric.F1().update([nd.array([0, 1, 2])], [nd.array([[0.5, 0.5]] * 3)])
    with pytest.raises(UsageError, match="top_k"):
        metric.TopKAccuracy(top_k=1)


def test_update_dict_and_global_stats():
    m = metric.Accuracy(output_names=["out"], label_names=["y"])
    m.update_dict(
        {"y": nd.array([0, 1]), "other": nd.array([5])}, {"out": nd.array([[0.9, 0.1], [0.8, 0.2]])}
    )
    assert m.get() == ("accuracy", 0.5)
    m.reset_local()
    assert math.isnan(m.get()[1]) and m.get_global() == ("accuracy", 0.5)
    assert m.get_global_name_value() == [("accuracy", 0.5)]
    composite = metric.CompositeEvalMetric(["acc", "mae"], label_names=["y"])
    composite.update_dict({"y": nd.array([1.0]), "z": nd.array([7.0])}, {"o": nd.array([[0.2, 0.8]])})
    names, values = composite.get()
    assert names == ["accuracy", "mae"] and values[0] == 1.0


# --- the book ------------------------------------------------------------------------------------
def test_information_theory_nll_on_converted_numpy_arrays():
    labels = mnp.array([0, 2])
    preds = mnp.array([[0.3, 0.6, 0.1], [0.2, 0.3, 0.5]])
    nll_loss = metric.NegativeLogLikelihood()
    nll_loss.update(labels.as_nd_ndarray(), preds.as_nd_ndarray())
    assert list(nll_loss.get()) == REFERENCE["book_nll"]
    assert nll_loss.get() == ("nll-loss", 0.9485599994659424)


def test_recommender_rmse_over_device_lists():
    """recommender-systems/mf.md's evaluator: rmse.update(labels=[...], preds=[...]) per batch
    with split_and_load's lists, rmse.get()[1] after each."""
    from modelpack import gluon

    rmse = metric.RMSE()
    values = []
    for ratings, predicted in (([4.0, 3, 5, 1], [3.5, 3.2, 4.1, 2.0]), ([2.0, 5], [2.5, 4.0])):
        r_ui = gluon.utils.split_and_load(
            mnp.array(ratings),
            [gluon.utils.cpu() if hasattr(gluon.utils, "cpu") else "cpu(0)"],
            even_split=False,
        )
        r_hat = [mnp.array(predicted)]
        rmse.update(labels=r_ui, preds=r_hat)
        values.append(rmse.get()[1])
    first = math.sqrt(onp.mean((onp.float32([4, 3, 5, 1]) - onp.float32([3.5, 3.2, 4.1, 2.0])) ** 2))
    assert values[0] == pytest.approx(first, rel=1e-6)
    assert values[1] == pytest.approx((first + math.sqrt((0.25 + 1.0) / 2)) / 2, rel=1e-6)


def test_left_out_names_are_refused():
    with pytest.raises(UnsupportedFeatureError, match="metric has"):
        metric.Nonexistent  # noqa: B018
    assert not hasattr(metric, "Nonexistent")
