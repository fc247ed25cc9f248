"""``from_onnx``: an ONNX model made of operators modelpack has, as a modelpack model.

The file is read whole (its size checked first) and parsed by onnx's own protobuf parser;
tensors stored in other files beside it are read from there (``external_data``, which checks
the names the file gives). Initializer counts and sizes are checked against ``Limits`` before
any is converted. onnx's shape
inference names every intermediate size, so shape computations (``Shape`` → ``Gather`` →
``Concat`` → ``Reshape``, as exporters write ``x.view(x.size(0), -1)``) fold into reshape
targets that name the input's dynamic sizes. Each operator is translated by its entry in
``import_ops``; any other is refused, naming the operator and the node.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from ...errors import FormatError, LimitError, UnsupportedBlockError
from ...format.architecture import limit_loaded
from ...io.limits import DEFAULT_LIMITS, Limits
from ...io.paths import PathOrFile, describe, open_for_reading
from ...nn.block import Block
from ..imported import as_graph_block, as_sequential, safe_name
from .external_data import read_external_data
from .import_patterns import fuse_activations

__all__ = ["from_onnx", "Graph", "Translator", "FOLD_ELEMENTS", "FOLD_TOTAL_ELEMENTS", "WEIGHT_ELEMENTS",
           "constant_input", "has_input", "only_first_output", "to_array", "element_dtype"]

# The opset the translators read (Softmax, Squeeze and Split changed meaning in 13); older
# models are upgraded to it first (``_upgraded``).
OLDEST_OPSET = 13
# Values computed at import rather than by the model (constants the exporter wrote as small
# computations on sizes: shapes, masks) have at most this many elements; anything larger is
# left to the ops, which check the sizes a file asks for when the model runs. (Swin-T's
# shifted-window mask at 224×224 is written by index assignments over 4,802 positions.)
FOLD_ELEMENTS = 1 << 16
# All the values one import folds, together: a file of many small computations cannot make the
# import hold more (the rest are left to the ops, which the activation budget bounds).
FOLD_TOTAL_ELEMENTS = 1 << 23
# A floating-point initializer with more elements is a weight: never folded (the ops read it,
# a layer as its parameter). An integer one is a buffer (Swin's relative position index, 38,416
# values in its 3-D form), folded where small enough. ``_skeleton`` leaves out the values of both.
WEIGHT_ELEMENTS = 4096

Dims = list["int | str"]
# An operator's translation: adds what one node computes to the graph being assembled.
Translator = Callable[["Graph", onnx.NodeProto, dict[str, Any]], None]


def from_onnx(source: PathOrFile, *, limits: Limits = DEFAULT_LIMITS) -> Block:
    """A modelpack model computing what an ONNX model computes (at inference).

    >>> net = from_onnx("resnet-ish.onnx"); modelpack.export(net, "net.mpk")  # doctest: +SKIP
    """
    where = describe(source)
    model, size = _parse(source, where, limits)
    from .import_ops import translate  # late: the operator table imports this module's Graph

    graph = Graph(where, model, limits)
    for position, node in enumerate(fuse_activations(model, graph.constants)):
        graph.position = position
        translate(graph, node)
    net = graph.finish()
    limit_loaded(net, where, limits, size)
    return net


def _parse(source: PathOrFile, where: str, limits: Limits) -> tuple[onnx.ModelProto, int]:
    """The model, checked against ``limits`` and at ``OLDEST_OPSET`` at least, and its size:
    the file's and its weights' stored beside it (the activation budget grows with it)."""
    with open_for_reading(source) as handle:
        size = handle.seek(0, os.SEEK_END)
        if size > limits.max_total_bytes + limits.max_manifest_bytes:
            raise LimitError(where, "its size", size, limit="max_total_bytes", allowed=limits.max_total_bytes)
        handle.seek(0)
        data = handle.read()
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # protobuf's DecodeError, whatever its module
        raise FormatError(f"{where}: not an ONNX model (protobuf refused it: {exc})") from None
    if not model.HasField("graph"):
        raise FormatError(f"{where}: not an ONNX model (no graph)")
    _check_names(model.graph, where)
    graphs = _graphs(model.graph)  # (an If's branches are translated too)
    nodes = [node for graph in graphs for node in graph.node]
    tensors = [tensor for graph in graphs for tensor in graph.initializer] + [
        a.t for n in nodes for a in n.attribute if a.type == onnx.AttributeProto.TENSOR
    ]
    if len(tensors) > limits.max_tensors:
        raise LimitError(
            where, "its number of tensors", len(tensors), limit="max_tensors", allowed=limits.max_tensors
        )
    if len(nodes) > limits.max_manifest_nodes:
        raise LimitError(
            where,
            "its number of nodes",
            len(nodes),
            limit="max_manifest_nodes",
            allowed=limits.max_manifest_nodes,
        )
    total = 0
    for tensor in tensors:
        if any(d < 0 for d in tensor.dims):
            raise FormatError(f"{where}: tensor {tensor.name!r} has a negative size {list(tensor.dims)}")
        total += math.prod(tensor.dims)
    if total * 8 > limits.max_total_bytes:
        raise LimitError(
            where,
            "its tensors' total size",
            total * 8,
            limit="max_total_bytes",
            allowed=limits.max_total_bytes,
        )
    def dtype_of(tensor: onnx.TensorProto) -> np.dtype:
        return element_dtype(tensor.data_type, where, f"tensor {tensor.name!r}")

    beside = read_external_data(tensors, source, where, dtype_of)
    return _upgraded(model, where), size + beside


def _graphs(graph: onnx.GraphProto) -> list[onnx.GraphProto]:
    """The graph and every graph nested in its nodes' attributes (an If's branches, a Loop's
    body), found without recursion."""
    pending, found = [graph], []
    while pending:
        current = pending.pop()
        found.append(current)
        for node in current.node:
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    pending.append(attribute.g)
                elif attribute.type == onnx.AttributeProto.GRAPHS:
                    pending.extend(attribute.graphs)
    return found


def _upgraded(model: onnx.ModelProto, where: str) -> onnx.ModelProto:
    """The model at opset ``OLDEST_OPSET`` at least: an older one (ONNX files from older
    exporters, opset 6 to 12) goes through onnx's own version converter, whose adapters keep
    what each operator computes (Softmax's axis, Squeeze's and Split's attributes turned
    inputs, ...), so the translators know one meaning of each operator. The converter reads
    the ``_skeleton`` (it copies every tensor it is given: 8 s of a 548 MB VGG-19's 8.3), and
    the weights left out are put back in the upgraded model by name."""
    versions = [opset.version for opset in model.opset_import if opset.domain in ("", "ai.onnx")]
    if not versions or min(versions) >= OLDEST_OPSET:
        return model
    if min(versions) < 7:
        _per_channel_slopes(model)
    from onnx import version_converter

    try:
        upgraded = version_converter.convert_version(_skeleton(model), OLDEST_OPSET)
    except Exception as exc:  # (onnx raises its C++ converter's errors under several types)
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UnsupportedBlockError(
            f"{where}: opset {min(versions)} is older than {OLDEST_OPSET}, and onnx's version converter "
            f"could not upgrade it ({first}); re-export with opset {OLDEST_OPSET} or later"
        ) from None
    weights = {tensor.name: tensor for tensor in model.graph.initializer if _left_out(tensor)}
    for tensor in upgraded.graph.initializer:
        if tensor.name in weights:
            tensor.CopyFrom(weights[tensor.name])
    return upgraded


def _per_channel_slopes(model: onnx.ModelProto) -> None:
    """Before opset 7, a PRelu slope of C values was per channel (axis 1); from 7 on it
    broadcasts as numpy does, from the last axis, and the version converter leaves it as it
    is. So a 1-D slope of an input of rank 3 or more is given the shape (C, 1, ...) first."""
    nodes = [node for node in model.graph.node if node.op_type == "PRelu" and len(node.input) == 2]
    slopes = {tensor.name: tensor for tensor in model.graph.initializer}
    if not any(node.input[1] in slopes for node in nodes):
        return
    try:
        inferred = onnx.shape_inference.infer_shapes(_skeleton(model), strict_mode=False).graph
    except Exception:  # (an inconsistent file: its slopes stay as they are, and ops refuse)
        return
    ranks = {info.name: len(info.type.tensor_type.shape.dim) for info in
             (*inferred.input, *inferred.value_info) if info.type.tensor_type.HasField("shape")}
    declared = {info.name: info for info in model.graph.input}  # (older IRs list weights as inputs too)
    for node in nodes:
        slope, rank = slopes.get(node.input[1]), ranks.get(node.input[0], 0)
        if slope is not None and len(slope.dims) == 1 and slope.dims[0] > 1 and rank >= 3:
            slope.dims[:] = [slope.dims[0], *[1] * (rank - 2)]
            if slope.name in declared:
                shape = declared[slope.name].type.tensor_type.shape
                del shape.dim[:]
                for size in slope.dims:
                    shape.dim.add().dim_value = size


def _left_out(tensor: onnx.TensorProto) -> bool:
    """Whether ``_skeleton`` leaves this initializer's values out: one too large to be a value
    an operator reads as an attribute (a shape, axes, scales): a weight or a large buffer."""
    return math.prod(tensor.dims) > WEIGHT_ELEMENTS


def _skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model without its weights' values (``_left_out``: their names, types and sizes
    kept): what onnx's version converter and shape inference need of it."""
    graph = model.graph
    bare = onnx.GraphProto(name=graph.name, node=graph.node, input=graph.input, output=graph.output,
                           value_info=graph.value_info, sparse_initializer=graph.sparse_initializer)
    for tensor in graph.initializer:
        if _left_out(tensor):
            bare.initializer.add(name=tensor.name, dims=tensor.dims, data_type=tensor.data_type)
        else:
            bare.initializer.add().CopyFrom(tensor)
    skeleton = onnx.ModelProto(ir_version=model.ir_version, opset_import=model.opset_import,
                               functions=model.functions, producer_name=model.producer_name)
    skeleton.graph.CopyFrom(bare)
    return skeleton


def _check_names(graph: onnx.GraphProto, where: str) -> None:
    """Every name the graph gives (values, sizes, tensors, nodes, operators, attributes) is text:
    protobuf hands a string field that is not UTF-8 back as bytes (a damaged file's)."""
    infos = [*graph.input, *graph.output, *graph.value_info]
    names = [info.name for info in infos] + [tensor.name for tensor in graph.initializer]
    names += [dim.dim_param for info in infos for dim in info.type.tensor_type.shape.dim]
    for node in graph.node:
        names += [node.name, node.op_type, node.domain, *node.input, *node.output]
        names += [attribute.name for attribute in node.attribute]
    for name in names:
        if type(name) is not str:
            raise FormatError(f"{where}: a name in its graph is not UTF-8 text ({name[:40]!r})")


def element_dtype(elem: int, where: str, what: str) -> np.dtype:
    """The numpy dtype of an ONNX element type the file gives ``what`` (a tensor, a value, a
    Cast's target); a number onnx does not know, or one numpy has no dtype for, is refused."""
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem))
    except Exception:  # (a KeyError for a number onnx does not know, whatever its version)
        raise UnsupportedBlockError(
            f"{where}: {what} has ONNX type {elem}, which modelpack does not hold"
        ) from None


def to_array(tensor: onnx.TensorProto, where: str) -> np.ndarray:
    """An initializer or constant as numpy, its declared size checked against its data first."""
    count = math.prod(tensor.dims)
    dtype = element_dtype(tensor.data_type, where, f"tensor {tensor.name!r}")
    if dtype.kind not in "biuf":
        raise UnsupportedBlockError(f"{where}: tensor {tensor.name!r} has dtype {dtype}, not a number type")
    if tensor.HasField("raw_data") and len(tensor.raw_data) != count * dtype.itemsize:
        raise FormatError(
            f"{where}: tensor {tensor.name!r} declares {count} {dtype} values but holds "
            f"{len(tensor.raw_data)} bytes"
        )
    try:
        return np.array(numpy_helper.to_array(tensor), dtype=dtype)
    except (ValueError, TypeError) as exc:
        raise FormatError(f"{where}: tensor {tensor.name!r} cannot be read: {exc}") from None


def constant_input(g: Graph, node: onnx.NodeProto, index: int, what: str) -> np.ndarray:
    name = node.input[index] if index < len(node.input) else ""
    if name in g.vectors and all(isinstance(d, int) for d in g.vectors[name]):
        return np.asarray(g.vectors[name], np.int64)
    if name not in g.constants:
        raise g.fail(node, f"its {what} ({name!r}) must be a constant")
    return g.constants[name]


def has_input(node: onnx.NodeProto, index: int) -> bool:
    return index < len(node.input) and node.input[index] != ""


def broadcast_dims(shapes: list[Dims]) -> list[int | str | None]:
    """The shape numpy's broadcasting gives ``shapes``, size by size: equal sizes, or the other
    where one is 1; a named size met with a number over 1 is that number; two different
    names, None (not known at import)."""
    rank = max(len(shape) for shape in shapes)
    padded: list[list[int | str]] = [[*([1] * (rank - len(shape))), *shape] for shape in shapes]
    result: list[int | str | None] = []
    for sizes_here in zip(*padded, strict=True):
        wide = {d for d in sizes_here if d != 1}
        numbers = {d for d in wide if isinstance(d, int)}
        result.append(1 if not wide else wide.pop() if len(wide) == 1 else
                      numbers.pop() if len(numbers) == 1 else None)
    return result


def only_first_output(g: Graph, node: onnx.NodeProto) -> None:
    used = {name for other in g.model.graph.node for name in other.input} | {
        o.name for o in g.model.graph.output
    }
    if any(name and name in used for name in node.output[1:]):
        raise g.fail(node, "its extra outputs are used; only the first is translated")


@dataclass
class Graph:
    """The model being assembled: graph inputs, child layers, graph nodes, and what is known of
    every ONNX value (a graph value's name, a constant's array, a shape vector's sizes)."""

    where: str
    model: onnx.ModelProto
    limits: Limits
    position: int = 0
    values: dict[str, str] = field(default_factory=dict)  # ONNX name -> graph value
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    weights: set[str] = field(default_factory=set)  # initializers never folded (WEIGHT_ELEMENTS)
    folded: int = 0  # elements folded so far (FOLD_TOTAL_ELEMENTS)
    vectors: dict[str, Dims] = field(default_factory=dict)  # 1-D int64 shapes, folded
    inputs: list[dict[str, Any]] = field(default_factory=list)
    children: dict[str, Block] = field(default_factory=dict)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    own_params: dict[str, np.ndarray] = field(default_factory=dict)
    const_arrays: list[np.ndarray] = field(default_factory=list)
    shapes: dict[str, Dims | None] = field(default_factory=dict)
    dtypes: dict[str, np.dtype] = field(default_factory=dict)  # ONNX name -> numpy dtype, where inferred
    # sizes onnx's inference named afresh (it lost track of them), found to be known ones
    aliases: dict[str, int | str] = field(default_factory=dict)
    _taken: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        graph = self.model.graph
        for tensor in graph.initializer:
            self.constants[tensor.name] = to_array(tensor, self.where)
            if _left_out(tensor) and self.constants[tensor.name].dtype.kind == "f":
                self.weights.add(tensor.name)
        try:
            inferred = onnx.shape_inference.infer_shapes(_skeleton(self.model), strict_mode=False).graph
        except Exception:  # an inconsistent file: sizes then stay unknown and ops needing them refuse
            inferred = graph
        symbols: dict[str, str] = {}
        roles = (("value", inferred.value_info), ("input", inferred.input), ("output", inferred.output))
        for role, infos in roles:
            for info in infos:
                self.shapes[info.name] = self._dims(info, symbols)
                elem = info.type.tensor_type.elem_type
                if elem:
                    self.dtypes[info.name] = element_dtype(elem, self.where, f"{role} {info.name!r}")
        for graph_input in graph.input:
            if graph_input.name in self.constants:
                continue
            dims = self.shapes.get(graph_input.name)
            if dims is None:
                raise UnsupportedBlockError(f"{self.where}: input {graph_input.name!r} has no known rank")
            dtype = element_dtype(graph_input.type.tensor_type.elem_type, self.where,
                                  f"input {graph_input.name!r}").name
            value = self._fresh(graph_input.name)
            self.inputs.append({"name": value, "dtype": dtype, "shape": dims})
            self.values[graph_input.name] = value

    def _dims(self, info: onnx.ValueInfoProto, symbols: dict[str, str]) -> Dims | None:
        tensor = info.type.tensor_type
        if not tensor.HasField("shape"):
            return None
        dims: Dims = []
        for axis, dim in enumerate(tensor.shape.dim):
            if dim.HasField("dim_value"):
                dims.append(int(dim.dim_value))
            else:
                raw = dim.dim_param or f"{info.name}_{axis}"
                if raw not in symbols:
                    symbols[raw] = safe_name(raw, set(symbols.values()), 31, trim=True)
                dims.append(symbols[raw])
        return dims

    # -- what translators use --------------------------------------------------------------
    def dtype(self, name: str) -> np.dtype | None:
        """ONNX value ``name``'s dtype where it is known (a constant's, or the type shape
        inference gave it)."""
        return self.constants[name].dtype if name in self.constants else self.dtypes.get(name)

    def integer(self, name: str) -> bool:
        """Whether ONNX value ``name`` is known to hold integers."""
        dtype = self.dtype(name)
        return dtype is not None and dtype.kind in "iu"

    def at(self, node: onnx.NodeProto) -> str:
        """The file and the node, as every refusal of it begins."""
        label = f" {node.name!r}" if node.name else ""
        return f"{self.where}: node {self.position}{label} ({node.op_type})"

    def fail(self, node: onnx.NodeProto, problem: str) -> UnsupportedBlockError:
        return UnsupportedBlockError(f"{self.at(node)}: {problem}")

    def _fresh(self, hint: str) -> str:
        name = safe_name(hint, self._taken, trim=True)
        self._taken.add(name)
        return name

    def value(self, name: str, node: onnx.NodeProto) -> str:
        """The graph value for an ONNX tensor; a constant becomes a parameter or constant node."""
        if name in self.values:
            return self.values[name]
        if name in self.vectors and all(isinstance(d, int) for d in self.vectors[name]):
            self.constants[name] = np.asarray(self.vectors[name], np.int64)
        elif name in self.vectors:
            self.values[name] = self._sizes_value(name)
            return self.values[name]
        if name not in self.constants:
            raise self.fail(
                node, f"reads {name!r}, which no earlier node defines (or a shape it cannot fold)"
            )
        array = self.constants[name]
        if array.ndim == 0:
            out = self._add("scalar", [], {"value": array.item()})
        elif array.dtype.kind == "f":
            key = self._fresh(name)
            self.own_params[key] = array
            out = self._add("parameter", [], {"name": key})
        else:
            self.const_arrays.append(array)
            out = self._add("constant", [], {"name": f"#const{len(self.const_arrays) - 1}"})
        self.values[name] = out
        return out

    def _sizes_value(self, name: str) -> str:
        """Shape vector ``name``, some of its sizes named, as an int64 graph value the model
        makes when it runs (the TorchScript exporter multiplies a position range by a sequence
        length): each named size the sum of that many ones, a number a filled one-element array."""
        def part(size: int | str) -> str:
            if isinstance(size, int):
                return self._add("full", [], {"shape": [1], "value": size, "dtype": "int64"})
            ones = self._add("full", [], {"shape": [size], "value": 1, "dtype": "int64"})
            return self._add("sum", [ones], {"axis": 0, "keepdims": True})

        parts = [part(size) for size in self.vectors[name]]
        vector = parts[0] if len(parts) == 1 else self._add("concatenate", parts, {"axis": 0})
        return self._add("reshape", [vector], {"shape": []}) if self.shapes.get(name) == [] else vector

    def _add(self, op: str, inputs: list[str], attrs: dict[str, Any], outputs: int = 1) -> str:
        outs = [self._fresh(f"v{len(self.nodes)}") for _ in range(outputs)]
        self.nodes.append({"op": op, "inputs": inputs, "outputs": outs, "attrs": attrs})
        return outs[0]

    def scalar(self, value: float) -> str:
        """A weak scalar graph value (it takes the other operand's dtype, as a Python number)."""
        return self._add("scalar", [], {"value": value})

    def op(self, node: onnx.NodeProto, op: str, inputs: list[str], **attrs: Any) -> None:
        """Output 0 of ``node`` is a modelpack op over graph values."""
        self.values[node.output[0]] = self._add(op, inputs, attrs)

    def layer(self, node: onnx.NodeProto, block: Block, x: str, hint: str = "") -> None:
        """Output 0 of ``node`` is a child layer applied to graph value ``x``."""
        self.values[node.output[0]] = self.child(block, x, hint or node.name or node.op_type.lower())

    def child(self, block: Block, x: str, hint: str) -> str:
        """The graph value of a child layer applied to graph value ``x`` (one step of a node)."""
        name = self._fresh(hint)
        self.children[name] = block
        return self._add("layer", [x], {"block": name})

    def alias(self, node: onnx.NodeProto, name: str, index: int = 0) -> None:
        """Output ``index`` of ``node`` is ONNX value ``name``."""
        target = node.output[index]
        if name in self.values:
            self.values[target] = self.values[name]
        if name in self.constants:
            self.constants[target] = self.constants[name]
        if name in self.vectors:
            self.vectors[target] = self.vectors[name]

    def sizes(self, node: onnx.NodeProto, index: int, what: str) -> Dims:
        """Input ``index`` of ``node`` as sizes: a shape vector (sizes named for the model's
        inputs allowed) or an integer constant; refused when the model computes it from values."""
        name = node.input[index]
        if name in self.vectors:
            return list(self.vectors[name])
        if name in self.constants:
            return [int(d) for d in np.ravel(self.constants[name])]
        raise self.fail(node, f"its {what} ({name!r}) is computed from values, not sizes")

    def fold_room(self, elements: int) -> bool:
        """Whether ``elements`` more values may be computed at import (``FOLD_ELEMENTS`` at most
        in one value, ``FOLD_TOTAL_ELEMENTS`` in all); if so, they are counted."""
        if elements > FOLD_ELEMENTS or self.folded + elements > FOLD_TOTAL_ELEMENTS:
            return False
        self.folded += elements
        return True

    def shape(self, name: str) -> Dims | None:
        if name in self.constants:
            return list(self.constants[name].shape)
        dims = self.shapes.get(name)
        if dims is None or not self.aliases:
            return dims
        return [self.aliases.get(d, d) if isinstance(d, str) else d for d in dims]

    def known(self, name: str) -> np.ndarray | None:
        """ONNX value ``name``'s array where it is known at import: a constant, or a shape vector
        of sizes that are all numbers (int64, of the rank onnx's inference gives it: a Gather of
        one size is 0-d, which a vector does not tell); else None."""
        if name in self.constants:
            return self.constants[name]
        vector, rank = self.vectors.get(name), self.shapes.get(name)
        if vector is None or rank is None or not all(isinstance(d, int) for d in vector):
            return None  # (a vector's rank, 0-d or 1-d, is onnx's inference's to say)
        return np.array(vector, np.int64).reshape(() if rank == [] else -1)

    def learn(self, name: str, dims: Sequence[int | str | None]) -> None:
        """``dims``, worked out by a translator (None: a size it could not), are the shape of
        ONNX value ``name``: where onnx's inference had named a size afresh (a Reshape, Expand
        or Tile whose target it could not follow: every value computed from it then carried the
        new name, which no graph input binds), that name stands for the known size from now
        on, in every shape that holds it."""
        inferred = self.shape(name)
        if inferred is None or len(inferred) != len(dims):
            if all(d is not None for d in dims):
                self.shapes[name] = [d for d in dims if d is not None]
            return
        carried = {d for graph_input in self.inputs for d in graph_input["shape"] if isinstance(d, str)}
        for have, known in zip(inferred, dims, strict=True):
            if isinstance(have, str) and known is not None and have != known and have not in carried:
                self.aliases[have] = known
        self.shapes[name] = [have if new is None else new for have, new in zip(inferred, dims, strict=True)]

    # -- finishing ------------------------------------------------------------------------------
    def finish(self) -> Block:
        outputs = []
        for graph_output in self.model.graph.output:
            if graph_output.name not in self.values:
                raise UnsupportedBlockError(
                    f"{self.where}: output {graph_output.name!r} is a constant or undefined"
                )
            outputs.append(self.values[graph_output.name])
        names = [graph_input["name"] for graph_input in self.inputs]
        net = as_sequential(names, self.nodes, outputs, self.children)
        if net is not None:
            return net
        return as_graph_block(
            "ONNX", self.inputs, self.nodes, outputs, self.children, self.own_params, self.const_arrays,
            where=self.where,
        )
