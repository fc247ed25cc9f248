"""from_onnx: ONNX graphs from other exporters (torch.onnx, onnx.helper) and from to_onnx load as
modelpack models computing what onnxruntime computes; the rest is refused by operator and node.

Tolerance as in test_onnx_export (rtol 1e-4, atol 1e-5, float32). torch's exports use both its
exporters: the default one (torch.export, with onnxscript, which the torch extra installs) and
the TorchScript one (dynamo=False), which still writes older opsets.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import warnings

import numpy as np
import pytest
from fuzzing import time_bound
from hypothesis import given, reject, settings
from hypothesis import strategies as st

import modelpack
from modelpack import nn
from modelpack.errors import (
    FileKindError,
    FormatError,
    InputError,
    LimitError,
    UnsupportedBlockError,
    UsageError,
)
from modelpack.io.limits import Limits
from modelpack.nn import registry

onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install -e '.[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[onnx]')")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from modelpack.interop.onnx import from_onnx, to_onnx  # noqa: E402

TOL = {"rtol": 1e-4, "atol": 1e-5}


def _runtime(path, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, inputs)


def _save(model, path):
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _model(nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _float(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


# -- torch.onnx exports ------------------------------------------------------------------------


def _torch_export(module, x, path, opset=17):
    """torch.onnx's TorchScript exporter at ``opset``, or (``opset=None``) its default one,
    through torch.export and onnxscript, at that exporter's own opset."""
    torch = pytest.importorskip("torch", reason="torch is not installed: torch.onnx exports cannot be made")
    sizes = {"input_names": ["x"], "output_names": ["y"]}
    if opset is None:
        pytest.importorskip("onnxscript", reason="onnxscript is not installed: torch.onnx's default exporter needs it")
        sizes["dynamic_shapes"] = ({0: torch.export.Dim("batch")},)
    else:
        sizes.update(dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=opset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.from_numpy(x),), str(path), dynamo=opset is None, verbose=False,
                          **sizes)
    return path


def _torch_modules():
    torch = pytest.importorskip("torch", reason="torch is not installed: torch.onnx exports cannot be made")
    tnn = torch.nn

    class Residual(tnn.Module):
        """ResNet's basic block shape (torchvision is not installable here)."""

        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(8, 8, 3, padding=1, bias=False)
            self.bn1 = tnn.BatchNorm2d(8)
            self.conv2 = tnn.Conv2d(8, 8, 3, padding=1, bias=False)
            self.bn2 = tnn.BatchNorm2d(8)

        def forward(self, x):
            return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))) + x)

    class SmallResNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.stem = tnn.Sequential(tnn.Conv2d(3, 8, 3, stride=2, padding=1), tnn.BatchNorm2d(8), tnn.ReLU(),
                                       tnn.MaxPool2d(3, 2, 1, ceil_mode=True))
            self.block = Residual()
            self.head = tnn.Linear(8, 5)

        def forward(self, x):
            h = self.block(self.stem(x))
            h = h.mean(dim=(2, 3))
            return torch.log_softmax(self.head(h), dim=1)

    class ViewHead(tnn.Module):
        """AlexNet's head: x.view(x.size(0), -1) becomes Shape → Gather → Concat → Reshape."""

        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(tnn.Conv2d(3, 4, (3, 5), stride=(2, 1)), tnn.LeakyReLU(0.1),
                                           tnn.AvgPool2d((2, 3), stride=(1, 2), padding=(1, 1), count_include_pad=False))
            self.classifier = tnn.Sequential(tnn.Dropout(), tnn.Linear(4 * 8 * 5, 6), tnn.Sigmoid(), tnn.Linear(6, 3))

        def forward(self, x):
            h = self.features(x)
            return self.classifier(h.view(h.size(0), -1)).transpose(0, 1)[1:] * 2 - 1

    class ShuffleUnit(tnn.Module):
        """ShuffleNet v2's unit: half the channels through a branch, the halves joined and
        shuffled; its sizes come from x.size() (chunk, view), on top of a shape onnx's inference
        loses at the view before it."""

        def __init__(self):
            super().__init__()
            self.stem = tnn.Conv2d(3, 8, 3, padding=1)
            self.branch = tnn.Sequential(tnn.Conv2d(4, 4, 1), tnn.BatchNorm2d(4), tnn.ReLU(),
                                         tnn.Conv2d(4, 4, 3, padding=1, groups=4))

        @staticmethod
        def shuffle(x):
            n, c, h, w = x.size()
            return x.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, -1, h, w)

        def forward(self, x):
            x = self.shuffle(self.stem(x))
            for _ in range(2):
                left, right = x.chunk(2, dim=1)
                x = self.shuffle(torch.cat((left, self.branch(right)), dim=1))
            return x.mean([2, 3])

    class ClassToken(tnn.Module):
        """ViT's embedding: patches, then a class token expanded to the batch (expand(n, -1, -1)
        of a size read from the input) and joined in front."""

        def __init__(self):
            super().__init__()
            self.patches = tnn.Conv2d(3, 8, 4, stride=4)
            self.token = tnn.Parameter(torch.randn(1, 1, 8))
            self.norm = tnn.LayerNorm(8)

        def forward(self, x):
            n = x.shape[0]
            h = self.patches(x).reshape(n, 8, -1).permute(0, 2, 1)
            h = torch.cat([self.token.expand(n, -1, -1), h], dim=1)
            return self.norm(h)[:, 0]

    class Windows(tnn.Module):
        """MaxViT's window partition: sizes divided and multiplied from x.shape."""

        def __init__(self):
            super().__init__()
            self.conv = tnn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            x = self.conv(x)
            n, c, h, w = x.shape
            p = 4
            x = x.view(n, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
            x = x.reshape(-1, p * p, c).softmax(dim=1)
            return x.reshape(n, h // p, w // p, p, p, c).permute(0, 5, 1, 3, 2, 4).reshape(n, c, h, w)

    class ShiftedWindows(tnn.Module):
        """Swin's shifted windows: padded to whole windows by amounts computed from x.shape
        (the padded sizes then read from the result), rolled, and masked where a window straddles the roll, the mask written by index
        assignments (which torch exports as ScatterND on a ConstantOfShape; at 64×64, as
        Swin-T's first stage is at 224×224, it indexes more values than a weight has)."""

        def __init__(self):
            super().__init__()
            self.embed = tnn.Conv2d(3, 4, 1)
            self.qkv = tnn.Linear(4, 12)

        def forward(self, x):
            x = self.embed(x).permute(0, 2, 3, 1)
            n, h, w, c = x.shape
            p, s = 8, 4
            x = tnn.functional.pad(x, (0, 0, 0, (p - w % p) % p, 0, (p - h % p) % p))
            _, hp, wp, _ = x.shape
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
            windows = x.view(n, hp // p, p, wp // p, p, c).permute(0, 1, 3, 2, 4, 5)
            windows = windows.reshape(n * (hp // p) * (wp // p), p * p, c)
            q, k, v = self.qkv(windows).chunk(3, dim=-1)
            mask, count = x.new_zeros((hp, wp)), 0
            for rows in (slice(0, -p), slice(-p, -s), slice(-s, None)):
                for columns in (slice(0, -p), slice(-p, -s), slice(-s, None)):
                    mask[rows, columns] = count
                    count += 1
            mask = mask.view(hp // p, p, wp // p, p).permute(0, 2, 1, 3).reshape(-1, p * p)
            mask = mask.unsqueeze(1) - mask.unsqueeze(2)
            mask = mask.masked_fill(mask != 0, -100.0)
            attention = (q @ k.transpose(1, 2)).view(n, -1, p * p, p * p) + mask.unsqueeze(0)
            out = attention.view(-1, p * p, p * p).softmax(-1) @ v
            out = out.view(n, hp // p, wp // p, p, p, c).permute(0, 1, 3, 2, 4, 5).reshape(n, hp, wp, c)
            return torch.roll(out, shifts=(s, s), dims=(1, 2))[:, :h, :w].permute(0, 3, 1, 2)

    torch.manual_seed(0)
    resnet = SmallResNet()
    with torch.no_grad():
        for m in resnet.modules():
            if isinstance(m, tnn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2)
    return {"resnet": (resnet, (2, 3, 19, 17)), "viewhead": (ViewHead(), (2, 3, 16, 14)),
            "shuffle": (ShuffleUnit(), (2, 3, 8, 8)), "token": (ClassToken(), (2, 3, 16, 12)),
            "windows": (Windows(), (2, 3, 8, 12)), "shifted": (ShiftedWindows(), (2, 3, 62, 60))}


@pytest.mark.parametrize("opset", [None, 17, 11])
@pytest.mark.parametrize("name", ["resnet", "viewhead", "shuffle", "token", "windows", "shifted"])
def test_torch_exported_models_convert(tmp_path, name, opset):
    """Exported by torch.onnx's default exporter (torch.export: constants folded, its own
    names), and by its TorchScript one at today's opset and an older one (upgraded by onnx's
    version converter), with a dynamic batch: the shape arithmetic torch writes on it folds
    into size expressions."""
    module, shape = _torch_modules()[name]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    path = _torch_export(module, x, tmp_path / f"{name}.onnx", opset)
    versions = [o.version for o in onnx.load(str(path)).opset_import if o.domain in ("", "ai.onnx")]
    assert versions == [opset] if opset else versions[0] >= 18
    net = from_onnx(path)
    for batch in (shape[0], 5):
        y = np.random.default_rng(batch).standard_normal((batch, *shape[1:])).astype(np.float32)
        np.testing.assert_allclose(net(y), _runtime(path, {"x": y})[0], **TOL)
    modelpack.export(net, tmp_path / "net.mpk")
    np.testing.assert_allclose(modelpack.load(tmp_path / "net.mpk")(x), _runtime(path, {"x": x})[0], **TOL)


# -- onnx.helper graphs --------------------------------------------------------------------------


def test_a_hand_built_graph_of_many_operators(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 4)).astype(np.float32)  # Gemm without transB: (in, out)
    c = rng.standard_normal(4).astype(np.float32)
    m = rng.standard_normal((4, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Gemm", ["x", "w", "c"], ["g"], alpha=0.5, beta=2.0),
        helper.make_node("MatMul", ["g", "m"], ["mm"]),
        helper.make_node("Constant", [], ["two"], value=numpy_helper.from_array(np.array(2.0, np.float32))),
        helper.make_node("Pow", ["mm", "two"], ["sq"]),
        helper.make_node("Shape", ["sq"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
        helper.make_node("Concat", ["n1", "three_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["sq", "target"], ["r"]),
        helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1]),
        helper.make_node("ReduceMean", ["t"], ["mean"], axes=[2], keepdims=1),
        helper.make_node("Sub", ["t", "mean"], ["centred"]),
        helper.make_node("Greater", ["centred", "zero_f"], ["pos"]),
        helper.make_node("Where", ["pos", "centred", "mean"], ["w2"]),
        helper.make_node("Slice", ["w2", "s_start", "s_end", "s_axes", "s_steps"], ["sl"]),
        helper.make_node("Squeeze", ["sl", "axes1"], ["sq2"]),
        helper.make_node("Softmax", ["sq2"], ["sm"], axis=-1),
        helper.make_node("Cast", ["sm"], ["y"], to=TensorProto.DOUBLE),
        helper.make_node("ReduceSum", ["mm", "axes1"], ["z"], keepdims=0),
    ]
    inits = [numpy_helper.from_array(a, n) for n, a in [
        ("w", w), ("c", c), ("m", m), ("zero", np.array(0, np.int64)), ("axes0", np.array([0], np.int64)),
        ("three_one", np.array([3, 1], np.int64)), ("zero_f", np.array(0.0, np.float32)),
        ("s_start", np.array([0, -1], np.int64)), ("s_end", np.array([1, -4], np.int64)),
        ("s_axes", np.array([1, 2], np.int64)), ("s_steps", np.array([1, -1], np.int64)),
        ("axes1", np.array([1], np.int64))]]
    model = _model(nodes, [_float("x", ["n", 6])],
                   [helper.make_tensor_value_info("y", TensorProto.DOUBLE, None), _float("z", None)], inits)
    path = _save(model, tmp_path / "ops.onnx")
    net = from_onnx(path)
    for batch in (1, 4):
        x = rng.standard_normal((batch, 6)).astype(np.float32)
        want = _runtime(path, {"x": x})
        reference = ReferenceEvaluator(model).run(None, {"x": x})
        got = net(x)
        for found, expected, ref in zip(got, want, reference, strict=True):
            assert found.dtype == expected.dtype and found.shape == expected.shape
            np.testing.assert_allclose(found, expected, **TOL)
            np.testing.assert_allclose(found, ref, **TOL)


def test_embedding_layernorm_and_gelu(tmp_path):
    rng = np.random.default_rng(1)
    table = rng.standard_normal((9, 4)).astype(np.float32)
    nodes = [helper.make_node("Gather", ["table", "ids"], ["e"]),
             helper.make_node("LayerNormalization", ["e", "gamma", "beta"], ["ln"], epsilon=1e-3),
             helper.make_node("Gelu", ["ln"], ["y"])]
    inits = [numpy_helper.from_array(table, "table"), numpy_helper.from_array(rng.random(4).astype(np.float32), "gamma"),
             numpy_helper.from_array(rng.random(4).astype(np.float32), "beta")]
    model = _model(nodes, [helper.make_tensor_value_info("ids", TensorProto.INT64, ["n", 3])], [_float("y", None)],
                   inits, opset=20)
    path = _save(model, tmp_path / "embed.onnx")
    net = from_onnx(path)
    assert [type(b).__name__ for b in net] == ["Embedding", "LayerNorm", "Activation"]
    ids = np.array([[0, 8, 3], [1, 1, 2]], np.int64)
    np.testing.assert_allclose(net(ids), _runtime(path, {"ids": ids})[0], **TOL)


# -- round trips through to_onnx ---------------------------------------------------------------


@st.composite
def models(draw):
    net = nn.Sequential()
    net.add(nn.Conv2D(draw(st.integers(1, 3)), (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                      strides=(draw(st.integers(1, 2)), draw(st.integers(1, 3))),
                      padding=(draw(st.integers(0, 1)), draw(st.integers(0, 1))), activation="relu"))
    pool = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    kwargs = dict(pool_size=pool, strides=(draw(st.integers(1, 3)), draw(st.integers(1, 2))),
                  padding=(draw(st.integers(0, pool[0] // 2)), draw(st.integers(0, pool[1] // 2))),
                  ceil_mode=draw(st.booleans()))
    average = draw(st.booleans())
    net.add(nn.AvgPool2D(**kwargs, count_include_pad=False) if average else nn.MaxPool2D(**kwargs))
    net.add(nn.BatchNorm(), nn.Flatten(), nn.Dense(draw(st.integers(1, 5)), activation="softrelu"), nn.LayerNorm())
    return net, (2, draw(st.integers(1, 3)), draw(st.integers(4, 10)), draw(st.integers(4, 10)))


@settings(max_examples=25, deadline=None)
@given(models(), st.integers(0, 2**31 - 1))
def test_to_onnx_then_from_onnx(tmp_path_factory, net_and_shape, seed):
    net, shape = net_and_shape
    net.initialize(seed=seed)
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    try:
        net(x)
    except InputError:
        reject()
    path = tmp_path_factory.mktemp("rt") / "net.onnx"
    to_onnx(net, path, example=x)
    back = from_onnx(path)
    assert [type(b).__name__ for b in back] == [type(b).__name__ for b in net][:1] + ["Activation"] + [
        type(b).__name__ for b in net][1:4] + ["Dense", "Activation", "LayerNorm"]
    np.testing.assert_allclose(back(x), net(x), rtol=1e-4, atol=2e-4)  # after a LayerNorm: see test_onnx_export


def test_a_traced_graph_round_trips(tmp_path):
    class Block(nn.Block):
        def __init__(self):
            super().__init__()
            self.dense = nn.Dense(4, flatten=False)

        def forward(self, x):
            h = self.dense(x)
            return np.concatenate([h, np.sqrt(np.abs(h))], axis=-1).reshape(x.shape[0], -1) / 3.0

    net = Block()
    net.initialize(seed=0)
    x = np.random.default_rng(0).standard_normal((2, 3, 5)).astype(np.float32)
    net(x)
    to_onnx(net, tmp_path / "g.onnx", example=x)
    back = from_onnx(tmp_path / "g.onnx")
    for batch in (2, 7):
        y = np.resize(x, (batch, 3, 5))
        np.testing.assert_allclose(back(y), net(y), **TOL)


# -- through the public verbs ------------------------------------------------------------------


def test_convert_and_the_command_line(tmp_path):
    from cli.test_cli import cli

    net = nn.Sequential()
    net.add(nn.Dense(3, in_units=4, activation="tanh"))
    net.initialize(seed=0)
    to_onnx(net, tmp_path / "mlp.onnx")
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(modelpack.convert(tmp_path / "mlp.onnx")(x), net(x), **TOL)
    run = cli("convert", tmp_path / "mlp.onnx", "-o", tmp_path / "mlp.mpk")
    assert run.returncode == 0, run.stderr
    assert modelpack.inspect(tmp_path / "mlp.mpk").metadata["converter"] == "modelpack convert (ONNX)"
    np.testing.assert_allclose(modelpack.load(tmp_path / "mlp.mpk")(x), net(x), **TOL)
    with pytest.raises(FileKindError, match=r"mlp\.onnx is an ONNX model, not a modelpack archive; convert it with modelpack\.convert\(path\)"):
        modelpack.load(tmp_path / "mlp.onnx")
    # options that match a parameter file to an architecture have nothing to act on here: refused, not ignored
    with pytest.raises(UsageError, match=r"^ignore_extra, cast_dtype applies to weights loaded into an architecture"):
        modelpack.convert(tmp_path / "mlp.onnx", ignore_extra=True, cast_dtype=True)
    run = cli("convert", tmp_path / "mlp.onnx", "-o", tmp_path / "other.mpk", "--ignore-extra")
    assert run.returncode == 2 and "ignore_extra applies to weights loaded into an architecture" in run.stderr
    assert not (tmp_path / "other.mpk").exists()


# -- refusals and hostile files ------------------------------------------------------------------


def _one(op, inputs=("x",), initializers=(), opset=17, **attrs):
    return _model([helper.make_node(op, list(inputs), ["y"], name="the_node", **attrs)], [_float("x", ["n", 3, 4, 4])],
                  [_float("y", None)], initializers, opset=opset)


@pytest.mark.parametrize(("model", "error", "message"), [
    (_one("Det"), UnsupportedBlockError, r"node 0 'the_node' \(Det\): operator 'Det' has no modelpack equivalent; supported: "),
    (_one("MaxPool", kernel_shape=[2, 2], pads=[0, 0, 1, 0], ceil_mode=1), UnsupportedBlockError,
     r"\(MaxPool\): asymmetric pads \[0, 0, 1, 0\] \(begin \[0, 0\], end \[1, 0\]\) with ceil_mode"),
    (_one("MaxPool", kernel_shape=[2, 2], dilations=[2, 2], ceil_mode=1), UnsupportedBlockError,
     r"\(MaxPool\): dilations=\[2, 2\] with ceil_mode \(dilated pools take fixed sizes, rounding down\)"),
    (_one("MaxPool", kernel_shape=[200, 100], dilations=[2, 2]), UnsupportedBlockError,
     r"\(MaxPool\): dilations=\[2, 2\] of a \[200, 100\] kernel \(at most 256 taps\)"),
    (_one("MaxPool", kernel_shape=[3, 3], dilations=[2, 2]), UnsupportedBlockError,
     r"\(MaxPool\): no window of a \[3, 3\] kernel dilated by \[2, 2\] fits an input of \[4, 4\]"),
    (_one("AveragePool", kernel_shape=[2, 2], dilations=[2, 2]), UnsupportedBlockError, r"dilations=\[2, 2\]"),
    (_one("MaxPool", kernel_shape=[2, 2], dilations=[0, 2]), UnsupportedBlockError,
     r"\(MaxPool\): dilations=\[0, 2\] for a \[2, 2\] kernel \(one of at least 1 per axis\)"),
    (_one("ConvTranspose", ("x", "w"), [numpy_helper.from_array(np.ones((3, 2, 3, 3), np.float32), "w")],
          auto_pad="SAME_UPPER"),
     UnsupportedBlockError, r"\(ConvTranspose\): auto_pad='SAME_UPPER' \(give explicit pads and output_padding\)"),
    (_one("Conv", ("x", "w"), [numpy_helper.from_array(np.ones((2, 3, 2, 2), np.float32), "w")], auto_pad="SAME_UPPER"),
     UnsupportedBlockError, r"\(Conv\): asymmetric pads \[0, 0, 1, 1\]"),
    (_one("Flatten", axis=5), UnsupportedBlockError, r"\(Flatten\): axis=5 of an input of rank 4"),
    (_one("Relu", opset=0), UnsupportedBlockError,
     r"opset 0 is older than 13, and onnx's version converter could not upgrade it \(.*\); re-export with opset 13 "
     r"or later$"),
])
def test_untranslatable_graphs_are_refused(tmp_path, model, error, message):
    path = _save(model, tmp_path / "bad.onnx")
    with pytest.raises(error, match=message) as caught:
        from_onnx(path)
    assert str(path) in str(caught.value)


def _older(op, opset, inputs=("x",), initializers=(), extra=(), **attrs):
    """One operator in its older form (``extra``: nodes after it, reading ``y``)."""
    nodes = [helper.make_node(op, list(inputs), ["y" if not extra else "h"], **attrs), *extra]
    return _model(nodes, [_float("x", [2, 3, 4, 6])], [_float("y", None)], initializers, opset=opset)


def _head(op, **attrs):
    return [helper.make_node(op, ["h"], ["y"], **attrs)]


@pytest.mark.parametrize("model", [
    _older("Softmax", 11, axis=1),  # over the flattened tail (3·4·6 values), not axis 1 alone
    _older("LogSoftmax", 9, axis=2),
    _older("Unsqueeze", 11, axes=[0], extra=_head("Squeeze", axes=[0])),
    _model([helper.make_node("Split", ["x"], ["a", "b"], axis=3, split=[2, 4]),
            helper.make_node("Concat", ["b", "a"], ["y"], axis=3)], [_float("x", [2, 3, 4, 6])], [_float("y", None)],
           opset=11),
    _older("ReduceSum", 11, axes=[1, 3], keepdims=1),
    _older("Clip", 10, min=-0.5, max=0.25),
    _older("Pad", 10, pads=[0, 0, 1, 2, 0, 0, 2, 1], mode="constant", value=0.5),
    _older("Upsample", 9, ("x", "s"), [numpy_helper.from_array(np.array([1, 1, 2, 3], np.float32), "s")],
           mode="nearest"),
    _older("BatchNormalization", 7, ("x", "g", "b", "m", "v"),
           [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in
            (("g", [1, 2, 3]), ("b", [0, 1, 0]), ("m", [0.5, 0, -1]), ("v", [1, 4, 0.25]))]),
], ids=["Softmax-11", "LogSoftmax-9", "Squeeze-11", "Split-11", "ReduceSum-11", "Clip-10", "Pad-10", "Upsample-9",
        "BatchNormalization-7"])
def test_older_opsets_are_upgraded_and_compute_what_onnxruntime_does(tmp_path, model):
    """Exporters before opset 13 wrote these operators' older forms (attributes that became
    inputs, Softmax over the flattened tail, Upsample); onnx's version converter rewrites them."""
    path = _save(model, tmp_path / "older.onnx")
    x = np.random.default_rng(3).standard_normal((2, 3, 4, 6)).astype(np.float32)
    np.testing.assert_allclose(from_onnx(path)(x), _runtime(path, {"x": x})[0], **TOL)


def test_an_older_opsets_weights_survive_the_upgrade(tmp_path):
    """The version converter and shape inference read the model without its weights' values
    (``importer._skeleton``); the weights, larger than any folded constant, come back by name."""
    from modelpack.interop.onnx.importer import WEIGHT_ELEMENTS

    rng = np.random.default_rng(4)
    conv = rng.standard_normal((24, 3, 3, 3)).astype(np.float32)
    dense, bias = rng.standard_normal((10, 24 * 4 * 6)).astype(np.float32), np.arange(10, dtype=np.float32)
    assert dense.size > WEIGHT_ELEMENTS
    model = _model([helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
                    helper.make_node("Flatten", ["c"], ["f"]),
                    helper.make_node("Gemm", ["f", "d", "e"], ["y"], transB=1, alpha=0.5)],
                   [_float("x", [2, 3, 4, 6])], [_float("y", None)],
                   [numpy_helper.from_array(conv, "w"), numpy_helper.from_array(dense, "d"),
                    numpy_helper.from_array(bias, "e")],
                   opset=9)
    path = _save(model, tmp_path / "weights.onnx")
    x = np.random.default_rng(5).standard_normal((2, 3, 4, 6)).astype(np.float32)
    net = from_onnx(path)
    np.testing.assert_allclose(net(x), _runtime(path, {"x": x})[0], **TOL)
    assert any(np.array_equal(p.data(), dense * np.float32(0.5)) for p in net.collect_params().values())


def _spec_lrn(x, size, alpha, beta, bias):
    """ONNX's LRN as its specification words it, channel by channel (onnx's reference
    evaluator loops over the batch axis instead, so it is not the oracle here)."""
    before, after = math.floor((size - 1) / 2), math.ceil((size - 1) / 2)
    square_sum = np.zeros_like(x)
    for c in range(x.shape[1]):
        square_sum[:, c] = (x[:, max(0, c - before):c + after + 1] ** 2).sum(axis=1)
    return x / (bias + alpha / size * square_sum) ** beta


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 9])
def test_lrn_computes_what_onnx_defines(tmp_path, size):
    """AlexNet's and GoogLeNet's LRN: against the spec's formula, and where onnxruntime runs it
    (odd sizes only) against onnxruntime too."""
    model = _model([helper.make_node("LRN", ["x"], ["y"], size=size, alpha=0.3, beta=0.6, bias=1.5)],
                   [_float("x", [2, 6, 3, 4])], [_float("y", None)])
    path = _save(model, tmp_path / "lrn.onnx")
    x = np.random.default_rng(size).standard_normal((2, 6, 3, 4)).astype(np.float32)
    got = from_onnx(path)(x)
    np.testing.assert_allclose(got, _spec_lrn(x.astype(np.float64), size, 0.3, 0.6, 1.5), **TOL)
    if size % 2:
        np.testing.assert_allclose(got, _runtime(path, {"x": x})[0], **TOL)


def test_an_lrn_window_out_of_range_is_refused(tmp_path):
    model = _model([helper.make_node("LRN", ["x"], ["y"], size=0)], [_float("x", [1, 3, 2, 2])], [_float("y", None)])
    with pytest.raises(UnsupportedBlockError, match=r"\(LRN\): size=0: LRN's window spans 1 to 4096 channels"):
        from_onnx(_save(model, tmp_path / "lrn.onnx"))


@pytest.mark.parametrize("attrs", [{}, {"transA": 1}, {"transB": 1, "alpha": 0.5, "beta": 2.0}, {"transA": 1, "transB": 1}])
@pytest.mark.parametrize("with_c", [True, False])
def test_a_gemm_of_two_values_is_a_product_of_the_graph(tmp_path, attrs, with_c):
    """torch.mm / addmm of two activations export a Gemm whose B is computed (and older
    exporters transpose A): no Dense layer, the product of the two values."""
    a_shape = [4, 3] if attrs.get("transA") else [3, 4]
    b_shape = [5, 4] if attrs.get("transB") else [4, 5]
    inputs = ["a", "b", "c"] if with_c else ["a", "b"]
    graph_inputs = [_float("a", a_shape), _float("b", b_shape)] + ([_float("c", [5])] if with_c else [])
    path = _save(_model([helper.make_node("Gemm", inputs, ["y"], **attrs)], graph_inputs, [_float("y", None)]),
                 tmp_path / "gemm.onnx")
    rng = np.random.default_rng(8)
    feeds = {"a": rng.standard_normal(a_shape).astype(np.float32), "b": rng.standard_normal(b_shape).astype(np.float32)}
    if with_c:
        feeds["c"] = rng.standard_normal(5).astype(np.float32)
    np.testing.assert_allclose(from_onnx(path)(*feeds.values()), _runtime(path, feeds)[0], **TOL)


@pytest.mark.parametrize(("attrs", "shape"), [
    ({"kernel_shape": [3, 3], "dilations": [2, 2]}, [2, 3, 9, 8]),
    ({"kernel_shape": [2, 3], "dilations": [3, 1], "strides": [2, 3], "pads": [1, 0, 1, 2]}, [2, 3, 9, 8]),
    ({"kernel_shape": [3], "dilations": [4], "strides": [2], "pads": [2, 1]}, [2, 3, 11]),
])
def test_dilated_max_pooling(tmp_path, attrs, shape):
    """Pooling layers have no dilation: the maximum of the kernel's strided slices, axis by axis."""
    model = _model([helper.make_node("MaxPool", ["x"], ["y"], **attrs)], [_float("x", shape)], [_float("y", None)])
    path = _save(model, tmp_path / "pool.onnx")
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(from_onnx(path)(x), _runtime(path, {"x": x})[0])


@pytest.mark.parametrize(("op", "attrs", "side"), [
    ("MaxPool", {"kernel_shape": [2, 2], "pads": [0, 0, 1, 0]}, 4),
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 0, 2]}, 7),
    ("AveragePool", {"kernel_shape": [7, 7], "pads": [0, 0, 1, 1]}, 7),  # Caffe2's GoogLeNet
    ("AveragePool", {"kernel_shape": [7, 7], "pads": [0, 0, 1, 1], "count_include_pad": 1}, 7),
    ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [2, 0, 0, 1]}, 6),
])
def test_pooling_pads_no_ceil_mode_expresses(tmp_path, op, attrs, side):
    """Unequal begin and end pads that no ceil_mode turns into symmetric ones: the input padded
    first (−∞ or 0), the average's divisor the windows' share of the input where padding is not
    counted; a NaN or −∞ in the input stays what onnxruntime makes of it."""
    model = _model([helper.make_node(op, ["x"], ["y"], **attrs)], [_float("x", ["n", 3, side, side])],
                   [_float("y", None)])
    path = _save(model, tmp_path / "pool.onnx")
    x = np.random.default_rng(side).standard_normal((2, 3, side, side)).astype(np.float32)
    x[0, 0, 0, :2] = -np.inf
    x[1, 2, -1, -1] = np.nan
    np.testing.assert_allclose(from_onnx(path)(x), _runtime(path, {"x": x})[0], **TOL)


def test_other_domains_are_refused(tmp_path):
    model = _model([helper.make_node("Foo", ["x"], ["y"], domain="com.example")], [_float("x", [1])], [_float("y", None)])
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    onnx.save(model, str(tmp_path / "d.onnx"))
    with pytest.raises(UnsupportedBlockError, match=r"\(Foo\): operator domain 'com\.example' is not ONNX's own"):
        from_onnx(tmp_path / "d.onnx")


def test_garbage_is_not_an_onnx_model(tmp_path):
    (tmp_path / "x.onnx").write_bytes(b"\x08\x08\x12\xff\xff\xff\xff\x0f" + b"junk" * 10)
    with pytest.raises(FormatError, match=r"x\.onnx: not an ONNX model \(protobuf refused it"):
        from_onnx(tmp_path / "x.onnx")


def test_a_tensor_lying_about_its_size(tmp_path):
    tensor = numpy_helper.from_array(np.ones(4, np.float32), "w")
    tensor.dims[:] = [1000]
    model = _model([helper.make_node("Add", ["x", "w"], ["y"])], [_float("x", [4])], [_float("y", None)], [tensor])
    onnx.save(model, str(tmp_path / "lie.onnx"))
    with pytest.raises(FormatError, match=r"lie\.onnx: tensor 'w' declares 1000 float32 values but holds 16 bytes"):
        from_onnx(tmp_path / "lie.onnx")


def _weights_beside(tmp_path, name="w.data"):
    """A model whose weights onnx saves to a file beside it (as large models must)."""
    rng = np.random.default_rng(6)
    weight, bias = rng.standard_normal((5, 4)).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    model = _model([helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)], [_float("x", ["n", 4])],
                   [_float("y", None)], [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    model.ir_version = 8
    onnx.save_model(model, str(tmp_path / "ext.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=name, size_threshold=0)
    return tmp_path / "ext.onnx", weight, bias


def test_weights_stored_beside_the_model_are_read(tmp_path):
    path, weight, bias = _weights_beside(tmp_path)
    assert onnx.load(str(path), load_external_data=False).graph.initializer[0].data_location == TensorProto.EXTERNAL
    x = np.random.default_rng(7).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(from_onnx(path)(x), x @ weight.T + bias, **TOL)
    np.testing.assert_allclose(from_onnx(path.as_uri())(x), x @ weight.T + bias, **TOL)  # a file:// URL's folder
    with open(path, "rb") as handle:  # an open file: its folder is unknown
        with pytest.raises(FormatError, match=r"tensor 'w' is stored in another file, which is read beside the "
                                              r"model's own: give the model as a local path"):
            from_onnx(handle)


def test_weights_beside_the_model_count_in_its_activation_budget(tmp_path):
    """A loaded model's forward may hold 16 times its file's bytes (``Limits``); an ONNX
    model's weights stored beside it are part of that size (torch.onnx's default exporter
    writes them so), or a model of small input and large activations is refused."""
    from modelpack.io.limits import ACTIVATION_FLOOR, ACTIVATIONS_PER_MODEL_BYTE

    side, columns = 2900, 600  # the padded (side, side) float32 array is over the floor, and
    # with its working copy and the product well under 16 times the weight
    assert ACTIVATION_FLOOR < 4 * side * side and 3 * 4 * side * side < ACTIVATIONS_PER_MODEL_BYTE * 4 * side * columns
    weight = np.random.default_rng(8).standard_normal((side, columns)).astype(np.float32)
    pads = numpy_helper.from_array(np.array([0, 0, side - 1, side - 1], np.int64), "pads")
    model = _model([helper.make_node("Pad", ["x", "pads"], ["p"]), helper.make_node("MatMul", ["p", "w"], ["y"])],
                   [_float("x", [1, 1])], [_float("y", None)], [numpy_helper.from_array(weight, "w"), pads])
    model.ir_version = 8
    onnx.save_model(model, str(tmp_path / "big.onnx"), save_as_external_data=True, location="big.data")
    x = np.full((1, 1), 2, np.float32)
    expected = np.zeros((side, columns), np.float32)
    expected[0] = 2 * weight[0]
    np.testing.assert_allclose(from_onnx(tmp_path / "big.onnx")(x), expected, **TOL)
    with pytest.raises(LimitError, match=r"big\.onnx: .*is over the limit of 33554432"):
        from_onnx(tmp_path / "big.onnx", limits=Limits(max_activation_bytes=ACTIVATION_FLOOR))(x)


def _external(tmp_path, **entries):
    tensor = numpy_helper.from_array(np.ones(4, np.float32), "w")
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in entries.items():
        tensor.external_data.add(key=key, value=value)
    model = _model([helper.make_node("Add", ["x", "w"], ["y"])], [_float("x", [4])], [_float("y", None)], [tensor])
    (tmp_path / "model").mkdir(exist_ok=True)
    onnx.save(model, str(tmp_path / "model" / "ext.onnx"))
    return tmp_path / "model" / "ext.onnx"


@pytest.mark.parametrize(("entries", "message"), [
    ({"location": "../secret.bin"}, r"its data file '\.\./secret\.bin' is not a name below the model's folder"),
    ({"location": "/etc/passwd"}, r"its data file '/etc/passwd' is not a name below the model's folder"),
    ({"location": "a/../../secret.bin"}, r"its data file 'a/\.\./\.\./secret\.bin' is not a name below the model's"),
    ({"location": "link.bin"}, r"its data file 'link\.bin' leads out of the model's folder"),
    ({}, r"its data file '' is not a name below the model's folder"),
    ({"location": "w.bin", "length": "8"}, r"its data file gives 8 bytes at offset 0, for a tensor of 16 bytes \(\[4\]\)"),
    ({"location": "w.bin", "offset": "-4"}, r"its data file gives 16 bytes at offset -4"),
    ({"location": "w.bin", "offset": "x"}, r"its data's offset or length is not a number"),
    ({"location": "w.bin", "offset": "8"}, r"its data file 'w\.bin' holds 20 bytes, not 16 from offset 8"),
    ({"location": "none.bin"}, r"its data file 'none\.bin': no such file$"),
    ({"location": "."}, r"its data file '\.': is a folder, not a file$"),  # the folder itself
    ({"location": "fifo"}, r"its data file 'fifo': is not a regular file \(a pipe, a socket or a device\)$"),
])
def test_weights_beside_the_model_are_read_only_from_below_its_folder(tmp_path, entries, message):
    """The names and sizes come from the file: each is checked before anything is opened."""
    (tmp_path / "secret.bin").write_bytes(b"\x00" * 64)
    path = _external(tmp_path, **entries)
    (path.parent / "w.bin").write_bytes(b"\x00" * 20)
    (path.parent / "link.bin").symlink_to(tmp_path / "secret.bin")
    os.mkfifo(path.parent / "fifo")
    with pytest.raises(FormatError, match=r"ext\.onnx: tensor 'w': " + message):
        with time_bound(10.0):
            from_onnx(path)


def test_limits_apply(tmp_path):
    inits = [numpy_helper.from_array(np.ones(4, np.float32), f"w{i}") for i in range(5)]
    model = _model([helper.make_node("Add", ["x", "w0"], ["y"])], [_float("x", [4])], [_float("y", None)], inits)
    onnx.save(model, str(tmp_path / "many.onnx"))
    with pytest.raises(LimitError, match=r"many\.onnx: its number of tensors \(5\) is over the limit of 3"):
        from_onnx(tmp_path / "many.onnx", limits=Limits(max_tensors=3))
    with pytest.raises(LimitError, match=r"its tensors' total size \(160\) is over the limit of 100"):
        from_onnx(tmp_path / "many.onnx", limits=Limits(max_total_bytes=100))


def test_a_node_reading_an_undefined_value(tmp_path):
    model = _model([helper.make_node("Relu", ["nowhere"], ["y"])], [_float("x", [4])], [_float("y", None)])
    onnx.save(model, str(tmp_path / "u.onnx"))
    with pytest.raises(UnsupportedBlockError, match=r"\(Relu\): reads 'nowhere', which no earlier node defines"):
        from_onnx(tmp_path / "u.onnx")


def test_gelu_and_silu_written_as_several_nodes_read_back_as_activations(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is not installed: torch.onnx exports cannot be made")
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.GELU(), torch.nn.SiLU(), torch.nn.Linear(4, 2))
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    path = _torch_export(module, x, tmp_path / "acts.onnx")
    assert "Erf" in {n.op_type for n in onnx.load(str(path)).graph.node}
    net = from_onnx(path)
    assert [type(b).__name__ for b in net] == ["Dense", "Activation", "Activation", "Dense"]
    assert [b.get_config() for b in net][1:3] == [{"activation": "gelu"}, {"activation": "silu"}]
    np.testing.assert_allclose(net(x), _runtime(path, {"x": x})[0], **TOL)
    ours = nn.Sequential()
    ours.add(nn.Dense(3, in_units=2, activation="gelu"), nn.Dense(2, in_units=3, activation="silu"))
    ours.initialize(seed=0)
    to_onnx(ours, tmp_path / "ours.onnx")
    assert [type(b).__name__ for b in from_onnx(tmp_path / "ours.onnx")] == ["Dense", "Activation", "Dense", "Activation"]


# x·(1 + erf(x/√2))·0.5 as exporters multiply it out: by x first (torch.onnx's TorchScript
# exporter), by 0.5 first (its dynamo exporter below opset 20), or x·0.5 first.
_GELU_PRODUCTS = {
    "x first": [helper.make_node("Mul", ["x", "a"], ["m"]), helper.make_node("Mul", ["m", "half"], ["y"])],
    "half first": [helper.make_node("Mul", ["half", "a"], ["m"]), helper.make_node("Mul", ["x", "m"], ["y"])],
    "x times half first": [helper.make_node("Mul", ["x", "half"], ["m"]), helper.make_node("Mul", ["a", "m"], ["y"])],
}


def _gelu_model(order, path, x_shape, *also_read):
    """The GELU pattern with its products in ``order``, reading the values ``also_read`` out too."""
    constants = [numpy_helper.from_array(np.array(value, np.float32), name)
                 for name, value in (("half", 0.5), ("one", 1.0), ("root", 1.4142135))]
    nodes = [helper.make_node("Div", ["x", "root"], ["s"]), helper.make_node("Erf", ["s"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["a"]), *_GELU_PRODUCTS[order]]
    outputs = [_float(name, None) for name in ("y", *also_read)]
    return _save(_model(nodes, [_float("x", x_shape)], outputs, constants), path)


@pytest.mark.parametrize("order", list(_GELU_PRODUCTS))
def test_a_gelu_pattern_is_fused_whatever_the_order_of_its_products(tmp_path, order):
    path = _gelu_model(order, tmp_path / "g.onnx", [3, 4])
    net = from_onnx(path)
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(net(x), _runtime(path, {"x": x})[0], rtol=1e-6, atol=1e-7)
    assert net(x).tobytes() == nn.Activation("gelu")(x).tobytes()  # one GELU, not five steps


def test_gelu_from_torch_onnx_default_exporter_below_opset_20(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is not installed: torch.onnx exports cannot be made")
    pytest.importorskip("onnxscript", reason="onnxscript is not installed: torch.onnx's default exporter needs it")
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.GELU(), torch.nn.Linear(4, 2)).eval()
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.from_numpy(x),), str(tmp_path / "g.onnx"), dynamo=True, opset_version=18)
    written = [n.op_type for n in onnx.load(str(tmp_path / "g.onnx")).graph.node]
    assert "Erf" in written and "Gelu" not in written
    net = from_onnx(tmp_path / "g.onnx")
    assert [type(b).__name__ for b in net] == ["Dense", "Activation", "Dense"]
    np.testing.assert_allclose(net(x), _runtime(tmp_path / "g.onnx", {"input": x})[0], **TOL)


@pytest.mark.parametrize(("order", "read"), [("x first", "e"), ("x times half first", "m")])
def test_a_gelu_pattern_whose_parts_are_read_elsewhere_is_not_fused(tmp_path, order, read):
    path = _gelu_model(order, tmp_path / "shared.onnx", [2], read)
    net = from_onnx(path)
    assert "erf" in [node["op"] for node in net.get_config()["graph"]["nodes"]]  # step by step
    x = np.array([0.3, -1.7], np.float32)
    for found, expected in zip(net(x), _runtime(path, {"x": x}), strict=True):
        np.testing.assert_allclose(found, expected, rtol=1e-6, atol=1e-7)


def test_one_dimensional_layers_both_ways(tmp_path):
    layers = registry
    net = nn.Sequential()
    net.add(layers.layer_type("Conv1D").build({"channels": 4, "kernel_size": [3], "strides": [2], "padding": [1],
                                               "in_channels": 3, "activation": "relu"}),
            layers.layer_type("MaxPool1D").build({"pool_size": [2], "ceil_mode": True}),
            layers.layer_type("GlobalAvgPool1D").build({}), nn.Flatten())
    net.initialize(seed=0)
    x = np.random.default_rng(0).standard_normal((2, 3, 11)).astype(np.float32)
    net(x)
    to_onnx(net, tmp_path / "c1.onnx", example=x)
    np.testing.assert_allclose(_runtime(tmp_path / "c1.onnx", {"input": x})[0], net(x), **TOL)
    back = from_onnx(tmp_path / "c1.onnx")
    assert [type(b).__name__ for b in back] == ["Conv1D", "Activation", "MaxPool1D", "GlobalAvgPool1D", "Flatten"]
    np.testing.assert_allclose(back(x), net(x), **TOL)


def _with_type(where: str, elem: int):
    """A Relu graph whose input, intermediate value or Cast target has element type ``elem``."""
    if where == "cast":
        nodes = [helper.make_node("Cast", ["x"], ["y"], name="the_cast", to=elem)]
    elif where == "input":  # (one node: no intermediate value to carry the type first)
        nodes = [helper.make_node("Relu", ["x"], ["y"])]
    else:
        nodes = [helper.make_node("Relu", ["x"], ["h"]), helper.make_node("Relu", ["h"], ["y"])]
    x = helper.make_tensor_value_info("x", elem if where == "input" else TensorProto.FLOAT, ["n", 3])
    model = _model(nodes, [x], [_float("y", None)])
    if where == "value":
        model.graph.value_info.append(helper.make_tensor_value_info("h", elem, ["n", 3]))
    return model


@pytest.mark.parametrize(("where", "message"), [
    ("input", r"input 'x' has ONNX type 56, which modelpack does not hold"),
    ("value", r"value 'h' has ONNX type 56, which modelpack does not hold"),
    ("cast", r"Cast node 'the_cast''s target has ONNX type 56, which modelpack does not hold"),
])
def test_an_element_type_onnx_does_not_know_is_refused(tmp_path, where, message):
    # A damaged file's type numbers: onnx's own table raises a bare KeyError for them.
    path = tmp_path / "t.onnx"
    path.write_bytes(_with_type(where, 56).SerializeToString())  # (onnx.save checks the model)
    with pytest.raises(UnsupportedBlockError, match=rf"t\.onnx: {message}"):
        from_onnx(path)


def test_a_name_that_is_not_utf8_is_refused(tmp_path):
    # protobuf hands such a string field back as bytes, which no step after parsing expects
    data = _one("Relu").SerializeToString().replace(b"the_node", b"the\xffnode")
    (tmp_path / "n.onnx").write_bytes(data)
    with pytest.raises(FormatError, match=r"n\.onnx: a name in its graph is not UTF-8 text \(b'the\\xffnode'\)"):
        from_onnx(tmp_path / "n.onnx")


def test_a_size_name_that_is_not_utf8_is_refused(tmp_path):
    data = _one("Relu").SerializeToString().replace(b"\x12\x01n\n", b"\x12\x01\xff\n")  # dim_param 'n'
    assert data != _one("Relu").SerializeToString()
    (tmp_path / "s.onnx").write_bytes(data)
    with pytest.raises(FormatError, match=r"s\.onnx: a name in its graph is not UTF-8 text \(b'\\xff'\)"):
        from_onnx(tmp_path / "s.onnx")


def test_a_gemm_whose_b_is_not_a_matrix_is_refused(tmp_path):
    w = numpy_helper.from_array(np.ones(4, np.float32), "w")
    model = _model([helper.make_node("Gemm", ["x", "w"], ["y"], name="g")], [_float("x", ["n", 4])],
                   [_float("y", None)], [w])
    (tmp_path / "g.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(UnsupportedBlockError, match=r"g\.onnx: node 0 'g' \(Gemm\): its B has shape \(4,\), not a matrix"):
        from_onnx(tmp_path / "g.onnx")


@pytest.mark.parametrize(("node", "message"), [
    (helper.make_node("Transpose", ["x"], ["y"], name="t", perm=[0, 5, 1, 2]),
     r"node 0 't' \(Transpose\): its attributes or inputs are not what ONNX's Transpose takes \(IndexError: "),
    (helper.make_node("MaxPool", ["x"], ["y"], name="p"),  # its required kernel_shape missing
     r"node 0 'p' \(MaxPool\): its attributes or inputs are not what ONNX's MaxPool takes \(KeyError: "),
])
def test_a_node_breaking_its_operators_schema_is_refused(tmp_path, node, message):
    # files onnx's checker would refuse, read without it: whatever the operator, a FormatError
    # naming the node, never the translator's bare error
    (tmp_path / "s.onnx").write_bytes(_model([node], [_float("x", ["n", 3, 4, 4])], [_float("y", None)]).SerializeToString())
    with pytest.raises(FormatError, match=rf"s\.onnx: {message}"):
        from_onnx(tmp_path / "s.onnx")


def _expand_to_batch(compare_with: str):
    """torch's ``token.expand(x.shape[0], -1)`` as its exporter writes it: the target's -1s
    found by Equal against -1, replaced by 1 with Where; ``compare_with`` is what Equal
    compares the target with (torch's -1s, or another input's batch)."""
    const = helper.make_tensor
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "zeros"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus"], ["target"], axis=0),
        helper.make_node("ConstantOfShape", ["two"], ["ones"], value=const("v", TensorProto.INT64, [1], [1])),
        helper.make_node("Mul", ["ones", "minus"], ["minus_ones"]),
        helper.make_node("Shape", ["other"], ["other_shape"]),
        helper.make_node("Equal", ["target", compare_with], ["is_minus"]),
        helper.make_node("Where", ["is_minus", "ones", "target"], ["sizes"]),
        helper.make_node("Expand", ["token", "sizes"], ["tokens"]),
        helper.make_node("Concat", ["tokens", "x"], ["y"], axis=1),
    ]
    inits = [numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "zeros"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus"),
             numpy_helper.from_array(np.array([2], np.int64), "two"),
             numpy_helper.from_array(np.arange(1, 4, dtype=np.float32).reshape(1, 3), "token")]
    return _model(nodes, [_float("x", ["batch", 3]), _float("other", ["rows", 2])], [_float("y", ["batch", 6])],
                  inits)


def test_expanding_to_a_dynamic_batch(tmp_path):
    """The Equal and Where of a shape vector holding the batch fold at import (a size is never
    -1), so the target is ``[batch, 1]`` for any batch."""
    path = _save(_expand_to_batch("minus_ones"), tmp_path / "expand.onnx")
    net = from_onnx(path)
    for batch in (2, 5):
        x = np.random.default_rng(batch).standard_normal((batch, 3)).astype(np.float32)
        other = np.zeros((4, 2), np.float32)
        np.testing.assert_array_equal(net(x, other), _runtime(path, {"x": x, "other": other})[0])


def test_comparing_sizes_that_depend_on_the_inputs_is_refused(tmp_path):
    path = _save(_expand_to_batch("other_shape"), tmp_path / "expand.onnx")
    with pytest.raises(UnsupportedBlockError, match=r"node 7 \(Equal\): compares the sizes 'batch' and 'rows', "
                                                    r"which depend on the input"):
        from_onnx(path)
