"""Write tests/reference/mxnet_metric.json and tests/reference/mxnet_metric_nd.json: what MXNet
1.9.1's ``mxnet.metric`` classes report, and what its legacy ``mxnet.ndarray`` operators
compute, for ``tests/test_metric.py`` and ``tests/test_ndarray.py`` to compare with.

    python3.11 -m venv /tmp/mxref && /tmp/mxref/bin/pip install mxnet==1.9.1 "numpy<1.24"
    /tmp/mxref/bin/python scripts/make_mxnet_metric_refs.py

``mxnet_metric.json``: ``metrics``, per case the class and arguments, the updates (labels and
predictions as legacy NDArrays, single or in lists; each array stored with its dtype) and,
after each step (an update, ``reset_local`` or ``reset``), ``get()``, ``get_global()``,
``num_inst``, ``sum_metric`` and ``get_name_value()``; ``initial`` is the state before any
update. ``create``: what ``metric.create(name)`` builds for each registered name (its class,
its name, its config). ``nd_inputs`` mirror the book's use (information-theory's NLL on
numpy-mode arrays turned legacy). ``mxnet_metric_nd.json``: ``cases``, per case the operator
(a function of ``mx.nd``, a method, or a Python operator), its arguments (arrays stored with
their dtype) and MXNet's result (shape, dtype, values; a list for operators that return
several), and whether the values are exact or float32 transcendental/summed results that the
test compares within a tolerance. JSON keeps every float64 exactly (``repr`` round-trips) and
writes NaN and Infinity as JavaScript's literals, which Python's json reads.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as onp
from mxnet import metric, nd
from mxnet_reference_files import MXNET_VERSION

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from reference_cases import OPS, make_metric  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "tests" / "reference"

RNG = onp.random.default_rng(29)


def arr(values: Any, dtype: str = "float32") -> dict[str, Any]:
    a = onp.asarray(values, dtype=dtype)
    return {"array": a.tolist(), "dtype": dtype, "shape": list(a.shape)}


def probs(n: int, c: int) -> dict[str, Any]:
    x = RNG.random((n, c)).astype("float32") + 0.05
    return arr(x / x.sum(axis=1, keepdims=True))


def labels(n: int, c: int, dtype: str = "float32") -> dict[str, Any]:
    return arr(RNG.integers(0, c, n), dtype)


def normal(*shape: int) -> dict[str, Any]:
    return arr(RNG.normal(size=shape).astype("float32"))


def build(value: Any) -> Any:
    """A stored argument as MXNet takes it: arrays as legacy NDArrays, lists element-wise."""
    if isinstance(value, dict) and "array" in value:
        return nd.array(
            onp.asarray(value["array"], dtype=value["dtype"]).reshape(value["shape"]), dtype=value["dtype"]
        )
    if isinstance(value, list):
        return [build(v) for v in value]
    return value


def plain(value: Any) -> Any:
    """A result as JSON: numpy scalars as Python numbers (with their type's name alongside)."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, onp.generic):
        return value.item()
    return value


def type_name(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [type_name(v) for v in value]
    return type(value).__name__


def state(m: metric.EvalMetric) -> dict[str, Any]:
    name, value = m.get()
    gname, gvalue = m.get_global()
    out = {
        "get": [plain(name), plain(value)],
        "get_type": type_name(value),
        "get_global": [plain(gname), plain(gvalue)],
        "num_inst": plain(getattr(m, "num_inst", None)),
        "get_name_value": [[n, plain(v)] for n, v in m.get_name_value()],
    }
    if not isinstance(m, metric.CompositeEvalMetric):
        out["sum_metric"] = plain(m.sum_metric)
    return out


def metric_cases() -> dict[str, dict[str, Any]]:
    bin_p = lambda n: probs(n, 2)  # noqa: E731
    bin_l = lambda n: labels(n, 2)  # noqa: E731
    cases: dict[str, dict[str, Any]] = {
        # the book: information-theory's NLL of two examples (one batch, single arrays)
        "nll_book": {
            "class": "NegativeLogLikelihood",
            "kwargs": {},
            "steps": [{"labels": arr([0, 2]), "preds": arr([[0.3, 0.6, 0.1], [0.2, 0.3, 0.5]])}],
        },
        "nll_lists": {
            "class": "NegativeLogLikelihood",
            "kwargs": {"eps": 1e-5},
            "steps": [
                {"labels": [labels(4, 3), labels(3, 3)], "preds": [probs(4, 3), probs(3, 3)]},
                "reset_local",
                {"labels": [labels(5, 3)], "preds": [probs(5, 3)]},
            ],
        },
        "ce": {
            "class": "CrossEntropy",
            "kwargs": {},
            "steps": [
                {"labels": [labels(6, 4)], "preds": [probs(6, 4)]},
                {"labels": [labels(2, 4)], "preds": [probs(2, 4)]},
                "reset",
                {"labels": [labels(3, 4)], "preds": [probs(3, 4)]},
            ],
        },
        "acc_probs": {
            "class": "Accuracy",
            "kwargs": {},
            "steps": [
                {"labels": [labels(8, 5)], "preds": [probs(8, 5)]},
                {"labels": [labels(5, 5), labels(3, 5)], "preds": [probs(5, 5), probs(3, 5)]},
                "reset_local",
                {"labels": [labels(4, 5)], "preds": [probs(4, 5)]},
            ],
        },
        "acc_ids": {
            "class": "Accuracy",
            "kwargs": {},
            "steps": [{"labels": [arr([0, 1, 2, 1.7])], "preds": [arr([0, 2, 2, 1])]}],
        },
        "acc_axis0": {
            "class": "Accuracy",
            "kwargs": {"axis": 0},
            "steps": [{"labels": [labels(3, 4)], "preds": [arr(RNG.random((4, 3)))]}],
        },
        "acc_column_labels": {
            "class": "Accuracy",
            "kwargs": {},
            "steps": [{"labels": [arr([[0], [2], [1]])], "preds": [probs(3, 3)]}],
        },
        "acc_single_arrays": {
            "class": "Accuracy",
            "kwargs": {},
            "steps": [{"labels": labels(3, 3), "preds": probs(3, 3)}],
        },
        "topk2": {
            "class": "TopKAccuracy",
            "kwargs": {"top_k": 2},
            "steps": [
                {"labels": [labels(7, 5)], "preds": [normal(7, 5)]},
                {"labels": [labels(3, 5)], "preds": [normal(3, 5)]},
            ],
        },
        "topk9_of_5": {
            "class": "TopKAccuracy",
            "kwargs": {"top_k": 9},
            "steps": [{"labels": [labels(4, 5)], "preds": [normal(4, 5)]}],
        },
        "f1_macro": {
            "class": "F1",
            "kwargs": {},
            "steps": [
                {"labels": [bin_l(10)], "preds": [bin_p(10)]},
                {"labels": [bin_l(6), bin_l(4)], "preds": [bin_p(6), bin_p(4)]},
                "reset_local",
                {"labels": [bin_l(5)], "preds": [bin_p(5)]},
            ],
        },
        "f1_micro": {
            "class": "F1",
            "kwargs": {"average": "micro"},
            "steps": [
                {"labels": [bin_l(10)], "preds": [bin_p(10)]},
                {"labels": [bin_l(6)], "preds": [bin_p(6)]},
                "reset_local",
                {"labels": [bin_l(5)], "preds": [bin_p(5)]},
            ],
        },
        "f1_no_positives": {
            "class": "F1",
            "kwargs": {},
            "steps": [{"labels": [arr([0, 0, 0])], "preds": [arr([[0.9, 0.1]] * 3)]}],
        },
        "mcc_macro": {
            "class": "MCC",
            "kwargs": {},
            "steps": [
                {"labels": [bin_l(12)], "preds": [bin_p(12)]},
                {"labels": [bin_l(7)], "preds": [bin_p(7)]},
                "reset_local",
                {"labels": [bin_l(5)], "preds": [bin_p(5)]},
            ],
        },
        "mcc_micro": {
            "class": "MCC",
            "kwargs": {"average": "micro"},
            "steps": [
                {"labels": [bin_l(12)], "preds": [bin_p(12)]},
                {"labels": [bin_l(7)], "preds": [bin_p(7)]},
            ],
        },
        "perplexity": {
            "class": "Perplexity",
            "kwargs": {"ignore_label": None},
            "steps": [
                {"labels": [labels(6, 7)], "preds": [probs(6, 7)]},
                {"labels": [labels(4, 7)], "preds": [probs(4, 7)]},
                "reset_local",
                {"labels": [labels(3, 7)], "preds": [probs(3, 7)]},
            ],
        },
        "perplexity_ignore": {
            "class": "Perplexity",
            "kwargs": {"ignore_label": 0},
            "steps": [
                {"labels": [arr([0, 1, 2, 0, 3])], "preds": [probs(5, 4)]},
                {"labels": [arr([[1, 0], [2, 2]])], "preds": [probs(4, 4)]},
            ],
        },
        "perplexity_tiny_probs": {
            "class": "Perplexity",
            "kwargs": {"ignore_label": None},
            "steps": [{"labels": [arr([0, 1])], "preds": [arr([[0.0, 1.0], [1.0, 0.0]])]}],
        },
        "mae": {
            "class": "MAE",
            "kwargs": {},
            "steps": [
                {"labels": [normal(5)], "preds": [normal(5)]},
                {"labels": [normal(3, 2), normal(4)], "preds": [normal(3, 2), normal(4, 1)]},
                "reset_local",
                {"labels": [normal(2)], "preds": [normal(2)]},
            ],
        },
        "mse": {
            "class": "MSE",
            "kwargs": {},
            "steps": [
                {"labels": [normal(5)], "preds": [normal(5)]},
                {"labels": [normal(3, 2)], "preds": [normal(3, 2)]},
            ],
        },
        "rmse_mf": {
            "class": "RMSE",
            "kwargs": {},  # recommender-systems/mf: lists from split_and_load
            "steps": [
                {"labels": [arr([4, 3, 5, 1])], "preds": [arr([3.5, 3.2, 4.1, 2.0])]},
                {"labels": [normal(6), normal(2)], "preds": [normal(6), normal(2)]},
            ],
        },
        "rmse_int_labels": {
            "class": "RMSE",
            "kwargs": {},
            "steps": [{"labels": [arr([4, 3, 5], "int32")], "preds": [arr([3.5, 3.2, 4.1])]}],
        },
        "pearson_macro": {
            "class": "PearsonCorrelation",
            "kwargs": {},
            "steps": [
                {"labels": [normal(8)], "preds": [normal(8)]},
                {"labels": [normal(3, 2)], "preds": [normal(3, 2)]},
            ],
        },
        "pearson_micro": {
            "class": "PearsonCorrelation",
            "kwargs": {"average": "micro"},
            "steps": [
                {"labels": [normal(8)], "preds": [normal(8)]},
                {"labels": [normal(5)], "preds": [normal(5)]},
            ],
        },
        "pcc": {
            "class": "PCC",
            "kwargs": {},
            "steps": [
                {"labels": [labels(10, 2)], "preds": [probs(10, 2)]},
                {"labels": [labels(9, 4)], "preds": [probs(9, 4)]},
                "reset_local",
                {"labels": [labels(6, 4)], "preds": [labels(6, 4)]},
            ],
        },
        "loss": {
            "class": "Loss",
            "kwargs": {},
            "steps": [
                {"labels": None, "preds": [normal(4), normal(2, 3)]},
                {"labels": None, "preds": normal(5)},
                "reset_local",
                {"labels": None, "preds": [normal(3)]},
            ],
        },
        "torch": {"class": "Torch", "kwargs": {}, "steps": [{"labels": None, "preds": [normal(3)]}]},
        "caffe": {"class": "Caffe", "kwargs": {}, "steps": [{"labels": None, "preds": [normal(3)]}]},
        "custom_value": {
            "class": "CustomMetric",
            "kwargs": {"feval": "mean_abs"},
            "steps": [{"labels": [normal(4), normal(2)], "preds": [normal(4), normal(2)]}],
        },
        "custom_pair_named": {
            "class": "CustomMetric",
            "kwargs": {"feval": "sum_count", "name": "l1"},
            "steps": [
                {"labels": [normal(4)], "preds": [normal(4)]},
                {"labels": [normal(3)], "preds": [normal(3)]},
            ],
        },
        "composite": {
            "class": "CompositeEvalMetric",
            "kwargs": {"metrics": ["acc", "ce"]},
            "steps": [
                {"labels": [labels(5, 3)], "preds": [probs(5, 3)]},
                {"labels": [labels(4, 3)], "preds": [probs(4, 3)]},
                "reset_local",
                {"labels": [labels(2, 3)], "preds": [probs(2, 3)]},
            ],
        },
        "create_list": {
            "class": "create",
            "kwargs": {"metric": ["acc", "nll_loss", "mae"]},
            "steps": [{"labels": [labels(5, 3)], "preds": [probs(5, 3)]}],
        },
    }
    return cases


def run_metric(spec: dict[str, Any]) -> dict[str, Any]:
    m = make_metric(metric, spec)
    out = {"initial": state(m), "after": []}
    for step in spec["steps"]:
        if step == "reset_local":
            m.reset_local()
        elif step == "reset":
            m.reset()
        else:
            try:
                m.update(build(step["labels"]), build(step["preds"]))
            except Exception as error:  # noqa: BLE001  (MXNet's refusal is the reference)
                out["after"].append({"error": type(error).__name__, "message": str(error)[:200]})
                break
        out["after"].append(state(m))
    return out


def create_cases() -> dict[str, Any]:
    names = [
        "acc",
        "accuracy",
        "top_k_accuracy",
        "top_k_acc",
        "f1",
        "mcc",
        "perplexity",
        "mae",
        "mse",
        "rmse",
        "ce",
        "crossentropy",
        "nll_loss",
        "negativeloglikelihood",
        "pearsonr",
        "pearsoncorrelation",
        "pcc",
        "loss",
        "torch",
        "caffe",
        "composite",
        "compositeevalmetric",
        "ACC",
        "RMSE",
    ]
    out = {}
    for name in names:
        kwargs = (
            {"top_k": 3}
            if name.startswith("top_k")
            else {"ignore_label": None}
            if name == "perplexity"
            else {}
        )
        m = metric.create(name, **kwargs)
        config = m.get_config()
        config.pop("metrics", None)
        out[name] = {"kwargs": kwargs, "class": type(m).__name__, "name": m.name, "config": config}
    return out


# --- legacy nd --------------------------------------------------------------------------
def nd_inputs() -> dict[str, dict[str, Any]]:
    special = [
        0.0,
        -0.0,
        0.5,
        -0.5,
        1.5,
        -1.5,
        2.5,
        -2.5,
        0.49999997,
        1e-8,
        -7.25,
        3.0,
        float("nan"),
        float("inf"),
        -float("inf"),
        1e30,
        -3.0,
        0.999,
    ]
    return {
        "v": normal(7),
        "w": normal(7),
        "pos": arr(RNG.random(7).astype("float32") * 3 + 0.1),
        "unit": arr(RNG.random(7).astype("float32") * 1.8 - 0.9),
        "special": arr(special),
        "special_b": arr(
            [2.0, -2.0, 3.0, -3.0, 0.0, 1.0, -0.0, 2.0, 1.0, -3.0, 2.0, 0.0, 1.0, 2.0, 2.0, -1.0, 3.0, -1.0]
        ),
        "m": normal(3, 4),
        "m2": normal(3, 4),
        "row": normal(1, 4),
        "col": normal(3, 1),
        "t3": normal(2, 3, 4),
        "t3b": normal(4, 2),
        "b1": normal(2, 3, 4),
        "b2": normal(2, 4, 5),
        "ints": arr([7, -7, 3, 0, -1, 12, 5], "int32"),
        "ints_b": arr([2, 3, -2, 5, 4, -5, 1], "int32"),
        "i8": arr([100, 100, 27, -128], "int8"),
        "i64": arr([3, -9, 2**40, 0], "int64"),
        "f64": arr(RNG.normal(size=5), "float64"),
        "prob": probs(4, 5),
        "idx": arr([0, 4, 2, 7, -1]),
        "idx_rows": arr([1, 0, 3]),
        "cond": arr([1, 0, 2]),
        "nanmat": arr([[1.0, float("nan"), 2.0], [float("nan"), float("nan"), 0.5]]),
        "ties": arr([3.0, 1.0, 2.0, 1.0, 3.0]),
        "ar6": arr(onp.arange(6)),
        "ar24": arr(onp.arange(24)),
    }


def nd_cases() -> list[dict[str, Any]]:
    c: list[dict[str, Any]] = []

    def add(call: str, *args: Any, exact: bool = True, **kwargs: Any) -> None:
        c.append({"call": call, "args": list(args), "kwargs": kwargs, "exact": exact})

    ref = lambda name: {"input": name}  # noqa: E731
    for fn in (
        "abs",
        "negative",
        "square",
        "sign",
        "ceil",
        "floor",
        "trunc",
        "fix",
        "rint",
        "round",
        "relu",
        "logical_not",
    ):
        add(fn, ref("special"))
        add(fn, ref("v"))
        if fn not in ("logical_not",):
            add(fn, ref("ints"))
    for fn in (
        "sqrt",
        "rsqrt",
        "cbrt",
        "rcbrt",
        "reciprocal",
        "exp",
        "expm1",
        "log",
        "log10",
        "log2",
        "log1p",
        "sin",
        "cos",
        "tan",
        "arctan",
        "degrees",
        "radians",
        "sinh",
        "cosh",
        "tanh",
        "arcsinh",
        "sigmoid",
        "softsign",
        "erf",
    ):
        add(fn, ref("pos"), exact=False)
        add(fn, ref("v"), exact=False)
    for fn in ("arcsin", "arccos", "arctanh"):
        add(fn, ref("unit"), exact=False)
    add("arccosh", ref("pos"), exact=False)
    add("exp", ref("f64"), exact=False)
    # arithmetic and comparisons: operators, functions, broadcast_ forms, scalars
    for op in ("add", "sub", "mul", "truediv", "mod", "pow", "eq", "ne", "gt", "ge", "lt", "le"):
        exact = op != "pow"
        add(f"op:{op}", ref("special"), ref("special_b"), exact=exact)
        add(f"op:{op}", ref("m"), ref("row"), exact=exact)
        add(f"op:{op}", ref("v"), 2.5, exact=exact)
        add(f"op:{op}", 1.5, ref("v"), exact=exact)
        if op != "pow":
            add(f"op:{op}", ref("ints"), ref("ints_b"))
            add(f"op:{op}", ref("ints"), 2.7)
            add(f"op:{op}", -3, ref("ints_b"))
    add("op:neg", ref("v"))
    add("op:abs", ref("ints"))
    for fn in (
        "add",
        "subtract",
        "multiply",
        "divide",
        "modulo",
        "power",
        "maximum",
        "minimum",
        "equal",
        "not_equal",
        "greater",
        "greater_equal",
        "lesser",
        "lesser_equal",
        "logical_and",
        "logical_or",
        "logical_xor",
    ):
        add(fn, ref("special"), ref("special_b"), exact=fn != "power")
        add(fn, ref("m"), ref("col"), exact=fn != "power")
        add(fn, ref("v"), 0.3, exact=fn != "power")
    for fn in (
        "broadcast_add",
        "broadcast_sub",
        "broadcast_mul",
        "broadcast_div",
        "broadcast_mod",
        "broadcast_power",
        "broadcast_maximum",
        "broadcast_minimum",
        "broadcast_hypot",
        "broadcast_equal",
        "broadcast_greater",
        "broadcast_lesser_equal",
        "broadcast_logical_or",
        "broadcast_plus",
        "broadcast_minus",
    ):
        add(fn, ref("m"), ref("row"), exact=fn not in ("broadcast_power", "broadcast_hypot"))
        add(fn, ref("col"), ref("row"), exact=fn not in ("broadcast_power", "broadcast_hypot"))
    for fn in ("elemwise_add", "elemwise_sub", "elemwise_mul", "elemwise_div"):
        add(fn, ref("m"), ref("m2"))
    add("maximum", ref("ints"), ref("ints_b"))
    add("maximum", 0, ref("v"))
    add("add_n", ref("m"), ref("m2"), ref("m"))
    # reductions
    for fn in ("sum", "nansum", "prod", "nanprod", "mean", "max", "min"):
        exact = True  # (modelpack replays MXNet's summation order and compensation)
        add(fn, ref("m"), exact=exact)
        add(fn, ref("m"), exact=exact, axis=1)
        add(fn, ref("m"), exact=exact, axis=0, keepdims=True)
        add(fn, ref("t3"), exact=exact, axis=(0, 2))
        add(fn, ref("t3"), exact=exact, axis=1, exclude=True)
        add(fn, ref("t3"), exact=exact, axis=())
        add(fn, ref("nanmat"), exact=exact, axis=1)
        add(fn, ref("nanmat"), exact=exact)
        if fn != "mean":
            add(fn, ref("ints"))
            add(fn, ref("i8"))
            add(fn, ref("i64"))
    add("sum", ref("pos"))
    add("nansum", ref("special"))
    for fn in ("argmax", "argmin"):
        add(fn, ref("m"))
        add(fn, ref("m"), axis=0)
        add(fn, ref("m"), axis=1, keepdims=True)
        add(fn, ref("ties"))
        add(fn, ref("nanmat"), axis=1)
        add(fn, ref("ints"))
    add("norm", ref("m"), exact=False)
    add("norm", ref("m"), exact=False, axis=1)
    add("norm", ref("m"), exact=False, ord=1, axis=0, keepdims=True)
    add("norm", ref("t3"), exact=False, axis=(1, 2))
    # methods
    add("method:sum", ref("m"))
    add("method:mean", ref("m"), axis=0)
    add("method:max", ref("m"), axis=1)
    add("method:abs", ref("v"))
    add("method:exp", ref("v"), exact=False)
    add("method:reshape", ref("ar24"), (2, 3, 4))
    add("method:reshape", ref("ar24"), 4, 6)
    add("method:astype", ref("special"), "int32")
    add("method:asscalar", ref("prob"))  # (not a scalar: the error)
    add("method:T", ref("m"))
    add("method:T", ref("v"))
    add("method:flatten", ref("t3"))
    add("method:transpose", ref("t3"), (2, 0, 1))
    add("method:transpose", ref("t3"))
    add("method:argmax", ref("m"), axis=1)
    add("method:softmax", ref("m"), exact=False)
    add("method:clip", ref("v"), -0.5, 0.5)
    add("method:one_hot", ref("idx_rows"), 4)
    add("method:split", ref("m"), 2)
    add("method:squeeze", ref("row"))
    add("method:expand_dims", ref("v"), 0)
    add("method:zeros_like", ref("m"))
    add("method:slice_axis", ref("m"), 1, 1, 3)
    # shapes and indexing
    for shape, kw in (
        ((2, 3, 4), {}),
        ((0, -1), {}),
        ((-1, 4), {}),
        ((-3, -2), {}),
        ((-4, 1, 2, -2), {}),
        ((0, -1), {"reverse": True}),
        ((-1, 0), {"reverse": True}),
        ((-2,), {}),
        ((-4, -1, 2, 0, 0), {}),
        ((2, -3), {}),
    ):
        add("reshape", {"reshape_source": "ar24"}, shape, **kw)
    add("transpose", ref("t3"))
    add("transpose", ref("t3"), axes=(1, 0, 2))
    add("expand_dims", ref("m"), axis=1)
    add("expand_dims", ref("m"), axis=-1)
    add("squeeze", ref("row"))
    add("squeeze", {"squeeze_source": True})
    add("squeeze", {"squeeze_source": True}, axis=2)
    add("flatten", ref("v"))
    add("flatten", ref("t3"))
    add("Flatten", ref("m"))
    add("swapaxes", ref("t3"), 0, 2)
    add("SwapAxis", ref("t3"), dim1=1, dim2=2)
    add("flip", ref("m"), axis=1)
    add("reverse", ref("t3"), axis=(0, 2))
    add("tile", ref("row"), (2, 3))
    add("tile", ref("v"), (2,))
    add("repeat", ref("m"), 2)
    add("repeat", ref("m"), 3, axis=1)
    add("clip", ref("special"), -1.0, 2.0)
    add("clip", ref("ints"), -1.5, 4.7)
    add("concat", ref("m"), ref("m2"))
    add("concat", ref("m"), ref("m2"), dim=0)
    add("Concat", ref("col"), ref("m"), dim=1)
    add("stack", ref("m"), ref("m2"))
    add("stack", ref("m"), ref("m2"), axis=2)
    add("split", ref("m"), 2)
    add("split", ref("m"), 3, axis=0)
    add("split", ref("m"), 3, axis=0, squeeze_axis=True)
    add("split", ref("m"), 1, axis=0)
    add("SliceChannel", ref("t3"), 2, axis=2)
    add("broadcast_to", ref("row"), (3, 4))
    add("broadcast_to", ref("col"), (0, 5))
    add("broadcast_like", ref("row"), ref("m"))
    add("broadcast_axis", ref("col"), axis=1, size=3)
    add("broadcast_axes", ref("row"), axis=(0,), size=(2,))
    add("slice_axis", ref("m"), 1, 1, None)
    add("slice_axis", ref("m"), 0, -2, -1)
    add("cast", ref("special"), "int32")
    add("cast", ref("v"), "float64")
    add("Cast", ref("ints"), dtype="float32")
    add("where", ref("cond"), ref("m"), ref("m2"))
    add("where", {"where_cond": True}, ref("m"), ref("m2"))
    add("dot", ref("m"), ref("t3b"), exact=False)
    add("dot", ref("v"), ref("w"), exact=False)
    add("dot", ref("m"), ref("m2"), transpose_a=True, exact=False)
    add("dot", ref("m"), ref("m2"), transpose_b=True, exact=False)
    add("dot", ref("t3"), ref("t3b"), exact=False)
    add("dot", ref("t3"), ref("b1"), transpose_a=True, exact=False)
    add("dot", ref("t3"), ref("b1"), transpose_b=True, exact=False)
    add("batch_dot", ref("b1"), ref("b2"), exact=False)
    add("batch_dot", ref("b1"), ref("b1"), transpose_b=True, exact=False)
    add("batch_dot", ref("b1"), ref("b1"), transpose_a=True, exact=False)
    add("one_hot", ref("idx"), 5)
    add("one_hot", ref("idx_rows"), 4, on_value=3.5, off_value=-1.0, dtype="int32")
    add("pick", ref("prob"), ref("idx_rows_4"))
    add("pick", ref("m"), ref("idx_rows"), axis=0, keepdims=True)  # (the index's shape is wrong: refused)
    add("pick", ref("m"), ref("idx_rows_4"), axis=0, keepdims=True)
    add("pick", ref("prob"), ref("idx_far"), mode="wrap")
    add("take", ref("m"), ref("idx"))
    add("take", ref("m"), ref("idx"), axis=1, mode="wrap")
    add("take", ref("v"), ref("idx_rows"))
    add("softmax", ref("m"), exact=False)
    add("softmax", ref("m"), axis=0, temperature=2.0, exact=False)
    add("log_softmax", ref("m"), exact=False)
    add("log_softmax", ref("t3"), axis=1, exact=False)
    add("sort", ref("m"))
    add("sort", ref("m"), axis=0, is_ascend=False)
    add("argsort", ref("ties"))
    add("argsort", ref("ties"), is_ascend=False)
    add("argsort", ref("m"), axis=0, dtype="int32")
    add("topk", ref("m"), k=2)
    add("topk", ref("m"), k=2, ret_typ="value", axis=0)
    add("topk", ref("m"), k=3, ret_typ="both", is_ascend=True)
    add("topk", ref("m"), k=2, ret_typ="mask")
    add("topk", ref("v"), k=3, axis=None)
    add("zeros_like", ref("m"))
    add("ones_like", ref("ints"))
    add("identity", ref("v"))
    add("stop_gradient", ref("v"))
    add("true_divide", ref("v"), ref("w"))
    add("sum_axis", ref("m"), axis=1)
    add("sum", {"long": 5000})
    add("nansum", {"long": 5000}, axis=1)
    add("mean", {"long": 5000}, axis=0)
    add("max_axis", ref("m"), axis=0)
    # creators
    add("array", [1, 2, 3])
    add("array", [[1.5, 2], [3, 4]], dtype="int32")
    add("array", [True, False])
    add("array", {"numpy": [1, 2]})
    add("array", ref("ints"))
    add("zeros", (2, 3))
    add("zeros", 4, dtype="int32")
    add("ones", (2,))
    add("full", (2, 2), 2.7)
    add("full", (3,), 2.7, dtype="int32")
    add("empty", (2, 2))
    add("arange", 5)
    add("arange", 0, 1, 0.1)
    add("arange", 2, 9, 0.7, repeat=2)
    add("arange", -1, 3, dtype="int32")
    add("arange", 10, 0, -1.5)
    add("linspace", 0, 1, 7)
    add("linspace", -3.3, 7.1, 11)
    add("linspace", 0, 1, 5, endpoint=False)
    add("linspace", 2, 3, 1)
    add("eye", 3)
    add("eye", 2, 4, 1)
    add("eye", 3, k=-1, dtype="int32")
    # indexing
    for key in (
        1,
        -1,
        {"slice": [1, 3, None]},
        {"slice": [None, None, -1]},
        {"tuple": [1, 2]},
        {"tuple": [1, {"slice": [0, 2, None]}]},
        {"tuple": [{"slice": [None, None, None]}, 2]},
        {"index_array": [0, 2]},
        {"tuple": [-1, -1]},
    ):
        add("getitem", ref("m"), key)
    add("getitem", ref("v"), 3)
    add("getitem", ref("v"), {"slice": [2, 5, None]})
    add("getitem", ref("v"), {"index_array": [[0, 1], [6, 2]]})
    return c


def slice_of(spec: Any) -> Any:
    return slice(*spec["slice"])


def build_nd(value: Any, inputs: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        if "input" in value:
            extra = {"idx_rows_4": arr([1, 0, 3, 4]), "idx_far": arr([6, -1, 2, 13])}
            source = inputs.get(value["input"]) or extra[value["input"]]
            return build(source)
        if "reshape_source" in value:
            return build(inputs[value["reshape_source"]]).reshape((2, 3, 4))
        if "squeeze_source" in value:
            return nd.ones((1, 3, 1, 2))
        if "long" in value:  # many elements per sum: where the order of summation shows
            rng = onp.random.default_rng(value["long"])
            data = rng.normal(size=(4, value["long"])).astype("float32") * 100
            data[0, ::7] = onp.nan
            return nd.array(data)
        if "where_cond" in value:
            return nd.array([[1, 0, 0, 2], [0, 0, 1, 1], [1, 1, 1, 0]])
        if "numpy" in value:
            return onp.array(value["numpy"])
        if "slice" in value:
            return slice_of(value)
        if "index_array" in value:
            return nd.array(value["index_array"])
        if "tuple" in value:
            return tuple(build_nd(v, inputs) for v in value["tuple"])
    return value




def encode(result: Any) -> Any:
    if isinstance(result, nd.NDArray):
        a = result.asnumpy()
        return {"shape": list(a.shape), "dtype": str(a.dtype), "values": a.tolist()}
    if isinstance(result, (list, tuple)):
        return [encode(r) for r in result]
    if isinstance(result, onp.generic):
        return {"scalar": result.item(), "dtype": str(result.dtype)}
    return {"python": result}


def run_nd(case: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    args = [build_nd(a, inputs) for a in case["args"]]
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in case["kwargs"].items()}
    call = case["call"]
    try:
        if call.startswith("op:"):
            result = OPS[call[3:]](*args)
        elif call.startswith("method:"):
            name = call[7:]
            attr = getattr(args[0], name)
            result = attr if name == "T" else attr(*args[1:], **kwargs)
        elif call == "getitem":
            result = args[0][args[1]]
        else:
            result = getattr(nd, call)(*args, **kwargs)
        encoded = encode(result)
        if call == "empty":  # uninitialised memory: only the shape and dtype are MXNet's answer
            encoded["values"] = None
        return {"result": encoded}
    except Exception as error:  # noqa: BLE001  (MXNet's refusal is part of the reference)
        return {"error": type(error).__name__, "message": str(error).split("\n")[0][:200]}


def main() -> int:
    if mx.__version__ != MXNET_VERSION:
        print(f"expected mxnet {MXNET_VERSION}, found {mx.__version__}", file=sys.stderr)
        return 1
    cases = metric_cases()
    metrics = {name: {**spec, "reference": run_metric(spec)} for name, spec in cases.items()}
    # the book's call: numpy-mode arrays turned legacy with as_nd_ndarray()
    labels_np, preds_np = mx.np.array([0, 2]), mx.np.array([[0.3, 0.6, 0.1], [0.2, 0.3, 0.5]])
    book = metric.NegativeLogLikelihood()
    book.update(labels_np.as_nd_ndarray(), preds_np.as_nd_ndarray())
    out = {
        "mxnet": mx.__version__,
        "numpy": onp.__version__,
        "metrics": metrics,
        "create": create_cases(),
        "book_nll": [book.get()[0], float(book.get()[1])],
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "mxnet_metric.json").write_text(json.dumps(out, indent=1) + "\n")

    inputs = nd_inputs()
    nd_out = {
        "mxnet": mx.__version__,
        "names": sorted(n for n in dir(nd) if not n.startswith("_")),
        "methods": sorted(n for n in dir(nd.NDArray) if not n.startswith("_")),
        "inputs": inputs,
        "extra_inputs": {"idx_rows_4": arr([1, 0, 3, 4]), "idx_far": arr([6, -1, 2, 13])},
        "cases": [{**case, **run_nd(case, inputs)} for case in nd_cases()],
    }
    (OUT / "mxnet_metric_nd.json").write_text(json.dumps(nd_out, indent=1) + "\n")
    errors = [c for c in nd_out["cases"] if "error" in c]
    print(f"metrics: {len(metrics)} cases; nd: {len(nd_out['cases'])} cases, {len(errors)} refused by MXNet")
    for e in errors:
        print("  ", e["call"], e["error"], e["message"][:100])
    return 0


if __name__ == "__main__":
    sys.exit(main())
