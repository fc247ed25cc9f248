"""``npx.convolution`` and ``npx.pooling`` against MXNet 1.9.1 (tests/reference/mxnet_npx.*,
scripts/make_mxnet_npx_refs.py): outputs and autograd's gradients of the data, the weight and
the bias; MXNet's refusals; recording on the tape as d2l's multiple-GPU chapter trains with
them; and the refusal inside a traced ``forward``.

Tolerance for outputs and gradients: ``rtol=1e-5`` and ``atol=1e-5`` times the reference's
largest magnitude. MXNet computes with oneDNN, whose float32 sums (of up to ~10^4 products
here) run in another order than the im2col GEMMs; the worst case seen is 3.5e-6 of the
largest magnitude (a 3×3 convolution's input gradient over 32 channels).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy
import pytest

import modelpack
from modelpack import autograd, np, npx
from modelpack.errors import TraceError, UsageError
from modelpack.gluon import nn
from modelpack.nn.devices import NDArray

REFERENCE = Path(__file__).resolve().parent / "reference"
CASES = [c for c in json.loads((REFERENCE / "mxnet_npx.json").read_text())["cases"]
         if c["op"] in ("convolution", "pooling")]
ARRAYS = numpy.load(REFERENCE / "mxnet_npx.npz")

# MXNet 1.9.1's gradient disagrees with its own forward here: an average pool in the 'full'
# convention whose last window needs padding past ``pad`` is computed by the native operator
# (divisor 2: the window's positions inside input + pad), but its backward asks whether oneDNN
# supports the call with the output's gradient in place of the input, and oneDNN's divisor
# counts the extra padding (3). modelpack's gradient is its forward's (checked below).
MXNET_GRADIENT_BUG = {"pool_1d_avg_full"}


def close(actual, expected, what):
    actual = numpy.asarray(actual)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype, what
    scale = max(1.0, float(numpy.abs(expected).max())) if expected.size else 1.0
    numpy.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * scale, err_msg=what)


def inputs_of(case):
    return {name: ARRAYS[f"{case['name']}/in/{name}"] for name in case["inputs"]}


@pytest.mark.parametrize("case", [c for c in CASES if "error" not in c], ids=lambda c: c["name"])
def test_outputs_and_gradients_are_mxnets(case):
    name = case["name"]
    op = getattr(npx, case["op"])
    plain = op(**inputs_of(case), **case["kwargs"])
    assert type(plain) is NDArray
    close(plain, ARRAYS[f"{name}/out/0"], f"{name}: output")
    leaves = {key: np.array(value) for key, value in inputs_of(case).items()}
    for key in case["grads"]:
        leaves[key].attach_grad()
    with autograd.record():
        out = op(**leaves, **case["kwargs"])
    assert isinstance(out, autograd.Variable)
    out.backward(np.array(ARRAYS[f"{name}/in/head_grad"]))
    close(out.value, ARRAYS[f"{name}/out/0"], f"{name}: recorded output")
    for key in case["grads"]:
        if name in MXNET_GRADIENT_BUG:
            continue
        close(leaves[key].grad, ARRAYS[f"{name}/grad/{key}"], f"{name}: gradient of {key}")


@pytest.mark.parametrize("case", [c for c in CASES if "error" in c], ids=lambda c: c["name"])
def test_what_mxnet_refuses_is_refused(case):
    with pytest.raises(UsageError, match=rf"^npx\.{case['op']}: "):
        getattr(npx, case["op"])(**inputs_of(case), **case["kwargs"])


def test_mxnets_gradient_bug_is_where_the_extra_padding_counts():
    """Ours is the forward's transpose (next test); MXNet's differs only at the last window,
    the one oneDNN pads past ``pad``, by the ratio of the two divisors."""
    case = next(c for c in CASES if c["name"] == "pool_1d_avg_full")
    x = np.array(inputs_of(case)["data"])
    x.attach_grad()
    with autograd.record():
        y = npx.pooling(data=x, **case["kwargs"])
    head = ARRAYS["pool_1d_avg_full/in/head_grad"]
    y.backward(np.array(head))
    ours, theirs = numpy.asarray(x.grad), ARRAYS["pool_1d_avg_full/grad/data"]
    close(ours[..., :8], theirs[..., :8], "before the last window")
    last_share = head[..., -1:]
    close(ours[..., 8:] - last_share / 2, theirs[..., 8:] - last_share / 3, "the last window's shares")


@pytest.mark.parametrize("case", [c for c in CASES if c["op"] == "pooling" and "error" not in c
                                  and c["kwargs"].get("pool_type") in ("avg", "sum")], ids=lambda c: c["name"])
def test_linear_pooling_gradients_are_the_forwards_transpose(case):
    """Average and sum pooling are linear: the gradient is the transpose of the forward, which
    the forward on each basis array gives (``full`` windows past the padding included)."""
    x = inputs_of(case)["data"][:1, :1]
    basis = numpy.eye(x.size, dtype=numpy.float32).reshape(x.size, 1, *x.shape[2:])
    columns = numpy.asarray(npx.pooling(data=basis, **case["kwargs"])).reshape(x.size, -1)  # (in, out)
    head = numpy.random.default_rng(0).standard_normal(columns.shape[1]).astype(numpy.float32)
    leaf = np.array(x)
    leaf.attach_grad()
    with autograd.record():
        y = npx.pooling(data=leaf, **case["kwargs"])
    y.backward(np.array(head.reshape(y.shape)))
    numpy.testing.assert_allclose(numpy.asarray(leaf.grad).ravel(), columns @ head, rtol=1e-5, atol=1e-6)


def test_d2l_lenet_trains_on_attached_arrays():
    """d2l's multiple-GPU chapter: the parameters are arrays with attach_grad(), the network
    npx.convolution, npx.relu, npx.pooling and np.dot; the loss falls under SGD."""
    rng = numpy.random.default_rng(1)
    shapes = [(20, 1, 3, 3), (20,), (50, 20, 5, 5), (50,), (800, 128), (128,), (128, 10), (10,)]
    params = [np.array(rng.normal(scale=0.1, size=s).astype(numpy.float32)) for s in shapes]
    for p in params:
        p.attach_grad()

    def lenet(X, params):
        h1 = npx.pooling(data=npx.relu(npx.convolution(data=X, weight=params[0], bias=params[1], kernel=(3, 3),
                                                       num_filter=20)), pool_type="avg", kernel=(2, 2), stride=(2, 2))
        h2 = npx.pooling(data=npx.relu(npx.convolution(data=h1, weight=params[2], bias=params[3], kernel=(5, 5),
                                                       num_filter=50)), pool_type="avg", kernel=(2, 2), stride=(2, 2))
        h3 = npx.relu(np.dot(h2.reshape(h2.shape[0], -1), params[4]) + params[5])
        return np.dot(h3, params[6]) + params[7]

    X = np.array(rng.normal(size=(16, 1, 28, 28)).astype(numpy.float32))
    y = np.array(rng.integers(0, 10, 16))
    loss = modelpack.gluon.loss.SoftmaxCrossEntropyLoss()
    losses = []
    for _ in range(5):
        with autograd.record():
            total = loss(lenet(X, params), y).sum()
        total.backward()
        losses.append(float(total))
        for p in params:
            p[:] = p - 0.05 * p.grad / 16
    assert losses[-1] < losses[0] and all(numpy.isfinite(losses))
    assert all(float(numpy.abs(numpy.asarray(p.grad)).sum()) > 0 for p in params)


def test_the_same_as_the_convolution_and_pooling_layers():
    """npx.convolution with a layer's weight and bias gives the layer's output and gradients;
    npx.pooling gives MaxPool2D's and AvgPool2D's (stride given: npx's default is 1)."""
    rng = numpy.random.default_rng(2)
    x = rng.normal(size=(3, 4, 9, 9)).astype(numpy.float32)
    conv = nn.Conv2D(6, kernel_size=3, strides=2, padding=1, dilation=1, groups=2, in_channels=4)
    conv.initialize()
    head = rng.normal(size=(3, 6, 5, 5)).astype(numpy.float32)
    with autograd.record():
        by_layer = conv(x)
    by_layer.backward(head)
    w, b = conv.weight.data(), conv.bias.data()
    w_leaf, b_leaf = np.array(numpy.asarray(w)), np.array(numpy.asarray(b))
    w_leaf.attach_grad()
    b_leaf.attach_grad()
    with autograd.record():
        by_npx = npx.convolution(data=x, weight=w_leaf, bias=b_leaf, kernel=(3, 3), stride=(2, 2), pad=(1, 1),
                                 num_filter=6, num_group=2)
    by_npx.backward(head)
    numpy.testing.assert_array_equal(by_npx.value, by_layer.value)
    numpy.testing.assert_allclose(w_leaf.grad, conv.weight.grad(), rtol=1e-6, atol=1e-6)
    numpy.testing.assert_allclose(b_leaf.grad, conv.bias.grad(), rtol=1e-6, atol=1e-6)
    numpy.testing.assert_array_equal(npx.pooling(x, kernel=(3, 3), stride=(2, 2), pad=(1, 1)),
                                     nn.MaxPool2D(3, 2, 1)(x))
    numpy.testing.assert_array_equal(npx.pooling(x, kernel=(2, 2), stride=(2, 2), pool_type="avg"),
                                     nn.AvgPool2D(2, 2)(x))


def test_only_what_is_on_the_tape_gets_a_gradient():
    """Plain weights with recorded data: one node, the data's gradient; a recorded bias alone
    gets the output gradient's sum per channel."""
    rng = numpy.random.default_rng(3)
    x, w, b = (rng.normal(size=s).astype(numpy.float32) for s in ((2, 3, 6, 6), (4, 3, 3, 3), (4,)))
    data = np.array(x)
    data.attach_grad()
    with autograd.record():
        out = npx.convolution(data=npx.relu(data), weight=w, bias=b, kernel=(3, 3), num_filter=4)
    out.backward()
    assert data.grad.shape == x.shape and float(numpy.abs(numpy.asarray(data.grad)).sum()) > 0
    bias = np.array(b)
    bias.attach_grad()
    with autograd.record():
        out = npx.convolution(data=x, weight=w, bias=bias, kernel=(3, 3), num_filter=4)
    head = rng.normal(size=out.shape).astype(numpy.float32)
    out.backward(head)
    numpy.testing.assert_allclose(bias.grad, head.sum(axis=(0, 2, 3)), rtol=1e-5)
    with autograd.record():  # nothing on the tape: a plain result, nothing recorded
        plain = npx.pooling(data=x, kernel=(2, 2))
    assert type(plain) is NDArray


def test_outside_record_attached_arrays_give_plain_results():
    x = np.array(numpy.ones((1, 1, 4, 4), numpy.float32))
    x.attach_grad()
    y = npx.pooling(x, kernel=(2, 2), stride=(2, 2), pool_type="sum")
    assert type(y) is NDArray and y.tolist() == [[[[4.0, 4.0], [4.0, 4.0]]]]


def test_arguments_as_mxnet_takes_them():
    """Tuples, lists and numpy ints; an int for one axis; float64 stays float64; integer data
    is computed in float32."""
    rng = numpy.random.default_rng(4)
    x = rng.normal(size=(2, 2, 9)).astype(numpy.float32)
    w = rng.normal(size=(3, 2, 3)).astype(numpy.float32)
    b = numpy.zeros(3, numpy.float32)
    a = npx.convolution(x, w, b, kernel=3, stride=2, pad=1, num_filter=numpy.int64(3))
    c = npx.convolution(x, w, b, kernel=[3], stride=(2,), pad=[1], dilate=(1,), num_filter=3, layout="NCW")
    numpy.testing.assert_array_equal(a, c)
    assert npx.convolution(x.astype(numpy.float64), w, b, kernel=(3,), num_filter=3).dtype == numpy.float64
    assert npx.pooling(numpy.arange(16).reshape(1, 1, 4, 4), kernel=(2, 2), stride=(2, 2)).tolist() == \
        [[[[5.0, 7.0], [13.0, 15.0]]]]
    assert npx.pooling(numpy.arange(16).reshape(1, 1, 4, 4), kernel=(2, 2)).shape == (1, 1, 3, 3)  # stride 1
    y = npx.convolution(x, w, kernel=(3,), num_filter=3, no_bias=True, workspace=512, cudnn_off=True,
                        cudnn_tune="fastest", name="conv0")
    numpy.testing.assert_array_equal(y, npx.convolution(x, w, b, kernel=(3,), num_filter=3))  # b is zeros


@pytest.mark.parametrize("call, message", [
    (lambda x, w, b: npx.convolution(x, w, b, kernel=(3, 3), num_filter=4, layout="NHWC"),
     r"layout 'NHWC' is not supported for 2-D data; the one there is: 'NCHW'"),
    (lambda x, w, b: npx.convolution(x, w, b, kernel=(3, 3)), r"num_filter is required"),
    (lambda x, w, b: npx.convolution(x, w, b, kernel=(3, 3), num_filter=4, no_bias=True),
     r"bias given with no_bias=True"),
    (lambda x, w, b: npx.convolution(x, w, b, num_filter=4), r"kernel must have 1, 2 or 3 axes"),
    (lambda x, w, b: npx.convolution(x, w, b, kernel=(3.0, 3), num_filter=4), r"kernel must be an int or a tuple"),
    (lambda x, w, b: npx.convolution(x, w, b, kernel="3", num_filter=4), r"kernel must be an int or a tuple"),
    (lambda x, w, b: npx.convolution(x, w, b, kernel=(3, 3), num_filter=4, stride=(0, 1)),
     r"stride must be at least 1 on every axis"),
    (lambda x, w, b: npx.convolution(x, w, b, kernel=(3, 3), num_filter=4, pad=(-1, 0)),
     r"pad must be at least 0 on every axis"),
    (lambda x, w, b: npx.convolution(x, w, b, kernel=(3, 3), num_filter=4, num_group=0),
     r"num_group must be a positive int"),
    (lambda x, w, b: npx.convolution(x, w, b[:3], kernel=(3, 3), num_filter=4), r"bias must have shape \(4,\)"),
    (lambda x, w, b: npx.convolution(x, w, b, kernel=(3, 3), num_filter=4, out=x), r"out= is not supported"),
    (lambda x, w, b: npx.convolution(None, w, b, kernel=(3, 3), num_filter=4), r"data is required"),
    (lambda x, w, b: npx.pooling(x, kernel=(2, 2), pool_type="lp", p_value=2), r"pool_type 'lp' is not supported"),
    (lambda x, w, b: npx.pooling(x, kernel=(2, 2), pooling_convention="same"),
     r"pooling_convention 'same' is not supported"),
    (lambda x, w, b: npx.pooling(x, kernel=(2, 2), pool_type="avg", count_include_pad="no"),
     r"count_include_pad must be True, False or None"),
    (lambda x, w, b: npx.pooling(x, kernel=(2,)), r"a 1-D kernel needs 3-D data"),
    (lambda x, w, b: npx.pooling(x[0, 0], global_pool=True), r"data must be 3-D, 4-D or 5-D"),
    (lambda x, w, b: npx.pooling(x, kernel=(2, 2), layout="NHWC"), r"layout 'NHWC' is not supported"),
])
def test_bad_arguments_are_refused_by_name(call, message):
    rng = numpy.random.default_rng(5)
    x, w, b = (rng.normal(size=s).astype(numpy.float32) for s in ((1, 2, 6, 6), (4, 2, 3, 3), (4,)))
    with pytest.raises(UsageError, match=message):
        call(x, w, b)


class FunctionalNet(nn.Block):
    """A custom block written as d2l's multiple-GPU LeNet is: npx's functions of parameters."""

    def __init__(self, pool: bool = False):
        super().__init__()
        self.pool = pool
        self.weight = self.params.get("weight", shape=(4, 1, 3, 3))
        self.bias = self.params.get("bias", shape=(4,))

    def forward(self, x):
        if self.pool:
            return npx.pooling(data=x, kernel=(2, 2), stride=(2, 2))
        return npx.convolution(data=x, weight=self.weight.data(), bias=self.bias.data(), kernel=(3, 3),
                               num_filter=4)


@pytest.mark.parametrize("pool, layer", [(False, r"nn\.Conv1D, nn\.Conv2D or nn\.Conv3D"),
                                         (True, r"nn\.MaxPool2D, nn\.AvgPool2D, nn\.GlobalAvgPool2D")])
def test_a_traced_forward_refuses_them_naming_the_layer(tmp_path, pool, layer):
    """They are not ops of the op table: exporting a forward that calls them is refused with
    TraceError naming the layer to use and the user's line, and no archive is written."""
    net = FunctionalNet(pool)
    net.initialize()
    x = numpy.random.default_rng(6).normal(size=(2, 1, 8, 8)).astype(numpy.float32)
    assert net(x).shape[0] == 2  # eagerly, it computes
    with pytest.raises(TraceError, match=rf"^cannot trace npx\.(convolution|pooling): it is not an op of the op "
                                         rf"table, so no stored graph can hold it; use the layer \({layer}.*"
                                         rf"\(at .*test_npx_spatial\.py:\d+: return npx\."):
        modelpack.export(net, tmp_path / "net.mpk", example=x)
    assert not (tmp_path / "net.mpk").exists()
