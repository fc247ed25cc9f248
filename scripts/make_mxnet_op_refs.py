"""Write ``tests/data/mxnet-ops/``: what MXNet 1.9.1's ``npx`` operators (and the sequence
operators its recurrent cells use) return on seeded inputs, so modelpack's ops of the same
names are checked against MXNet itself. Run in the MXNet environment (see
``make_mxnet_refs.py``):

    /tmp/mxref/bin/python scripts/make_mxnet_op_refs.py

``cases.json`` lists each case: the modelpack op, its numpy-style call (the inputs by name and
the keyword arguments), and ``ops.npz`` holds the inputs (``<case>/in/<name>``) and MXNet's
result (``<case>/out/<i>``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as onp
from mxnet import nd, np, npx

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "mxnet-ops"
RNG = onp.random.default_rng(20261202)


def normal(*shape: int) -> onp.ndarray:
    return RNG.standard_normal(shape).astype(onp.float32)


def main() -> int:
    if mx.__version__ != "1.9.1":
        print(f"expected mxnet 1.9.1, found {mx.__version__}", file=sys.stderr)
        return 1
    npx.set_np()
    OUT.mkdir(parents=True, exist_ok=True)
    cases: list[dict[str, Any]] = []
    arrays: dict[str, onp.ndarray] = {}

    def add(name: str, op: str, inputs: dict[str, onp.ndarray], kwargs: dict[str, Any], result: Any) -> None:
        outs = result if isinstance(result, (list, tuple)) else [result]
        for key, value in inputs.items():
            arrays[f"{name}/in/{key}"] = value
        for i, value in enumerate(outs):
            arrays[f"{name}/out/{i}"] = value.asnumpy()
        cases.append({"name": name, "op": op, "inputs": list(inputs), "kwargs": kwargs})

    x3 = normal(2, 3, 5)
    length = onp.array([[1, 5, 3], [0, 2, 4]], dtype=onp.int32)
    for axis, temperature in ((-1, None), (1, 2.0)):
        add(
            f"softmax_axis{axis}",
            "softmax",
            {"data": x3},
            {"axis": axis, "temperature": temperature},
            npx.softmax(np.array(x3), axis=axis, temperature=temperature),
        )
    add(
        "softmax_length",
        "softmax",
        {"data": x3, "length": length},
        {"axis": -1, "use_length": True},
        npx.softmax(np.array(x3), np.array(length), axis=-1, use_length=True),
    )
    add("log_softmax", "log_softmax", {"data": x3}, {"axis": 0}, npx.log_softmax(np.array(x3), axis=0))
    a, b = normal(3, 2, 4), normal(3, 4, 5)
    add("batch_dot", "batch_dot", {"a": a, "b": b}, {}, npx.batch_dot(np.array(a), np.array(b)))
    bt = normal(3, 5, 4)
    add(
        "batch_dot_transposed",
        "batch_dot",
        {"a": a.transpose(0, 2, 1).copy(), "b": bt},
        {"transpose_a": True, "transpose_b": True},
        npx.batch_dot(
            np.array(a.transpose(0, 2, 1).copy()), np.array(bt), transpose_a=True, transpose_b=True
        ),
    )
    seq = normal(4, 3, 2)
    lens = onp.array([2, 4, 1], dtype=onp.float32)
    add(
        "sequence_mask_axis0",
        "sequence_mask",
        {"data": seq, "sequence_length": lens},
        {"use_sequence_length": True, "value": -7.0, "axis": 0},
        npx.sequence_mask(np.array(seq), np.array(lens), use_sequence_length=True, value=-7.0, axis=0),
    )
    batch_major = normal(3, 4, 2)
    add(
        "sequence_mask_axis1",
        "sequence_mask",
        {"data": batch_major, "sequence_length": lens},
        {"use_sequence_length": True, "axis": 1},
        npx.sequence_mask(np.array(batch_major), np.array(lens), use_sequence_length=True, axis=1),
    )
    npx.reset_np()
    add(
        "sequence_last",
        "sequence_last",
        {"data": seq, "sequence_length": lens},
        {"use_sequence_length": True},
        nd.SequenceLast(nd.array(seq), nd.array(lens), use_sequence_length=True),
    )
    add(
        "sequence_last_axis1",
        "sequence_last",
        {"data": batch_major, "sequence_length": lens},
        {"use_sequence_length": True, "axis": 1},
        nd.SequenceLast(nd.array(batch_major), nd.array(lens), use_sequence_length=True, axis=1),
    )
    add(
        "sequence_reverse",
        "sequence_reverse",
        {"data": seq, "sequence_length": lens},
        {"use_sequence_length": True},
        nd.SequenceReverse(nd.array(seq), nd.array(lens), use_sequence_length=True),
    )
    npx.set_np()
    idx = onp.array([[0, 3, 5], [2, -1, 1]], dtype=onp.float32)
    add(
        "one_hot",
        "one_hot",
        {"indices": idx},
        {"depth": 4, "on_value": 2.0, "off_value": -1.0},
        npx.one_hot(np.array(idx), 4, on_value=2.0, off_value=-1.0),
    )
    data = normal(3, 4)
    picks = onp.array([1, 7, -2], dtype=onp.float32)
    for mode in ("clip", "wrap"):
        add(
            f"pick_{mode}",
            "pick",
            {"data": data, "index": picks},
            {"axis": 1, "mode": mode},
            npx.pick(np.array(data), np.array(picks), axis=1, mode=mode),
        )
    add(
        "pick_axis0_keepdims",
        "pick",
        {"data": data, "index": onp.array([0, 2, 1, 2], dtype=onp.float32)},
        {"axis": 0, "keepdims": True},
        npx.pick(np.array(data), np.array([0, 2, 1, 2]), axis=0, keepdims=True),
    )
    ties = onp.array([[1, 3, 3, 2, 0], [5, 1, 5, 5, 2]], dtype=onp.float32)
    for ret_typ, ascend in (("indices", False), ("value", False), ("both", True), ("mask", False)):
        add(
            f"topk_{ret_typ}",
            "topk",
            {"data": ties},
            {"k": 2, "ret_typ": ret_typ, "is_ascend": ascend},
            npx.topk(np.array(ties), k=2, ret_typ=ret_typ, is_ascend=ascend),
        )
    add(
        "topk_axis0",
        "topk",
        {"data": data},
        {"axis": 0, "k": 2, "dtype": "int32"},
        npx.topk(np.array(data), axis=0, k=2, dtype="int32"),
    )
    gamma, beta = normal(5), normal(5)
    add(
        "layer_norm",
        "layer_norm",
        {"data": x3, "gamma": gamma, "beta": beta},
        {"eps": 1e-3},
        npx.layer_norm(np.array(x3), np.array(gamma), np.array(beta), eps=1e-3),
    )
    weight = normal(6, 3)
    tokens = onp.array([[0, 5], [3, 3]], dtype=onp.float32)
    add(
        "embedding",
        "embedding",
        {"data": tokens, "weight": weight},
        {"input_dim": 6, "output_dim": 3},
        npx.embedding(np.array(tokens), np.array(weight), input_dim=6, output_dim=3),
    )
    w, bias = normal(4, 15), normal(4)
    add(
        "fully_connected",
        "fully_connected",
        {"x": x3, "weight": w, "bias": bias},
        {"num_hidden": 4},
        npx.fully_connected(np.array(x3), np.array(w), np.array(bias), num_hidden=4),
    )
    w5 = normal(4, 5)
    add(
        "fully_connected_last_axis",
        "fully_connected",
        {"x": x3, "weight": w5},
        {"num_hidden": 4, "no_bias": True, "flatten": False},
        npx.fully_connected(np.array(x3), np.array(w5), None, num_hidden=4, no_bias=True, flatten=False),
    )
    add(
        "smooth_l1",
        "smooth_l1",
        {"data": x3 * 2},
        {"scalar": 1.5},
        npx.smooth_l1(np.array(x3 * 2), scalar=1.5),
    )
    add("dropout_inference", "dropout", {"data": x3}, {"p": 0.5}, npx.dropout(np.array(x3), p=0.5))
    add("batch_flatten", "flatten", {"x": x3}, {}, npx.batch_flatten(np.array(x3)))
    onp.savez(OUT / "ops.npz", **arrays)
    (OUT / "cases.json").write_text(json.dumps({"mxnet": mx.__version__, "cases": cases}, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
