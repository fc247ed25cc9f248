"""Gluon exports converted without MXNet compute what MXNet computed; what cannot be converted
faithfully is refused, naming the file, the node and the operator or attribute.

Float32 tolerance against MXNet's outputs: rtol 1e-5, atol 1e-5 (measured worst: 3.8e-6
absolute on values below 1, 2.3e-5 absolute on values near 82, i.e. 2.8e-7 relative).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from models import MLP, assert_outputs_close, assert_outputs_equal, flat_outputs, round_trip
from mxnet_writer import Sym, convert_symbol, save

import modelpack
from modelpack import nn
from modelpack.errors import (
    ExtraParameterError,
    FormatError,
    LimitError,
    MissingParameterError,
    UnknownOpError,
    UnsupportedBlockError,
    UsageError,
)
from modelpack.interop import mxnet
from modelpack.interop.mxnet.reshape import mxnet_reshape, symbolic_shape
from modelpack.io.limits import Limits

DATA = Path(__file__).resolve().parent.parent / "data" / "mxnet"
EXPORTS = sorted(p.name[: -len("-symbol.json")] for p in DATA.glob("*-symbol.json"))
CHAINS = {"mlp", "mlp3", "cnn", "pools", "embed", "legacy-cnn"}  # plain chains of Gluon layers
TOL = {"rtol": 1e-5, "atol": 1e-5}


def _outputs(name: str) -> list[np.ndarray]:
    single = DATA / f"{name}-output.npy"
    if single.exists():
        return [np.load(single)]
    return [np.load(DATA / f"{name}-output-{i}.npy") for i in range(len(list(DATA.glob(f"{name}-output-*.npy"))))]


def _convert(name: str, **kwargs: Any) -> nn.Block:
    return mxnet.convert(DATA / f"{name}-symbol.json", DATA / f"{name}-0000.params", **kwargs)


def test_reference_exports_are_all_here():
    assert set(EXPORTS) == CHAINS | {"arith", "legacy-arith", "shapes", "legacy-shapes", "leaky"}


@pytest.mark.parametrize("name", EXPORTS)
def test_converted_export_matches_mxnet(name):
    net = _convert(name)
    assert isinstance(net, nn.Sequential if name in CHAINS else nn.GraphBlock)
    assert_outputs_close(net(np.load(DATA / f"{name}-input.npy")), _outputs(name), **TOL)


@pytest.mark.parametrize("name", EXPORTS)
def test_converted_model_survives_an_archive(name):
    net = _convert(name)
    loaded = round_trip(net)
    x = np.load(DATA / f"{name}-input.npy")
    assert_outputs_equal(loaded(x), net(x))


@pytest.mark.parametrize("name", EXPORTS)
def test_any_batch_size(name):
    """Reshape codes that copy the batch size stay symbolic: a bigger batch gives the same rows."""
    x = np.load(DATA / f"{name}-input.npy")
    n = len(x)
    outputs = flat_outputs(_convert(name)(np.concatenate([x, x[::-1], x[:1]])))
    for got, want in zip(outputs, _outputs(name), strict=True):
        if want.shape[0] != n:
            continue  # an output whose axis 0 is not the batch (shapes: a full transpose)
        assert got.shape == (2 * n + 1, *want.shape[1:])
        np.testing.assert_allclose(got[:n], want, **TOL)
        np.testing.assert_allclose(got[n:2 * n], want[::-1], **TOL)


def test_layer_names_come_from_mxnet():
    net = _convert("cnn")
    assert list(net.children)[:4] == ["conv0", "batchnorm0", "relu0", "pool0"]
    assert "batchnorm0.running_var" in net.collect_params()
    assert repr(net.children["pool0"]) == "MaxPool2D(size=(3, 3), stride=(2, 2), padding=(1, 1), ceil_mode=True)"
    assert net.children["batchnorm1"].get_config()["scale"] is False  # fix_gamma


# -- the chapter's MLP: a parameter file into a modelpack architecture ----------------------------


def test_chapter_mlp_loads_mxnet_parameters():
    net = mxnet.convert(DATA / "mlp.params", architecture=MLP())
    np.testing.assert_allclose(net(np.load(DATA / "mlp-input.npy")), np.load(DATA / "mlp-output.npy"), **TOL)


def test_parameters_into_an_archived_architecture(tmp_path):
    x = np.load(DATA / "mlp-input.npy")
    template = MLP()
    template.initialize(seed=0)
    modelpack.export(template, tmp_path / "mlp.mpk", example=x)
    net = mxnet.convert(DATA / "mlp.params", architecture=tmp_path / "mlp.mpk")
    np.testing.assert_allclose(net(x), np.load(DATA / "mlp-output.npy"), **TOL)


def test_export_parameters_match_flat_gluon_names():
    """``arg:dense7_weight`` finds ``dense7.weight``: weights alone into a converted architecture."""
    fresh = _convert("cnn")
    fresh.initialize(force_reinit=True, seed=1)
    x = np.load(DATA / "cnn-input.npy")
    assert not np.allclose(fresh(x), np.load(DATA / "cnn-output.npy"), **TOL)
    net = mxnet.convert(DATA / "cnn-0000.params", architecture=fresh)
    np.testing.assert_allclose(net(x), np.load(DATA / "cnn-output.npy"), **TOL)


def test_weights_only_reports_what_does_not_match():
    with pytest.raises(MissingParameterError, match=r"mlp-0000.params: none of the file's 4 names matches a parameter of MLP"):
        mxnet.convert(DATA / "mlp-0000.params", architecture=MLP())


def test_match_parameters():
    arrays = {"dense0_weight": np.zeros(1), "hidden.bias": np.ones(1), "other": np.ones(2)}
    matched = mxnet.match_parameters(arrays, ["dense0.weight", "hidden.bias"])
    assert list(matched) == ["dense0.weight", "hidden.bias", "other"]


def test_gluon_parameters_drop_prefixes():
    names = list(mxnet.gluon_parameters(DATA / "legacy-cnn-0000.params"))
    assert names[:2] == ["conv4_weight", "conv4_bias"] and "batchnorm3_running_mean" in names


def test_a_damaged_parameter_file_is_named_as_neither_kind(tmp_path):
    """Its magic number overwritten: not counted as a parameter file, and the message says the
    file starts as neither kind (the symbol beside it is recognised as one)."""
    damaged = bytearray((DATA / "mlp-0000.params").read_bytes())
    damaged[0] ^= 0xFF
    (tmp_path / "mlp-0000.params").write_bytes(bytes(damaged))
    with pytest.raises(UsageError, match=r"found 0 parameter file\(s\) \(none\), 2 other file\(s\) .* no "
                                         rf"architecture; {tmp_path}/mlp-0000\.params starts neither as an NDArray "
                                         r"file \(MXNet's magic number\) nor as a symbol's JSON: a damaged file"):
        mxnet.convert(tmp_path / "mlp-0000.params", DATA / "mlp-symbol.json")


def test_unnamed_parameter_file_is_refused():
    with pytest.raises(FormatError, match="x-files holds 2 unnamed arrays; a parameter file names each one"):
        mxnet.gluon_parameters(DATA / "x-files")


# -- reshape codes, checked against MXNet's own answers --------------------------------------------


@pytest.mark.parametrize("case", json.loads((DATA / "reshape-cases.json").read_text()), ids=str)
def test_reshape_codes_as_mxnet_resolves_them(case):
    assert list(mxnet_reshape(case["shape"], case["target"], case["codes"], "here")) == case["output"]


def test_reshape_impossible_targets():
    with pytest.raises(UnsupportedBlockError, match=r"here: reshape \(-1, -1\) of shape \(2, 3\): two sizes to infer"):
        mxnet_reshape((2, 3), (-1, -1), "legacy", "here")
    with pytest.raises(UnsupportedBlockError, match="a skipped axis is not of size 1"):
        mxnet_reshape((2, 3), (-3, -2), "npx", "here")
    with pytest.raises(UnsupportedBlockError, match="different number of elements"):
        mxnet_reshape((2, 3), (4,), "legacy", "here")


def test_symbolic_shape():
    names = {(2, 3): "batch", (32, 33): "seq"}
    assert symbolic_shape((2, 32, 5), (3, 33, 5), names, "here") == ["batch", "seq", 5]
    assert symbolic_shape((64, 5), (99, 5), names, "here") == [-1, 5]
    with pytest.raises(UnsupportedBlockError, match="several sizes that depend on the input sizes"):
        symbolic_shape((4, 64), (6, 66), names, "here")


# -- synthetic symbols: every lowering against a numpy formula -------------------------------------


RNG = np.random.default_rng(0)
X = RNG.normal(size=(3, 4, 5)).astype(np.float32)


def _softplus(x):
    return np.logaddexp(0, x)


UNARY_CASES = [
    ("Activation", {"act_type": "log_sigmoid"}, lambda x: -_softplus(-x)),
    ("Activation", {"act_type": "mish"}, lambda x: x * np.tanh(_softplus(x))),
    ("LeakyReLU", {"act_type": "rrelu", "lower_bound": 0.1, "upper_bound": 0.3}, lambda x: np.where(x > 0, x, 0.2 * x)),
    ("ones_like", {}, np.ones_like),
    ("zeros_like", {}, np.zeros_like),
    ("SwapAxis", {"dim1": 1, "dim2": 2}, lambda x: np.swapaxes(x, 1, 2)),
    ("expand_dims", {"axis": 1}, lambda x: x[:, None]),
    ("Cast", {"dtype": "float64"}, lambda x: x.astype(np.float64)),
    ("sum", {"axis": "(1, 2)"}, lambda x: x.sum(axis=(1, 2))),
    ("mean", {"axis": "1", "keepdims": "True"}, lambda x: x.mean(axis=1, keepdims=True)),
    ("max", {}, lambda x: x.max()),
    ("_np_min", {"axis": "-1"}, lambda x: x.min(axis=-1)),
    ("_rpower_scalar", {"scalar": 2}, lambda x: 2.0 ** x),
    ("_npi_rsubtract_scalar", {"scalar": 3, "is_int": True}, lambda x: 3 - x),
    ("_div_scalar", {"scalar": 4}, lambda x: x / 4),
    ("softmax", {"axis": 1, "temperature": 0.5}, lambda x: np.exp(2 * x) / np.exp(2 * x).sum(1, keepdims=True)),
    ("log_softmax", {}, lambda x: x - np.log(np.exp(x).sum(-1, keepdims=True))),
    ("_npx_reshape", {"newshape": "(-2, -5)"}, lambda x: x.reshape(3, 20)),
    ("Reshape", {"shape": "(0, -4, 2, -1, 0)"}, lambda x: x.reshape(3, 2, 2, 5)),
    ("transpose", {}, lambda x: x.T),
    ("BlockGrad", {}, lambda x: x),
]


@pytest.mark.parametrize("op, attrs, formula", UNARY_CASES, ids=[c[0] + str(i) for i, c in enumerate(UNARY_CASES)])
def test_operator_against_numpy(tmp_path, op, attrs, formula):
    sym = Sym()
    out = sym.op(op, sym.var("data"), **attrs)
    got = convert_symbol(tmp_path, sym, [out], {}, X, input_shapes={"data": (None, 4, 5)})
    want = formula(X)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_binary_and_multi_input_operators(tmp_path):
    sym = Sym()
    a, b = sym.var("a"), sym.var("b")
    outs = [sym.op("Concat", a, b, dim=1, num_args=2), sym.op("stack", a, b, axis=0, num_args=2),
            sym.op("_npi_matmul", a, sym.op("transpose", b, axes="(0, 2, 1)")), sym.op("_Maximum", a, b),
            sym.op("broadcast_power", sym.op("abs", a), b)]
    x, y = X, RNG.normal(size=X.shape).astype(np.float32)
    net = convert_symbol(tmp_path, sym, outs, {}, None, input_shapes={"a": (None, 4, 5), "b": (None, 4, 5)})
    got = net(x, y)
    want = [np.concatenate([x, y], 1), np.stack([x, y]), x @ np.swapaxes(y, 1, 2), np.maximum(x, y), np.abs(x) ** y]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


def test_prelu_per_channel(tmp_path):
    sym = Sym()
    out = sym.op("LeakyReLU", sym.var("data"), sym.var("p_alpha"), act_type="prelu")
    alpha = np.array([0.1, -0.5, 2.0, 0.3], np.float32)
    with pytest.raises(UsageError, match="the rank of input 'data' cannot be inferred"):
        convert_symbol(tmp_path, sym, [out], {"p_alpha": alpha}, None)  # the slopes' axis depends on the rank
    net = convert_symbol(tmp_path, sym, [out], {"p_alpha": alpha}, None, input_shapes={"data": (None, 4, None, None)})
    assert list(net.collect_params()) == ["p_alpha"]
    x = RNG.normal(size=(2, 4, 3, 3)).astype(np.float32)
    np.testing.assert_allclose(net(x), np.where(x > 0, x, x * alpha.reshape(1, 4, 1, 1)), rtol=1e-6)


def test_rank_must_be_given_when_no_layer_fixes_it(tmp_path):
    sym = Sym()
    out = sym.op("_mul_scalar", sym.op("softmax", sym.var("data")), scalar=2)
    with pytest.raises(UsageError, match=r"t-symbol.json: the rank of input 'data' cannot be inferred .* pass input_shapes=\{'data': \(None, ...\)\}") as caught:
        convert_symbol(tmp_path, sym, [out], {}, None)
    assert not isinstance(caught.value, FormatError)  # the caller's to give: a UsageError as it was raised
    got = convert_symbol(tmp_path, sym, [out], {}, X[0], input_shapes={"data": (None, 5)})
    np.testing.assert_allclose(got, 2 * np.exp(X[0]) / np.exp(X[0]).sum(-1, keepdims=True), rtol=1e-6)
    with pytest.raises(UsageError, match=r"input_shapes names \['label'\], which are not inputs"):
        convert_symbol(tmp_path, sym, [out], {}, None, input_shapes={"data": (None, 5), "label": (1,)})


# -- refusals ----------------------------------------------------------------------------------


def _edited(tmp_path: Path, name: str, edit: Any, params: dict[str, np.ndarray] | None = None) -> nn.Block:
    document = json.loads((DATA / f"{name}-symbol.json").read_text())
    edit(document)
    (tmp_path / "e-symbol.json").write_text(json.dumps(document))
    source = DATA / f"{name}-0000.params"
    if params is not None:
        (tmp_path / "e-0000.params").write_bytes(save(params))
        source = tmp_path / "e-0000.params"
    return mxnet.convert(tmp_path / "e-symbol.json", source)


def _node(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(n for n in document["nodes"] if n["name"] == name)


def test_unknown_operator_names_op_and_node(tmp_path):
    with pytest.raises(UnknownOpError, match=r"e-symbol.json: node 10 'pool0_fwd' \(ROIPooling\): MXNet operator 'ROIPooling' is not supported; supported: .*FullyConnected"):
        _edited(tmp_path, "cnn", lambda d: _node(d, "pool0_fwd").update(op="ROIPooling"))


@pytest.mark.parametrize("node, attrs, fragment", [
    ("conv0_fwd", {"layout": "NHWC"}, r"layout NHWC \(a 2-D kernel reads NCHW\) has no modelpack equivalent"),
    ("conv0_fwd", {"kernel": "(3, 3, 3, 3)"}, r"kernel=\(3, 3, 3, 3\) \(4 spatial dimensions; 1 to 3 are supported\)"),
    ("conv0_fwd", {"kernel": "(3, 3, 3)"}, r"layout NCHW \(a 3-D kernel reads NCDHW\)"),
    ("conv0_fwd", {"kernel": "(3, 3, 3)", "layout": "NCDHW"}, r"a weight of shape \(6, 3, 3, 3\) for kernel \(3, 3, 3\)"),
    ("conv0_fwd", {"frobnicate": "1"}, "attribute frobnicate='1' is not supported"),
    ("pool0_fwd", {"pool_type": "lp"}, "pool_type 'lp' has no modelpack equivalent"),
    ("pool0_fwd", {"stride": "(3, 3)"}, r"pooling_convention 'full' with stride \(3, 3\) > kernel \(3, 3\) - pad \(1, 1\)"),
    ("pool0_fwd", {"pooling_convention": "same"}, "pooling_convention 'same'"),
    ("batchnorm0_fwd", {"output_mean_var": "True"}, "output_mean_var=True"),
    ("dropout0_fwd", {"mode": "always"}, r"dropout applied at inference \(mode='always'\)"),
    ("relu0_fwd", {"act_type": "swish"}, "act_type 'swish'"),
    ("dense7_fwd", {"num_hidden": "6"}, r"a weight of shape \(5, 8\) for num_hidden=6"),
])
def test_unsupported_attributes(tmp_path, node, attrs, fragment):
    with pytest.raises(UnsupportedBlockError, match=rf"e-symbol.json: node \d+ '{node}' \(\w+\): {fragment}"):
        _edited(tmp_path, "cnn", lambda d: _node(d, node)["attrs"].update(attrs))


def test_bad_attribute_value(tmp_path):
    with pytest.raises(FormatError, match=r"node 3 'conv0_fwd' \(Convolution\): attribute 'kernel' is '\(3, x\)', expected a tuple of integers"):
        _edited(tmp_path, "cnn", lambda d: _node(d, "conv0_fwd")["attrs"].update(kernel="(3, x)"))
    with pytest.raises(FormatError, match=r"attribute 'no_bias' is 'maybe', expected True or False"):
        _edited(tmp_path, "cnn", lambda d: _node(d, "conv0_fwd")["attrs"].update(no_bias="maybe"))


def test_missing_and_extra_parameters(tmp_path):
    arrays = mxnet.ndarray.load(DATA / "cnn-0000.params")
    assert isinstance(arrays, dict)
    missing = {k: v for k, v in arrays.items() if k != "arg:dense7_weight"}
    with pytest.raises(MissingParameterError, match=r"e-symbol.json: node 33 'dense7_fwd' \(FullyConnected\): its weight \(input 1\) is not in the parameter file"):
        _edited(tmp_path, "cnn", lambda d: None, missing)
    extra = {**arrays, "arg:stray": np.zeros(2, np.float32)}
    with pytest.raises(ExtraParameterError, match=r"e-0000.params: parameters \['stray'\] are not used by .*e-symbol.json"):
        _edited(tmp_path, "cnn", lambda d: None, extra)
    net = mxnet.convert(tmp_path / "e-symbol.json", tmp_path / "e-0000.params", ignore_extra=True)
    assert "stray" not in net.collect_params()


def test_second_outputs_are_refused(tmp_path):
    def use_mean(document):
        document["heads"] = [[_index(document, "batchnorm0_fwd"), 1, 0]]
    with pytest.raises(UnsupportedBlockError, match="an output reads output 1 of node"):
        _edited(tmp_path, "cnn", use_mean)


def test_a_node_with_fewer_inputs_than_its_operator_reads_is_refused(tmp_path):
    def drop_inputs(document):
        _node(document, "pool1_fwd")["inputs"] = []
    with pytest.raises(FormatError, match=r"e-symbol.json: node \d+ 'pool1_fwd' \(Pooling\): has 0 input\(s\); its operator reads input 0"):
        _edited(tmp_path, "cnn", drop_inputs)


def _index(document: dict[str, Any], name: str) -> int:
    return next(i for i, n in enumerate(document["nodes"]) if n["name"] == name)


@pytest.mark.parametrize("text, fragment", [
    (b"not json", "is not a JSON document"),
    (b"\xff\xfe", "is not a JSON document: UnicodeDecodeError"),
    (b"[" * 100_000 + b"]" * 100_000, "is not a JSON document: RecursionError"),
    (b'{"nodes": []}', "is not an MXNet symbol: heads: Field required"),
    (b'{"nodes": [{"op": "null", "name": "x"}], "heads": [[1, 0, 0]]}', r"output \[1, 0, 0\] must be \[node, output\(, version\)\] naming an earlier node"),
    (b'{"nodes": [{"op": "relu", "name": "r", "inputs": [[0, 0]]}], "heads": [[0, 0]]}', r"node 0 'r' \(relu\) input \[0, 0\] must be"),
    (b'{"nodes": [{"op": "null", "name": "x", "inputs": [[0, 0]]}], "heads": [[0, 0]]}', "node 0 'x' is a variable but has inputs"),
    (b'{"nodes": [{"op": "null", "name": "x", "attrs": {"a": 3}}], "heads": [[0, 0]]}', "is not an MXNet symbol: nodes.0.attrs.a: Input should be a valid string"),
])
def test_malformed_symbol(tmp_path, text, fragment):
    (tmp_path / "bad-symbol.json").write_bytes(text)
    with pytest.raises(FormatError, match=rf"bad-symbol.json:? {fragment}"):
        mxnet.convert(tmp_path / "bad-symbol.json", DATA / "mlp-0000.params")


def test_symbol_over_the_size_limit(tmp_path):
    with pytest.raises(LimitError, match=r"mlp-symbol.json: the symbol JSON's size in bytes \(101\) is over the limit of 100 \(at least; the rest is unread\); pass limits=modelpack.Limits\(max_manifest_bytes="):
        _convert("mlp", limits=Limits(max_manifest_bytes=100))


@pytest.mark.parametrize("sources, kwargs", [
    (("mlp-symbol.json",), {}),
    (("mlp-0000.params", "mlp.params"), {}),
    (("mlp-symbol.json", "mlp-0000.params"), {"architecture": MLP()}),
    (("mlp.params",), {"architecture": 3}),
])
def test_convert_arguments(sources, kwargs):
    with pytest.raises(UsageError) as caught:
        mxnet.convert(*[DATA / s for s in sources], **kwargs)
    assert type(caught.value) is UsageError


def test_attributes_a_layer_refuses_are_a_format_error_naming_the_node(tmp_path):
    # nn.Conv2D's own refusal, for the node that gave it the attribute (was a bare ValueError)
    with pytest.raises(FormatError, match=r"node \d+ 'conv0_fwd' \(Convolution\): channels \(\d+\) must be divisible "
                                          r"by groups \(7\)"):
        _edited(tmp_path, "cnn", lambda d: _node(d, "conv0_fwd")["attrs"].update(num_group="7"))


def test_a_positive_axis_past_the_rank_is_refused(tmp_path):
    # MXNet never writes one, a damaged file may (was an IndexError)
    def split_at_axis_7(document):
        _node(document, "flatten0_batch_flatten0").update(op="split", attrs={"num_outputs": "2", "axis": "7"})
    with pytest.raises(UnsupportedBlockError, match=r"node \d+ 'flatten0_batch_flatten0' \(split\): axis 7 of a 4-D "
                                                   r"input has no modelpack equivalent"):
        _edited(tmp_path, "cnn", split_at_axis_7)


def test_argmax_over_no_axis_or_several_is_refused(tmp_path):
    # axis=() parsed to an empty tuple was indexed (an IndexError); MXNet writes one axis or None
    sym = Sym()
    out = sym.op("argmax", sym.var("data"), axis="()")
    with pytest.raises(UnsupportedBlockError, match=r"\(argmax\): axis='\(\)' has no modelpack equivalent"):
        convert_symbol(tmp_path, sym, [out], {}, None, input_shapes={"data": (None, 5)})


@pytest.mark.parametrize("error", [IndexError("tuple index out of range"), KeyError("kernel"), TypeError("bad")])
def test_a_lowering_that_fails_on_what_the_file_gives_is_a_format_error_naming_the_node(tmp_path, monkeypatch,
                                                                                         error):
    # Whatever a lowering's bare error on a file's attributes (the ones fuzzing found each have
    # their own refusal now), convert raises a FormatError naming the node and the operator.
    from modelpack.interop.mxnet import lowering

    def failing(node):
        raise error

    monkeypatch.setitem(lowering.LOWERINGS, "relu", failing)
    sym = Sym()
    out = sym.op("relu", sym.var("data"))
    with pytest.raises(FormatError, match=rf"node 1 '\w+' \(relu\): its attributes or inputs are not what MXNet's "
                                          rf"relu takes \({type(error).__name__}: "):
        convert_symbol(tmp_path, sym, [out], {}, None, input_shapes={"data": (None, 5)})


def test_a_converted_graph_runs_within_the_activation_budget(tmp_path):
    # a size in the symbol (10^10 values) is refused by the converted model's forward before
    # anything is allocated, as a model loaded from an archive refuses it
    sym = Sym()
    out = sym.op("broadcast_to", sym.var("data"), shape="(100000, 100000)")
    net = convert_symbol(tmp_path, sym, [out], {}, None, input_shapes={"data": (1, 1)})
    with pytest.raises(LimitError, match=r"t-symbol\.json: the top-level block \(\w+\): .*the activations this forward "
                                         r"call would hold after allocating 40000000000 bytes"):
        net(np.zeros((1, 1), np.float32))


MATH = DATA / "math"  # scripts/make_mxnet_math_refs.py


@pytest.mark.parametrize("name", ["legacy-math", "np-math"])
def test_trigonometric_hyperbolic_and_error_functions_match_mxnet(name):
    """tan, arcsin … arctanh and erf under their legacy and numpy-mode names."""
    net = mxnet.convert(MATH / f"{name}-symbol.json", MATH / f"{name}-0000.params")
    expected = [np.load(MATH / f"{name}-output-{i}.npy") for i in range(10)]
    found = flat_outputs(net(np.load(MATH / f"{name}-input.npy")))
    assert len(found) == len(expected) == len(list(MATH.glob(f"{name}-output-*.npy")))
    assert_outputs_close(found, expected, rtol=1e-5, atol=1e-6)
    assert_outputs_equal(round_trip(net)(np.load(MATH / f"{name}-input.npy")), net(np.load(MATH / f"{name}-input.npy")))
