"""The op table: MXNet-semantics ops against MXNet's own results, every op traced and replayed
by a loaded graph at other batch sizes, and refusals of what an op cannot express.

MXNet's results are ``tests/data/mxnet-ops`` (``scripts/make_mxnet_op_refs.py``, MXNet 1.9.1).
Tolerance: exact for selections (one_hot, pick, topk, masks, lookups, reversals); rtol 1e-5,
atol 1e-6 for arithmetic (float32: the same formulas, rounded in another order).
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

import modelpack
from modelpack import nn, npx
from modelpack.errors import InputError, TraceError
from modelpack.nn import functional as F
from modelpack.nn import ops

DATA = Path(__file__).resolve().parents[1] / "data" / "mxnet-ops"
CASES = {case["name"]: case for case in json.loads((DATA / "cases.json").read_text(encoding="utf-8"))["cases"]}
ARRAYS = dict(np.load(DATA / "ops.npz"))
EXACT = {"one_hot", "pick", "topk", "sequence_mask", "sequence_last", "sequence_reverse", "embedding", "dropout",
         "flatten"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_ops_match_mxnet(name):
    case = CASES[name]
    inputs = [ARRAYS[f"{name}/in/{key}"] for key in case["inputs"]]
    result = getattr(F, case["op"])(*inputs, **case["kwargs"])
    outs = result if isinstance(result, list) else [result]
    want = [ARRAYS[f"{name}/out/{i}"] for i in range(sum(k.startswith(f"{name}/out/") for k in ARRAYS))]
    assert len(outs) == len(want)
    for got, expected in zip(outs, want, strict=True):
        assert got.shape == expected.shape
        if case["op"] in EXACT:
            np.testing.assert_array_equal(got, expected.astype(got.dtype))
            assert got.dtype == expected.dtype or case["op"] in ("sequence_last", "sequence_reverse")
        else:
            assert got.dtype == expected.dtype
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_npx_names_are_the_ops():
    for name in ("relu", "sigmoid", "softmax", "log_softmax", "batch_dot", "sequence_mask", "one_hot", "pick",
                 "topk", "layer_norm", "dropout", "embedding", "fully_connected", "smooth_l1"):
        assert getattr(npx, name).__wrapped__ is getattr(F, name)  # the op, its result an NDArray
    assert npx.batch_flatten.__wrapped__ is F.flatten
    assert npx.num_gpus() == 0 and npx.cpu() == "cpu(0)"
    x = np.array([-1.0, 2.0], dtype=np.float32)
    assert np.array_equal(npx.activation(x, act_type="relu"), [0.0, 2.0])
    assert np.array_equal(npx.leaky_relu(x, slope=0.5), [-0.5, 2.0])


def test_dropout_drops_only_while_training():
    x = np.ones((200, 50), dtype=np.float32)
    assert F.dropout(x, p=0.5) is x or np.array_equal(F.dropout(x, p=0.5), x)
    with nn.training():
        y = F.dropout(x, p=0.5)
        shared = F.dropout(x, p=0.5, axes=[0])
    assert set(np.unique(y)) <= {0.0, 2.0} and 0.4 < (y == 0).mean() < 0.6
    assert np.all(shared == shared[:1])  # one mask shared along axis 0


# -- every op traced: export, load, run at other batch sizes ------------------------------------

rng = np.random.default_rng(7)
X = rng.normal(size=(2, 6)).astype(np.float32)
W = rng.normal(size=(6, 6)).astype(np.float32)
LABELS = np.array([1, 4], dtype=np.int64)

FORWARDS = {
    "dot": lambda x: np.dot(x, W),
    "dot_method": lambda x: x.dot(W),
    "swapaxes": lambda x: np.swapaxes(x[:, :, None], 0, 2).swapaxes(0, 1),
    "repeat_axis": lambda x: np.repeat(x, 2, axis=1),
    "repeat_method": lambda x: x.repeat(3, axis=0),
    "repeat_batch_times": lambda x: x[:, :2].repeat(x.shape[0], axis=1),
    "tile": lambda x: np.tile(x, (1, 2)),
    "tile_batch": lambda x: np.tile(x[:1], (x.shape[0], 1)) + x,
    "clip": lambda x: np.clip(x, -0.5, 0.5) + x.clip(min=0.0),
    "var_std": lambda x: np.var(x, axis=1, keepdims=True) + x.std(axis=1, keepdims=True) + np.var(x, axis=1, ddof=1)[:, None],
    "split": lambda x: np.split(x, 3, axis=1)[1] * np.split(x, [1, 4], axis=1)[2][:, :2],
    "argmax": lambda x: np.argmax(x, axis=1) + x.argmin(axis=1),
    "cumsum_prod": lambda x: np.cumsum(x, axis=1) + x.prod(axis=1, keepdims=True),
    "take": lambda x: np.take(x, np.array([0, 5, 2]), axis=1),
    "index_array": lambda x: x[:, np.array([[0, 1], [5, 5]])],
    "index_traced": lambda x: x[np.arange(x.shape[0]), np.argmax(x, axis=1)],
    "index_mask_constant": lambda x: x[:, np.array([True, False, True, False, False, True])],
    "zeros_from_shape": lambda x: x + np.zeros((x.shape[0], 1), dtype=np.float32),
    "ones_full_arange": lambda x: x * np.full((x.shape[0], 6), 2.0) + np.arange(x.shape[0])[:, None]
    + np.ones(x.shape[0], dtype=np.float32)[:, None] + np.arange(6),
    "like": lambda x: np.zeros_like(x) + np.ones_like(x) * np.full_like(x, 3.0),
    "broadcast_to": lambda x: np.broadcast_to(x[:, :1], (x.shape[0], 4)),
    "reshape_heads": lambda x: x.reshape(x.shape[0] * 3, 2).reshape(x.shape[0], 6),
    "loop": lambda x: np.stack([row * 2 for row in x.T], axis=1),
    "elementwise": lambda x: np.floor(x) + np.ceil(x) + np.sign(x) + np.log1p(np.abs(x)) + np.expm1(x) + x // 0.3
    + x % 0.3 + np.reciprocal(x + 10),
    "logic": lambda x: np.where(np.logical_or(np.logical_and(x > 0, np.logical_not(x > 1)), x < -1), x, 0),
    "math": lambda x: np.tan(x / 4) + np.arcsin(np.tanh(x)) + np.arccos(np.tanh(x)) + np.arctan(x) + np.sinh(x)
    + np.cosh(x) + np.arcsinh(x) + np.arccosh(np.abs(x) + 1) + np.arctanh(np.tanh(x) / 2) + F.erf(x)
    + np.rint(3 * x) + np.fmod(x, 0.3) + np.logical_xor(x > 0, x < 1),
    "softmax_length": lambda x: npx.softmax(x, np.full(x.shape[0], 3), use_length=True),
    "sequence_mask": lambda x: npx.sequence_mask(x, np.array([2.0] * 1 + [6.0] * 0)[:1].repeat(x.shape[0]), True, axis=1),
    "one_hot_pick": lambda x: npx.pick(x, npx.one_hot(np.argmax(x, axis=1), 6).argmax(axis=1)),
    "topk": lambda x: npx.topk(x, k=2, ret_typ="both")[0] + npx.topk(x, k=2),
    "batch_dot": lambda x: npx.batch_dot(x[:, None, :], x[:, :, None]),
    "layer_norm": lambda x: npx.layer_norm(x, np.ones(6, np.float32), np.zeros(6, np.float32)),
    "lrn": lambda x: F.lrn(x[:, :, None], size=3, alpha=0.5) + F.lrn(x.reshape(x.shape[0], 3, 2), size=2).reshape(x.shape[0], 6, 1),
    "fully_connected": lambda x: npx.fully_connected(x, W, np.ones(6, np.float32), num_hidden=6),
    "embedding": lambda x: npx.embedding(np.argmax(x, axis=1), W, input_dim=6, output_dim=6),
}


class Traced(nn.Block):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


@pytest.mark.parametrize("name", sorted(FORWARDS))
def test_op_traces_and_replays_at_other_batch_sizes(name):
    net = Traced(FORWARDS[name])
    buffer = io.BytesIO()
    modelpack.export(net, buffer, example=X)
    loaded = modelpack.load(io.BytesIO(buffer.getvalue()))
    for batch in (1, 2, 5):
        x = np.random.default_rng(batch).normal(size=(batch, 6)).astype(np.float32)
        want, got = net(x), loaded(x)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_erf_is_the_error_function_to_its_last_bits(dtype):
    z = np.concatenate([np.linspace(-7, 7, 2001), [0.0, -0.0, 1e-30, -1e-300, np.inf, -np.inf, np.nan]]).astype(dtype)
    exact = np.array([math.erf(float(v)) for v in z]).astype(dtype)
    found = F.erf(z)
    assert found.dtype == dtype and np.array_equal(np.signbit(found), np.signbit(exact))
    np.testing.assert_array_max_ulp(found[np.isfinite(z)], exact[np.isfinite(z)], maxulp=0 if dtype == "float64" else 1)
    assert np.isnan(found[-1]) and list(found[-3:-1]) == [1, -1]


def test_erf_computes_integers_in_the_float_that_holds_them_and_refuses_complex_values():
    assert [F.erf(np.array([1, -2], dtype)).dtype for dtype in ("bool", "int8", "int16", "int64")] == [
        np.float16, np.float16, np.float32, np.float64]
    with pytest.raises(InputError, match=r"erf is not defined on complex values \(got complex64\)"):
        F.erf(np.array([1 + 2j], np.complex64))


def test_every_op_is_in_the_spec():
    spec = (Path(__file__).resolve().parents[2] / "spec" / "FORMAT.md").read_text(encoding="utf-8")
    section = spec[spec.index("### 3.4 Graph ops"):spec.index("## 4. Weight bundle")]
    missing = [op for op in ops.known_ops() if f"`{op}`" not in section]
    assert missing == []


# -- refusals -------------------------------------------------------------------------------------


def _export(fn, x=X, **options):
    modelpack.export(Traced(fn), io.BytesIO(), example=x, **options)


def test_a_traced_boolean_mask_is_refused():
    with pytest.raises(TraceError, match=r"cannot trace indexing: indexing with a traced boolean mask .* use np\.where"):
        _export(lambda x: x[x > 0])


def test_per_element_repeats_are_refused():
    with pytest.raises(TraceError, match=r"repeat\(\): per-element repeat counts are not supported"):
        _export(lambda x: np.repeat(x, [1, 2], axis=0))


def test_a_loop_over_the_dynamic_batch_is_refused_naming_the_loop():
    with pytest.raises(TraceError) as caught:
        _export(lambda x: np.stack([row * 2 for row in x]))
    message = str(caught.value)
    assert "forward records" in message and "a Python loop runs once per element of a dynamic axis" in message
    assert "test_ops.py" in message and "(2 vs 3 steps)" in message
    assert "dynamic_batch=False" in message and len(message.splitlines()) <= 10


def test_graph_refuses_an_index_array_it_was_not_given():
    graph = {
        "inputs": [{"name": "x0", "dtype": "float32", "shape": ["batch", 6]}],
        "nodes": [{"op": "getitem", "inputs": ["x0"], "outputs": ["v0"], "attrs": {"index": [{"array": 0}]}}],
        "outputs": {"kind": "single", "values": ["v0"]},
    }
    block = nn.GraphBlock(graph=graph)
    with pytest.raises(InputError, match=r"graph node 0 \(getitem\) cannot run on these inputs: index array 0"):
        block(X)


def test_graph_refuses_a_size_that_is_not_whole():
    graph = {
        "inputs": [{"name": "x0", "dtype": "float32", "shape": ["batch", 6]}],
        "nodes": [{"op": "reshape", "inputs": ["x0"], "outputs": ["v0"], "attrs": {"shape": ["batch/4", -1]}}],
        "outputs": {"kind": "single", "values": ["v0"]},
    }
    block = nn.GraphBlock(graph=graph)
    assert block(np.ones((8, 6), np.float32)).shape == (2, 24)
    with pytest.raises(InputError, match=r"size batch/4 is not a whole number"):
        block(X)


@pytest.mark.parametrize(
    ("op", "attrs", "message"),
    [
        ("full", {"shape": [1 << 20, 1 << 20], "value": 0.0, "dtype": "float32"}, "full would make 1099511627776 elements"),
        ("arange", {"stop": 1e300, "dtype": "float32"}, "arange would make"),
        ("arange", {"stop": 5, "step": 0, "dtype": "int64"}, r"arange\(0, 5, 0\) has no finite length"),
    ],
)
def test_a_hostile_size_is_refused_before_allocating(op, attrs, message):
    graph = {
        "inputs": [{"name": "x0", "dtype": "float32", "shape": ["batch", 6]}],
        "nodes": [{"op": op, "inputs": [], "outputs": ["v0"], "attrs": attrs}],
        "outputs": {"kind": "single", "values": ["v0"]},
    }
    with pytest.raises(InputError, match=message):
        nn.GraphBlock(graph=graph)(X)


@pytest.mark.parametrize(
    "call",
    [lambda: F.repeat(X, 1 << 30), lambda: F.tile(X, [1 << 16, 1 << 16]), lambda: F.broadcast_to(X, [1 << 30, 6]),
     lambda: F.one_hot(np.zeros(1 << 10), 1 << 24)],
    ids=["repeat", "tile", "broadcast_to", "one_hot"],
)
def test_ops_sized_by_attributes_check_before_allocating(call):
    with pytest.raises(ValueError, match="more than the limit"):
        call()
