"""``modelpack.nn.rnn`` against MXNet 1.9.1 itself: Gluon's parameter files load into the layers
and cells, and the outputs and states match what MXNet computed (no MXNet needed).

The files are ``tests/data/mxnet-rnn/`` (``scripts/make_mxnet_rnn_refs.py``): each case is a
Gluon layer or cell with seeded weights saved by ``save_parameters`` — so fused layers carry
Gluon's ``_unfused.<layer>.<cell>`` names — its inputs, and MXNet's outputs in inference mode.
Tolerance: rtol 1e-5, atol 1e-6 (float32; measured differences are at most 2.4e-7, a few
roundings of the same products summed in another order).

MXNet's CPU kernel ignores ``sequence_length`` (its output equals the full-length run, checked
below); modelpack follows the documented cuDNN semantics, checked against PyTorch's packed
sequences in ``test_rnn_torch.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modelpack import nn
from modelpack.format.architecture import build
from modelpack.format.schema import LayerNode

DATA = Path(__file__).resolve().parents[1] / "data" / "mxnet-rnn"
CASES = {case["name"]: case for case in json.loads((DATA / "cases.json").read_text(encoding="utf-8"))["cases"]}
RTOL, ATOL = 1e-5, 1e-6


def _arrays(name: str, prefix: str) -> list[np.ndarray]:
    with np.load(DATA / f"{name}.npz") as data:
        keys = sorted(k for k in data.files if k.startswith(prefix))
        return [data[k] for k in keys]


def _run(name: str, *, ignore_lengths: bool = False):
    case = CASES[name]
    architecture = json.loads(json.dumps(case["architecture"]))
    if ignore_lengths:
        architecture["config"]["use_sequence_length"] = False
    net = build(LayerNode.model_validate(architecture))
    net.load_parameters(DATA / f"{name}.params")
    call = case["call"]
    (x,) = _arrays(name, "in/x")
    states = _arrays(name, "in/state")
    lengths = None if ignore_lengths else next(iter(_arrays(name, "in/length")), None)
    if call["kind"] == "layer":
        args = [x] + ([states] if call["states"] else []) + ([lengths] if lengths is not None else [])
        result = net(*args)
        outputs, new_states = ([result], []) if not call["states"] else ([result[0]], result[1])
    else:
        merged, new_states = net.unroll(
            call["steps"], x, states, layout=call["layout"], merge_outputs=call["merge"], valid_length=lengths
        )
        outputs = merged if isinstance(merged, list) else [merged]
    return outputs, list(new_states)


def _check(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for ours, theirs in zip(got, want, strict=True):
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
        np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", sorted(n for n in CASES if "sequence_length" not in n))
def test_outputs_and_states_match_mxnet(name):
    outputs, states = _run(name)
    _check(outputs, _arrays(name, "out/output"))
    _check(states, _arrays(name, "out/state"))


@pytest.mark.parametrize("name", sorted(n for n in CASES if "sequence_length" in n))
def test_mxnet_cpu_ignores_sequence_length(name):
    outputs, states = _run(name, ignore_lengths=True)
    _check(outputs, _arrays(name, "out/output"))
    _check(states, _arrays(name, "out/state"))
    masked, _ = _run(name)  # ours masks: what cuDNN and torch's packed sequences do
    lengths = _arrays(name, "in/length")[0].astype(int)
    assert all(np.all(masked[0][t, b] == 0) for b, n in enumerate(lengths) for t in range(n, masked[0].shape[0]))


def test_gluon_names_of_a_child_layer_load_bitwise():
    class Wrap(nn.Block):
        def __init__(self):
            super().__init__()
            self.rnn = nn.rnn.GRU(3, bidirectional=True, input_size=2)

    net = Wrap()
    net.load_parameters(DATA / "wrapped_gru.params")
    with np.load(DATA / "wrapped_gru.npz") as expected:
        assert sorted(k[len("param/"):] for k in expected.files) == sorted(net.rnn.params)
        for name, param in net.rnn.params.items():
            want = expected[f"param/{name}"]
            assert param.data().dtype == want.dtype and param.data().tobytes() == want.tobytes()


def test_every_recurrent_type_has_an_mxnet_case():
    covered = set()

    def walk(node):
        covered.add(node["type"])
        for child in node.get("children", {}).values():
            walk(child)

    for case in CASES.values():
        walk(case["architecture"])
    assert covered == {
        "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "SequentialRNNCell", "BidirectionalCell",
        "DropoutCell", "ResidualCell", "ZoneoutCell",
    }
