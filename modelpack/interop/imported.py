"""An imported graph as a modelpack model, the same way for every translator (MXNet's symbol
files, ONNX): a ``Sequential`` when its nodes are a plain chain of layers, else a
``GraphBlock`` that owns the translated layers, parameters and constants; and the safe,
unique names both give the pieces (``safe_name``)."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import ValidationError

from ..errors import UnsupportedBlockError
from ..format.schema import describe_errors
from ..nn.block import Block
from ..nn.compose import Sequential
from ..nn.graph import GraphBlock
from ..nn.graph_spec import GraphSpec

__all__ = ["as_sequential", "as_graph_block", "safe_name", "TRANSLATION_ERRORS"]

# The bare errors a translator's code raises where a file breaks what its operator's schema
# promises (a required attribute missing, a list too short, an axis past the rank): each
# translator refuses them as a FormatError naming the node, whatever the operator.
TRANSLATION_ERRORS = (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError, OverflowError)

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def safe_name(name: str, taken: Collection[str], limit: int = 63, *, trim: bool = False) -> str:
    """An identifier made from ``name`` (no dots: dots separate structured names), at most
    ``limit`` characters, not in ``taken`` (``_2``, ``_3``... added). ``trim`` is for ONNX's
    path-like names (``/conv1/Conv``): outer underscores dropped, a leading digit after an ``n``
    rather than an ``_``."""
    base = _UNSAFE.sub("_", name)[:limit]
    base = (base.strip("_") if trim else base) or "x"
    if not (base[0].isalpha() or base[0] == "_"):
        base = (("n" if trim else "_") + base)[:limit]
    candidate, counter = base, 1
    while candidate in taken:
        counter += 1
        suffix = f"_{counter}"
        candidate = base[: limit - len(suffix)] + suffix
    return candidate


def as_sequential(
    inputs: Sequence[str],
    nodes: Sequence[dict[str, Any]],
    outputs: Sequence[str],
    children: Mapping[str, Block],
) -> Sequential | None:
    """The layers in a ``Sequential`` when the nodes call each child once, in a chain from the
    one input to the one output; else None."""
    if len(inputs) != 1 or len(outputs) != 1 or not nodes or len(children) != len(nodes):
        return None
    previous = inputs[0]
    for node in nodes:
        if node["op"] != "layer" or node["inputs"] != [previous]:
            return None
        previous = node["outputs"][0]
    if previous != outputs[0]:
        return None
    net = Sequential()
    for node in nodes:
        name = node["attrs"]["block"]
        net.register_child(children[name], name)
    return net


def as_graph_block(
    source_class: str,
    inputs: list[dict[str, Any]],
    nodes: list[dict[str, Any]],
    outputs: list[str],
    children: Mapping[str, Block],
    params: Mapping[str, np.ndarray],
    constants: list[np.ndarray] | None = None,
    *,
    where: str,
) -> GraphBlock:
    """A ``GraphBlock`` running the nodes (one output, or a tuple of them), owning the children,
    the graph's own parameters (set to ``params``) and its ``constants``; every name the graph
    uses is checked to exist. A graph the format's rules refuse (a translation this one cannot
    express yet) is an ``UnsupportedBlockError`` naming ``where`` (the file)."""
    try:
        spec = GraphSpec.model_validate({
            "inputs": inputs,
            "nodes": nodes,
            "outputs": {"kind": "single" if len(outputs) == 1 else "tuple", "values": outputs},
        })
    except ValidationError as exc:
        raise UnsupportedBlockError(
            f"{where}: its {source_class} graph translates to one modelpack cannot hold: "
            f"{describe_errors(exc, 'graph')}"
        ) from None
    block = GraphBlock(
        source_class=source_class,
        parameters={
            name: {"shape": list(array.shape), "dtype": array.dtype.name, "trainable": True}
            for name, array in params.items()
        },
        constants=len(constants or []),
        graph=spec,
    )
    for name, child in children.items():
        block.register_child(child, name)
    for name, array in params.items():
        block.params[name].set_data(array)
    if constants:
        block.set_constants(constants)
    block.check_references()
    return block

