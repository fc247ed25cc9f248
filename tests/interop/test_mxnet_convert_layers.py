"""Gluon exports of the newer layers (1-D/3-D convolution and pooling, transposed convolution,
InstanceNorm, GroupNorm, Pad, and gluon.rnn's fused RNN/LSTM/GRU) convert without MXNet and
compute what MXNet 1.9.1 computed (``scripts/make_mxnet_export_refs.py``); what cannot be
converted faithfully is refused, naming the node and the attribute.

Float32 tolerance against MXNet's outputs: rtol 1e-5, atol 1e-5 (measured worst: 1.9e-6
absolute, the two-layer bidirectional ReLU RNN; the others below 1e-6).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from models import assert_outputs_close, assert_outputs_equal, flat_outputs, round_trip
from mxnet_writer import save

import modelpack
from modelpack import nn
from modelpack.cli import main as cli_main
from modelpack.errors import MissingParameterError, UnsupportedBlockError
from modelpack.interop import mxnet
from modelpack.interop.mxnet.conversion import gluon_parameters

DATA = Path(__file__).resolve().parent.parent / "data" / "mxnet" / "exports"
EXPORTS = sorted(p.name[: -len("-symbol.json")] for p in DATA.glob("*-symbol.json"))
SHAPES: dict[str, dict[str, Any]] = {"pads": {"data": (None, 3, 4, 5, 6)}}  # 5-D reflection: fixed sizes
TOL = {"rtol": 1e-5, "atol": 1e-5}


def _files(name: str, kind: str) -> list[np.ndarray]:
    count = len(list(DATA.glob(f"{name}-{kind}-*.npy")))
    return [np.load(DATA / f"{name}-{kind}-{i}.npy") for i in range(count)]


def _convert(name: str) -> nn.Block:
    return mxnet.convert(DATA / f"{name}-symbol.json", DATA / f"{name}-0000.params",
                         input_shapes=SHAPES.get(name))


def test_reference_exports_are_all_here():
    assert set(EXPORTS) == {"conv1d", "conv2d", "conv3d", "pads", "lstm-lm", "bigru", "rnn-relu", "rnn-tanh",
                            "bilstm-states", "np-lstm", "np-conv1d"}


@pytest.mark.parametrize("name", EXPORTS)
def test_converted_export_matches_mxnet(name):
    assert_outputs_close(_convert(name)(*_files(name, "input")), _files(name, "output"), **TOL)


@pytest.mark.parametrize("name", EXPORTS)
def test_converted_model_survives_an_archive(name):
    net = _convert(name)
    loaded = round_trip(net)
    inputs = _files(name, "input")
    assert_outputs_equal(loaded(*inputs), net(*inputs))


@pytest.mark.parametrize("name", EXPORTS)
def test_command_line_convert(tmp_path, name, capsys):
    shapes = [f"{k}={','.join('N' if d is None else str(d) for d in v)}" for k, v in SHAPES.get(name, {}).items()]
    argv = ["convert", str(DATA / f"{name}-symbol.json"), str(DATA / f"{name}-0000.params"),
            "-o", str(tmp_path / f"{name}.mpk"), *(a for s in shapes for a in ("--input-shape", s))]
    assert cli_main(argv) == 0, capsys.readouterr().err
    inputs = _files(name, "input")
    assert_outputs_close(modelpack.load(tmp_path / f"{name}.mpk")(*inputs), _files(name, "output"), **TOL)


@pytest.mark.parametrize("name", ["conv1d", "conv2d", "conv3d", "pads", "rnn-tanh", "np-conv1d"])
@pytest.mark.parametrize("batch", [1, 2, 7])
def test_batch_first_exports_at_any_batch_size(name, batch):
    (x,), want = _files(name, "input"), _files(name, "output")
    rows = [i % len(x) for i in range(batch)]
    for got, expected in zip(flat_outputs(_convert(name)(x[rows])), want, strict=True):
        np.testing.assert_allclose(got, expected[rows], **TOL)


def test_language_model_is_a_chain_named_as_gluon():
    net = _convert("lstm-lm")
    assert isinstance(net, nn.Sequential)
    assert list(net.children) == ["embedding0", "lstm0", "dense0"]
    lstm = net.children["lstm0"]
    assert isinstance(lstm, nn.rnn.LSTM)
    assert lstm.get_config()["num_layers"] == 2 and lstm.get_config()["dropout"] == pytest.approx(0.3)
    # The packed vector was unpacked into Gluon's own arrays, bit for bit.
    arrays = gluon_parameters(DATA / "lstm-lm-0000.params")
    params = net.collect_params()
    for name in ("l0_i2h_weight", "l0_h2h_weight", "l1_i2h_weight", "l1_h2h_weight", "l0_i2h_bias", "l1_h2h_bias"):
        assert np.array_equal(params[f"lstm0.{name}"].data(), arrays[f"lstm0_{name}"])


@pytest.mark.parametrize("batch", [1, 2, 7])
def test_language_model_any_batch_and_length(batch):
    """Columns are independent sequences: a batch of any size, and a shorter sequence, give
    MXNet's values for the columns and steps they share."""
    tokens, want = _files("lstm-lm", "input")[0], _files("lstm-lm", "output")[0]
    columns = [i % tokens.shape[1] for i in range(batch)]
    got = _convert("lstm-lm")(tokens[:5, columns])
    np.testing.assert_allclose(got, want[:5, columns], **TOL)


@pytest.mark.parametrize("batch", [1, 2, 7])
def test_bidirectional_gru_any_batch(batch):
    """NTC input and the begin state share the batch size, whatever it is."""
    (x, h), (want_y, want_h) = _files("bigru", "input"), _files("bigru", "output")
    rows = [i % x.shape[0] for i in range(batch)]
    y, state = _convert("bigru")(x[rows], h[:, rows])
    np.testing.assert_allclose(y, want_y[rows], **TOL)
    np.testing.assert_allclose(state, want_h[:, rows], **TOL)


def test_reflection_of_dynamic_size_names_the_fix():
    with pytest.raises(UnsupportedBlockError, match=r"'pads0_pad2' \(Pad\): reflect padding of 1 on axis 2 \(of size "
                                                     r"dynamic; it must be fixed and larger; pass fixed input_shapes\)"):
        mxnet.convert(DATA / "pads-symbol.json", DATA / "pads-0000.params")


def test_reflection_wider_than_the_input_is_refused():
    with pytest.raises(UnsupportedBlockError, match=r"reflect padding of 3 on axis 4 \(of size 3;"):
        mxnet.convert(DATA / "pads-symbol.json", DATA / "pads-0000.params", input_shapes={"data": (None, 3, 4, 5, 3)})


def test_verify_accepts_every_export():
    from modelpack.cli.mxnet_files import verify_report

    for name in EXPORTS:
        report = verify_report(DATA / f"{name}-symbol.json", "symbol")
        assert not report.problems, (name, report.problems)


def _symbol(tmp_path: Path, nodes: list[dict[str, Any]]) -> Path:
    path = tmp_path / "h-symbol.json"
    path.write_text(json.dumps({"nodes": [{"op": "null", "name": "data", "inputs": []}, *nodes],
                                "arg_nodes": [0], "heads": [[len(nodes), 0, 0]]}))
    (tmp_path / "h-0000.params").write_bytes(save({"unused": np.zeros(1, np.float32)}))  # never empty
    return path


@pytest.mark.parametrize("op, attrs, value", [
    ("_zeros", {"shape": "(2, 3)"}, 0.0), ("_ones", {"shape": "(2, 3)", "dtype": "float32"}, 1.0),
    ("_full", {"shape": "(2, 3)", "value": "2.5"}, 2.5),
])
def test_constant_arrays_and_parameter_concat_standing_alone(tmp_path, op, attrs, value):
    """Outside a fused RNN, ``_zeros``/``_ones``/``_full`` are constants and
    ``_rnn_param_concat`` a concatenation."""
    path = _symbol(tmp_path, [
        {"op": op, "name": "c", "attrs": attrs, "inputs": []},
        {"op": "_rnn_param_concat", "name": "cat", "attrs": {"dim": "1", "num_args": "2"},
         "inputs": [[0, 0, 0], [1, 0, 0]]},
    ])
    net = mxnet.convert(path, tmp_path / "h-0000.params", input_shapes={"data": (2, None)}, ignore_extra=True)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_array_equal(net(x), np.concatenate([x, np.full((2, 3), value, np.float32)], axis=1))


def test_constant_of_unknown_size_is_refused(tmp_path):
    path = _symbol(tmp_path, [{"op": "_zeros", "name": "z", "attrs": {"shape": "(2, 0, 5)"}, "inputs": []},
                              {"op": "broadcast_add", "name": "s", "inputs": [[0, 0, 0], [1, 0, 0]]}])
    with pytest.raises(UnsupportedBlockError, match=r"'z' \(_zeros\): shape=\(2, 0, 5\) \(a size 0 is inferred"):
        mxnet.convert(path, tmp_path / "h-0000.params", input_shapes={"data": (2, 1, 5)}, ignore_extra=True)


# -- refusals ----------------------------------------------------------------------------------


def _edited(tmp_path: Path, name: str, edit: Any, params: dict[str, np.ndarray] | None = None) -> nn.Block:
    document = json.loads((DATA / f"{name}-symbol.json").read_text())
    edit(document)
    (tmp_path / "e-symbol.json").write_text(json.dumps(document))
    source = DATA / f"{name}-0000.params"
    if params is not None:
        (tmp_path / "e-0000.params").write_bytes(save(params))
        source = tmp_path / "e-0000.params"
    return mxnet.convert(tmp_path / "e-symbol.json", source, input_shapes=SHAPES.get(name))


READ_BY = {"Reshape": "RNN", "_rnn_param_concat": "RNN"}  # nodes the RNN's lowering reads itself


def _op(document: dict[str, Any], op: str, nth: int = 0) -> dict[str, Any]:
    return [n for n in document["nodes"] if n["op"] == op][nth]


@pytest.mark.parametrize("name, op, attrs, fragment", [
    ("lstm-lm", "RNN", {"mode": "peephole"}, "mode 'peephole'"),
    ("lstm-lm", "RNN", {"projection_size": "3"}, "projection_size=3"),
    ("lstm-lm", "RNN", {"use_sequence_length": "True"}, "use_sequence_length=True"),
    ("lstm-lm", "RNN", {"lstm_state_clip_min": "-1", "lstm_state_clip_max": "1"}, "lstm_state_clip_min=-1"),
    ("lstm-lm", "RNN", {"lstm_state_clip_nan": "True"}, "lstm_state_clip_nan=True"),
    ("lstm-lm", "RNN", {"state_size": "7"}, r"a packed parameter vector of 1088 values for mode=lstm, state_size=7"),
    ("lstm-lm", "RNN", {"mode": "gru"}, r"4 inputs for mode=gru \(data, parameters and 1 state\(s\)\)"),
    ("lstm-lm", "RNN", {"frobnicate": "1"}, "attribute frobnicate='1' is not supported"),
    ("lstm-lm", "_rnn_param_concat", {"dim": "1"}, "parameters joined along axis 1"),
    ("lstm-lm", "Reshape", {"shape": "(2, -1)"}, r"parameters reshaped by Reshape with \{'shape': '\(2, -1\)'\}"),
    ("lstm-lm", "Reshape", {"frobnicate": "1"}, r"parameters through Reshape with attributes \['frobnicate'\]"),
    ("conv1d", "Deconvolution", {"num_filter": "4"}, r"a weight of shape \(4, 3, 3\) for kernel \(3,\), num_filter=4"),
    ("conv1d", "Convolution", {"layout": "NWC"}, r"layout NWC \(a 1-D kernel reads NCW\)"),
    ("conv1d", "Deconvolution", {"target_shape": "(20,)"}, r"target_shape=\(20,\) \(give pad and adj instead\)"),
    ("conv1d", "Deconvolution", {"adj": "(2,)"}, r"adj=\(2,\) not smaller than stride=\(2,\)"),
    ("conv1d", "Deconvolution", {"stride": "(2, 2)"}, r"stride=\(2, 2\) for a 1-D kernel"),
    ("conv3d", "Pooling", {"pool_type": "lp"}, "pool_type 'lp'"),
    ("conv3d", "Pooling", {"kernel": "(1, 2, 2, 2)"}, r"kernel=\(1, 2, 2, 2\) \(4 spatial dimensions"),
    ("conv3d", "GroupNorm", {"num_groups": "4"}, r"a gamma of shape \(2,\) for num_groups=4"),
    ("conv3d", "GroupNorm", {"output_mean_var": "True"}, "output_mean_var=True"),
    ("pads", "Pad", {"mode": "symmetric"}, "mode 'symmetric'"),
    ("pads", "Pad", {"pad_width": "(0, 0, 1)"}, r"pad_width=\(0, 0, 1\)"),
])
def test_unsupported_attributes(tmp_path, name, op, attrs, fragment):
    with pytest.raises(UnsupportedBlockError, match=rf"e-symbol.json: node \d+ '[\w]+' \({READ_BY.get(op, op)}\): {fragment}"):
        _edited(tmp_path, name, lambda d: _op(d, op)["attrs"].update(attrs))


def test_parameters_computed_by_another_operator_are_refused(tmp_path):
    with pytest.raises(UnsupportedBlockError, match=r"\(RNN\): parameters computed by exp \(node 'lstm0_reshape0'\)"):
        _edited(tmp_path, "lstm-lm", lambda d: _op(d, "Reshape").update(op="exp", attrs={}))


def test_global_pooling_without_a_kernel_takes_the_input_rank(tmp_path):
    """MXNet ignores a global pool's kernel; without one, the rank comes from the input."""
    def edit(document: dict[str, Any]) -> None:
        _op(document, "Pooling", 3)["attrs"].update(kernel="()", stride="()", pad="()")

    net = _edited(tmp_path, "conv1d", edit)
    assert type(net.children["pool3"]).__name__ == "GlobalMaxPool1D"
    np.testing.assert_allclose(net(*_files("conv1d", "input")), _files("conv1d", "output")[0], **TOL)


def test_begin_states_partly_zeros_are_refused(tmp_path):
    def edit(document: dict[str, Any]) -> None:
        zeros = next(i for i, n in enumerate(document["nodes"]) if n["op"] == "null" and n["name"] == "data2")
        document["nodes"][zeros] = {"op": "_zeros", "name": "z", "attrs": {"shape": "(4, 0, 4)"}, "inputs": []}

    with pytest.raises(UnsupportedBlockError, match="begin states of which some are zeros and some are inputs"):
        _edited(tmp_path, "bilstm-states", edit)


def test_states_of_zero_begin_states_are_not_outputs(tmp_path):
    """Gluon's default (zeros) converts to a layer returning its output only; a symbol that
    reads the states then is refused, naming the node."""
    with pytest.raises(UnsupportedBlockError, match=r"an output reads output 1 of node 22, which converts to 1 output"):
        _edited(tmp_path, "lstm-lm", lambda d: d["heads"].append([22, 1, 0]))


def test_missing_packed_parameter(tmp_path):
    arrays = gluon_parameters(DATA / "lstm-lm-0000.params")
    del arrays["lstm0_l1_h2h_bias"]
    with pytest.raises(MissingParameterError, match=r"'lstm0_rnn0' \(RNN\): parameter 'lstm0_l1_h2h_bias' is not in"):
        _edited(tmp_path, "lstm-lm", lambda d: None, params=arrays)
