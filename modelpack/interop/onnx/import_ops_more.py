"""ONNX operators whose options modelpack's ops take as attributes: ``ArgMax``/``ArgMin``,
``CumSum``, ``Clip``, ``Tile`` and ``Split`` (the last four read constant inputs), in
``MORE_OPERATORS`` (merged into ``import_ops.OPERATORS``). What numpy's functions do not do
(the last extremum, exclusive or reversed sums) is refused naming the option.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from .importer import Graph, Translator, constant_input, has_input

__all__ = ["MORE_OPERATORS"]


def _arg(op: str) -> Translator:
    def emit(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
        if attrs.get("select_last_index", 0):
            raise g.fail(node, "select_last_index=1 (modelpack gives the first extremum)")
        g.op(node, op, [g.value(node.input[0], node)], axis=int(attrs.get("axis", 0)),
             keepdims=bool(attrs.get("keepdims", 1)))

    return emit


def _cumsum(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    if attrs.get("exclusive", 0) or attrs.get("reverse", 0):
        raise g.fail(node, "exclusive or reverse sums (modelpack's cumsum is numpy's)")
    axis = int(constant_input(g, node, 1, "axis").reshape(-1)[0])
    g.op(node, "cumsum", [g.value(node.input[0], node)], axis=axis)


def _clip(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    bounds = [
        float(constant_input(g, node, i, what).reshape(-1)[0]) if has_input(node, i) else None
        for i, what in ((1, "min"), (2, "max"))
    ]
    g.op(node, "clip", [g.value(node.input[0], node)], a_min=bounds[0], a_max=bounds[1])


def _tile(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    reps = [int(r) for r in constant_input(g, node, 1, "repeats")]
    g.op(node, "tile", [g.value(node.input[0], node)], reps=reps)


def _split(g: Graph, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """Split with constant piece sizes (opset 13–17 give them as an input)."""
    if not has_input(node, 1):
        raise g.fail(node, "no split sizes (equal pieces of an unknown length)")
    sizes = [int(s) for s in constant_input(g, node, 1, "split")]
    cuts = [int(c) for c in np.cumsum(sizes)[:-1]]
    g._add("split", [g.value(node.input[0], node)],
           {"sections": None, "indices": cuts, "axis": int(attrs.get("axis", 0))}, outputs=len(sizes))
    for name, value in zip(node.output, g.nodes[-1]["outputs"], strict=True):
        g.values[name] = value


MORE_OPERATORS: dict[str, Translator] = {
    "ArgMax": _arg("argmax"),
    "ArgMin": _arg("argmin"),
    "CumSum": _cumsum,
    "Clip": _clip,
    "Tile": _tile,
    "Split": _split,
}
