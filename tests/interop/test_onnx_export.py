"""to_onnx: modelpack → ONNX → onnxruntime computes what modelpack computes.

Float32 tolerance: rtol 1e-4, atol 1e-5 (onnxruntime's kernels sum and round in their own
order; measured worst 3e-7 absolute on these sizes). Every model is run at the example's batch
size and at another, since the batch stays a symbolic dimension.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from modelpack import nn
from modelpack.errors import InputError, UnsupportedBlockError, UsageError

onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install -e '.[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[onnx]')")
from modelpack.interop.onnx import to_onnx  # noqa: E402

TOL = {"rtol": 1e-4, "atol": 1e-5}
# A LayerNorm over nearly equal values divides its input's rounding (float32: 2^-24 of values up
# to ~8) by sqrt(epsilon): up to 316 times 5e-7, so after one the absolute tolerance is 2e-4.
TOL_AFTER_LAYERNORM = {"rtol": 1e-4, "atol": 2e-4}


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _check(net, path, *examples, other_batch: int = 3):
    session = _session(path)
    tol = TOL_AFTER_LAYERNORM if any(isinstance(b, nn.LayerNorm) for _, b in net.named_blocks()) else TOL
    names = [i.name for i in session.get_inputs()]
    for inputs in (examples, tuple(np.resize(e, (other_batch, *e.shape[1:])) for e in examples)):
        expected = net(*inputs)
        found = session.run(None, dict(zip(names, inputs, strict=True)))
        expected = list(expected) if isinstance(expected, (tuple, list)) else [expected]
        assert len(found) == len(expected)
        for f, e in zip(found, expected, strict=True):
            assert f.dtype == np.asarray(e).dtype and f.shape == np.shape(e)
            np.testing.assert_allclose(f, e, **tol)
    return session


@st.composite
def cnns(draw):
    net = nn.Sequential()
    channels = draw(st.integers(1, 4))
    groups = draw(st.sampled_from([1, channels]))
    net.add(nn.Conv2D(groups * draw(st.integers(1, 2)), (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                      strides=(draw(st.integers(1, 2)), draw(st.integers(1, 3))),
                      padding=(draw(st.integers(0, 1)), draw(st.integers(0, 2))),
                      dilation=(draw(st.integers(1, 2)), 1), groups=groups,
                      activation=draw(st.sampled_from([None, "relu", "softrelu", "gelu", "silu"])),
                      use_bias=draw(st.booleans())))
    net.add(nn.BatchNorm(scale=draw(st.booleans())))
    pool = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    kwargs = dict(pool_size=pool, strides=(draw(st.integers(1, 3)), draw(st.integers(1, 2))),
                  padding=(draw(st.integers(0, pool[0] // 2)), draw(st.integers(0, pool[1] // 2))),
                  ceil_mode=draw(st.booleans()))
    if draw(st.booleans()):
        net.add(nn.MaxPool2D(**kwargs))
    else:
        net.add(nn.AvgPool2D(**kwargs, count_include_pad=draw(st.booleans())))
    head = draw(st.sampled_from(["dense", "gap", "gmp", "flatten"]))
    if head == "gap":
        net.add(nn.GlobalAvgPool2D(), nn.Flatten())
    elif head == "gmp":
        net.add(nn.GlobalMaxPool2D())
    elif head == "flatten":
        net.add(nn.Flatten(), nn.LeakyReLU(0.1))
    net.add(nn.Dropout(0.3), nn.Dense(draw(st.integers(1, 4)), activation=draw(st.sampled_from([None, "tanh"]))))
    shape = (draw(st.integers(1, 2)), channels, draw(st.integers(5, 12)), draw(st.integers(5, 12)))
    return net, shape


@settings(max_examples=30, deadline=None)
@given(cnns(), st.integers(0, 2**31 - 1))
def test_random_cnns(tmp_path_factory, net_and_shape, seed):
    net, shape = net_and_shape
    net.initialize(seed=seed)
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    try:
        net(x)
    except InputError:
        reject()
    batchnorm = net[1]
    batchnorm.running_mean.set_data(np.random.default_rng(seed).standard_normal(batchnorm.gamma.shape).astype(np.float32))
    batchnorm.running_var.set_data(np.full(batchnorm.gamma.shape, 1.7, np.float32))
    path = tmp_path_factory.mktemp("onnx") / "cnn.onnx"
    to_onnx(net, path, example=x)
    _check(net, path, x)


def test_ceil_mode_average_pool_whose_padding_reaches_past_the_last_window(tmp_path):
    # height 5, pool 2, stride 2, padding 1: ceil_mode's last window would start in the end
    # padding and is dropped, so the padded input is longer than the windows need (found by
    # test_random_cnns: the end pad came out negative, which onnxruntime refuses)
    net = nn.Sequential()
    net.add(nn.AvgPool2D((2, 3), (2, 2), (1, 0), ceil_mode=True))
    x = np.random.default_rng(0).standard_normal((1, 1, 5, 6)).astype(np.float32)
    to_onnx(net, tmp_path / "pool.onnx", example=x)
    _check(net, tmp_path / "pool.onnx", x)


@st.composite
def mlps(draw):
    net = nn.Sequential()
    for _ in range(draw(st.integers(1, 3))):
        net.add(nn.Dense(draw(st.integers(1, 6)), activation=draw(st.sampled_from([None, "relu", "sigmoid", "softsign"])),
                         use_bias=draw(st.booleans()), flatten=draw(st.booleans())))
        extra = draw(st.sampled_from(["none", "ln", "ln-axis", "bn", "elu"]))
        if extra == "ln":
            net.add(nn.LayerNorm(center=draw(st.booleans()), scale=draw(st.booleans())))
        elif extra == "ln-axis":
            net.add(nn.LayerNorm(axis=1))
        elif extra == "bn":
            net.add(nn.BatchNorm(axis=-1))
        elif extra == "elu":
            net.add(nn.ELU(0.5))
    return net, (draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4)))


@settings(max_examples=30, deadline=None)
@given(mlps(), st.integers(0, 2**31 - 1))
def test_random_mlps_on_3d_inputs(tmp_path_factory, net_and_shape, seed):
    net, shape = net_and_shape
    net.initialize(seed=seed)
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    net(x)
    rng = np.random.default_rng(seed)
    for name, param in net.collect_params().items():  # spread values: well-conditioned norms
        values = rng.uniform(0.5, 1.5, param.shape) if name.endswith("running_var") else rng.standard_normal(param.shape)
        param.set_data(values.astype(np.float32))
    path = tmp_path_factory.mktemp("onnx") / "mlp.onnx"
    to_onnx(net, path, example=x)
    _check(net, path, x)


class Residual(nn.Block):
    """A custom forward: traced into a graph of ops, then written as ONNX."""

    def __init__(self):
        super().__init__()
        self.body = nn.Dense(6, flatten=False)
        self.embed = nn.Embedding(7, 6)
        self.scale = nn.Parameter("scale", shape=(6,))

    def forward(self, x, tokens):
        h = self.body(x) + self.embed(tokens)
        h = np.maximum(h, 0.0) * self.scale.data() - h.mean(axis=-1, keepdims=True)
        pooled = h[:, 1:, ::2].reshape(h.shape[0], -1)
        stacked = np.stack([h.sum(axis=1), np.exp(-np.abs(h)).max(axis=1)], axis=-1)
        gate = np.where(h > 0.1, h, h / 2)
        return nn.F.softmax(pooled, -1), stacked.transpose(0, 2, 1)[..., None], np.squeeze(np.concatenate([gate, -gate], 1)[:, :1], axis=1)


def test_a_traced_custom_block(tmp_path):
    net = Residual()
    net.initialize(seed=3)
    x = np.random.default_rng(0).standard_normal((2, 5, 4)).astype(np.float32)
    tokens = np.random.default_rng(1).integers(0, 7, (2, 5))
    net(x, tokens)
    net.scale.set_data(np.linspace(0.5, 2, 6, dtype=np.float32))
    to_onnx(net, tmp_path / "residual.onnx", example=(x, tokens))
    session = _check(net, tmp_path / "residual.onnx", x, tokens)
    assert [i.shape for i in session.get_inputs()] == [["batch", 5, 4], ["batch", 5]]


class Shapes(nn.Block):
    def forward(self, x):
        y = x.astype(np.int32)
        flat = nn.F.flatten(x)
        return (y.sum(axis=(1, 2)) / 2, (x[:, -1, :3] >= 0.5) != (x[:, 0, -3:] < 0), flat.reshape(x.shape[0], 3, -1).min(axis=1))


def test_dtypes_follow_numpy(tmp_path):
    net = Shapes()
    x = np.random.default_rng(0).uniform(-3, 3, (4, 3, 5)).astype(np.float32)
    to_onnx(net, tmp_path / "shapes.onnx", example=x)
    _check(net, tmp_path / "shapes.onnx", x, other_batch=6)


def test_dynamic_axes_stay_symbolic(tmp_path):
    net = nn.Sequential()
    net.add(nn.Conv2D(2, 3, padding=1), nn.MaxPool2D(2, ceil_mode=True), nn.GlobalAvgPool2D(), nn.Flatten())
    net.initialize(seed=0)
    x = np.random.default_rng(0).standard_normal((1, 1, 7, 9)).astype(np.float32)
    net(x)
    to_onnx(net, tmp_path / "fcn.onnx", example=x, dynamic_axes={0: {2: "height", 3: "width"}})
    session = _session(tmp_path / "fcn.onnx")
    assert session.get_inputs()[0].shape == ["batch", 1, "height", "width"]
    for shape in ((1, 1, 7, 9), (3, 1, 12, 5), (2, 1, 5, 6)):
        y = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
        np.testing.assert_allclose(session.run(None, {"input": y})[0], net(y), **TOL)


def test_without_example_when_the_first_layer_fixes_the_shape(tmp_path):
    net = nn.Sequential()
    net.add(nn.Dense(3, in_units=4, activation="relu"), nn.Dense(2, in_units=3))
    net.initialize(seed=0)
    to_onnx(net, tmp_path / "mlp.onnx")
    model = onnx.load(str(tmp_path / "mlp.onnx"))
    assert model.opset_import[0].version == 17
    assert [i.name for i in model.graph.initializer] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert [n.op_type for n in model.graph.node] == ["Gemm", "Relu", "Gemm", "Identity"]
    assert all(n.attribute[0].i == 1 for n in model.graph.node if n.op_type == "Gemm")  # transB
    _check(net, tmp_path / "mlp.onnx", np.ones((2, 4), np.float32))


def test_refusals(tmp_path):
    net = nn.Sequential()
    net.add(nn.Conv2D(2, 3, in_channels=1))
    net.initialize()
    with pytest.raises(UsageError, match=r"to_onnx needs example= \(an input array\): the first layer \(Conv2D\)"):
        to_onnx(net, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_unknown_layer_types_are_refused_by_name(tmp_path, monkeypatch):
    from modelpack.interop.onnx import export_layers

    monkeypatch.delitem(export_layers.LAYERS, "ELU")
    net = nn.Sequential()
    net.add(nn.Dense(2, in_units=2), nn.ELU())
    net.initialize()
    with pytest.raises(UnsupportedBlockError, match=r"block '1' \(ELU\) has no ONNX translation; translated layers: .*Dense"):
        to_onnx(net, tmp_path / "x.onnx")


def test_onnx_reference_evaluator_agrees(tmp_path):
    """A second oracle: onnx's own reference implementation (no ceil_mode here: it and
    onnxruntime disagree on ONNX's ceil rule; explicit pads are what to_onnx writes)."""
    from onnx.reference import ReferenceEvaluator

    net = nn.Sequential()
    net.add(nn.Conv2D(3, (2, 3), strides=(1, 2), padding=(1, 1)), nn.BatchNorm(), nn.AvgPool2D(3, 2, 1, ceil_mode=True),
            nn.Flatten(), nn.Dense(4, activation="softrelu"), nn.LayerNorm())
    net.initialize(seed=0)
    x = np.random.default_rng(0).standard_normal((2, 2, 9, 8)).astype(np.float32)
    net(x)
    to_onnx(net, tmp_path / "ref.onnx", example=x)
    found = ReferenceEvaluator(str(tmp_path / "ref.onnx")).run(None, {"input": x})[0]
    np.testing.assert_allclose(found, net(x), **TOL)


def test_catalogue_activations(tmp_path):
    from modelpack.nn import registry

    build = lambda name, **config: registry.layer_type(name).build(config)  # noqa: E731
    net = nn.Sequential()
    net.add(nn.Conv2D(3, 1, in_channels=2), build("PReLU", in_channels=3), build("SELU"), build("Identity"),
            build("GELU", approximation="tanh"), build("Swish", beta=1.5), nn.Flatten(), nn.Dense(2, in_units=12),
            build("PReLU"), build("GELU"))
    net.initialize(seed=0)
    net[1].alpha.set_data(np.array([0.1, -0.3, 0.7], np.float32))
    x = np.random.default_rng(0).standard_normal((2, 2, 2, 2)).astype(np.float32)
    to_onnx(net, tmp_path / "acts.onnx", example=x)
    _check(net, tmp_path / "acts.onnx", x)
    from modelpack.interop.onnx import from_onnx

    back = from_onnx(tmp_path / "acts.onnx")
    np.testing.assert_allclose(back(x), net(x), **TOL)
    assert {"PReLU", "SELU"} <= {type(b).__name__ for _, b in back.named_blocks()}


def test_without_onnx_installed_the_verbs_say_what_to_install(tmp_path, monkeypatch):
    import sys

    import modelpack.interop.onnx as package

    monkeypatch.setitem(sys.modules, "onnx", None)
    for module in ("modelpack.interop.onnx.export", "modelpack.interop.onnx.importer"):
        monkeypatch.delitem(sys.modules, module)
        monkeypatch.delattr(package, module.rsplit(".", 1)[1])
    with pytest.raises(UsageError, match=r"need onnx and onnxruntime: pip install 'modelpack\[onnx\]'"):
        package.from_onnx  # noqa: B018
    with pytest.raises(UsageError, match=r"pip install 'modelpack\[onnx\]'"):
        package.to_onnx  # noqa: B018


class _Apart(nn.Block):
    def forward(self, x):
        return x[np.array([0, 1]), :, np.array([1, 0])]


class _ArrayAndNone(nn.Block):
    def forward(self, x):
        return x[:, np.array([0, 2]), None]


@pytest.mark.parametrize(("block", "fragment"), [
    (_Apart, r"getitem with index arrays on axes \[0, 2\], not adjacent"),
    (_ArrayAndNone, r"getitem mixing index arrays and None"),
])
def test_traced_indexing_onnx_cannot_express_is_refused(tmp_path, block, fragment):
    x = np.ones((2, 4, 3), np.float32)
    with pytest.raises(UnsupportedBlockError, match=fragment):
        to_onnx(block(), tmp_path / "x.onnx", example=x)
    assert not (tmp_path / "x.onnx").exists()
