"""Node patterns that mean one modelpack activation, rewritten before translation.

Opset 17 has no ``Gelu``: exporters (torch.onnx, ``to_onnx``) write ``x·(1 + erf(x/√2))/2`` as
five nodes (their products in any order), and SiLU as ``x·sigmoid(x)``. Each pattern found is
replaced by the one node (``Gelu``, or ``Mul`` of a ``Sigmoid`` kept as the ``Silu`` marker
below) whose translation is the layer; a pattern whose intermediate values are read elsewhere
is left alone (and then translated node by node, or refused at ``Erf``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper

__all__ = ["fuse_activations", "SILU"]

SILU = "Silu"  # not an ONNX operator: the marker this module writes for x·sigmoid(x)
_HALF_SQRT2, _SQRT2 = 0.7071067811865476, 1.4142135623730951


def fuse_activations(model: onnx.ModelProto, constants: dict[str, np.ndarray]) -> list[onnx.NodeProto]:
    """The graph's nodes with every GELU and SiLU pattern replaced by one node."""
    nodes = list(model.graph.node)
    values = dict(constants)
    for node in nodes:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = onnx.numpy_helper.to_array(node.attribute[0].t)
    readers = Counter(name for node in nodes for name in node.input)
    readers.update(output.name for output in model.graph.output)
    producer = {out: i for i, node in enumerate(nodes) for out in node.output}
    drop: set[int] = set()
    replace: dict[int, onnx.NodeProto] = {}

    def scalar(name: str, value: float) -> bool:
        array = values.get(name)
        return array is not None and array.size == 1 and abs(float(array.reshape(-1)[0]) - value) < 1e-6

    def only_reader(name: str) -> int | None:
        if readers[name] != 1:
            return None
        found = [i for i, node in enumerate(nodes) if name in node.input and i not in drop]
        return found[0] if found else None

    def other(node: onnx.NodeProto, name: str) -> str | None:
        rest = [n for n in node.input if n != name]
        return rest[0] if len(node.input) == 2 and len(rest) == 1 else None

    for index, node in enumerate(nodes):
        if node.op_type == "Erf" and node.input[0] in producer:
            scaled = nodes[producer[node.input[0]]]
            x = _gelu_input(scaled, scalar)
            add_at = only_reader(node.output[0])
            if x is None or add_at is None or readers[node.input[0]] != 1:
                continue
            add = nodes[add_at]
            if add.op_type != "Add" or not scalar(other(add, node.output[0]) or "", 1.0):
                continue
            # x·(1 + erf)·0.5 in any order: torch.onnx's TorchScript exporter multiplies by x
            # first, its dynamo exporter by 0.5 first, and x·0.5 may come before both.
            product = _gelu_product(nodes, add.output[0], x, producer, readers, only_reader, other, scalar)
            if product is None:
                continue
            last_at, parts = product
            drop.update({producer[node.input[0]], index, add_at, *parts})
            last = nodes[last_at]
            replace[last_at] = helper.make_node("Gelu", [x], list(last.output), name=last.name or "gelu")
        elif node.op_type == "Sigmoid":
            mul_at = only_reader(node.output[0])
            if (
                mul_at is not None
                and nodes[mul_at].op_type == "Mul"
                and other(nodes[mul_at], node.output[0]) == node.input[0]
            ):
                drop.add(index)
                replace[mul_at] = helper.make_node(
                    SILU, [node.input[0]], list(nodes[mul_at].output), name=nodes[mul_at].name or "silu"
                )
    return [replace.get(i, node) for i, node in enumerate(nodes) if i not in drop]


def _gelu_product(
    nodes: list[onnx.NodeProto], added: str, x: str, producer: dict[str, int], readers: Counter[str],
    only_reader: Callable[[str], int | None], other: Callable[[onnx.NodeProto, str], str | None],
    scalar: Callable[[str, float], bool],
) -> tuple[int, set[int]] | None:
    """Where ``added`` (1 + erf(x/√2)) is multiplied by x and by 0.5, each value read only by
    the next step: the last product's node and the earlier ones' (to drop); else None."""
    first_at = only_reader(added)
    if first_at is None or nodes[first_at].op_type != "Mul":
        return None
    factor = other(nodes[first_at], added)
    if factor is None:
        return None
    if factor in producer and readers[factor] == 1:  # (x·0.5)·(1 + erf)
        halved_at = producer[factor]
        halved = nodes[halved_at]
        if halved.op_type == "Mul" and other(halved, x) is not None and scalar(other(halved, x) or "", 0.5):
            return first_at, {halved_at}
    if factor == x:  # (x·(1 + erf))·0.5
        def completes(name: str) -> bool:
            return scalar(name, 0.5)
    elif scalar(factor, 0.5):  # (0.5·(1 + erf))·x
        def completes(name: str) -> bool:
            return name == x
    else:
        return None
    second_at = only_reader(nodes[first_at].output[0])
    if second_at is None or nodes[second_at].op_type != "Mul":
        return None
    last = other(nodes[second_at], nodes[first_at].output[0])
    return (second_at, {first_at}) if last is not None and completes(last) else None


def _gelu_input(scaled: onnx.NodeProto, scalar: Callable[[str, float], bool]) -> str | None:
    """``x`` when ``scaled`` is x/√2 (``Div``) or x·(1/√2) (``Mul``, either order)."""
    if scaled.op_type == "Div" and scalar(scaled.input[1], _SQRT2):
        return scaled.input[0]
    if scaled.op_type == "Mul":
        for a, b in ((0, 1), (1, 0)):
            if scalar(scaled.input[b], _HALF_SQRT2):
                return scaled.input[a]
    return None
