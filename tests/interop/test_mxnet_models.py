"""Networks written by others convert and compute what MXNet 1.9.1 computed
(``scripts/make_mxnet_model_refs.py``): MXNet's own model zoo and GluonCV's, exported by MXNet
with weights from ``formula_weights`` (recomputed here), and blocks calling every operator the converter
lowers to graph ops, in legacy and numpy mode and through the Module API's ``SoftmaxOutput``.

Tolerances: the operator blocks within ``rtol=1e-5, atol=1e-5`` (integer and boolean outputs
exactly, dtypes equal); a zoo network's output within ``rtol=1e-4`` and ``atol`` 1e-5 of its
largest magnitude (measured worst: 2e-6 of it): each chains 20 to 100 layers, and MXNet's
kernels sum in other orders.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest
from formula_weights import parameters, uniform
from models import round_trip
from mxnet_writer import Sym, convert_symbol, save

from modelpack import nn
from modelpack.errors import UnsupportedBlockError
from modelpack.interop import mxnet

DATA = Path(__file__).resolve().parent.parent / "data" / "mxnet-models"
# name -> input_shapes (resampling's matrices need fixed heights and widths)
OP_MODELS = {"legacy-ops": None, "np-ops": {"data": (3, 7)}, "module-ops": None,
             "resampling": {"data": (None, 3, 10, 9)}}
# MXNet's model zoo, then GluonCV's (SE blocks, split attention, HRNet's multi-resolution fusion,
# residual attention's bilinear upsampling, NASNet's 2,000 nodes): about 12 s in all
ZOO = ["mobilenet0.25", "mobilenetv2_0.25", "squeezenet1.0", "squeezenet1.1", "resnet18_v1", "resnet18_v2",
       "resnet50_v1", "resnet50_v2", "densenet121", "inceptionv3",
       "cifar_resnet20_v1", "mobilenetv3_small", "se_resnet18_v1", "resnest14", "hrnet_w18_small_v1_c",
       "residualattentionnet56", "xception", "nasnet_4_1056"]
INPUT_KEY = 1_000_000  # as the script


def _files(name: str, suffix: str) -> list[Path]:
    return sorted(DATA.glob(f"{name}-{suffix}-*.npy"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))


def _op_model(name: str) -> nn.Block:
    return mxnet.convert(DATA / f"{name}-symbol.json", DATA / f"{name}-0000.params", input_shapes=OP_MODELS[name])


def test_every_reference_is_tested():
    zoo = {p.name[len("zoo-"):-len(".json")] for p in DATA.glob("zoo-*.json")}
    assert zoo == set(ZOO)
    assert {p.name[: -len("-symbol.json")] for p in DATA.glob("*-symbol.json")} == set(OP_MODELS)


@pytest.mark.parametrize("name", sorted(OP_MODELS))
def test_operator_blocks_compute_what_mxnet_computed(name):
    net = _op_model(name)
    got = net(*[np.load(p) for p in _files(name, "input")])
    wanted = [np.load(p) for p in _files(name, "output")]
    assert len(got) == len(wanted)
    for i, (g, w) in enumerate(zip(got, wanted, strict=True)):
        g = np.asarray(g)
        assert (g.shape, g.dtype) == (w.shape, w.dtype), f"output {i}"
        if w.dtype.kind in "biu":
            np.testing.assert_array_equal(g, w, err_msg=f"output {i}")
        else:
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5, err_msg=f"output {i}")


@pytest.mark.parametrize("name", sorted(OP_MODELS))
def test_operator_blocks_survive_an_archive(name):
    net = _op_model(name)
    inputs = [np.load(p) for p in _files(name, "input")]
    for got, want in zip(round_trip(net)(*inputs), net(*inputs), strict=True):
        np.testing.assert_array_equal(got, want)


def test_the_module_apis_label_inputs_are_not_inputs():
    net = _op_model("module-ops")
    assert [spec.name for spec in net.graph.inputs] == ["data"]


def _zoo(name: str) -> tuple[nn.Block, np.ndarray]:
    spec = json.loads((DATA / f"zoo-{name}.json").read_text())
    params = io.BytesIO(save(parameters(spec["parameters"]), layout="legacy"))
    symbol = io.BytesIO(gzip.decompress((DATA / f"zoo-{name}-symbol.json.gz").read_bytes()))
    shape = tuple(spec["input"])
    fixed = {"data": (None, *shape[1:])} if spec["fixed_input"] else None  # as the script says
    return mxnet.convert(symbol, params, input_shapes=fixed), uniform(shape, INPUT_KEY)


@pytest.mark.parametrize("name", ZOO)
def test_model_zoo_network_computes_what_mxnet_computed(name):
    net, x = _zoo(name)
    want = np.load(DATA / f"zoo-{name}-output.npy")
    got = net(x)
    got = np.asarray(got[0] if isinstance(got, (list, tuple)) else got)  # (NASNet's auxiliary head)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_a_converted_zoo_network_survives_an_archive():
    net, x = _zoo("mobilenetv2_0.25")
    np.testing.assert_array_equal(round_trip(net)(x), net(x))


# -- what the new lowerings refuse, naming the node and what is wrong -----------------------------

X = np.random.default_rng(0).normal(size=(2, 4, 6, 6)).astype(np.float32)


@pytest.mark.parametrize(
    ("op", "attrs", "fragment"),
    [
        ("UpSampling", {"scale": 2, "sample_type": "bilinear", "num_args": 1}, "sample_type 'bilinear' has no modelpack equivalent"),
        ("UpSampling", {"scale": 0, "sample_type": "nearest"}, "scale 0 has no modelpack equivalent"),
        ("slice", {"begin": "(0,)", "end": "(1,)", "step": "(0,)"}, "a step of 0 has no modelpack equivalent"),
        ("slice", {"begin": "(0, 1)", "end": "(1,)"}, r"begin \(0, 1\), end \(1,\) and step \(\) of different lengths"),
        ("slice_axis", {"axis": -5, "begin": 0, "end": 1}, "axis -5 of a 4-D input has no modelpack equivalent"),
        ("SliceChannel", {"num_outputs": 3}, "3 equal parts of an axis of size 4 has no modelpack equivalent"),
        ("SliceChannel", {"num_outputs": 2, "squeeze_axis": True}, r"squeeze_axis=True with parts \[2\] wide"),
        ("_split_v2", {"indices": "(1, 3)", "sections": 0}, r"sections=0 with indices=\[1, 3\] has no modelpack"),
        ("norm", {"ord": 3}, "ord=3 has no modelpack equivalent"),
        ("SoftmaxActivation", {"mode": "spatial"}, "mode 'spatial' has no modelpack equivalent"),
        ("take", {"mode": "fill"}, "mode 'fill' has no modelpack equivalent"),
        ("broadcast_like", {"lhs_axes": "(0,)", "rhs_axes": "(0,)"}, "lhs_axes/rhs_axes has no modelpack equivalent"),
        ("broadcast_to", {"shape": "(6, 6)"}, r"shape \(6, 6\) of lower rank than the input's"),
        ("dot", {}, "a dot with a right operand of more than 2 axes"),
        ("L2Normalization", {"mode": "pixel"}, "mode 'pixel' on a 4-D input"),
        ("LRN", {"nsize": 4}, "nsize=4 has no modelpack equivalent"),
    ],
)
def test_lowerings_refuse_what_they_cannot_compute_faithfully(tmp_path, op, attrs, fragment):
    sym = Sym()
    data = sym.var("data")
    inputs = [data, data] if op in ("take", "broadcast_like", "dot") else [data]
    out = sym.op(op, *inputs, name="node", **attrs)
    with pytest.raises(UnsupportedBlockError, match=fragment):
        convert_symbol(tmp_path, sym, [out], {}, X, input_shapes={"data": (None, 4, 6, 6)})


@pytest.mark.parametrize(
    ("op", "attrs", "formula"),
    [
        ("round", {}, lambda x: np.sign(x) * np.floor(np.abs(x) + 0.5)),
        ("_npi_where_scalar2", {"x": 1.5, "y": -2.0}, lambda x: np.where(x != 0, np.float32(1.5), np.float32(-2.0))),
        ("slice_axis", {"axis": -1, "begin": 1, "end": "None"}, lambda x: x[..., 1:]),
        ("_split_v2", {"axis": 1, "indices": "(0, 1, 3)", "sections": 0}, lambda x: x[:, :1]),
        ("UpSampling", {"scale": 3, "sample_type": "nearest"}, lambda x: x.repeat(3, axis=2).repeat(3, axis=3)),
        ("_lesser_scalar", {"scalar": 0.25}, lambda x: (x < 0.25).astype(np.float32)),
        ("_npi_not_equal_scalar", {"scalar": 0, "is_int": True}, lambda x: x != 0),
        ("argmin", {}, lambda x: np.array([x.argmin()], np.float32)),
        ("_npi_argmax", {}, lambda x: np.array(x.argmax())),
    ],
)
def test_lowerings_against_numpy(tmp_path, op, attrs, formula):
    sym = Sym()
    out = sym.op(op, sym.var("data"), **attrs)
    x = np.round(X * 4) / 8  # exact halves, for round
    got = np.asarray(convert_symbol(tmp_path, sym, [out], {}, x, input_shapes={"data": (None, 4, 6, 6)}))
    want = formula(x)
    assert (got.shape, got.dtype) == (want.shape, want.dtype)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("attrs", [{"nsize": 3, "alpha": 0.002, "beta": 0.6, "knorm": 1.5}, {"nsize": 5}])
def test_lrn_lowers_to_mxnets_formula(tmp_path, attrs):
    """MXNet's LRN: x / (knorm + alpha / nsize · Σ x² over the nsize channels around)^beta, its
    defaults alpha 1e-4, beta 0.75, knorm 2; torch's local_response_norm computes the same."""
    torch = pytest.importorskip("torch")
    sym = Sym()
    out = sym.op("LRN", sym.var("data"), **attrs)
    x = X * 10  # large enough for the window's sum to matter
    got = np.asarray(convert_symbol(tmp_path, sym, [out], {}, x, input_shapes={"data": (None, 4, 6, 6)}))
    want = torch.nn.functional.local_response_norm(torch.from_numpy(x), attrs["nsize"], alpha=attrs.get("alpha", 1e-4),
                                                   beta=attrs.get("beta", 0.75), k=attrs.get("knorm", 2.0)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("op", "attrs", "shape", "fragment"),
    [
        ("_contrib_AdaptiveAvgPooling2D", {"output_size": "(2, 2)"}, (None, 4, None, None), "resampling an input whose height and width follow the model's input size \\(pass fixed input_shapes to convert it\\)"),
        ("_contrib_AdaptiveAvgPooling2D", {"output_size": "(0, 2)"}, (None, 4, 6, 6), r"output_size=\(0, 2\) has no modelpack equivalent"),
        ("_contrib_BilinearResize2D", {"height": 3, "width": 3}, (None, 4, None, None), "follow the model's input size"),
        ("_contrib_BilinearResize2D", {"mode": "odd_scale", "scale_height": 2}, (None, 4, 6, 6), "mode 'odd_scale' has no modelpack equivalent"),
        ("_contrib_BilinearResize2D", {"scale_height": 0.1, "scale_width": 1}, (None, 4, 6, 6), "an output of 0x6 has no modelpack equivalent"),
    ],
)
def test_resampling_refuses_what_it_cannot_compute_faithfully(tmp_path, op, attrs, shape, fragment):
    sym = Sym()
    out = sym.op(op, sym.var("data"), name="node", **attrs)
    with pytest.raises(UnsupportedBlockError, match=fragment):
        convert_symbol(tmp_path, sym, [out], {}, X, input_shapes={"data": shape})


def test_a_global_adaptive_average_works_at_any_input_size(tmp_path):
    sym = Sym()
    out = sym.op("_contrib_AdaptiveAvgPooling2D", sym.var("data"), output_size=1)
    net = convert_symbol(tmp_path, sym, [out], {}, None, input_shapes={"data": (None, 4, None, None)})
    for x in (X, X[:1, :, :3, :5]):
        np.testing.assert_allclose(net(x), x.mean(axis=(2, 3), keepdims=True), rtol=1e-6)
