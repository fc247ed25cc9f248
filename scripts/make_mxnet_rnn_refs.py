"""Write ``tests/data/mxnet-rnn/``: Gluon 1.9.1's recurrent layers and cells, their parameter
files and the outputs MXNet computed, so ``modelpack.nn.rnn`` is checked against MXNet itself
(GRU and LSTM gate order, projections, sequence lengths, cell wrappers) without MXNet.

Run in the separate MXNet environment (see ``make_mxnet_refs.py``):

    /tmp/mxref/bin/python scripts/make_mxnet_rnn_refs.py

Each case ``<name>`` has ``<name>.params`` (Gluon's ``save_parameters``, so recurrent layers
use Gluon's ``_unfused.<layer>.<cell>`` names), ``<name>.npz`` (inputs ``in/...`` and MXNet's
outputs ``out/...``, inference mode) and an entry in ``cases.json``: the modelpack
architecture (type, config, children) and how the block was called. All values are seeded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as onp
from mxnet import gluon, nd
from mxnet.gluon import rnn
from mxnet_reference_files import start

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "mxnet-rnn"
RNG = onp.random.default_rng(20261201)


def normal(*shape: int, scale: float = 1.0) -> onp.ndarray:
    return (RNG.standard_normal(shape) * scale).astype(onp.float32)


def fill(block: gluon.Block) -> None:
    """Seeded weights, scaled so the gates are neither saturated nor flat."""
    for param in block.collect_params().values():
        param.set_data(nd.array(normal(*param.shape, scale=0.5)))


def node(type_: str, config: dict[str, Any], **children: dict[str, Any]) -> dict[str, Any]:
    return {"type": type_, "config": config, "children": children}


class Wrap(gluon.Block):
    """A parent block, so the file's names carry a prefix: ``rnn._unfused.0.i2h_weight``."""

    def __init__(self, layer: gluon.Block) -> None:
        super().__init__()
        self.rnn = layer

    def forward(self, x: Any, states: Any) -> Any:
        return self.rnn(x, states)


def layer_cases() -> list[tuple[str, gluon.Block, dict[str, Any], dict[str, Any]]]:
    """(name, MXNet block, modelpack architecture, call) for the fused layers."""
    cases = []

    def add(
        name: str,
        block: gluon.Block,
        arch: dict[str, Any],
        *,
        batch: int = 2,
        steps: int = 4,
        inputs: int = 3,
        states: bool = True,
        lengths: list[int] | None = None,
    ) -> None:
        layout = arch["config"].get("layout", "TNC")
        cases.append(
            (
                name,
                block,
                arch,
                {
                    "kind": "layer",
                    "layout": layout,
                    "batch": batch,
                    "steps": steps,
                    "inputs": inputs,
                    "states": states,
                    "lengths": lengths,
                },
            )
        )

    add(
        "rnn_relu_2layers",
        rnn.RNN(5, num_layers=2, input_size=3),
        node("RNN", {"hidden_size": 5, "num_layers": 2, "input_size": 3}),
    )
    add(
        "rnn_tanh_bidirectional_ntc",
        rnn.RNN(4, activation="tanh", bidirectional=True, layout="NTC", input_size=3),
        node(
            "RNN",
            {"hidden_size": 4, "activation": "tanh", "bidirectional": True, "layout": "NTC", "input_size": 3},
        ),
    )
    add(
        "lstm_2layers_bidirectional",
        rnn.LSTM(5, num_layers=2, bidirectional=True, input_size=3),
        node("LSTM", {"hidden_size": 5, "num_layers": 2, "bidirectional": True, "input_size": 3}),
    )
    add(
        "lstm_projection",
        rnn.LSTM(6, num_layers=2, projection_size=3, input_size=4),
        node("LSTM", {"hidden_size": 6, "num_layers": 2, "projection_size": 3, "input_size": 4}),
        inputs=4,
    )
    add(
        "lstm_no_states",
        rnn.LSTM(3, input_size=3),
        node("LSTM", {"hidden_size": 3, "input_size": 3}),
        states=False,
    )
    add(
        "gru_2layers_ntc",
        rnn.GRU(5, num_layers=2, layout="NTC", input_size=3),
        node("GRU", {"hidden_size": 5, "num_layers": 2, "layout": "NTC", "input_size": 3}),
        batch=3,
    )
    add(
        "gru_bidirectional",
        rnn.GRU(4, bidirectional=True, input_size=3),
        node("GRU", {"hidden_size": 4, "bidirectional": True, "input_size": 3}),
    )
    add(
        "gru_sequence_length",
        rnn.GRU(4, bidirectional=True, use_sequence_length=True, input_size=3),
        node("GRU", {"hidden_size": 4, "bidirectional": True, "use_sequence_length": True, "input_size": 3}),
        batch=3,
        lengths=[2, 4, 1],
    )
    add(
        "lstm_sequence_length",
        rnn.LSTM(4, num_layers=2, use_sequence_length=True, input_size=3),
        node("LSTM", {"hidden_size": 4, "num_layers": 2, "use_sequence_length": True, "input_size": 3}),
        batch=3,
        lengths=[3, 1, 4],
    )
    return cases


def cell_cases() -> list[tuple[str, gluon.Block, dict[str, Any], dict[str, Any]]]:
    """(name, MXNet cell, modelpack architecture, unroll options) for the cells."""
    cases = []

    def add(
        name: str,
        block: gluon.Block,
        arch: dict[str, Any],
        *,
        layout: str = "NTC",
        batch: int = 2,
        steps: int = 4,
        inputs: int = 3,
        lengths: list[int] | None = None,
        merge: bool = True,
    ) -> None:
        cases.append(
            (
                name,
                block,
                arch,
                {
                    "kind": "unroll",
                    "layout": layout,
                    "batch": batch,
                    "steps": steps,
                    "inputs": inputs,
                    "lengths": lengths,
                    "merge": merge,
                },
            )
        )

    add(
        "rnncell_relu",
        rnn.RNNCell(4, activation="relu", input_size=3),
        node("RNNCell", {"hidden_size": 4, "activation": "relu", "input_size": 3}),
    )
    add(
        "lstmcell_valid_length",
        rnn.LSTMCell(4, input_size=3),
        node("LSTMCell", {"hidden_size": 4, "input_size": 3}),
        lengths=[4, 2],
    )
    add(
        "grucell_tnc_list",
        rnn.GRUCell(5, input_size=3),
        node("GRUCell", {"hidden_size": 5, "input_size": 3}),
        layout="TNC",
        merge=False,
    )
    stack = rnn.SequentialRNNCell()
    stack.add(rnn.LSTMCell(4, input_size=3))
    stack.add(rnn.DropoutCell(0.5))
    stack.add(rnn.ResidualCell(rnn.GRUCell(4, input_size=4)))
    add(
        "sequential_dropout_residual",
        stack,
        node(
            "SequentialRNNCell",
            {},
            **{
                "0": node("LSTMCell", {"hidden_size": 4, "input_size": 3}),
                "1": node("DropoutCell", {"rate": 0.5}),
                "2": node("ResidualCell", {}, base_cell=node("GRUCell", {"hidden_size": 4, "input_size": 4})),
            },
        ),
        layout="TNC",
    )
    add(
        "bidirectional_valid_length",
        rnn.BidirectionalCell(rnn.GRUCell(3, input_size=2), rnn.GRUCell(3, input_size=2)),
        node(
            "BidirectionalCell",
            {},
            l_cell=node("GRUCell", {"hidden_size": 3, "input_size": 2}),
            r_cell=node("GRUCell", {"hidden_size": 3, "input_size": 2}),
        ),
        inputs=2,
        batch=3,
        lengths=[4, 1, 3],
    )
    add(
        "zoneout_lstmcell",
        rnn.ZoneoutCell(rnn.LSTMCell(3, input_size=2), 0.3, 0.2),
        node(
            "ZoneoutCell",
            {"zoneout_outputs": 0.3, "zoneout_states": 0.2},
            base_cell=node("LSTMCell", {"hidden_size": 3, "input_size": 2}),
        ),
        inputs=2,
    )
    return cases


def run_layer(name: str, block: gluon.Block, call: dict[str, Any]) -> dict[str, onp.ndarray]:
    t, n = call["steps"], call["batch"]
    shape = (t, n, call["inputs"]) if call["layout"] == "TNC" else (n, t, call["inputs"])
    arrays = {"in/x": normal(*shape)}
    args = [nd.array(arrays["in/x"])]
    if call["states"]:
        states = [normal(*s.shape) for s in block.begin_state(n)]
        arrays.update({f"in/state{i}": s for i, s in enumerate(states)})
        args.append([nd.array(s) for s in states])
    if call["lengths"] is not None:
        arrays["in/length"] = onp.array(call["lengths"], dtype=onp.float32)
        args.append(nd.array(arrays["in/length"]))
    result = block(*args)
    out, new = (result, []) if not call["states"] else result
    arrays["out/output"] = out.asnumpy()
    arrays.update({f"out/state{i}": s.asnumpy() for i, s in enumerate(new)})
    return arrays


def run_unroll(name: str, cell: gluon.Block, call: dict[str, Any]) -> dict[str, onp.ndarray]:
    t, n = call["steps"], call["batch"]
    shape = (t, n, call["inputs"]) if call["layout"] == "TNC" else (n, t, call["inputs"])
    arrays = {"in/x": normal(*shape)}
    states = [normal(*info["shape"]) for info in cell.state_info(n)]
    arrays.update({f"in/state{i}": s for i, s in enumerate(states)})
    valid = None
    if call["lengths"] is not None:
        arrays["in/length"] = onp.array(call["lengths"], dtype=onp.float32)
        valid = nd.array(arrays["in/length"])
    outputs, new = cell.unroll(
        t,
        nd.array(arrays["in/x"]),
        [nd.array(s) for s in states],
        layout=call["layout"],
        merge_outputs=call["merge"],
        valid_length=valid,
    )
    if isinstance(outputs, list):
        arrays.update({f"out/output{i}": o.asnumpy() for i, o in enumerate(outputs)})
    else:
        arrays["out/output"] = outputs.asnumpy()
    arrays.update({f"out/state{i}": s.asnumpy() for i, s in enumerate(new)})
    return arrays


def main() -> int:
    if not start(OUT):
        return 1
    index = []
    for name, block, arch, call in layer_cases() + cell_cases():
        block.initialize()
        fill(block)
        arrays = run_layer(name, block, call) if call["kind"] == "layer" else run_unroll(name, block, call)
        block.save_parameters(str(OUT / f"{name}.params"))
        onp.savez(OUT / f"{name}.npz", **arrays)
        index.append({"name": name, "architecture": arch, "call": call})
    # A parent block: the file's names carry its child's name (rnn._unfused.0.l_cell.i2h_weight).
    wrapped = Wrap(rnn.GRU(3, bidirectional=True, input_size=2))
    wrapped.initialize()
    fill(wrapped)
    wrapped.save_parameters(str(OUT / "wrapped_gru.params"))
    onp.savez(
        OUT / "wrapped_gru.npz",
        **{
            f"param/{k[len(wrapped.rnn.prefix) :]}": v.data().asnumpy() for k, v in wrapped.rnn.params.items()
        },
    )
    document = {"mxnet": mx.__version__, "cases": index}
    (OUT / "cases.json").write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(index)} cases, {total} bytes, to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
