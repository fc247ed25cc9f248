"""Recurrent layers and cells as registered types: declarative export and load, Gluon's API
(``begin_state``, ``state_info``, ``unroll``, deferred input sizes), training-only behaviour,
state clipping, and refusals with their messages. Numerics: ``test_rnn_mxnet.py`` (MXNet's
outputs) and ``test_rnn_torch.py`` (PyTorch)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from pydantic import ValidationError

import modelpack
from modelpack import nn
from modelpack.errors import InputError, UsageError
from modelpack.nn import registry, rnn

rng = np.random.default_rng(11)


def _x(*shape):
    return rng.normal(size=shape).astype(np.float32)


def _round_trip(block):
    buffer = io.BytesIO()
    modelpack.export(block, buffer)
    manifest = modelpack.inspect(io.BytesIO(buffer.getvalue()))
    return modelpack.load(io.BytesIO(buffer.getvalue())), manifest


def _ready(block, *args):
    block.initialize(seed=3)
    block(*args)
    return block


LAYERS = {
    "rnn_ntc_bidirectional": (lambda: rnn.RNN(4, num_layers=2, layout="NTC", bidirectional=True), (2, 5, 3)),
    "lstm_projection": (lambda: rnn.LSTM(6, projection_size=2, num_layers=2), (5, 2, 3)),
    "lstm_clip": (lambda: rnn.LSTM(3, state_clip_min=-0.2, state_clip_max=0.2, state_clip_nan=True), (4, 2, 3)),
    "gru_float64": (lambda: rnn.GRU(3, dtype="float64"), (4, 2, 3)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layers_export_declaratively_and_reload_identically(name):
    make, shape = LAYERS[name]
    x = _x(*shape)
    layer = _ready(make(), x)
    loaded, manifest = _round_trip(layer)
    assert manifest.architecture.type == type(layer).__name__ and not manifest.architecture.children
    assert list(loaded.collect_params()) == list(layer.collect_params())
    assert loaded.get_config() == layer.get_config()
    states = layer.begin_state(x.shape[0 if layer._layout == "NTC" else 1])
    out, new = layer(x, states)
    out2, new2 = loaded(x, states)
    assert np.array_equal(out, out2) and all(np.array_equal(a, b) for a, b in zip(new, new2, strict=True))


def test_parameter_names_and_order_are_gluons():
    layer = rnn.LSTM(4, num_layers=2, bidirectional=True, projection_size=3, input_size=5)
    names = list(layer.collect_params())
    assert names[:5] == ["l0_i2h_weight", "l0_h2h_weight", "l0_i2h_bias", "l0_h2h_bias", "l0_h2r_weight"]
    assert names[5:10] == ["r0_i2h_weight", "r0_h2h_weight", "r0_i2h_bias", "r0_h2h_bias", "r0_h2r_weight"]
    shapes = {n: p.shape for n, p in layer.collect_params().items()}
    assert shapes["l0_i2h_weight"] == (16, 5) and shapes["l0_h2h_weight"] == (16, 3)
    assert shapes["l1_i2h_weight"] == (16, 6) and shapes["r1_h2r_weight"] == (3, 4)


def test_cells_in_containers_export_and_unroll_identically():
    stack = rnn.SequentialRNNCell()
    stack.add(rnn.LSTMCell(4))
    stack.add(rnn.DropoutCell(0.3))
    stack.add(rnn.ResidualCell(rnn.GRUCell(4)))
    stack.add(rnn.ZoneoutCell(rnn.RNNCell(4, activation="relu"), 0.2, 0.2))
    x = _x(2, 5, 3)
    stack.initialize(seed=1)
    stack.unroll(5, x)
    loaded, manifest = _round_trip(stack)
    assert list(manifest.architecture.children) == ["0", "1", "2", "3"]
    assert manifest.architecture.children["2"].children["base_cell"].type == "GRUCell"
    assert list(loaded.collect_params()) == list(stack.collect_params())
    assert "2.base_cell.i2h_weight" in loaded.collect_params()
    want, want_states = stack.unroll(5, x, merge_outputs=True)
    got, got_states = loaded.unroll(5, x, merge_outputs=True)
    assert np.array_equal(want, got) and all(np.array_equal(a, b) for a, b in zip(want_states, got_states, strict=True))
    step, states = loaded(x[:, 0], loaded.begin_state(2))
    assert step.shape == (2, 4) and [s.shape for s in states] == [(2, 4)] * 4


def test_bidirectional_cell_unrolls_and_refuses_a_step():
    cell = rnn.BidirectionalCell(rnn.GRUCell(3), rnn.GRUCell(3))
    cell.initialize(seed=0)
    outputs, states = cell.unroll(4, _x(2, 4, 5), merge_outputs=True)
    assert outputs.shape == (2, 4, 6) and [s.shape for s in states] == [(2, 3), (2, 3)]
    with pytest.raises(UsageError, match=r"a BidirectionalCell cannot be stepped; use unroll"):
        cell(_x(2, 5), cell.begin_state(2))
    loaded, _ = _round_trip(cell)
    x = _x(2, 4, 5)
    assert np.array_equal(loaded.unroll(4, x, merge_outputs=True)[0], cell.unroll(4, x, merge_outputs=True)[0])


def test_begin_state_follows_gluon():
    layer = rnn.LSTM(5, num_layers=3, bidirectional=True, projection_size=2)
    assert [s["shape"] for s in layer.state_info(4)] == [(6, 4, 2), (6, 4, 5)]
    zeros = layer.begin_state(batch_size=4, ctx="cpu(0)")
    assert [(s.shape, s.dtype, float(np.abs(s).sum())) for s in zeros] == [
        ((6, 4, 2), np.float32, 0.0), ((6, 4, 5), np.float32, 0.0)
    ]
    ones = rnn.GRU(3, dtype="float64").begin_state(2, func=np.ones)
    assert ones[0].dtype == np.float64 and np.all(ones[0] == 1)
    assert [s.shape for s in rnn.LSTMCell(7).begin_state(3)] == [(3, 7), (3, 7)]


def test_input_size_is_inferred_and_exported():
    layer = rnn.GRU(4, num_layers=2)
    layer.initialize()
    assert layer.l0_i2h_weight.shape == (12, 0) and layer.l1_i2h_weight.shape == (12, 4)
    with pytest.raises(modelpack.DeferredInitializationError):
        modelpack.export(layer, io.BytesIO())
    layer(_x(3, 2, 6))
    assert layer.get_config()["input_size"] == 6 and repr(layer) == "GRU(6 -> 4, TNC, num_layers=2)"


def test_dropout_between_layers_acts_only_while_training():
    layer = _ready(rnn.LSTM(8, num_layers=2, dropout=0.5), _x(4, 3, 2))
    x = _x(4, 3, 2)
    assert np.array_equal(layer(x), layer(x))
    with nn.training():
        first, second = layer(x), layer(x)
    assert not np.array_equal(first, second)
    single = _ready(rnn.LSTM(8, dropout=0.5), x)  # one layer: nothing between layers to drop
    with nn.training():
        assert np.array_equal(single(x), single(x))


def _numpy_lstm_with_clip(x, h, c, p, low, high, nan_to_low):
    """An independent single-layer LSTM stepper (gates i, f, g, o) with cuDNN's cell clipping."""
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    for t in range(x.shape[0]):
        gates = x[t] @ p["l0_i2h_weight"].T + p["l0_i2h_bias"] + h @ p["l0_h2h_weight"].T + p["l0_h2h_bias"]
        i, f, g, o = np.split(gates, 4, axis=-1)
        c = sig(f) * c + sig(i) * np.tanh(g)
        c = np.where(np.isnan(c), low, np.clip(c, low, high)) if nan_to_low else np.clip(c, low, high)
        h = sig(o) * np.tanh(c)
    return h, c


def test_state_clipping_bounds_the_cell_state_as_cudnn():
    layer = _ready(rnn.LSTM(4, state_clip_min=-0.3, state_clip_max=0.25, state_clip_nan=True), _x(6, 2, 3))
    for param in layer.collect_params().values():
        param.set_data((rng.normal(size=param.shape) * 2).astype(np.float32))
    x, h0, c0 = _x(6, 2, 3) * 3, _x(1, 2, 4), _x(1, 2, 4)
    c0[0, 0, 1] = np.nan
    _, (h, c) = layer(x, [h0, c0])
    params = {n: p.data().astype(np.float64) for n, p in layer.collect_params().items()}
    want_h, want_c = _numpy_lstm_with_clip(x.astype(np.float64), h0[0], c0[0], params, -0.3, 0.25, True)
    assert c.min() >= np.float32(-0.3) and c.max() <= np.float32(0.25) and not np.isnan(c).any()
    np.testing.assert_allclose(c[0], want_c, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h[0], want_h, rtol=1e-5, atol=1e-6)
    unclipped = rnn.LSTM(4, state_clip_min=-0.3, state_clip_max=0.25)
    unclipped.initialize()
    unclipped(x)
    unclipped.set_parameters({n: p.data() for n, p in layer.collect_params().items()})
    assert np.isnan(unclipped(x, [h0, c0])[1][1][0, 0, 1])  # without state_clip_nan NaN propagates


def test_zoneout_keeps_previous_values_only_while_training():
    cell = rnn.ZoneoutCell(rnn.GRUCell(6), zoneout_outputs=0.5, zoneout_states=0.5)
    base = cell.base_cell
    x = _x(3, 4, 2)
    cell.initialize(seed=2)
    out, _ = cell.unroll(4, x, merge_outputs=True)
    base_out, _ = base.unroll(4, x, merge_outputs=True)
    assert np.array_equal(out, base_out)
    with nn.training():
        zoned, _ = cell.unroll(4, x, merge_outputs=True)
    # each output element is the base cell's new value for that step or the previous output
    assert not np.array_equal(zoned, base_out)
    assert np.all((zoned[:, 0] == 0) | np.isclose(zoned[:, 0], base_out[:, 0]))


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: rnn.GRU(3)(_x(4, 3)), InputError, r"GRU expects a 3-D input \(TNC\), got shape \(4, 3\)"),
        (lambda: _ready(rnn.GRU(3), _x(4, 2, 3))(_x(4, 2, 3), [np.zeros((1, 3, 3), np.float32)]), InputError,
         r"invalid recurrent state shape: expecting \(1, 2, 3\), got \(1, 3, 3\)"),
        (lambda: _ready(rnn.LSTM(3), _x(4, 2, 3))(_x(4, 2, 3), [np.zeros((1, 2, 3), np.float32)]), InputError,
         r"LSTM expects 2 state array\(s\), got 1"),
        (lambda: _ready(rnn.RNN(3, use_sequence_length=True), _x(4, 2, 3), None, np.array([4, 4]))(_x(4, 2, 3)),
         InputError, r"RNN\(use_sequence_length=True\) needs sequence_length"),
        (lambda: rnn.GRU(3)(np.zeros((4, 2, 3), np.int64)), InputError, r"expects floating-point inputs"),
        (lambda: rnn.LSTM(3, layout="CTN"), UsageError, r"invalid layout 'CTN'; must be 'TNC' or 'NTC'"),
        (lambda: rnn.LSTM(3, state_clip_min=-1.0), UsageError, r"state_clip_min and state_clip_max go together"),
        (lambda: rnn.RNN(3, activation="sigmoid"), UsageError, r"RNN activation must be 'relu' or 'tanh'"),
        (lambda: _ready(rnn.LSTMCell(3), _x(2, 4))(_x(2, 4), [np.zeros((2, 3), np.float32)]), InputError,
         r"LSTMCell expects states of shapes \[\(2, 3\), \(2, 3\)\], got \[\(2, 3\)\]"),
        (lambda: rnn.GRUCell(3).unroll(5, _x(2, 4, 3)), InputError, r"unroll\(length=5\) got 4 steps along axis 1"),
    ],
    ids=["rank", "state_shape", "state_count", "lengths", "int_input", "layout", "clip_pair", "activation",
         "cell_states", "unroll_length"],
)
def test_refusals_name_what_is_wrong(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize(
    ("type_", "config", "message"),
    [
        ("GRU", {"hidden_size": 3, "layout": "CTN"}, "layout"),
        ("LSTM", {"hidden_size": 3, "state_clip_min": -1.0}, "state_clip_min and state_clip_max go together"),
        ("RNN", {"hidden_size": 0}, "hidden_size"),
        ("RNN", {"hidden_size": 3, "dropout": 1.0}, "dropout"),
        ("LSTMCell", {"hidden_size": 3, "activation": "os.system"}, "activation"),
        ("ZoneoutCell", {"zoneout_outputs": 1.5}, "zoneout_outputs"),
        ("GRU", {"hidden_size": 3, "mode": "lstm"}, "mode"),
    ],
)
def test_configs_refuse_what_the_layers_refuse(type_, config, message):
    with pytest.raises(ValidationError, match=message):
        registry.layer_type(type_).config.model_validate(config)
