"""Tracing: record what a custom Block's ``forward`` does as a graph of registered ops.

``trace_model(net, example)`` runs ``net`` once on the example with the layer library's hooks
(``nn.hooks``) routed to a ``Tracer``. Each custom (unregistered) Block that gets called has
its ``forward`` run on stand-ins (``traced.Traced``) and recorded by a ``GraphBuilder``:
calls to child layers, parameter reads, constants, scalars and ops become nodes. Registered
layers are never traced into: they are called as they are, and recorded as one node.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..io.npy import FLOAT_DTYPES, SUPPORTED_DTYPES
from ..nn import hooks, ops, registry, structure
from ..nn.block import Block
from ..nn.graph_spec import GraphInput, GraphNode, GraphOutputs, GraphSpec, ParameterSpec
from ..nn.parameter import Parameter
from .standins import Traced, first_traced, refuse

__all__ = ["BlockTrace", "TraceResult", "GraphBuilder", "Tracer", "trace_model", "is_opaque"]


@dataclass
class BlockTrace:
    """What tracing recorded for one custom block."""

    block: Block
    spec: GraphSpec
    parameters: dict[str, ParameterSpec]
    constants: list[np.ndarray]
    loops: list[tuple[str, int]] = field(default_factory=list)  # unrolled: (source line, length)


@dataclass
class TraceResult:
    """Traces of every custom block reached from the root, by block identity."""

    traces: dict[int, BlockTrace] = field(default_factory=dict)

    def for_block(self, block: Block) -> BlockTrace | None:
        return self.traces.get(id(block))


class GraphBuilder:
    """Accumulates the nodes of one custom block's forward."""

    def __init__(self, owner: Block, owner_path: str) -> None:
        self.owner = owner
        self.owner_path = owner_path or type(owner).__name__
        self.nodes: list[GraphNode] = []
        self.inputs: list[GraphInput] = []
        self.args: list[Any] | None = None  # the arguments' structure, when nested
        # Python loops over stand-ins, unrolled: (source line, length), for error messages.
        self.loops: list[tuple[str, int]] = []
        self.constants: list[np.ndarray] = []
        # A constant used twice is stored once, found by identity; the objects are kept alive
        # so that a temporary's id is never reused by another array during the trace.
        self._constant_ids: dict[int, str] = {}
        self._constant_objects: list[Any] = []
        self._param_values: dict[int, Traced] = {}
        self._counter = 0
        # Relative paths of every descendant block and parameter, by identity (first name wins).
        self.block_paths: dict[int, str] = {}
        for path, block in owner.named_blocks():
            if path:
                self.block_paths.setdefault(id(block), path)
        self.param_paths = {id(p): name for name, p in owner.named_parameters()}

    def _new_value(self) -> str:
        name = f"v{self._counter}"
        self._counter += 1
        return name

    def add_input(self, value: Any) -> Traced:
        array = np.asarray(value)
        name = f"x{len(self.inputs)}"
        self.inputs.append(GraphInput(name=name, dtype=array.dtype.name, shape=list(array.shape)))
        return Traced(self, name, value)

    def _operand(self, value: Any, op: str) -> tuple[str, Any]:
        """Name and real value of one op input: a stand-in, a scalar or a constant array."""
        if isinstance(value, Traced):
            if value._graph is not self:
                raise refuse(
                    op, f"a value traced in another block's forward ({value._graph.owner_path}) is used here"
                )
            return value._name, value._value
        if isinstance(value, (bool, int, float)) and not isinstance(value, np.generic):
            name = self._new_value()
            self.nodes.append(GraphNode(op="scalar", outputs=[name], attrs={"value": value}))
            return name, value
        # An array, or what converts to one: a value autograd computed earlier (a Variable,
        # e.g. the running mean d2l's BatchNorm-from-scratch keeps as an attribute).
        if isinstance(value, (np.ndarray, np.generic)) or hasattr(value, "__array__"):
            array = np.asarray(value)
            if array.dtype.hasobject or array.dtype.name not in SUPPORTED_DTYPES:
                raise refuse(op, f"constant of dtype {array.dtype} cannot be stored")
            key = id(value)
            if key not in self._constant_ids:
                local = f"#const{len(self.constants)}"
                self.constants.append(array.copy())
                name = self._new_value()
                self.nodes.append(GraphNode(op="constant", outputs=[name], attrs={"name": local}))
                self._constant_ids[key] = name
                self._constant_objects.append(value)
            return self._constant_ids[key], value
        raise refuse(op, f"an input of type {type(value).__name__} is neither an array nor a number")

    def add_op(self, op: str, inputs: list[Any], attrs: dict[str, Any]) -> Any:
        definition = ops.op_def(op)
        flat: list[Any] = []
        for value in inputs:
            if isinstance(value, (list, tuple)) and first_traced(value) is not None:
                flat.extend(value)  # concatenate/stack take a sequence of values
            elif isinstance(value, (list, tuple)):
                flat.append(_literal(value, op))  # x.take([0, 2]): a constant array
            else:
                flat.append(value)
        names, reals = zip(*(self._operand(v, op) for v in flat), strict=True) if flat else ((), ())
        definition.attrs.model_validate(attrs)
        with hooks.suspended():
            result = definition.fn(*reals, **attrs)
        if not definition.returns_list(attrs):
            name = self._new_value()
            self.nodes.append(GraphNode(op=op, inputs=list(names), outputs=[name], attrs=attrs))
            return Traced(self, name, result)
        outputs = [self._new_value() for _ in result]
        self.nodes.append(GraphNode(op=op, inputs=list(names), outputs=outputs, attrs=attrs))
        return [Traced(self, n, r) for n, r in zip(outputs, result, strict=True)]

    def add_layer_call(
        self, block: Block, args: tuple[Any, ...], run: Callable[[tuple[Any, ...]], Any]
    ) -> Any:
        path = self.block_paths.get(id(block))
        if path is None:
            raise refuse(
                f"calling a {type(block).__name__} that is not a child of {self.owner_path}",
                "its parameters would not be saved; assign it as an attribute in __init__",
            )
        tree, leaves = _flatten(list(args), f"calling layer {path}")
        names, reals = (
            zip(*(self._operand(a, f"layer {path}") for a in leaves), strict=True) if leaves else ((), ())
        )
        result = run(tuple(structure.unflatten(tree, list(reals))))
        attrs: dict[str, Any] = {"block": path}
        if not structure.is_flat(tree["items"]):
            attrs["args"] = tree["items"]
        if isinstance(result, (tuple, list)) and not structure.has_nesting(result):
            attrs["returns"] = "tuple" if isinstance(result, tuple) else "list"
            results = list(result)
        elif isinstance(result, (tuple, list)):
            attrs["returns"], (attrs["tree"], results) = "tree", _flatten(result, f"layer {path}'s result")
        else:
            attrs["returns"], results = "single", [result]
        outputs = [self._new_value() for _ in results]
        wrapped = [Traced(self, n, r) for n, r in zip(outputs, results, strict=True)]
        self.nodes.append(GraphNode(op="layer", inputs=list(names), outputs=outputs, attrs=attrs))
        if attrs["returns"] == "single":
            return wrapped[0]
        if attrs["returns"] == "tree":
            return structure.unflatten(attrs["tree"], wrapped)
        return type(result)(wrapped)

    def read_parameter(self, param: Parameter) -> Traced:
        cached = self._param_values.get(id(param))
        if cached is not None:
            return cached
        path = self.param_paths.get(id(param))
        if path is None:
            raise refuse(
                f"reading parameter {param.structured_name!r}", f"it does not belong to {self.owner_path}"
            )
        with hooks.suspended():
            value = param.array()
        name = self._new_value()
        self.nodes.append(GraphNode(op="parameter", outputs=[name], attrs={"name": path}))
        traced = Traced(self, name, value, parameter=path)
        self._param_values[id(param)] = traced
        return traced

    def finish(self, result: Any) -> tuple[GraphSpec, Any]:
        """Close the graph on ``result``; return the spec and the real output."""
        kind: Literal["single", "tuple", "list", "dict", "tree"]
        keys: list[str] | None = None
        tree: Any = None
        if isinstance(result, dict):
            keys = list(result)
            if not all(isinstance(k, str) for k in keys):
                raise refuse("returning a dict", "its keys must be strings")
            kind, items = "dict", [result[k] for k in keys]
        elif isinstance(result, (tuple, list)) and not structure.has_nesting(result):
            kind, items = ("tuple" if isinstance(result, tuple) else "list"), list(result)
        elif isinstance(result, (tuple, list)):
            kind = "tree"
            tree, items = _flatten(result, "returning a value")
        else:
            kind, items = "single", [result]
        names = [self._output_name(item) for item in items]
        reals = [item._value if isinstance(item, Traced) else item for item in items]
        spec = GraphSpec(
            inputs=self.inputs,
            nodes=self.nodes,
            outputs=GraphOutputs(kind=kind, values=names, keys=keys, tree=tree),
            args=self.args,
        )
        if kind == "single":
            return spec, reals[0]
        if kind == "dict":
            return spec, dict(zip(keys or [], reals, strict=True))
        if kind == "tree":
            return spec, structure.unflatten(tree, reals)
        return spec, (tuple(reals) if kind == "tuple" else reals)

    def _output_name(self, item: Any) -> str:
        if isinstance(item, Traced):
            if item._graph is not self:
                raise refuse("returning a value", "it was traced in another block")
            return item._name
        if isinstance(item, (np.ndarray, np.generic, bool, int, float)):
            return self._operand(item, "return")[0]
        raise refuse("returning a value", f"a {type(item).__name__} is not an array")

    def own_parameters(self) -> dict[str, ParameterSpec]:
        specs = {}
        for name, param in self.owner.params.items():
            if param.dtype.name not in FLOAT_DTYPES:
                raise refuse(f"parameter {name!r}", f"dtype {param.dtype} is not a float dtype")
            specs[name] = ParameterSpec(
                shape=list(param.shape), dtype=param.dtype.name, trainable=param.grad_req != "null"
            )
        return specs


def _flatten(value: Any, what: str) -> tuple[Any, list[Any]]:
    """A nested argument or result as (tree, values); refused past the nesting a graph keeps."""
    try:
        return structure.flatten(value)
    except ValueError as exc:
        raise refuse(what, str(exc)) from None


def is_opaque(block: Block) -> bool:
    """True when the whole subtree is registered layers (describable without tracing)."""
    if registry.type_name_of(block) is None or "forward" in vars(block):
        return False
    return all(is_opaque(child) for child in block.children.values())


class Tracer:
    """The hooks' interceptor: decides, per block call, whether to record, descend or trace."""

    sees_real_values = False  # stand-ins; a user's hooks are not part of the archived computation

    def __init__(self, root: Block) -> None:
        self.result = TraceResult()
        self.stack: list[GraphBuilder | None] = [None]
        self.paths: dict[int, str] = {}
        for path, block in root.named_blocks():
            self.paths.setdefault(id(block), path)

    @property
    def graph(self) -> GraphBuilder | None:
        return self.stack[-1]

    def call_block(self, block: Block, args: tuple[Any, ...]) -> Any:
        graph = self.graph
        if graph is not None:
            # Inside a custom forward: the call is a node; its real output comes from running
            # the block on real values (which may trace the block itself).
            return graph.add_layer_call(block, args, lambda reals: self._run(block, reals))
        return self._run(block, args)

    def _run(self, block: Block, args: tuple[Any, ...]) -> Any:
        if is_opaque(block):
            with hooks.suspended():
                return block.forward(*args)
        if registry.type_name_of(block) is not None and "forward" not in vars(block):
            # A registered container with custom blocks inside: its own forward is known,
            # run it on real values so that the custom blocks inside are reached and traced.
            self.stack.append(None)
            try:
                return block.forward(*args)
            finally:
                self.stack.pop()
        return self._trace_custom(block, args)

    def _trace_custom(self, block: Block, args: tuple[Any, ...]) -> Any:
        if id(block) in self.result.traces:
            # Traced at its first call; later calls replay the same recorded graph.
            self.stack.append(None)
            try:
                with hooks.suspended():
                    return block.forward(*args)
            finally:
                self.stack.pop()
        tree, leaves = _flatten(list(args), f"calling {type(block).__name__}")
        for arg in leaves:
            if not isinstance(arg, (np.ndarray, np.generic, int, float)):
                raise refuse(
                    f"calling {type(block).__name__}",
                    f"argument of type {type(arg).__name__} is not an array",
                )
        builder = GraphBuilder(block, self.paths.get(id(block), ""))
        stand_ins = [builder.add_input(arg) for arg in leaves]
        if not structure.is_flat(tree["items"]):
            builder.args = tree["items"]
        self.stack.append(builder)
        try:
            result = block.forward(*structure.unflatten(tree, stand_ins))
        finally:
            self.stack.pop()
        spec, real = builder.finish(result)
        self.result.traces[id(block)] = BlockTrace(
            block, spec, builder.own_parameters(), builder.constants, builder.loops
        )
        return real

    def read_parameter(self, param: Parameter) -> Any | None:
        graph = self.graph
        return graph.read_parameter(param) if graph is not None else None

    def write_parameter(self, param: Parameter) -> None:
        raise refuse(
            f"changing parameter {param.structured_name!r}", "parameters must not change during forward"
        )


def trace_model(net: Block, example: tuple[Any, ...]) -> tuple[TraceResult, Any]:
    """Run ``net`` on ``example`` with tracing on; return the traces and the real output."""
    tracer = Tracer(net)
    with np.errstate(all="ignore"), hooks.intercepting(tracer):
        output = net(*example)
    return tracer.result, output


def _literal(value: list[Any] | tuple[Any, ...], op: str) -> np.ndarray:
    """A list or tuple of numbers given to an op, as the constant array it stands for."""
    try:
        return np.asarray(value)
    except ValueError as exc:  # ragged nesting
        raise refuse(op, f"the list {value!r} is not an array ({exc})") from None
