"""Assemble a converted model: child layers plus graph nodes, finished as a ``Sequential`` when
the symbol is a plain chain of layers, else as a ``GraphBlock``.

A graph's inputs need a rank (and fixed sizes where a layer fixes them). Unless the caller
gives ``input_shapes``, they are inferred from the first layer that fixes them (Dense: 2-D,
Conv2D: 4-D, Embedding: 2-D); every size not fixed by a weight is dynamic (``batch``,
``height``, ...). Some MXNet operators (reshape codes that copy input sizes, swapaxes) need
the sizes of intermediate values: the partial graph is run twice on zeros, with every dynamic
size set to two different values, and a size that tracks one input size becomes its name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import UnsupportedBlockError, UsageError
from ...nn import structure
from ...nn.block import Block
from ...nn.graph import GraphBlock
from ..imported import as_graph_block, as_sequential, safe_name

__all__ = ["Builder", "InputShape", "InputShapesNeeded"]

InputShape = Sequence["int | str | None"]


class InputShapesNeeded(UsageError):
    """An input's rank cannot be inferred while a node is lowered (its shape probe): the
    caller's to give (``input_shapes``), so ``lowering.lower`` passes it on as it is, where a
    layer's refusal of the file's attributes becomes a FormatError naming the node."""


@dataclass
class _Input:
    value: str
    shape: list[int | str] | None  # None: not known yet (inferred when first needed)


class Builder:
    """Collects the converted model's pieces; ``finish`` decides Sequential or GraphBlock."""

    def __init__(self, source: str, infer_shape: Callable[[str], list[int | str] | None]) -> None:
        self.source = source
        self._infer_shape = infer_shape  # MXNet input name -> shape guessed from its consumers
        self.inputs: dict[str, _Input] = {}
        self.children: dict[str, Block] = {}
        self.nodes: list[dict[str, Any]] = []
        self.own_params: dict[str, np.ndarray] = {}
        self._values: set[str] = set()

    # -- adding pieces ----------------------------------------------------------------------
    def _new_value(self, hint: str = "v") -> str:
        name = safe_name(hint, self._values)
        self._values.add(name)
        return name

    def add_input(self, mx_name: str, shape: InputShape | None) -> str:
        value = self._new_value(mx_name)
        self.inputs[mx_name] = _Input(value, None if shape is None else _named_dims(mx_name, shape))
        return value

    def layer(self, hint: str, block: Block, x: str) -> str:
        name = safe_name(hint, self.children)
        self.children[name] = block
        out = self._new_value(f"v{len(self.nodes)}")
        self.nodes.append({"op": "layer", "inputs": [x], "outputs": [out], "attrs": {"block": name}})
        return out

    def call(self, hint: str, block: Block, inputs: list[str], args: list[Any], tree: Any) -> list[str]:
        """A layer called with nested arguments (``args``: the structure of ``inputs``) whose
        result is the structure ``tree``: its values, one per leaf."""
        name = safe_name(hint, self.children)
        self.children[name] = block
        outs = [self._new_value(f"v{len(self.nodes)}_{k}") for k in range(structure.count(tree))]
        self.nodes.append({"op": "layer", "inputs": inputs, "outputs": outs,
                           "attrs": {"block": name, "args": args, "returns": "tree", "tree": tree}})
        return outs

    def op(self, op: str, *inputs: str, **attrs: Any) -> str:
        out = self._new_value(f"v{len(self.nodes)}")
        self.nodes.append({"op": op, "inputs": list(inputs), "outputs": [out], "attrs": attrs})
        return out

    def op_outputs(self, op: str, count: int, *inputs: str, **attrs: Any) -> list[str]:
        """An op that gives ``count`` values (``split``)."""
        outs = [self._new_value(f"v{len(self.nodes)}_{k}") for k in range(count)]
        self.nodes.append({"op": op, "inputs": list(inputs), "outputs": outs, "attrs": attrs})
        return outs

    def scalar(self, value: bool | int | float) -> str:
        out = self._new_value(f"v{len(self.nodes)}")
        self.nodes.append({"op": "scalar", "inputs": [], "outputs": [out], "attrs": {"value": value}})
        return out

    def parameter(self, mx_name: str, array: np.ndarray) -> str:
        """A parameter read by an op (not by a layer): the graph block owns it."""
        if array.dtype.name not in ("float16", "float32", "float64"):
            raise UnsupportedBlockError(
                f"{self.source}: parameter {mx_name!r} ({array.dtype}) is read by an operator; "
                "only float parameters can be graph parameters"
            )
        name = safe_name(mx_name, self.own_params)
        self.own_params[name] = array
        out = self._new_value(f"v{len(self.nodes)}")
        self.nodes.append({"op": "parameter", "inputs": [], "outputs": [out], "attrs": {"name": name}})
        return out

    # -- sizes --------------------------------------------------------------------------------
    def input_shapes(self) -> dict[str, list[int | str]]:
        """Every input's shape, inferring the ones not given (or saying what to pass)."""
        for mx_name, spec in self.inputs.items():
            if spec.shape is None:
                spec.shape = self._infer_shape(mx_name)
            if spec.shape is None:
                raise InputShapesNeeded(
                    f"{self.source}: the rank of input {mx_name!r} cannot be inferred from the layer "
                    f"that reads it; pass input_shapes={{{mx_name!r}: (None, ...)}} (None for a "
                    f"dynamic size; on the command line: --input-shape {mx_name}=N,...)"
                )
        return {mx_name: list(spec.shape or []) for mx_name, spec in self.inputs.items()}

    def shapes(self, value: str) -> tuple[tuple[int, ...], tuple[int, ...], dict[tuple[int, int], str]]:
        """``value``'s shape in two runs of the partial graph, and which size pairs are which input
        size: (run A, run B, {(size in A, size in B): dynamic size name})."""
        runs, symbols = self._probe(value)
        names = {pair: name for name, pair in symbols.items()}
        return tuple(np.shape(runs[0])), tuple(np.shape(runs[1])), names

    def dtype(self, value: str) -> str:
        """``value``'s dtype (legacy operators that give their input's dtype need it)."""
        return str(np.asarray(self._probe(value)[0][0]).dtype)

    def _probe(self, value: str) -> tuple[list[Any], dict[str, tuple[int, int]]]:
        """``value`` computed by the partial graph on zeros, twice, with every dynamic size set
        to two different values; and those values by size name."""
        shapes = self.input_shapes()
        symbols: dict[str, tuple[int, int]] = {}
        for dims in shapes.values():
            for dim in dims:
                if isinstance(dim, str) and dim not in symbols:
                    # Distinct pairs identify the names; other sizes are multiples of 32, which a
                    # network that halves and doubles its feature maps (HRNet, U-Nets) accepts.
                    k = len(symbols)
                    first, step = (2, k + 1) if dim == "batch" else (32 * (k + 2), 32)
                    symbols[dim] = (first, first + step)
        results = []
        for run in (0, 1):
            graph = self._graph_block([value])
            args = [np.zeros([symbols[d][run] if isinstance(d, str) else d for d in dims], np.float32)
                    for dims in shapes.values()]
            with np.errstate(all="ignore"):
                results.append(graph(*args))
        return results, symbols

    # -- finishing -----------------------------------------------------------------------------
    def finish(self, outputs: list[str]) -> Block:
        """A ``Sequential`` when the nodes are a chain of layers from the one input, else a graph."""
        names = [value.value for value in self.inputs.values()]
        net = as_sequential(names, self.nodes, outputs, self.children)
        return net if net is not None else self._graph_block(outputs)

    def _graph_block(self, outputs: list[str]) -> GraphBlock:
        inputs = [
            {"name": self.inputs[mx_name].value, "dtype": "float32", "shape": dims}
            for mx_name, dims in self.input_shapes().items()
        ]
        return as_graph_block("MXNetSymbol", inputs, self.nodes, outputs, self.children, self.own_params,
                              where=self.source)


def _named_dims(mx_name: str, shape: InputShape) -> list[int | str]:
    """Given sizes: an int is fixed; None is dynamic (``batch`` on axis 0, else named)."""
    dims: list[int | str] = []
    for axis, dim in enumerate(shape):
        if dim is None or (isinstance(dim, int) and dim < 0):
            dims.append("batch" if axis == 0 else safe_name(f"{mx_name}_{axis}", set(), 31))
        elif isinstance(dim, str):
            dims.append(safe_name(dim, set(), 31))
        else:
            dims.append(int(dim))
    return dims
