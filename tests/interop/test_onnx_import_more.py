"""from_onnx of transposed convolutions, instance norms, reflection padding and the recurrent
operators, on graphs torch.onnx exported (TorchScript exporter, dynamo=False, and where they
differ its default one) and graphs built with onnx.helper; onnxruntime (and onnx.reference)
are the oracles.

Tolerance: rtol 1e-4, atol 1e-5 (float32; the runtimes sum in their own order).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from models import flat_outputs

import modelpack
from modelpack.errors import InputError, LimitError, UnsupportedBlockError
from modelpack.io.limits import Limits

onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install -e '.[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[onnx]')")
torch = pytest.importorskip("torch", reason="torch is not installed: torch.onnx exports cannot be made")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from modelpack.interop.onnx import from_onnx, to_onnx  # noqa: E402

TOL = {"rtol": 1e-4, "atol": 1e-5}
tnn = torch.nn


def _runtime(path, inputs):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, inputs)


def _saved(graph, path, opset=17):
    """``graph`` as an ONNX model file at ``path`` (IR 8, or 10 from opset 21 on, as onnx asks)."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10 if opset >= 21 else 8
    onnx.save(model, str(path))
    return path


def _agrees_by_shape(net, path, shapes):
    """``net`` computes what onnxruntime computes for an input x of each shape."""
    for shape in shapes:
        x = np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)
        np.testing.assert_array_equal(net(x), _runtime(path, {"x": x})[0])


def _export(module, x, path, batch_axis=0, outputs=("y",), dynamo=False):
    """torch.onnx's TorchScript exporter at opset 17, or (``dynamo``) its default one."""
    if dynamo:
        pytest.importorskip("onnxscript", reason="onnxscript is not installed: torch.onnx's default exporter needs it")
        sizes = {"dynamic_shapes": ({batch_axis: torch.export.Dim("batch")},)}
    else:
        sizes = {"dynamic_axes": {"x": {batch_axis: "batch"}}, "opset_version": 17}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.from_numpy(x),), str(path), dynamo=dynamo, input_names=["x"],
                          output_names=list(outputs), verbose=False, **sizes)
    return path


def _agree(net, path, x, batch_axis=0, batches=(4,)):
    for batch in (None, *batches):
        y = x
        if batch is not None:
            shape = list(x.shape)
            shape[batch_axis] = batch
            y = np.random.default_rng(batch).standard_normal(shape).astype(np.float32)
        found, expected = flat_outputs(net(y)), _runtime(path, {"x": y})
        assert len(found) == len(expected)
        for f, e in zip(found, expected, strict=True):
            np.testing.assert_allclose(f, e, **TOL)


def _imports_as_torch(module, x, path, batches, ops=()):
    """``module`` exported (batch dynamic) holds ``ops``; imported, it agrees with onnxruntime at
    ``batches`` and with torch on ``x``. Returns the imported net."""
    path = _export(module, x, path)
    assert set(ops) <= {node.op_type for node in onnx.load(str(path)).graph.node}
    net = from_onnx(path)
    _agree(net, path, x, batches=batches)
    with torch.no_grad():
        np.testing.assert_allclose(net(x), module(torch.from_numpy(x)).numpy(), **TOL)
    return net


@pytest.mark.parametrize(("module", "shape"), [
    (tnn.ConvTranspose2d(3, 4, (3, 2), stride=(2, 3), padding=(1, 0), output_padding=(1, 2)), (2, 3, 5, 4)),
    (tnn.ConvTranspose1d(4, 6, 3, stride=2, padding=1, groups=2, dilation=2, bias=False), (2, 4, 6)),
    (tnn.ConvTranspose3d(2, 2, 2, stride=2), (1, 2, 3, 2, 3)),
])
def test_torch_transposed_convolutions(tmp_path, module, shape):
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    path = _export(tnn.Sequential(module, tnn.ReLU()), x, tmp_path / "ct.onnx")
    net = from_onnx(path)
    assert "ConvTranspose" in type(net[0]).__name__ or "Transpose" in type(net[0]).__name__
    _agree(net, path, x)


def test_torch_instance_norm_and_reflection_pad(tmp_path):
    torch.manual_seed(1)
    module = tnn.Sequential(tnn.ReflectionPad2d((1, 2, 0, 1)), tnn.Conv2d(3, 4, 3), tnn.InstanceNorm2d(4, affine=True),
                            tnn.ReLU(), tnn.InstanceNorm2d(4))
    with torch.no_grad():
        module[2].weight.uniform_(0.5, 1.5)
        module[2].bias.uniform_(-1, 1)
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 6)).astype(np.float32)
    path = _export(module, x, tmp_path / "style.onnx")
    net = from_onnx(path)
    kinds = {type(b).__name__ for _, b in net.named_blocks()}
    assert {"ReflectionPad2D", "InstanceNorm"} <= kinds
    _agree(net, path, x)
    modelpack.export(net, tmp_path / "style.mpk")
    np.testing.assert_allclose(modelpack.load(tmp_path / "style.mpk")(x), _runtime(path, {"x": x})[0], **TOL)


class _Last(tnn.Module):
    """A recurrent layer's output, and its final states, as separate graph outputs."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        out, states = self.layer(x)
        return (out, *states) if isinstance(states, tuple) else (out, states)


@pytest.mark.parametrize(("make", "batch_first"), [
    (lambda: tnn.LSTM(3, 4), False),
    (lambda: tnn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True), True),
    (lambda: tnn.GRU(3, 5, bidirectional=True), False),
    (lambda: tnn.GRU(3, 4, num_layers=2, batch_first=True), True),
    (lambda: tnn.RNN(3, 4, nonlinearity="relu"), False),
    (lambda: tnn.RNN(3, 4, num_layers=2, bidirectional=True), False),
])
def test_torch_recurrent_layers(tmp_path, make, batch_first):
    torch.manual_seed(2)
    layer = make()
    module = _Last(layer)
    shape = (2, 5, 3) if batch_first else (5, 2, 3)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    count = 3 if isinstance(layer, tnn.LSTM) else 2
    path = _export(module, x, tmp_path / "rnn.onnx", batch_axis=0 if batch_first else 1,
                   outputs=[f"y{i}" for i in range(count)])
    net = from_onnx(path)
    assert type(layer).__name__ in {type(b).__name__ for _, b in net.named_blocks()}
    _agree(net, path, x, batch_axis=0 if batch_first else 1)
    with torch.no_grad():
        expected = [t.numpy() for t in _flat_torch(module(torch.from_numpy(x)))]
    for f, e in zip(flat_outputs(net(x)), expected, strict=True):
        np.testing.assert_allclose(f, e, **TOL)


def _flat_torch(result):
    return [t for item in result for t in (_flat_torch(item) if isinstance(item, (tuple, list)) else [item])]


def test_to_onnx_then_from_onnx_for_the_new_layers(tmp_path):
    from modelpack import nn
    from modelpack.nn import rnn

    net = nn.Sequential()
    net.add(rnn.GRU(4, layout="NTC", bidirectional=True), nn.Dense(3, flatten=False))
    net.initialize(seed=0)
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    net(x)
    to_onnx(net, tmp_path / "gru.onnx", example=x)
    back = from_onnx(tmp_path / "gru.onnx")
    np.testing.assert_allclose(back(x), net(x), **TOL)
    conv = nn.Sequential()
    conv.add(nn.Conv2DTranspose(2, 3, strides=2, padding=1, output_padding=1), nn.InstanceNorm(),
             nn.ReflectionPad2D(1))
    conv.initialize(seed=1)
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 5)).astype(np.float32)
    conv(x)
    to_onnx(conv, tmp_path / "conv.onnx", example=x)
    back = from_onnx(tmp_path / "conv.onnx")
    assert [type(b).__name__ for b in back.children.values()] == ["Conv2DTranspose", "InstanceNorm", "ReflectionPad2D"]
    np.testing.assert_allclose(back(x), conv(x), **TOL)


def _graph(node, x_shape, initializers, outputs=("y",)):
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
                              [numpy_helper.from_array(a, n) for n, a in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _lstm_weights(rng, hidden=2, features=3, gates=4):
    return {"W": rng.standard_normal((1, gates * hidden, features)).astype(np.float32),
            "R": rng.standard_normal((1, gates * hidden, hidden)).astype(np.float32)}


@pytest.mark.parametrize(("op", "attrs", "extra", "message"), [
    ("LSTM", {"hidden_size": 2, "clip": 3.0}, (), r"clip=3\.0 \(modelpack's layers have no such option\)"),
    ("LSTM", {"hidden_size": 2, "direction": "reverse"}, (), r"direction='reverse'"),
    ("GRU", {"hidden_size": 2}, (), r"linear_before_reset=0"),
    ("LSTM", {"hidden_size": 2, "activations": ["Sigmoid", "Relu", "Tanh"]}, (), r"activations=\['Sigmoid', 'Relu', 'Tanh'\]"),
    ("LSTM", {"hidden_size": 2, "input_forget": 1}, (), r"input_forget=1"),
])
def test_recurrent_options_modelpack_lacks_are_refused(tmp_path, op, attrs, extra, message):
    rng = np.random.default_rng(0)
    gates = 4 if op == "LSTM" else 3
    weights = _lstm_weights(rng, gates=gates)
    inputs = ["x", "W", "R"]
    if extra:
        weights["B"] = np.zeros((1, 2 * gates * 2), np.float32)
        weights["seq"] = np.array([2, 2], np.int32)
        inputs += list(extra)
    node = helper.make_node(op, inputs, ["y"], **attrs)
    onnx.save(_graph(node, [4, 2, 3], weights), str(tmp_path / "r.onnx"))
    with pytest.raises(UnsupportedBlockError, match=message):
        from_onnx(tmp_path / "r.onnx")


@pytest.mark.parametrize(("mode", "pads", "shape"), [
    ("edge", [0, 0, 1, 1, 0, 0, 1, 1], ["n", 2, 3, 3]),  # torch's ReplicationPad2d
    ("edge", [0, 2, 0, 1, 3, 0], ["n", 3, 4]),  # any axis, the batch's too, wider than the axis
    ("reflect", [0, 1, 2, 0, 1, 1], ["n", 3, 4]),  # not the last two axes of a 4-D input
    ("reflect", [0, 0, 3, 0, 0, 3], [2, 3, 4]),  # a pad one short of the axis
    ("wrap", [0, 1, 2, 0, 2, 4], ["n", 3, 4]),  # (opset 19)
])
def test_edge_wrap_and_reflect_padding(tmp_path, mode, pads, shape):
    """Slices of the input joined on either side, as onnxruntime pads."""
    node = helper.make_node("Pad", ["x", "pads"], ["y"], mode=mode)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.array(pads, np.int64), "pads")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19 if mode == "wrap" else 17)])
    model.ir_version = 9
    onnx.save(model, str(tmp_path / "p.onnx"))
    net = from_onnx(tmp_path / "p.onnx")
    for batch in ((2,) if isinstance(shape[0], int) else (2, 3)):
        x = np.random.default_rng(batch).standard_normal((batch, *shape[1:])).astype(np.float32)
        np.testing.assert_array_equal(net(x), _runtime(tmp_path / "p.onnx", {"x": x})[0])


@pytest.mark.parametrize(("mode", "pads", "message"), [
    ("reflect", [0, 0, 4, 0, 0, 0], r"mode='reflect' pads 4 and 0 on axis 2 of size 4"),  # reflect reads 5
    ("wrap", [0, 0, 0, 0, 0, 5], r"mode='wrap' pads 0 and 5 on axis 2 of size 4"),
    ("reflect", [0, 0, -1, 0, 0, 0], r"mode='reflect' pads -1 and 0 on axis 2"),
])
def test_padding_that_reads_past_the_input_is_refused(tmp_path, mode, pads, message):
    node = helper.make_node("Pad", ["x", "pads"], ["y"], mode=mode)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.array(pads, np.int64), "pads")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    onnx.save(model, str(tmp_path / "p.onnx"))
    with pytest.raises(UnsupportedBlockError, match=rf"\(Pad\): {message}"):
        from_onnx(tmp_path / "p.onnx")


@pytest.mark.parametrize(("size", "folded"), [(6, True), (5000, False)])
def test_small_constant_layout_subgraphs_fold_and_large_ones_stay_ops(tmp_path, size, folded):
    """torch.onnx computes a Pad's pads from constants; only small constants are folded."""
    weight = np.arange(size, dtype=np.float32)
    nodes = [helper.make_node("Reshape", ["w", "shape"], ["w2"]), helper.make_node("Add", ["x", "w2"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(weight.reshape(2, -1), "w"),
                               numpy_helper.from_array(np.array([1, size], np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "fold.onnx"))
    net = from_onnx(tmp_path / "fold.onnx")
    ops = [node["op"] for node in net.get_config()["graph"]["nodes"]]
    assert ("reshape" not in ops) == folded
    x = np.ones((3, size), np.float32)
    np.testing.assert_allclose(net(x), _runtime(tmp_path / "fold.onnx", {"x": x})[0], **TOL)


def _one_node(op, inputs, attrs, x_shape, initializers, outputs=1, dtype=TensorProto.FLOAT):
    outs = [f"y{i}" for i in range(outputs)]
    out_type = TensorProto.INT64 if op.startswith("Arg") else dtype
    node = helper.make_node(op, ["x", *inputs], outs, **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", dtype, x_shape)],
                              [helper.make_tensor_value_info(o, out_type, None) for o in outs],
                              [numpy_helper.from_array(a, n) for n, a in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


X = np.random.default_rng(0).uniform(-3, 3, (2, 3, 4)).astype(np.float32)
B = np.random.default_rng(1).random((2, 3, 4)) > 0.5


@pytest.mark.parametrize(("op", "inputs", "attrs", "x", "initializers", "outputs"), [
    ("Ceil", [], {}, X, {}, 1),
    ("Floor", [], {}, X, {}, 1),
    ("Sign", [], {}, X, {}, 1),
    ("Reciprocal", [], {}, X, {}, 1),
    ("Not", [], {}, B, {}, 1),
    ("And", ["b"], {}, B, {"b": ~B[:1]}, 1),
    ("Or", ["b"], {}, B, {"b": ~B[:1]}, 1),
    ("Xor", ["b"], {}, B, {"b": ~B[:1]}, 1),
    *((op, [], {}, X, {}, 1) for op in ("Tan", "Atan", "Sinh", "Cosh", "Asinh", "Erf", "Round")),
    *((op, [], {}, X / 3, {}, 1) for op in ("Asin", "Acos", "Atanh")),  # inside (−1, 1)
    ("Acosh", [], {}, np.abs(X) + 1, {}, 1),
    ("Round", [], {}, np.array([[[0.5, 1.5, 2.5, -0.5]], [[-1.5, -2.5, 0.49999997, -0.0]]], np.float32), {}, 1),
    ("ReduceProd", [], {"axes": [1, 2], "keepdims": 0}, X, {}, 1),
    ("ArgMax", [], {"axis": 2}, X, {}, 1),
    ("ArgMin", [], {"axis": -2, "keepdims": 0}, X, {}, 1),
    ("CumSum", ["axis"], {}, X, {"axis": np.array(1, np.int64)}, 1),
    ("CumSum", ["axis"], {"reverse": 1}, X, {"axis": np.array(2, np.int64)}, 1),
    ("CumSum", ["axis"], {"exclusive": 1}, X, {"axis": np.array(1, np.int64)}, 1),
    ("CumSum", ["axis"], {"exclusive": 1, "reverse": 1}, X, {"axis": np.array(-1, np.int64)}, 1),
    ("Split", [], {"axis": 2}, X, {}, 2),  # equal pieces of a fixed axis
    ("Flatten", [], {"axis": 0}, X, {}, 1),
    ("Flatten", [], {"axis": 2}, X, {}, 1),
    ("Flatten", [], {"axis": 3}, X, {}, 1),
    ("Flatten", [], {"axis": -1}, X, {}, 1),
    ("LpNormalization", [], {"axis": -1, "p": 2}, X, {}, 1),
    ("LpNormalization", [], {"axis": 1, "p": 1}, X, {}, 1),
    ("Selu", [], {}, X, {}, 1),  # SELU's own constants: the layer
    ("Selu", [], {"alpha": 1.2, "gamma": 0.9}, X, {}, 1),  # others: composed
    ("Celu", [], {}, X, {}, 1),
    ("Celu", [], {"alpha": 0.5}, X, {}, 1),
    ("Clip", ["lo", "hi"], {}, X, {"lo": np.array(-1, np.float32), "hi": np.array(0.5, np.float32)}, 1),
    ("Clip", ["", "hi"], {}, X, {"hi": np.array(0.5, np.float32)}, 1),
    ("Tile", ["reps"], {}, X, {"reps": np.array([1, 2, 3], np.int64)}, 1),
    ("Split", ["sizes"], {"axis": 2}, X, {"sizes": np.array([1, 3], np.int64)}, 2),
])
def test_more_operators(tmp_path, op, inputs, attrs, x, initializers, outputs):
    dtype = TensorProto.BOOL if x.dtype == bool else TensorProto.FLOAT
    model = _one_node(op, inputs, attrs, ["n", *x.shape[1:]], initializers, outputs, dtype)
    onnx.save(model, str(tmp_path / "op.onnx"))
    net = from_onnx(tmp_path / "op.onnx")
    for batch in (2, 5):
        y = np.resize(x, (batch, *x.shape[1:]))
        found, expected = flat_outputs(net(y)), _runtime(tmp_path / "op.onnx", {"x": y})
        for f, e in zip(found, expected, strict=True):
            assert f.dtype == e.dtype and f.shape == e.shape
            np.testing.assert_allclose(f, e, **TOL)


@pytest.mark.parametrize(("op", "attrs", "message"), [
    ("ArgMax", {"select_last_index": 1}, r"select_last_index=1"),
    ("LpNormalization", {"p": 3}, r"p=3 \(1 or 2\)"),
])
def test_more_operators_refuse_what_numpy_does_not_do(tmp_path, op, attrs, message):
    extra = {"axis": np.array(0, np.int64)} if op == "CumSum" else {}
    model = _one_node(op, list(extra), attrs, [2, 3], extra)
    onnx.save(model, str(tmp_path / "op.onnx"))
    with pytest.raises(UnsupportedBlockError, match=message):
        from_onnx(tmp_path / "op.onnx")


def test_a_traced_model_of_the_newer_ops_round_trips(tmp_path):
    from modelpack import nn
    from modelpack.nn import functional as F

    class Ops(nn.Block):
        def forward(self, x):
            a, b = np.split(np.tile(np.clip(x, -1.0, 2.0), (1, 2)), [3], axis=1)
            return np.floor(a) + np.cumsum(b, axis=1)[:, :3], np.argmax(x, axis=1), F.sign(x) * np.ceil(x)

    x = np.random.default_rng(0).uniform(-3, 3, (2, 4)).astype(np.float32)
    to_onnx(Ops(), tmp_path / "ops.onnx", example=x)
    back = from_onnx(tmp_path / "ops.onnx")
    for f, e in zip(flat_outputs(back(x)), flat_outputs(Ops()(x)), strict=True):
        assert f.dtype == e.dtype
        np.testing.assert_allclose(f, e, **TOL)


def test_torch_group_norm_export_converts(tmp_path):
    """torch.onnx writes GroupNorm as a reshape, an InstanceNormalization over the groups, and a
    per-channel scale and shift."""
    torch.manual_seed(3)
    module = tnn.Sequential(tnn.Conv2d(3, 6, 3), tnn.GroupNorm(3, 6), tnn.ConvTranspose2d(6, 2, 2, stride=2))
    with torch.no_grad():
        module[1].weight.uniform_(0.5, 1.5)
        module[1].bias.uniform_(-1, 1)
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 7)).astype(np.float32)
    path = _export(module, x, tmp_path / "gn.onnx")
    net = from_onnx(path)
    assert "InstanceNorm" in {type(b).__name__ for _, b in net.named_blocks()}
    _agree(net, path, x)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("with_states", [False, True])
def test_sequence_lengths_both_ways(tmp_path, kind, with_states):
    """modelpack's use_sequence_length is ONNX's sequence_lens: to_onnx writes it, from_onnx reads it."""
    from modelpack import nn
    from modelpack.nn import rnn

    class Masked(nn.Block):
        def __init__(self):
            super().__init__()
            self.layer = getattr(rnn, kind)(3, bidirectional=True, use_sequence_length=True)

        def forward(self, x, lengths):
            if with_states:
                return self.layer(x, self.layer.begin_state(batch_size=x.shape[1]), lengths)
            return self.layer(x, None, lengths)

    net = Masked()
    net.initialize(seed=2)
    x = np.random.default_rng(0).standard_normal((4, 3, 2)).astype(np.float32)
    lengths = np.array([4, 1, 2], np.int32)
    net(x, lengths)
    to_onnx(net, tmp_path / "masked.onnx", example=(x, lengths), dynamic_batch=False,
            dynamic_axes={0: {1: "batch"}, 1: {0: "batch"}})
    back = from_onnx(tmp_path / "masked.onnx")
    for f, e in zip(flat_outputs(back(x, lengths)), flat_outputs(net(x, lengths)), strict=True):
        np.testing.assert_allclose(f, e, **TOL)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float32])
def test_div_rounds_integers_toward_zero(tmp_path, dtype):
    """ONNX's Div on integers truncates (−7 / 2 = −3), where numpy's // floors (−4) and its /
    gives floats: the imported graph keeps the integer dtype and truncates; floats divide."""
    kind = {np.int64: TensorProto.INT64, np.int32: TensorProto.INT32, np.float32: TensorProto.FLOAT}[dtype]
    divisors = np.array([2, -3, 4, -5], dtype)
    model = _one_node("Div", ["d"], {}, ["n", 4], {"d": divisors}, dtype=kind)
    onnx.save(model, str(tmp_path / "div.onnx"))
    net = from_onnx(tmp_path / "div.onnx")
    x = np.array([[-7, 7, -9, 11], [6, -6, 3, -12], [0, -1, 1, 5]], dtype)
    found, expected = net(x), _runtime(tmp_path / "div.onnx", {"x": x})[0]
    assert found.dtype == expected.dtype == dtype
    np.testing.assert_array_equal(found, expected)


@pytest.mark.parametrize(("op", "inputs", "attrs", "initializers"), [
    ("Sum", ["b", "c"], {}, {"b": X[:1] * 2, "c": np.float32(0.5) * X[0, :1]}),
    ("Sum", [], {}, {}),
    ("Mean", ["b", "c"], {}, {"b": X[:1] * 2, "c": X[0, 0]}),
    ("HardSigmoid", [], {}, {}),
    ("HardSigmoid", [], {"alpha": 0.5, "beta": 0.25}, {}),
    ("HardSwish", [], {}, {}),
    ("Shrink", [], {}, {}),
    ("Shrink", [], {"lambd": 2.0, "bias": 1.5}, {}),
])
def test_operators_built_from_a_few_ops(tmp_path, op, inputs, attrs, initializers):
    """Variadic Sum and Mean (broadcast), HardSigmoid and HardSwish (MobileNetV3's), Shrink,
    against onnxruntime."""
    model = _one_node(op, inputs, attrs, ["n", *X.shape[1:]], initializers)
    onnx.save(model, str(tmp_path / "op.onnx"))
    net = from_onnx(tmp_path / "op.onnx")
    for batch in (2, 5):
        y = np.resize(X, (batch, *X.shape[1:])) * np.float32(3)  # beyond HardSigmoid's clipping points
        found, expected = net(y), _runtime(tmp_path / "op.onnx", {"x": y})[0]
        assert found.dtype == expected.dtype and found.shape == expected.shape
        np.testing.assert_allclose(found, expected, **TOL)


@pytest.mark.parametrize("fmod", [0, 1])
def test_integer_mod_takes_the_divisors_sign_and_fmod_the_dividends(tmp_path, fmod):
    divisors = np.array([3, -3, 4, -5], np.int64)
    model = _one_node("Mod", ["d"], {"fmod": fmod}, ["n", 4], {"d": divisors}, dtype=TensorProto.INT64)
    onnx.save(model, str(tmp_path / "mod.onnx"))
    x = np.array([[-7, 7, -9, 11], [6, -6, 3, -12]], np.int64)
    found, expected = from_onnx(tmp_path / "mod.onnx")(x), _runtime(tmp_path / "mod.onnx", {"x": x})[0]
    assert found.dtype == expected.dtype == np.int64
    np.testing.assert_array_equal(found, expected)
    np.testing.assert_array_equal(found, (np.fmod if fmod else np.mod)(x, divisors))


def test_float_fmod_takes_the_dividends_sign(tmp_path):
    divisors = np.array([0.7, -0.7, 2.5, -1.5], np.float32)
    model = _one_node("Mod", ["d"], {"fmod": 1}, ["n", 4], {"d": divisors})
    onnx.save(model, str(tmp_path / "fmod.onnx"))
    x = np.array([[-7.25, 7.25, -9.5, 11.0], [0.5, -0.5, 3.0, -12.0]], np.float32)
    found, expected = from_onnx(tmp_path / "fmod.onnx")(x), _runtime(tmp_path / "fmod.onnx", {"x": x})[0]
    assert found.dtype == expected.dtype == np.float32
    np.testing.assert_array_equal(found, expected)


@pytest.mark.parametrize(("x_shape", "target", "batches"), [
    (["n", 1, 4], [1, 3, 1], (2, 5)),  # a 1 in the target keeps the input's size, both ways
    (["n", 3, 4], [3, 4], (2,)),  # a shorter target is aligned on the right
    ([1, 3, 1], [2, 1, 3, 4], (1,)),  # a longer one adds leading axes
])
def test_expand_broadcasts_both_ways(tmp_path, x_shape, target, batches):
    model = _one_node("Expand", ["shape"], {}, x_shape, {"shape": np.array(target, np.int64)})
    onnx.save(model, str(tmp_path / "expand.onnx"))
    net = from_onnx(tmp_path / "expand.onnx")
    for batch in batches:
        shape = [batch if d == "n" else d for d in x_shape]
        x = np.random.default_rng(batch).standard_normal(shape).astype(np.float32)
        found, expected = net(x), _runtime(tmp_path / "expand.onnx", {"x": x})[0]
        assert found.shape == expected.shape
        np.testing.assert_array_equal(found, expected)


def test_expand_refuses_sizes_that_do_not_broadcast(tmp_path):
    model = _one_node("Expand", ["shape"], {}, ["n", 3], {"shape": np.array([1, 2], np.int64)})
    onnx.save(model, str(tmp_path / "bad.onnx"))
    with pytest.raises(UnsupportedBlockError, match=r"bad\.onnx: node .*\(Expand\): cannot broadcast a size 3 to 2"):
        from_onnx(tmp_path / "bad.onnx")


def test_torch_expand_with_a_computed_target_folds(tmp_path):
    """torch.onnx writes ``x.expand(-1, 3, 4)`` as ConstantOfShape, Mul, Equal and Where on
    constants before the Expand: those are computed at import, so Expand sees its target."""
    class Expand(tnn.Module):
        def forward(self, x):
            return x.expand(-1, 3, 4) * 2

    x = np.random.default_rng(0).standard_normal((2, 1, 4)).astype(np.float32)
    path = _export(Expand(), x, tmp_path / "expand.onnx")
    assert {"Where", "Equal", "Expand"} <= {node.op_type for node in onnx.load(str(path)).graph.node}
    net = from_onnx(path)
    assert "where" not in [node["op"] for node in net.get_config()["graph"]["nodes"]]
    _agree(net, path, x, batches=(5,))


def test_a_large_constant_of_shape_is_made_when_the_model_runs(tmp_path):
    """A ConstantOfShape beyond the folding bound is not allocated at import: the model makes
    it when it runs, through the op that checks the size first."""
    from modelpack.interop.onnx.importer import FOLD_ELEMENTS

    size = FOLD_ELEMENTS + 1
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["c"], value=numpy_helper.from_array(np.ones(1, np.float32))),
             helper.make_node("Add", ["x", "c"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.array([size], np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "big.onnx"))
    net = from_onnx(tmp_path / "big.onnx")
    assert "full" in [node["op"] for node in net.get_config()["graph"]["nodes"]]
    x = np.zeros((2, size), np.float32)
    np.testing.assert_array_equal(net(x), _runtime(tmp_path / "big.onnx", {"x": x})[0])


def test_an_import_folds_a_bounded_total(tmp_path):
    """Each value computed at import is small, and so is their sum: past FOLD_TOTAL_ELEMENTS a
    file's many small fills are made by the model when it runs, within its activation budget."""
    from modelpack.interop.onnx.importer import FOLD_ELEMENTS, FOLD_TOTAL_ELEMENTS

    count = FOLD_TOTAL_ELEMENTS // FOLD_ELEMENTS + 3
    fill = numpy_helper.from_array(np.ones(1, np.float32))
    nodes = [helper.make_node("ConstantOfShape", ["shape"], [f"c{i}"], value=fill) for i in range(count)]
    nodes += [helper.make_node("Add", [f"s{i - 1}" if i else "x", f"c{i}"], [f"s{i}"]) for i in range(count)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [FOLD_ELEMENTS])],
                              [helper.make_tensor_value_info(f"s{count - 1}", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.array([FOLD_ELEMENTS], np.int64), "shape")])
    _saved(graph, tmp_path / "fills.onnx")
    net = from_onnx(tmp_path / "fills.onnx")
    assert [node["op"] for node in net.get_config()["graph"]["nodes"]].count("full") == 3
    np.testing.assert_array_equal(net(np.zeros(FOLD_ELEMENTS, np.float32)), np.full(FOLD_ELEMENTS, count, np.float32))


def test_a_hostile_constant_of_shape_allocates_nothing_at_import(tmp_path):
    """10^10 elements asked for by constants in the file: importing allocates nothing, and
    running refuses before allocating, naming the op: an imported model runs within the
    activation budget a loaded one does."""
    from modelpack.errors import LimitError

    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["c"], value=numpy_helper.from_array(np.ones(1, np.float32))),
             helper.make_node("Add", ["x", "c"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.array([100_000, 100_000], np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "huge.onnx"))
    net = from_onnx(tmp_path / "huge.onnx")
    with pytest.raises(LimitError, match=r"huge\.onnx: the top-level block \(GraphBlock\): graph node 0 \(full\): the "
                                         r"activations this forward call would hold after allocating 80000000000 bytes"):
        net(np.zeros(1, np.float32))


@pytest.mark.parametrize(("op", "inputs", "message"), [
    ("Relu", [], "has 0 inputs; Relu takes 1"),
    ("Reshape", ["x"], "has 1 inputs; Reshape takes 2"),
    ("Sum", [], "has 0 inputs; Sum takes 1 or more"),
    ("Clip", ["x", "x", "x", "x"], "has 4 inputs; Clip takes 1 to 3"),
])
def test_a_node_with_the_wrong_input_count_is_refused_by_name(tmp_path, op, inputs, message):
    """Counted against ONNX's schema of the operator before any translator reads an input."""
    node = helper.make_node(op, inputs, ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "arity.onnx"))
    with pytest.raises(UnsupportedBlockError, match=rf"arity\.onnx: node 0 \({op}\): {message}"):
        from_onnx(tmp_path / "arity.onnx")


class _RepeatedIntoRecurrent(tnn.Module):
    """torch.onnx writes ``repeat`` as an Expand to a computed target and a Tile, after which
    onnx's shape inference names the batch size afresh; a recurrent layer's zero state is then
    a ConstantOfShape of that size (Shape, Gather, Concat)."""

    def __init__(self):
        super().__init__()
        self.gru = tnn.GRU(5, 6, batch_first=True)
        self.lstm = tnn.LSTM(6, 4, num_layers=2, bidirectional=True, batch_first=True)

    def forward(self, x):
        s, _ = self.gru(x.unsqueeze(1).repeat(1, 3, 1))
        t, _ = self.lstm(s)
        return t.flatten(1)


def test_sizes_onnx_names_afresh_after_a_repeat_are_the_inputs(tmp_path):
    torch.manual_seed(3)
    module = _RepeatedIntoRecurrent()
    x = np.random.default_rng(0).standard_normal((2, 5)).astype(np.float32)
    _imports_as_torch(module, x, tmp_path / "repeat.onnx", (5, 1), ops=("Tile", "Expand", "ConstantOfShape"))


def test_a_graph_the_format_refuses_is_an_unsupported_block_naming_the_file(tmp_path, monkeypatch):
    """Should a translation ever give a graph the format's own rules refuse, the import says
    so as a ModelpackError naming the file, not pydantic's ValidationError."""
    from modelpack.interop.onnx.importer import Graph

    monkeypatch.setattr(Graph, "learn", lambda self, name, dims: None)  # the sizes left as onnx named them
    x = np.random.default_rng(0).standard_normal((2, 5)).astype(np.float32)
    path = _export(_RepeatedIntoRecurrent(), x, tmp_path / "repeat.onnx")
    with pytest.raises(UnsupportedBlockError, match=r"repeat\.onnx: its ONNX graph translates to one modelpack cannot "
                                                    r"hold: graph: node \d+ \(full\) uses dynamic sizes \['unk__\d+'\] "
                                                    r"that no graph input carries"):
        from_onnx(path)


class _Attention(tnn.Module):
    """``scaled_dot_product_attention``: torch.onnx computes its scale from the query's shape
    (Shape, Slice, Cast, Sqrt, Div), after Reshapes whose targets hold the batch size."""

    def __init__(self):
        super().__init__()
        self.q, self.k, self.v = tnn.Linear(8, 8), tnn.Linear(8, 8), tnn.Linear(8, 8)

    def _heads(self, x):
        return x.view(x.shape[0], -1, 2, 4).transpose(1, 2)

    def forward(self, x):
        attended = tnn.functional.scaled_dot_product_attention(self._heads(self.q(x)), self._heads(self.k(x)),
                                                               self._heads(self.v(x)))
        return attended.transpose(1, 2).reshape(x.shape[0], -1, 8)


class _Encoder(tnn.Module):
    """An embedding, positions from ``arange`` of the sequence length (Range) and a Transformer
    encoder layer, whose attention reshapes to batch × heads (shape arithmetic on the batch)."""

    def __init__(self):
        super().__init__()
        self.embed = tnn.Embedding(20, 8)
        self.layer = tnn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)

    def forward(self, ids):
        positions = torch.arange(ids.shape[1]).unsqueeze(-1).float() * 0.01
        return self.layer(self.embed(ids) + positions)


def test_torch_attention_imports_at_any_batch(tmp_path):
    torch.manual_seed(4)
    module = _Attention()
    x = np.random.default_rng(0).standard_normal((2, 5, 8)).astype(np.float32)
    _imports_as_torch(module, x, tmp_path / "attention.onnx", (3, 1))


@pytest.mark.parametrize("dynamo", [False, True])
def test_torch_transformer_encoder_layer_imports_at_any_batch(tmp_path, dynamo):
    torch.manual_seed(5)
    module = _Encoder().eval()
    ids = np.random.default_rng(0).integers(0, 20, (2, 6)).astype(np.int64)
    path = _export(module, ids, tmp_path / "encoder.onnx", dynamo=dynamo)
    if not dynamo:  # (the TorchScript exporter's positions: arange computed in the graph)
        assert {"Range", "Mul"} <= {node.op_type for node in onnx.load(str(path)).graph.node}
    net = from_onnx(path)
    for batch in (2, 3, 1):
        batch_ids = np.resize(ids, (batch, 6))
        expected = _runtime(path, {"x": batch_ids})[0]
        np.testing.assert_allclose(net(batch_ids), expected, **TOL)
        with torch.no_grad():
            np.testing.assert_allclose(net(batch_ids), module(torch.from_numpy(batch_ids)).numpy(), **TOL)


_W = np.random.default_rng(2).standard_normal((4, 3, 3, 3)).astype(np.float32)


@pytest.mark.parametrize(("op", "attrs", "side", "initializers"), [
    ("Conv", {"auto_pad": "SAME_UPPER"}, "h", {"w": _W}),  # stride 1: any size
    ("Conv", {"auto_pad": "SAME_LOWER"}, "h", {"w": _W}),
    ("Conv", {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, 7, {"w": _W}),  # 7 → 4: pads 1 and 1
    ("Conv", {"auto_pad": "VALID"}, 6, {"w": _W}),
    ("MaxPool", {"auto_pad": "SAME_UPPER", "kernel_shape": [3, 3], "strides": [2, 2]}, 8, {}),  # pads 0, 1
    ("AveragePool", {"auto_pad": "SAME_UPPER", "kernel_shape": [2, 2], "strides": [2, 2]}, 5, {}),  # pads 0, 1
    ("AveragePool", {"auto_pad": "SAME_LOWER", "kernel_shape": [3, 3]}, "h", {}),
    ("MaxPool", {"auto_pad": "SAME_UPPER", "kernel_shape": [3, 3]}, "h", {}),
])
def test_auto_pad_is_the_padding_it_means(tmp_path, op, attrs, side, initializers):
    """auto_pad SAME pads to ceil(size / stride) outputs (a pool used to ignore it and pad
    nothing); at stride 1 whatever the size, else on fixed sizes."""
    model = _one_node(op, list(initializers), attrs, ["n", 3, side, side], initializers)
    onnx.save(model, str(tmp_path / "pad.onnx"))
    net = from_onnx(tmp_path / "pad.onnx")
    for batch, size in ((2, 6 if side == "h" else side), (3, 9 if side == "h" else side)):
        y = np.random.default_rng(batch).standard_normal((batch, 3, size, size)).astype(np.float32)
        np.testing.assert_allclose(net(y), _runtime(tmp_path / "pad.onnx", {"x": y})[0], **TOL)


@pytest.mark.parametrize(("attrs", "side", "message"), [
    ({"auto_pad": "SAME_UPPER", "strides": [2, 2]}, "h", r"auto_pad='SAME_UPPER' at stride 2 on an input of unknown size"),
    ({"auto_pad": "SAME_UPPER", "strides": [2, 2]}, 8, r"asymmetric pads \[0, 0, 1, 1\]"),
])
def test_auto_pad_a_convolution_cannot_take_is_refused(tmp_path, attrs, side, message):
    onnx.save(_one_node("Conv", ["w"], attrs, ["n", 3, side, side], {"w": _W}), str(tmp_path / "pad.onnx"))
    with pytest.raises(UnsupportedBlockError, match=r"pad\.onnx: node 0 \(Conv\): " + message):
        from_onnx(tmp_path / "pad.onnx")


def _strided_rows(tmp_path, offset=1, delta=1, limit="n"):
    """x[:, offset] of an (n, 4) input read as torch.onnx's default exporter reads an
    as_strided view: indices arange(n)·4 + offset into the flattened input, gathered."""
    def ints(name, value):
        return numpy_helper.from_array(np.asarray(value, np.int64), name)

    limit_nodes = ([helper.make_node("Shape", ["x"], ["s"], start=0, end=1), helper.make_node("Squeeze", ["s"], ["n"])]
                   if limit == "n" else [helper.make_node("ReduceMax", ["x"], ["m"], keepdims=0),
                                         helper.make_node("Cast", ["m"], ["n"], to=TensorProto.INT64)])
    nodes = [*limit_nodes, helper.make_node("Range", ["zero", "n", "delta"], ["r"]),
             helper.make_node("Mul", ["r", "four"], ["r4"]), helper.make_node("Add", ["r4", "offset"], ["i"]),
             helper.make_node("Reshape", ["x", "flat"], ["xf"]), helper.make_node("Gather", ["xf", "i"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [ints("zero", 0), ints("delta", delta), ints("four", 4), ints("offset", offset),
                               ints("flat", [-1])])
    return _saved(graph, tmp_path / "strided.onnx")


def test_a_range_to_an_input_size_indexes_a_flattened_view(tmp_path):
    """Range's limit a size of the input: ``arange`` to that size when the model runs; the
    indices computed from it gathered (numpy's take checks each one as it runs)."""
    net = from_onnx(_strided_rows(tmp_path))
    for n in (2, 5):
        x = np.random.default_rng(n).standard_normal((n, 4)).astype(np.float32)
        np.testing.assert_array_equal(net(x), x[:, 1])
        np.testing.assert_array_equal(net(x), _runtime(tmp_path / "strided.onnx", {"x": x})[0])
    past = from_onnx(_strided_rows(tmp_path, offset=5))
    with pytest.raises(InputError, match=r"strided\.onnx: .*graph node \d+ \(take\) cannot run on these inputs: "
                                         r"index 13 is out of bounds for axis 0 with size 12"):
        past(np.zeros((3, 4), np.float32))


@pytest.mark.parametrize(("options", "message"), [
    ({"delta": 0}, r"its delta is 0: the range never ends"),
    ({"limit": "max"}, r"its limit \('n'\) is computed from values, not sizes"),
])
def test_a_range_the_model_cannot_run_is_refused(tmp_path, options, message):
    with pytest.raises(UnsupportedBlockError, match=r"strided\.onnx: node \d+ \(Range\): " + message):
        from_onnx(_strided_rows(tmp_path, **options))


class _Gathered(tnn.Module):
    """torch.gather of each row's largest entry and each column's two smallest: GatherElements
    of indices it computes."""

    def forward(self, x):
        return torch.gather(x, -1, x.argmax(-1, keepdim=True))[:, :2] * torch.gather(x, 1, x.argsort(1)[:, :2])


class _Slopes(tnn.Module):
    """Mish (opset 18's operator) and a per-channel PReLU, whose slope torch.onnx's default
    exporter writes as (1, C, 1, 1)."""

    def __init__(self):
        super().__init__()
        self.prelu = tnn.PReLU(4)
        with torch.no_grad():
            self.prelu.weight.copy_(torch.tensor([0.1, -0.5, 2.0, 0.0]))

    def forward(self, x):
        return tnn.functional.mish(self.prelu(x))


class _MaskedAttention(tnn.Module):
    """scaled_dot_product_attention with a boolean mask: torch.onnx's default exporter zeroes a
    fully masked row's NaNs (IsNaN, Where)."""

    def forward(self, x):
        mask = torch.ones(x.shape[2], x.shape[2], dtype=torch.bool).tril()
        return tnn.functional.scaled_dot_product_attention(x, x * 2, x, attn_mask=mask)


@pytest.mark.parametrize("dynamo", [False, True])
@pytest.mark.parametrize(("module", "shape"), [(_Gathered, (2, 5, 6)), (_Slopes, (2, 4, 3, 5)),
                                               (_MaskedAttention, (2, 3, 5, 8))])
def test_torch_gather_mish_prelu_and_masked_attention(tmp_path, module, shape, dynamo):
    x = np.random.default_rng(9).standard_normal(shape).astype(np.float32)
    path = _export(module(), x, tmp_path / "m.onnx", dynamo=dynamo)
    _agree(from_onnx(path), path, x, batches=(3,))


class _CausalAttention(tnn.Module):
    """A GPT block's attention: its causal mask made by triu over the sequence length, which
    the exported model reads from its input (a dynamic axis)."""

    def __init__(self):
        super().__init__()
        self.qkv = tnn.Linear(8, 24)

    def forward(self, x):
        n = x.shape[1]
        q, k, v = self.qkv(x).split(8, dim=-1)
        mask = torch.triu(torch.ones(n, n, dtype=torch.bool), 1)
        scores = (q @ k.transpose(-2, -1)).masked_fill(mask, float("-inf"))
        return scores.softmax(-1) @ v


@pytest.mark.parametrize("dynamo", [False, True])
def test_a_causal_mask_over_a_dynamic_sequence_length(tmp_path, dynamo):
    torch.manual_seed(7)
    module = _CausalAttention().eval()
    x = np.random.default_rng(10).standard_normal((2, 5, 8)).astype(np.float32)
    path = tmp_path / "causal.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(module, (torch.from_numpy(x),), str(path), dynamo=True, input_names=["x"], verbose=False,
                              dynamic_shapes=({0: torch.export.Dim("batch"), 1: torch.export.Dim("length")},))
        else:
            torch.onnx.export(module, (torch.from_numpy(x),), str(path), dynamo=False, input_names=["x"],
                              dynamic_axes={"x": {0: "batch", 1: "length"}}, opset_version=17)
    net = from_onnx(path)
    modelpack.export(net, tmp_path / "causal.mpk")
    loaded = modelpack.load(tmp_path / "causal.mpk")
    for batch, length in ((2, 5), (3, 9), (1, 1)):
        y = np.random.default_rng(length).standard_normal((batch, length, 8)).astype(np.float32)
        expected = _runtime(path, {"x": y})[0]
        np.testing.assert_allclose(net(y), expected, **TOL)
        np.testing.assert_allclose(loaded(y), expected, **TOL)


class _LlamaBlock(tnn.Module):
    """A LLaMA-style decoder block over token ids: rotary positions (strided halves stacked
    back), grouped-query attention (keys and values repeated per head) with a boolean causal
    mask, RMS normalisation and a SwiGLU feed-forward; batch and sequence length dynamic."""

    def __init__(self, width=16, heads=4, groups=2, vocab=30):
        super().__init__()
        self.heads, self.groups, self.size = heads, groups, width // heads
        self.embed, self.head = tnn.Embedding(vocab, width), tnn.Linear(width, vocab, bias=False)
        self.q, self.o = tnn.Linear(width, width, bias=False), tnn.Linear(width, width, bias=False)
        self.kv = tnn.Linear(width, 2 * groups * self.size, bias=False)
        self.gate, self.up = tnn.Linear(width, 32, bias=False), tnn.Linear(width, 32, bias=False)
        self.down = tnn.Linear(32, width, bias=False)

    @staticmethod
    def rms(x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)

    def rotate(self, x):
        n = x.shape[2]
        frequencies = 1.0 / (10000 ** (torch.arange(0, self.size, 2, dtype=torch.float32) / self.size))
        angles = torch.arange(n, dtype=torch.float32)[:, None] * frequencies[None, :]
        cos, sin = angles.cos().repeat_interleave(2, -1), angles.sin().repeat_interleave(2, -1)
        rotated = torch.stack((-x[..., 1::2], x[..., ::2]), -1).flatten(-2)
        return x * cos + rotated * sin

    def forward(self, ids):
        x = self.embed(ids)
        b, n, width = x.shape
        y = self.rms(x)
        q = self.rotate(self.q(y).view(b, n, self.heads, self.size).transpose(1, 2))
        k, v = self.kv(y).view(b, n, 2 * self.groups, self.size).transpose(1, 2).chunk(2, dim=1)
        k = self.rotate(k).repeat_interleave(self.heads // self.groups, 1)
        v = v.repeat_interleave(self.heads // self.groups, 1)
        mask = torch.ones(n, n, dtype=torch.bool).tril()
        a = tnn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.o(a.transpose(1, 2).reshape(b, n, width))
        y = self.rms(x)
        return self.head(self.rms(x + self.down(tnn.functional.silu(self.gate(y)) * self.up(y))))


@pytest.mark.parametrize("opset", [None, 23])  # (from 23 on, the attention is one Attention node)
def test_a_llama_style_decoder_at_any_batch_and_length(tmp_path, opset):
    """Through torch.onnx's default exporter (its TorchScript one writes the rotary stack with
    the rank it saw, and onnxruntime itself fails at other lengths)."""
    pytest.importorskip("onnxscript", reason="onnxscript is not installed: torch.onnx's default exporter needs it")
    torch.manual_seed(8)
    module = _LlamaBlock().eval()
    ids = np.random.default_rng(11).integers(0, 30, (2, 6)).astype(np.int64)
    path = tmp_path / "decoder.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.from_numpy(ids),), str(path), dynamo=True, input_names=["ids"], verbose=False,
                          dynamic_shapes=({0: torch.export.Dim("batch"), 1: torch.export.Dim("length", max=64)},),
                          **({"opset_version": opset} if opset else {}))
    assert ("Attention" in {node.op_type for node in onnx.load(str(path)).graph.node}) == (opset == 23)
    net = from_onnx(path)
    for batch, length in ((2, 6), (3, 11), (1, 1)):
        tokens = np.random.default_rng(length).integers(0, 30, (batch, length)).astype(np.int64)
        np.testing.assert_allclose(net(tokens), _runtime(path, {"ids": tokens})[0], **TOL)
        with torch.no_grad():
            np.testing.assert_allclose(net(tokens), module(torch.from_numpy(tokens)).numpy(), **TOL)


def _trilu(tmp_path, attrs, k=None, computed_k=False):
    inputs = ["x"] + (["k"] if k is not None or computed_k else [])
    node = helper.make_node("Trilu", inputs, ["y"], **attrs)
    declared = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "h", "w"])]
    if computed_k:
        declared.append(helper.make_tensor_value_info("k", TensorProto.INT64, []))
    inits = [] if k is None else [numpy_helper.from_array(np.array(k, np.int64), "k")]
    graph = helper.make_graph([node], "g", declared, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return _saved(graph, tmp_path / "trilu.onnx")


@pytest.mark.parametrize(("attrs", "k"), [({}, None), ({"upper": 0}, -1), ({"upper": 1}, 2), ({"upper": 0}, 3)])
def test_trilu_of_computed_values_at_any_size(tmp_path, attrs, k):
    path = _trilu(tmp_path, attrs, k)
    _agrees_by_shape(from_onnx(path), path, ((2, 4, 6), (1, 5, 3), (3, 1, 1)))


def test_trilu_of_a_computed_diagonal_is_refused(tmp_path):
    with pytest.raises(UnsupportedBlockError, match=r"trilu\.onnx: node 0 \(Trilu\): its k \('k'\) must be a constant"):
        from_onnx(_trilu(tmp_path, {}, computed_k=True))


@pytest.mark.parametrize(("op", "attrs"), [
    ("IsNaN", {}), ("IsInf", {}), ("IsInf", {"detect_negative": 0}), ("IsInf", {"detect_positive": 0}),
    ("IsInf", {"detect_positive": 0, "detect_negative": 0}),
])
def test_is_nan_and_is_inf(tmp_path, op, attrs):
    model = _one_node(op, [], attrs, ["n", 3], {}, dtype=TensorProto.FLOAT)
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.BOOL
    onnx.save(model, str(tmp_path / "special.onnx"))
    x = np.array([[np.nan, np.inf, -np.inf], [0.0, -1.5, 3e38]], np.float32)
    found, expected = from_onnx(tmp_path / "special.onnx")(x), _runtime(tmp_path / "special.onnx", {"x": x})[0]
    assert found.dtype == expected.dtype == np.bool_
    np.testing.assert_array_equal(found, expected)


@pytest.mark.parametrize(("axis", "dtype"), [(-1, np.float32), (1, np.float32), (-1, np.float16)])
def test_rms_normalization(tmp_path, axis, dtype):
    """Opset 23's RMSNormalization (torch.onnx's default exporter writes RMSNorm so from that
    opset on), over the last axis or several, a 16-bit input computed in float32."""
    kind = TensorProto.FLOAT16 if dtype == np.float16 else TensorProto.FLOAT
    scale = np.random.default_rng(12).standard_normal((3, 4)[axis:] if axis > 0 else 4).astype(dtype)
    node = helper.make_node("RMSNormalization", ["x", "scale"], ["y"], axis=axis, epsilon=1e-3)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", kind, ["n", 3, 4])],
                              [helper.make_tensor_value_info("y", kind, None)], [numpy_helper.from_array(scale, "scale")])
    _saved(graph, tmp_path / "rms.onnx", opset=23)
    net = from_onnx(tmp_path / "rms.onnx")
    x = np.random.default_rng(13).standard_normal((2, 3, 4)).astype(dtype)
    found, expected = net(x), _runtime(tmp_path / "rms.onnx", {"x": x})[0]
    assert found.dtype == expected.dtype == dtype
    np.testing.assert_allclose(found, expected, **(TOL if dtype == np.float32 else {"rtol": 2e-3, "atol": 2e-3}))


def _attention_model(tmp_path, shapes, attrs, mask=None, extra=()):
    """Opset 23's Attention of inputs q, k, v (and m, a mask of ``mask``'s type and shape)."""
    names = ["q", "k", "v", *(["m"] if mask else []), *extra]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n, shape in zip("qkv", shapes, strict=True)]
    if mask:
        inputs.append(helper.make_tensor_value_info("m", mask[0], mask[1]))
    inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, shapes[1]) for n in extra]
    graph = helper.make_graph([helper.make_node("Attention", names, ["y"], **attrs)], "g", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return _saved(graph, tmp_path / "attention.onnx", opset=23)


@pytest.mark.parametrize(("shapes", "attrs", "mask"), [
    ([["n", 2, 5, 4]] * 3, {}, None),
    ([["n", 4, 5, 4], ["n", 2, 6, 4], ["n", 2, 6, 3]], {}, (TensorProto.BOOL, [5, 6])),  # grouped; a row masked whole
    ([["n", 2, 5, 4]] * 3, {"is_causal": 1, "scale": 0.3, "softcap": 2.0}, (TensorProto.FLOAT, ["n", 1, 5, 5])),
    ([["n", 5, 8], ["n", 7, 4], ["n", 7, 6]], {"q_num_heads": 2, "kv_num_heads": 1, "is_causal": 1}, None),
])
def test_attention(tmp_path, shapes, attrs, mask):
    """Opset 23's Attention (torch.onnx's default exporter writes scaled_dot_product_attention
    so from that opset on) against onnxruntime's, at two batch sizes."""
    path = _attention_model(tmp_path, shapes, attrs, mask)
    net = from_onnx(path)
    for n in (2, 3):
        rng = np.random.default_rng(n)
        feeds = {name: rng.standard_normal([n if d == "n" else d for d in shape]).astype(np.float32)
                 for name, shape in zip("qkv", shapes, strict=True)}
        if mask and mask[0] == TensorProto.BOOL:
            feeds["m"] = rng.random(mask[1]) < 0.6
            feeds["m"][1] = False
        elif mask:
            feeds["m"] = rng.standard_normal([n if d == "n" else d for d in mask[1]]).astype(np.float32)
        np.testing.assert_allclose(net(*feeds.values()), _runtime(path, feeds)[0], **TOL)


@pytest.mark.parametrize(("attrs", "extra", "message"), [
    ({}, ("past_key",), r"its past_key input \(a key and value cache; attention is computed whole\)"),
    ({"left_window_size": 2}, (), r"left_window_size=2 \(only -1, no window, is taken\)"),
    ({"softmax_precision": TensorProto.DOUBLE}, (), r"softmax_precision=11 \(only float32's is taken\)"),
])
def test_attention_refusals(tmp_path, attrs, extra, message):
    inputs = [""] if extra else []  # (the mask's place left empty before a past key)
    path = _attention_model(tmp_path, [[1, 2, 3, 4]] * 3, attrs, extra=extra)
    if extra:
        model = onnx.load(str(path))
        model.graph.node[0].input[:] = ["q", "k", "v", *inputs, *extra]
        onnx.save(model, str(path))
    with pytest.raises(UnsupportedBlockError, match=r"attention\.onnx: node 0 \(Attention\): " + message):
        from_onnx(path)


@pytest.mark.parametrize(("attrs", "counts"), [({}, "0 query heads for 0 key heads"),
                                               ({"q_num_heads": -2, "kv_num_heads": 1}, "-2 query heads for 1 key"),
                                               ({"q_num_heads": 2, "kv_num_heads": 4}, "2 query heads for 4 key"),
                                               ({"q_num_heads": 3, "kv_num_heads": 2}, "3 query heads for 2 key")])
def test_attention_of_three_dimensional_inputs_needs_whole_head_counts(tmp_path, attrs, counts):
    with pytest.raises(UnsupportedBlockError, match=r"\(Attention\): " + counts):
        from_onnx(_attention_model(tmp_path, [[1, 3, 12]] * 3, attrs))


def _gather_elements(tmp_path, data_shape, index_shape, axis):
    node = helper.make_node("GatherElements", ["x", "i"], ["y"], axis=axis)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, data_shape),
                                            helper.make_tensor_value_info("i", TensorProto.INT64, index_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return _saved(graph, tmp_path / "ge.onnx")


def test_gather_elements_checks_its_indices_as_it_runs(tmp_path):
    path = _gather_elements(tmp_path, ["n", 4], ["n", 2], 1)
    net = from_onnx(path)
    x = np.random.default_rng(6).standard_normal((3, 4)).astype(np.float32)
    i = np.array([[0, 3], [-1, 1], [2, 2]], np.int64)
    np.testing.assert_array_equal(net(x, i), _runtime(path, {"x": x, "i": i})[0])
    with pytest.raises(InputError, match=r"ge\.onnx: .*\(getitem\) cannot run on these inputs: index 4 is out of "
                                         r"bounds for axis 1 with size 4"):
        net(x, i + 4)


@pytest.mark.parametrize(("data", "index", "axis", "message"), [
    ([3, 4], [3, 4], 2, r"axis=2 is out of range for rank 2"),
    ([3, 4, 2], [3, 4], 0, r"its data's and indices' shapes \(\[3, 4, 2\] and \[3, 4\]\) are not known to be of one rank"),
])
def test_gather_elements_refusals(tmp_path, data, index, axis, message):
    with pytest.raises(UnsupportedBlockError, match=r"ge\.onnx: node 0 \(GatherElements\): " + message):
        from_onnx(_gather_elements(tmp_path, data, index, axis))


def _sliced_to_length(tmp_path, of_sizes=False):
    """x + positions[:, :t] for an (n, t) input (Hugging Face's embeddings read their position
    ids so), or (``of_sizes``) the input's shape vector sliced to t."""
    nodes = [helper.make_node("Shape", ["x"], ["t"], start=1, end=2)]
    if of_sizes:
        nodes += [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Slice", ["s", "zero", "t"], ["y"])]
    else:
        nodes += [helper.make_node("Slice", ["positions", "zero", "t", "one"], ["p"]),
                  helper.make_node("Add", ["x", "p"], ["y"])]
    positions = np.arange(16, dtype=np.float32).reshape(1, 16) / 4
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "t"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT if not of_sizes else TensorProto.INT64,
                                                             None)],
                              [numpy_helper.from_array(positions, "positions"),
                               numpy_helper.from_array(np.array([0], np.int64), "zero"),
                               numpy_helper.from_array(np.array([1], np.int64), "one")])
    return _saved(graph, tmp_path / "length.onnx")


def test_a_slice_to_a_size_the_input_gives(tmp_path):
    path = _sliced_to_length(tmp_path)
    _agrees_by_shape(from_onnx(path), path, ((2, 5), (3, 16), (1, 1)))
    with pytest.raises(UnsupportedBlockError, match=r"length\.onnx: node 2 \(Slice\): slicing sizes at bounds the "
                                                    r"input gives"):
        from_onnx(_sliced_to_length(tmp_path, of_sizes=True))


def _length_arithmetic(tmp_path):
    """What the TorchScript exporter writes for Hugging Face's models: positions sliced to the
    input's length t, added to it (onnx's shape inference then loses t), that sum's length read
    back as an arange's limit, and the length used as a value (positions · t)."""
    ints = {n: numpy_helper.from_array(np.asarray(v, np.int64), n) for n, v in
            (("zero", [0]), ("one", [1]), ("first", 1), ("start", 0), ("step", 1))}
    positions = numpy_helper.from_array(np.arange(16, dtype=np.float32).reshape(1, 16) / 4, "positions")
    nodes = [helper.make_node("Shape", ["x"], ["t"], start=1, end=2),
             helper.make_node("Slice", ["positions", "zero", "t", "one"], ["p"]),
             helper.make_node("Add", ["x", "p"], ["s"]),
             helper.make_node("Shape", ["s"], ["shape"]),
             helper.make_node("Gather", ["shape", "first"], ["length"], axis=0),
             helper.make_node("Range", ["start", "length", "step"], ["r"]),
             helper.make_node("Mul", ["r", "length"], ["scaled"]),
             helper.make_node("Cast", ["scaled"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Add", ["s", "f"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "t"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [positions, *ints.values()])
    return _saved(graph, tmp_path / "lengths.onnx")


def test_lengths_read_back_and_used_as_values(tmp_path):
    path = _length_arithmetic(tmp_path)
    _agrees_by_shape(from_onnx(path), path, ((2, 5), (3, 16), (1, 1)))


@pytest.mark.parametrize("case", ["fill", "reshape"])
def test_sizes_followed_where_shape_inference_loses_them(tmp_path, case):
    """An Expand to the shape of a value whose sizes onnx's inference lost: a ConstantOfShape of
    the input's shape (MPNet's relative positions), or a Reshape's -1 of a size expression
    (DeBERTa's heads: (4·n, t, t) read back as (n, 4, t, t)). Both must stay named sizes."""
    ones = numpy_helper.from_array(np.ones((1, 1, 1), np.float32), "ones")
    ints = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in (("flat", [-1, 6]), ("back", [-1, 4, 6]))]
    if case == "fill":
        nodes = [helper.make_node("Shape", ["x"], ["s"]),
                 helper.make_node("ConstantOfShape", ["s"], ["c"], value=numpy_helper.from_array(np.ones(1, np.float32))),
                 helper.make_node("Min", ["x", "c"], ["m"])]
    else:
        nodes = [helper.make_node("Reshape", ["x", "flat"], ["f"]), helper.make_node("Reshape", ["f", "back"], ["m"])]
    nodes += [helper.make_node("Shape", ["m"], ["target"]), helper.make_node("Expand", ["ones", "target"], ["e"]),
              helper.make_node("Add", ["m", "e"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [ones, *ints])
    path = _saved(graph, tmp_path / "lost.onnx")
    _agrees_by_shape(from_onnx(path), path, ((2, 4, 6), (5, 4, 6)))


def _gather_nd(tmp_path, data_shape, indices, batch_dims=0, computed=(2, 1)):
    """GatherND of input x by constant ``indices``, or (None) by an input i of shape ``computed``."""
    node = helper.make_node("GatherND", ["x", "i"], ["y"], batch_dims=batch_dims)
    inits = [] if indices is None else [numpy_helper.from_array(np.asarray(indices, np.int64), "i")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, data_shape)]
    if indices is None:
        inputs.append(helper.make_tensor_value_info("i", TensorProto.INT64, list(computed)))
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return _saved(graph, tmp_path / "gnd.onnx")


@pytest.mark.parametrize(("shape", "indices"), [
    ([3, 4, "n"], [[2], [0], [-1], [1], [2]]),  # one index a tuple: rows, as torch's 1-D linear interpolation
    ([3, 4, "n"], [[[0, 3], [2, -4], [1, 1]], [[-3, 0], [2, 2], [0, 0]]]),  # pairs: (2, 3) vectors
    ([3, 4, 2], [[2, 3, 0], [0, 0, -1]]),  # whole tuples: scalars
])
def test_gather_nd_of_constant_indices(tmp_path, shape, indices):
    path = _gather_nd(tmp_path, shape, indices)
    net = from_onnx(path)
    for n in (2, 5):
        x = np.random.default_rng(n).standard_normal([n if d == "n" else d for d in shape]).astype(np.float32)
        np.testing.assert_array_equal(net(x), _runtime(path, {"x": x})[0])


@pytest.mark.parametrize(("shape", "indices", "batch_dims", "message"), [
    ([3, 4], [[1], [3]], 0, r"an index is out of range for the sizes \[3\] it reads"),
    ([3, 4], [[0, -5]], 0, r"an index is out of range for the sizes \[3, 4\] it reads"),
    (["n", 4], [[0]], 0, r"the sizes its indices read \(its data's leading 1\) are not known when the file is read"),
    ([3, 4], [[0], [1], [2]], 1, r"batch_dims=1 \(only 0, no batch axes, is taken\)"),
    ([3, 4], [[[]]], 0, r"its indices are int64 of shape \[1, 1, 0\]; it takes integer tuples"),
    ([3, 4], None, 0, r"its indices \('i'\) are computed by the model, in tuples of a size not known when"),
])
def test_gather_nd_refusals(tmp_path, shape, indices, batch_dims, message):
    with pytest.raises(UnsupportedBlockError, match=r"gnd\.onnx: node 0 \(GatherND\): " + message):
        from_onnx(_gather_nd(tmp_path, shape, indices, batch_dims, computed=(2, "k")))


def test_gather_nd_of_computed_tuples_wider_than_the_data_is_refused(tmp_path):
    """A tuple width the file declares is checked against the data's rank before the graph
    reads each of its columns (a hostile width would make that many nodes)."""
    with pytest.raises(UnsupportedBlockError, match=r"gnd\.onnx: node 0 \(GatherND\): tuples of 1000000 indices "
                                                    r"into data of rank 2"):
        from_onnx(_gather_nd(tmp_path, [3, 4], None, computed=(2, 1_000_000)))


@pytest.mark.parametrize("width", [1, 2])
def test_gather_nd_of_computed_indices_checks_them_axis_by_axis(tmp_path, width):
    """Indices the model computes (Hugging Face's ``mask[batch, key]``, exported as GatherND of
    pairs): numpy's advanced indexing by each column, each index checked against its own axis
    (a pair's flat position may be in range while its second index is not)."""
    path = _gather_nd(tmp_path, [3, 4, "n"], None, computed=("m", width))
    net = from_onnx(path)
    x = np.random.default_rng(3).standard_normal((3, 4, 5)).astype(np.float32)
    for index in ([[2, 3], [0, 0], [-1, -4]], [[1, 1]]):
        i = np.array(index, np.int64)[:, :width]
        np.testing.assert_array_equal(net(x, i), _runtime(path, {"x": x, "i": i})[0])
    past = np.array([[0, 4]] if width == 2 else [[3]], np.int64)
    axis = width - 1
    with pytest.raises(InputError, match=rf"gnd\.onnx: .*\(getitem\) cannot run on these inputs: index {past[0, -1]} is "
                                         rf"out of bounds for axis {axis} with size {(3, 4)[axis]}"):
        net(x, past)


def test_a_small_slice_of_a_large_integer_buffer_folds(tmp_path):
    """Index pairs sliced from an integer buffer of more values than a weight or a folded value
    may have (Swin's relative position index, in its 3-D form): the slice is known when the
    file is read, so GatherND takes pairs from it."""
    from modelpack.interop.onnx.importer import FOLD_ELEMENTS, WEIGHT_ELEMENTS

    pairs = np.random.default_rng(4).integers(-3, 3, (FOLD_ELEMENTS, 2)).astype(np.int64)
    assert pairs.size > FOLD_ELEMENTS > WEIGHT_ELEMENTS
    ints = {n: numpy_helper.from_array(np.asarray(v, np.int64), n) for n, v in
            (("pairs", pairs), ("start", [0]), ("stop", [5]), ("axes", [0]))}
    nodes = [helper.make_node("Slice", ["pairs", "start", "stop", "axes"], ["i"]),
             helper.make_node("GatherND", ["x", "i"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4, "n"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], list(ints.values()))
    _saved(graph, tmp_path / "buffer.onnx")
    x = np.random.default_rng(5).standard_normal((3, 4, 2)).astype(np.float32)
    np.testing.assert_array_equal(from_onnx(tmp_path / "buffer.onnx")(x), x[tuple(pairs[:5].T)])


@pytest.mark.parametrize("largest", [1, 0])
def test_topk_values_and_indices(tmp_path, largest):
    ties = np.array([[[1.0, 3.0, 3.0, 2.0], [0.5, 0.5, 0.5, 0.5], [4.0, -1.0, 2.0, 9.0]]], np.float32)
    node = helper.make_node("TopK", ["x", "k"], ["values", "indices"], axis=-1, largest=largest)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 4])],
                              [helper.make_tensor_value_info("values", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("indices", TensorProto.INT64, None)],
                              [numpy_helper.from_array(np.array([2], np.int64), "k")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "topk.onnx"))
    net = from_onnx(tmp_path / "topk.onnx")
    for x in (ties, np.concatenate([ties, X[:, :, :4] if X.shape[-1] == 4 else ties])):
        found, expected = flat_outputs(net(x)), _runtime(tmp_path / "topk.onnx", {"x": x})
        for f, e in zip(found, expected, strict=True):
            assert f.dtype == e.dtype and f.shape == e.shape
            np.testing.assert_array_equal(f, e)


def test_torch_pixel_shuffle(tmp_path):
    torch.manual_seed(6)
    module = tnn.Sequential(tnn.Conv2d(3, 8, 3, padding=1), tnn.PixelShuffle(2))
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 4)).astype(np.float32)
    _imports_as_torch(module, x, tmp_path / "shuffle.onnx", (3,), ops=("DepthToSpace",))


@pytest.mark.parametrize(("op", "mode"), [("DepthToSpace", "DCR"), ("DepthToSpace", "CRD"), ("SpaceToDepth", None)])
def test_depth_to_space_modes_on_dynamic_sizes(tmp_path, op, mode):
    """Either mode and the inverse, with the map's sizes following the input (``2*h``, ``h/2``)."""
    node = helper.make_node(op, ["x"], ["y"], blocksize=2, **({"mode": mode} if mode else {}))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8, "h", "w"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "d2s.onnx"))
    net = from_onnx(tmp_path / "d2s.onnx")
    for shape in ((1, 8, 2, 4), (2, 8, 4, 6)):
        x = np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)
        np.testing.assert_array_equal(net(x), _runtime(tmp_path / "d2s.onnx", {"x": x})[0])


def test_depth_to_space_of_channels_blocks_cannot_split(tmp_path):
    onnx.save(_one_node("DepthToSpace", [], {"blocksize": 2}, ["n", 6, 4, 4], {}), str(tmp_path / "d2s.onnx"))
    with pytest.raises(UnsupportedBlockError, match=r"\(DepthToSpace\): 6 channels, not a multiple of 4"):
        from_onnx(tmp_path / "d2s.onnx")


def _resize_model(attrs, x_shape, scales=None, sizes=None):
    inputs = ["x", "", "scales"] if scales is not None else ["x", "", "", "sizes"]
    node = helper.make_node("Resize", inputs, ["y"], **attrs)
    initial = {"scales": np.array(scales, np.float32)} if scales is not None else {"sizes": np.array(sizes, np.int64)}
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(a, n) for n, a in initial.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize(("attrs", "scales", "sizes"), [
    ({"mode": "nearest"}, [1, 1, 2, 3], None),
    ({"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}, [1, 1, 0.5, 1.5], None),
    ({"mode": "linear", "coordinate_transformation_mode": "half_pixel"}, [1, 1, 2, 2], None),
    ({"mode": "linear", "coordinate_transformation_mode": "align_corners"}, None, [2, 3, 9, 5]),
    ({"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"}, None, [2, 3, 1, 7]),
    ({"mode": "cubic", "cubic_coeff_a": -0.5, "exclude_outside": 1}, [1, 1, 1.5, 0.75], None),
    ({"mode": "cubic", "coordinate_transformation_mode": "align_corners"}, None, [2, 3, 3, 3]),
])
def test_resize_modes_against_onnxruntime(tmp_path, attrs, scales, sizes):
    model = _resize_model(attrs, [2, 3, 6, 4], scales, sizes)
    onnx.save(model, str(tmp_path / "resize.onnx"))
    net = from_onnx(tmp_path / "resize.onnx")
    x = np.random.default_rng(7).standard_normal((2, 3, 6, 4)).astype(np.float32)
    np.testing.assert_allclose(net(x), _runtime(tmp_path / "resize.onnx", {"x": x})[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dynamo", [False, True])  # (the default exporter writes 1-D linear as GatherND)
@pytest.mark.parametrize(("mode", "align"), [("nearest", None), ("linear", False), ("bilinear", True), ("bicubic", False)])
def test_torch_interpolate_at_any_batch(tmp_path, mode, align, dynamo):
    class Up(tnn.Module):
        def forward(self, x):
            if x.ndim == 3:
                return tnn.functional.interpolate(x, scale_factor=2, mode=mode, align_corners=align)
            return tnn.functional.interpolate(x, size=(9, 7), mode=mode, align_corners=align) * 2

    shape = (2, 3, 5) if mode == "linear" else (2, 3, 6, 4)
    x = np.random.default_rng(8).standard_normal(shape).astype(np.float32)
    path = _export(Up(), x, tmp_path / "up.onnx", dynamo=dynamo)
    net = from_onnx(path)
    _agree(net, path, x, batches=(3,))
    with torch.no_grad():
        np.testing.assert_allclose(net(x), Up()(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-5)


def test_resize_keeping_the_aspect_ratio_is_refused(tmp_path):
    """opset 18's keep_aspect_ratio_policy makes sizes other than those given: refused, never
    resized to the given ones."""
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], keep_aspect_ratio_policy="not_larger")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.array([1, 3, 12, 12], np.int64), "sizes")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "resize.onnx"))
    with pytest.raises(UnsupportedBlockError, match=r"\(Resize\): keep_aspect_ratio_policy='not_larger' \(give the sizes\)"):
        from_onnx(tmp_path / "resize.onnx")


@pytest.mark.parametrize(("x_shape", "scales", "attrs", "message"), [
    (["n", 3, "h", 4], [1, 1, 2, 2], {}, r"axis 2 of size 'h' \(resizing needs the input's sizes fixed there\)"),
    (["n", 3, 6, 4], [1, 2, 1, 1], {}, r"a resized batch or channel axis"),
    (["n", 3, 6, 4], [1, 1, 2, 2], {"coordinate_transformation_mode": "tf_crop_and_resize"}, r"tf_crop_and_resize"),
    (["n", 3, 2, 9000], [1, 1, 1, 0.001], {}, r"an interpolation matrix of 9 by 9000 values \(at most 4194304, "
                                             r"from an axis of at most 8192\)"),
])
def test_resize_refusals(tmp_path, x_shape, scales, attrs, message):
    onnx.save(_resize_model(attrs, x_shape, scales), str(tmp_path / "resize.onnx"))
    with pytest.raises(UnsupportedBlockError, match=r"resize\.onnx: node 0 \(Resize\): .*" + message):
        from_onnx(tmp_path / "resize.onnx")


class _Decoder(tnn.Module):
    """A pre-norm Transformer decoder layer with a causal mask made in the graph (Expand of ones
    to the sequence's square, Trilu), cross-attending to its own input."""

    def __init__(self):
        super().__init__()
        self.layer = tnn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True, norm_first=True)

    def forward(self, x):
        mask = tnn.Transformer.generate_square_subsequent_mask(x.shape[1])
        return self.layer(x, x * 0.5, tgt_mask=mask, tgt_is_causal=True)


def test_torch_transformer_decoder_layer_with_a_causal_mask(tmp_path):
    torch.manual_seed(9)
    module = _Decoder().eval()
    x = np.random.default_rng(0).standard_normal((2, 4, 8)).astype(np.float32)
    _imports_as_torch(module, x, tmp_path / "decoder.onnx", (3, 1), ops=("Trilu", "Expand"))


def test_torch_layer_norm_over_several_axes(tmp_path):
    torch.manual_seed(10)
    module = tnn.Sequential(tnn.LayerNorm([4, 5]), tnn.GroupNorm(2, 4))
    with torch.no_grad():
        module[0].weight.uniform_(0.5, 1.5)
        module[0].bias.uniform_(-1, 1)
    x = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32)
    _imports_as_torch(module, x, tmp_path / "norm.onnx", (2,))


def test_a_large_expand_of_constants_is_made_when_the_model_runs(tmp_path):
    """An Expand of constants whose result would exceed the folding bound is not folded (nothing
    that size is allocated at import): the model's broadcast makes it when it runs."""
    import tracemalloc

    nodes = [helper.make_node("Expand", ["one", "shape"], ["big"]), helper.make_node("Add", ["x", "big"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3000])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.ones((1, 1), np.float32), "one"),
                               numpy_helper.from_array(np.array([3000, 3000], np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "big.onnx"))
    tracemalloc.start()
    try:
        net = from_onnx(tmp_path / "big.onnx")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20  # (the folded array would be 36 MB)
    assert net(np.zeros((3000, 3000), np.float32)).shape == (3000, 3000)


def _einsum_model(equation, shapes):
    names = [f"x{i}" for i in range(len(shapes))]
    node = helper.make_node("Einsum", names, ["y"], equation=equation)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
                                            for n, s in zip(names, shapes, strict=True)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize(("equation", "shapes"), [
    ("bij,bkj->bik", [["n", 3, 4], ["n", 5, 4]]), ("ij,jk->ik", [[3, 4], [4, 2]]),
    ("bhqd,bhkd->bhqk", [["n", 2, 3, 4], ["n", 2, 5, 4]]), ("i,j->ij", [[3], [4]]), ("bij->bji", [["n", 3, 4]]),
    ("ij->", [[3, 4]]), ("bij,bj->bi", [["n", 3, 4], ["n", 4]]), ("abc,cd->dba", [["n", 3, 4], [4, 2]]),
    ("ij,ij->i", [[3, 4], [3, 4]]), ("bik,kj->bj", [["n", 3, 4], [4, 2]]),
    # three operands and more, contracted left to right (a bilinear form; a chain of products)
    ("bnd,de,bme->bnm", [["n", 3, 4], [4, 5], ["n", 2, 5]]), ("ij,jk,kl,lm->im", [[2, 3], [3, 4], [4, 5], [5, 2]]),
    ("bi,bj,bk->bijk", [["n", 2], ["n", 3], ["n", 2]]), ("i,ij,j->", [[3], [3, 4], [4]]),
    # numpy's forms, which ONNX's Einsum takes too: '...' and the implicit output
    ("...ij,jk->...ik", [["n", 3, 4], [4, 2]]), ("ij,jk", [[3, 4], [4, 2]]), ("b...i,bi", [["n", 2, 3], ["n", 3]]),
])
def test_einsum_against_onnxruntime(tmp_path, equation, shapes):
    onnx.save(_einsum_model(equation, shapes), str(tmp_path / "einsum.onnx"))
    net = from_onnx(tmp_path / "einsum.onnx")
    for batch in (2, 3):
        xs = [np.random.default_rng(batch + i).standard_normal([batch if d == "n" else d for d in s]).astype(np.float32)
              for i, s in enumerate(shapes)]
        expected = _runtime(tmp_path / "einsum.onnx", {f"x{i}": x for i, x in enumerate(xs)})[0]
        np.testing.assert_allclose(net(*xs), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("equation", "shapes", "match"), [
    ("ii->i", [[3, 3]], r"equation 'ii->i': an index twice in one operand \(a diagonal\) has no op"),
    ("ij,jk->ik", [[3, 4], [5, 2]], r"equation 'ij,jk->ik': index sizes 4 and 5 \(broadcast\)"),
    ("ijk,jk->ik", [[3, 4], [4, 2]], r"equation 'ijk,jk->ik': operand 'ijk' has 3 indices for 2 axes"),
])
def test_einsum_forms_it_does_not_take_are_refused(tmp_path, equation, shapes, match):
    onnx.save(_einsum_model(equation, shapes), str(tmp_path / "einsum.onnx"))
    with pytest.raises(UnsupportedBlockError, match=rf"\(Einsum\): {match}"):
        from_onnx(tmp_path / "einsum.onnx")


@pytest.mark.parametrize("op", ["ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum"])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_composed_reductions(tmp_path, op, keepdims):
    x = np.abs(X) + 0.1  # (a log of a positive sum)
    model = _one_node(op, [], {"axes": [1, 2], "keepdims": keepdims}, ["n", *x.shape[1:]], {})
    onnx.save(model, str(tmp_path / "op.onnx"))
    net = from_onnx(tmp_path / "op.onnx")
    for batch in (2, 5):
        y = np.resize(x, (batch, *x.shape[1:]))
        np.testing.assert_allclose(net(y), _runtime(tmp_path / "op.onnx", {"x": y})[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("pads", "value", "x_shape"), [
    ([0, 0, 1, 0, 0, 2], None, ["n", 3, 4]),  # F.pad(x, (1, 2))
    ([0, 1, 0, 0, 2, 0], 1.5, ["n", 3, 4]),
    ([0, 0, -1, 0, 0, 2], 0.0, ["n", 3, 4]),  # a negative pad crops
    ([1, 0, 0, 1, 0, 0], -2.0, ["n", 3, 4]),  # the batch axis, a size expression (n+2)
])
def test_constant_pad_against_onnxruntime(tmp_path, pads, value, x_shape):
    initial = {"pads": np.array(pads, np.int64), **({"value": np.array(value, np.float32)} if value is not None else {})}
    model = _one_node("Pad", list(initial), {"mode": "constant"}, x_shape, initial)
    onnx.save(model, str(tmp_path / "pad.onnx"))
    net = from_onnx(tmp_path / "pad.onnx")
    for batch in (2, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 4)).astype(np.float32)
        np.testing.assert_array_equal(net(x), _runtime(tmp_path / "pad.onnx", {"x": x})[0])


@pytest.mark.parametrize(("indices", "axis"), [(np.array([2, 0]), 1), (np.array([[0, -1], [1, 1]]), 2),
                                               (np.array([-1]), 0)])
def test_gather_of_several_constant_indices(tmp_path, indices, axis):
    model = _one_node("Gather", ["i"], {"axis": axis}, ["n", 3, 4], {"i": indices.astype(np.int64)})
    onnx.save(model, str(tmp_path / "gather.onnx"))
    net = from_onnx(tmp_path / "gather.onnx")
    for batch in (2, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 4)).astype(np.float32)
        np.testing.assert_array_equal(net(x), _runtime(tmp_path / "gather.onnx", {"x": x})[0])


@pytest.mark.parametrize("keepdims", [0, 1])
def test_log_sum_exp_is_stable(tmp_path, keepdims):
    model = _one_node("ReduceLogSumExp", [], {"axes": [1, 2], "keepdims": keepdims}, ["n", 3, 4], {})
    onnx.save(model, str(tmp_path / "lse.onnx"))
    net = from_onnx(tmp_path / "lse.onnx")
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32) * 30 + 100  # exp overflows unshifted
    found = net(x)
    assert np.isfinite(found).all()
    np.testing.assert_allclose(found, _runtime(tmp_path / "lse.onnx", {"x": x})[0], rtol=1e-6)


def test_split_into_num_outputs_pieces_the_last_smaller(tmp_path):
    """opset 18's num_outputs: pieces of ceil(size / count), the last what remains (5 into 3: 2, 2, 1)."""
    x = np.random.default_rng(0).standard_normal((2, 3, 5)).astype(np.float32)
    node = helper.make_node("Split", ["x"], ["y0", "y1", "y2"], axis=2, num_outputs=3)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 5])],
                              [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, None) for i in range(3)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "split.onnx"))
    found, expected = flat_outputs(from_onnx(tmp_path / "split.onnx")(x)), _runtime(tmp_path / "split.onnx", {"x": x})
    assert [f.shape for f in found] == [(2, 3, 2), (2, 3, 2), (2, 3, 1)]
    for f, e in zip(found, expected, strict=True):
        np.testing.assert_array_equal(f, e)


def test_where_refuses_a_condition_that_is_not_bool(tmp_path):
    model = _one_node("Where", ["a", "b"], {}, ["n", 3, 4], {"a": np.ones(4, np.float32), "b": np.zeros(4, np.float32)})
    onnx.save(model, str(tmp_path / "where.onnx"))
    with pytest.raises(UnsupportedBlockError, match=r"\(Where\): a condition of float32 \(ONNX's Where takes bool\)"):
        from_onnx(tmp_path / "where.onnx")


# -- If whose condition is a test of sizes, and Size (torch.onnx's TorchScript exporter) --------


def _x_to_y(nodes, x_shape, initializers=()):
    """A float model of ``nodes`` from input x (``x_shape``) to output y."""
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _if_on_width(width_test: str, x_shape):
    """y = x·2 if x's last size passes ``width_test`` against 4 (Greater/Less), else x + 1."""
    def branch(name, node, output, *initializers):
        return helper.make_graph([node], name, [], [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
                                 list(initializers))

    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "last"], ["width"], axis=0),
        helper.make_node(width_test, ["width", "four"], ["cond"]),
        helper.make_node("If", ["cond"], ["y"], then_branch=branch("then", helper.make_node("Mul", ["x", "two"], ["twice"]),
                                                                   "twice"),
                         else_branch=branch("else", helper.make_node("Add", ["x", "one"], ["plus"]), "plus",
                                            numpy_helper.from_array(np.array(1.0, np.float32), "one"))),
    ]
    constants = {"last": np.array(-1, np.int64), "four": np.array(4, np.int64), "two": np.array(2.0, np.float32)}
    return _x_to_y(nodes, x_shape, [numpy_helper.from_array(value, name) for name, value in constants.items()])


@pytest.mark.parametrize(("test", "doubled"), [("Greater", True), ("Less", False)])
def test_an_if_on_a_known_size_runs_the_branch_it_picks(tmp_path, test, doubled):
    onnx.save(_if_on_width(test, ["n", 3, 6]), str(tmp_path / "if.onnx"))
    net = from_onnx(tmp_path / "if.onnx")
    x = np.arange(2 * 3 * 6, dtype=np.float32).reshape(2, 3, 6)
    np.testing.assert_array_equal(net(x), x * 2 if doubled else x + 1)
    np.testing.assert_array_equal(net(x), _runtime(tmp_path / "if.onnx", {"x": x})[0])


def test_an_if_on_the_data_is_refused_as_control_flow(tmp_path):
    model = _if_on_width("Greater", ["n", 3, 6])
    model.graph.node[3].input[0] = "data_cond"
    model.graph.node.insert(3, helper.make_node("ReduceMax", ["x"], ["biggest"], keepdims=0))
    model.graph.node.insert(4, helper.make_node("Greater", ["biggest", "two"], ["data_cond"]))
    onnx.save(model, str(tmp_path / "flow.onnx"))
    with pytest.raises(UnsupportedBlockError, match=r"\(If\): its condition is computed from the data "
                                                    r"\(control flow is not translated\)"):
        from_onnx(tmp_path / "flow.onnx")


def test_an_ifs_branches_count_against_the_node_and_tensor_limits(tmp_path):
    model = _if_on_width("Greater", ["n", 3, 6])
    onnx.save(model, str(tmp_path / "if.onnx"))
    with pytest.raises(LimitError, match=r"if\.onnx: its number of nodes \(6\) is over the limit of 5"):
        from_onnx(tmp_path / "if.onnx", limits=Limits(max_manifest_nodes=5))  # 4 outside, 2 in the branches
    with pytest.raises(LimitError, match=r"if\.onnx: its number of tensors \(4\) is over the limit of 3"):
        from_onnx(tmp_path / "if.onnx", limits=Limits(max_tensors=3))  # 3 outside, 1 in a branch
    assert from_onnx(tmp_path / "if.onnx", limits=Limits(max_manifest_nodes=6, max_tensors=4))


def _scaled_by_size(source, x_shape):
    """y = x · Size(``source``)."""
    return _x_to_y([helper.make_node("Shape", ["x"], ["shape"]), helper.make_node("Size", [source], ["count"], name="count_it"),
                    helper.make_node("Cast", ["count"], ["count_f"], to=TensorProto.FLOAT),
                    helper.make_node("Mul", ["x", "count_f"], ["y"])], x_shape)


@pytest.mark.parametrize(("source", "x_shape", "expected"), [("shape", ["n", 3, 6], 3), ("x", [2, 3, 6], 36)])
def test_size_of_a_shape_vector_or_of_a_fixed_shape(tmp_path, source, x_shape, expected):
    onnx.save(_scaled_by_size(source, x_shape), str(tmp_path / "size.onnx"))
    x = np.ones((2, 3, 6), np.float32)
    np.testing.assert_array_equal(from_onnx(tmp_path / "size.onnx")(x), x * expected)


def test_size_of_a_value_with_a_dynamic_size_is_refused(tmp_path):
    onnx.save(_scaled_by_size("x", ["n", 3]), str(tmp_path / "size.onnx"))
    with pytest.raises(UnsupportedBlockError, match=r"'count_it' \(Size\): the size of 'x' is not known when the file is read"):
        from_onnx(tmp_path / "size.onnx")


@pytest.mark.parametrize("module", ["lrn", "repeat"])
def test_torchscript_exports_with_an_if_on_sizes(tmp_path, module):
    """torch.onnx's TorchScript exporter writes LRN's padding and ``x.repeat``'s rank test as If
    nodes (and Size) on sizes known when the file is read."""
    torch = pytest.importorskip("torch", reason="torch is not installed: torch.onnx exports cannot be made")

    class Repeat(torch.nn.Module):
        def forward(self, x):
            return x.repeat(1, 2, 1) + x.tile(1, 2, 1)

    layer, shape = (torch.nn.LocalResponseNorm(3), (2, 4, 5, 5)) if module == "lrn" else (Repeat(), (2, 3, 4))
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(layer.eval(), (torch.from_numpy(x),), str(tmp_path / "m.onnx"), dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"])
    assert "If" in {n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node}
    with torch.no_grad():
        expected = layer(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(from_onnx(tmp_path / "m.onnx")(x), expected, rtol=1e-5, atol=1e-6)
