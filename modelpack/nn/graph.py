"""``Graph``: a block whose forward is a recorded dataflow graph instead of Python code.

Tracing (``modelpack.tracing.record``) turns a custom Block's ``forward`` into a ``GraphConfig``;
loading an archive turns that config back into a ``GraphBlock`` that owns the same child
layers under the same names (so ``collect_params()`` and ``load_parameters`` match the
original class) and evaluates the nodes in order. Nothing is ever imported or executed from
the file: every node is a registered op, a call to a child block, a parameter, a constant
tensor from the weight bundle, or a scalar.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import FormatError, InputError, SchemaError
from ..io.npy import FLOAT_DTYPES
from . import budget, hooks, structure
from .block import Block
from .parameter import Parameter
from .registry import LayerConfig, register_layer
from .sizes import SYMBOL_PATTERN, names_in, resolve
from .structure import Tree

__all__ = [
    "GraphBlock",
    "GraphConfig",
    "GraphSpec",
    "GraphNode",
    "GraphInput",
    "GraphOutputs",
    "ParameterSpec",
    "SPECIAL_OPS",
    "constant_name",
]

# Node kinds that are not functional ops: they read state or call a child block.
SPECIAL_OPS = ("layer", "parameter", "constant", "scalar")
_VALUE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def constant_name(block_path: str, index: int) -> str:
    """Weight-bundle name of a graph constant: ``<block path>#const<k>`` (``#const0`` at root)."""
    return f"{block_path}#const{index}"


class _Strict(BaseModel):
    # defer_build: schemas are built on first use, which keeps `import modelpack` quick.
    # ser_json_inf_nan: a non-finite scalar in attrs stays a float when dumped (not null).
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, defer_build=True, ser_json_inf_nan="constants"
    )


class ParameterSpec(_Strict):
    """A parameter owned directly by the traced block (not by one of its layers)."""

    shape: list[Annotated[int, Field(ge=0, lt=2**63)]]
    dtype: Literal[FLOAT_DTYPES]  # type: ignore[valid-type]
    trainable: bool = True


SymbolName = Annotated[str, Field(pattern=SYMBOL_PATTERN)]


class GraphInput(_Strict):
    """A graph input: value name, dtype at trace time, shape (a name marks a dynamic size)."""

    name: str
    dtype: str
    shape: list[Annotated[int, Field(ge=0, lt=2**63)] | SymbolName]


class GraphNode(_Strict):
    """One step: an op (or layer/parameter/constant/scalar) reading and writing named values."""

    op: str
    inputs: list[str] = Field(default_factory=list)
    outputs: list[str] = Field(min_length=1)
    attrs: dict[str, Any] = Field(default_factory=dict)


class GraphOutputs(_Strict):
    """What forward returns: one value, a tuple or list of them, a dict of them, or a nested
    structure of them (``tree``, e.g. ``(y, [h, c])``)."""

    kind: Literal["single", "tuple", "list", "dict", "tree"]
    values: list[str]
    keys: list[str] | None = None
    tree: Tree | None = None


class GraphSpec(_Strict):
    """The recorded computation: inputs, nodes in execution order, outputs.

    ``args`` is the structure of forward's positional arguments when some are nested (a
    list of states) or None; its values are the inputs, in order. Absent: one input each.
    """

    inputs: list[GraphInput]
    nodes: list[GraphNode]
    outputs: GraphOutputs
    args: list[Tree] | None = None

    @model_validator(mode="after")
    def _well_formed(self) -> GraphSpec:
        """Every value is defined once, before use; ops, attrs and output shape are valid."""
        from . import ops  # registers the op set; imported late to avoid a cycle

        defined: set[str] = set()

        def define(name: str) -> None:
            if not _VALUE_NAME.match(name) or name in defined:
                raise ValueError(f"value name {name!r} is invalid or defined twice")
            defined.add(name)

        for graph_input in self.inputs:
            define(graph_input.name)
        if self.args is not None and sum(structure.count(a) for a in self.args) != len(self.inputs):
            raise ValueError("the argument structure does not hold exactly the graph's inputs")
        bound = {d for graph_input in self.inputs for d in graph_input.shape if isinstance(d, str)}
        for position, node in enumerate(self.nodes):
            for name in node.inputs:
                if name not in defined:
                    raise ValueError(f"node {position} ({node.op}) reads {name!r} before it is defined")
            if node.op in SPECIAL_OPS:
                _check_special(node, position)
            else:
                definition = ops.op_def(node.op)
                definition.attrs.model_validate(node.attrs)
                count = definition.output_count(node.attrs)
                if len(node.outputs) != count:
                    raise ValueError(f"node {position} ({node.op}) must have {count} output(s)")
                for attr in definition.sizes:
                    unbound = names_in(node.attrs.get(attr)) - bound
                    if unbound:
                        raise ValueError(
                            f"node {position} ({node.op}) uses dynamic sizes {sorted(unbound)} that no "
                            "graph input carries"
                        )
            for name in node.outputs:
                define(name)
        for name in self.outputs.values:
            if name not in defined:
                raise ValueError(f"graph output {name!r} is never defined")
        if (self.outputs.kind == "dict") != (self.outputs.keys is not None):
            raise ValueError("graph outputs have 'keys' exactly when their kind is 'dict'")
        keys = self.outputs.keys
        if keys is not None and (len(keys) != len(self.outputs.values) or len(set(keys)) != len(keys)):
            raise ValueError("graph outputs need one distinct key per value")
        if self.outputs.kind == "single" and len(self.outputs.values) != 1:
            raise ValueError("a 'single' graph output has exactly one value")
        if (self.outputs.kind == "tree") != (self.outputs.tree is not None):
            raise ValueError("graph outputs have a 'tree' exactly when their kind is 'tree'")
        if self.outputs.tree is not None and structure.count(self.outputs.tree) != len(self.outputs.values):
            raise ValueError("the output tree does not hold exactly the graph's output values")
        return self


class _LayerAttrs(_Strict):
    block: str = Field(min_length=1)
    returns: Literal["single", "tuple", "list", "tree"] = "single"
    # Nested arguments (states as lists): the call's structure; its values are the inputs.
    args: list[Tree] | None = None
    # With returns "tree": the structure of the result; its values are the outputs.
    tree: Tree | None = None


class _NameAttrs(_Strict):
    name: str = Field(min_length=1)


class _ScalarAttrs(_Strict):
    value: bool | int | float

    @field_validator("value", mode="before")
    @classmethod
    def _int64(cls, value: Any) -> Any:
        # Checked before the union, which would turn a too-large int into a float.
        if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
            raise ValueError(f"the integer scalar {value} is outside [-2**63, 2**63)")
        return value


_SPECIAL_ATTRS: dict[str, type[BaseModel]] = {
    "layer": _LayerAttrs,
    "parameter": _NameAttrs,
    "constant": _NameAttrs,
    "scalar": _ScalarAttrs,
}


def _check_special(node: GraphNode, position: int) -> None:
    attrs = _SPECIAL_ATTRS[node.op].model_validate(node.attrs)
    if node.op != "layer" and (node.inputs or len(node.outputs) != 1):
        raise ValueError(f"node {position} ({node.op}) takes no inputs and has one output")
    if isinstance(attrs, _LayerAttrs):
        if attrs.returns == "single" and len(node.outputs) != 1:
            raise ValueError(f"node {position} (layer) returns a single value but names several")
        if (attrs.returns == "tree") != (attrs.tree is not None):
            raise ValueError(f"node {position} (layer) has a 'tree' exactly when it returns 'tree'")
        if attrs.tree is not None and structure.count(attrs.tree) != len(node.outputs):
            raise ValueError(f"node {position} (layer): its result tree does not match its outputs")
        if attrs.args is not None and sum(structure.count(a) for a in attrs.args) != len(node.inputs):
            raise ValueError(f"node {position} (layer): its argument structure does not match its inputs")


class GraphConfig(LayerConfig):
    """A traced block: the class it came from (for display only), its own parameters, its graph."""

    source_class: str = "Graph"
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict)
    # Bounded like the bundle's tensor count: the loader allocates a slot per constant.
    constants: int = Field(default=0, ge=0, le=100_000)
    graph: GraphSpec | None = None

    @field_validator("parameters")
    @classmethod
    def _parameter_names(cls, value: dict[str, ParameterSpec]) -> dict[str, ParameterSpec]:
        for name in value:
            # As a child's name: a '.' would make structured parameter names ambiguous.
            if not name or "." in name:
                raise ValueError(f"parameter name {name!r} is empty or holds '.'")
        return value


@register_layer("Graph", config=GraphConfig, container=True)
class GraphBlock(Block):
    """Runs a recorded graph over its child layers, parameters and constants.

    Children are attached by the loader (or ``register_child``) under their original names;
    constants arrive with ``set_constants``. ``graph=None`` marks a block that was never
    called while tracing: it holds parameters but cannot be run.
    """

    def __init__(
        self,
        source_class: str = "Graph",
        parameters: Mapping[str, Any] | None = None,
        constants: int = 0,
        graph: GraphSpec | Mapping[str, Any] | None = None,
        prefix: str | None = None,
    ) -> None:
        super().__init__(prefix=prefix)
        self._source_class = source_class
        self._param_specs = {
            name: spec if isinstance(spec, ParameterSpec) else ParameterSpec.model_validate(spec)
            for name, spec in (parameters or {}).items()
        }
        for name, spec in self._param_specs.items():
            setattr(
                self,
                name,
                Parameter(
                    name,
                    shape=tuple(spec.shape),
                    dtype=spec.dtype,
                    grad_req="write" if spec.trainable else "null",
                ),
            )
        self._graph = (
            graph if graph is None or isinstance(graph, GraphSpec) else GraphSpec.model_validate(graph)
        )
        self._constants: list[np.ndarray | None] = [None] * constants

    def register_child(self, block: Block, name: str | None = None) -> None:
        """Attach a child; it is also an attribute (``loaded.hidden``), as in the original class."""
        super().register_child(block, name)
        if name is not None and name.isidentifier() and not hasattr(type(self), name):
            object.__setattr__(self, name, block)

    def set_constants(self, arrays: list[np.ndarray]) -> None:
        """Attach the constant tensors the graph's ``constant`` nodes read, in order."""
        if len(arrays) != len(self._constants):
            raise FormatError(f"graph expects {len(self._constants)} constants, got {len(arrays)}")
        self._constants = list(arrays)

    @property
    def constant_count(self) -> int:
        """How many constant tensors the graph reads (known before they are attached)."""
        return len(self._constants)

    @property
    def constants(self) -> list[np.ndarray]:
        """The constant tensors (read-only use)."""
        return [c for c in self._constants if c is not None]

    def check_references(self) -> None:
        """Every layer, parameter and constant the graph names exists (called after loading)."""
        if self._graph is None:
            return
        params = dict(self.named_parameters())
        for node in self._graph.nodes:
            if node.op == "layer":
                self._resolve(node.attrs["block"])
            elif node.op == "parameter" and node.attrs["name"] not in params:
                raise SchemaError(
                    f"graph reads parameter {node.attrs['name']!r}, which the block does not have"
                )
            elif node.op == "constant":
                index = _constant_index(node.attrs["name"])
                if index is None or index >= len(self._constants):
                    raise SchemaError(f"graph reads constant {node.attrs['name']!r}, which does not exist")

    def _resolve(self, path: str) -> Block:
        block: Block = self
        for part in path.split("."):
            child = block.children.get(part)
            if child is None:
                raise SchemaError(f"graph calls block {path!r}, which is not a child of this block")
            block = child
        return block

    def forward(self, *args: Any) -> Any:
        graph = self._graph
        if graph is None:
            raise InputError(f"{self._source_class} was never called while tracing; it has no graph to run")
        flat = self._flat_arguments(graph, args)
        values: dict[str, Any] = {}
        sizes: dict[str, int] = {}
        for spec, arg in zip(graph.inputs, flat, strict=True):
            values[spec.name] = _check_input(spec, arg, self._source_class, sizes)
        # named_parameters, not collect_params: a forward must not rename the parameters.
        params = dict(self.named_parameters()) if any(n.op == "parameter" for n in graph.nodes) else {}
        for position, node in enumerate(graph.nodes):
            inputs = [values[name] for name in node.inputs]
            what = f"graph node {position} ({node.op})"
            try:
                results = self._run(node, inputs, params, sizes, what)
            except (ValueError, TypeError, IndexError, ArithmeticError) as exc:
                # numpy refusing the op (shapes that do not broadcast, a bad axis, a scalar
                # that does not fit the array's dtype): say where.
                raise InputError(
                    f"{self._source_class}: graph node {position} ({node.op}) cannot run on these "
                    f"inputs: {exc}"
                ) from exc
            budget.hold(results, inputs, what)  # this graph keeps them until it returns
            if len(results) != len(node.outputs):
                raise InputError(
                    f"{self._source_class}: graph node {position} ({node.op}) gave {len(results)} "
                    f"values where the graph names {len(node.outputs)}"
                )
            for name, result in zip(node.outputs, results, strict=True):
                values[name] = result
        outputs = [values[name] for name in graph.outputs.values]
        if graph.outputs.kind == "single":
            return outputs[0]
        if graph.outputs.kind == "tree":
            return structure.unflatten(graph.outputs.tree, outputs)
        if graph.outputs.kind == "dict":
            return dict(zip(graph.outputs.keys or [], outputs, strict=True))
        return tuple(outputs) if graph.outputs.kind == "tuple" else outputs

    def _flat_arguments(self, graph: GraphSpec, args: tuple[Any, ...]) -> list[Any]:
        """forward's arguments as the graph's flat inputs, after checking their structure."""
        if graph.args is None:
            if len(args) != len(graph.inputs):
                raise InputError(f"{self._source_class} expects {len(graph.inputs)} inputs, got {len(args)}")
            return list(args)
        try:
            return structure.values_of({"kind": "tuple", "items": graph.args}, tuple(args))
        except TypeError as exc:
            raise InputError(f"{self._source_class} expects arguments {exc}") from None

    def _run(
        self,
        node: GraphNode,
        inputs: list[Any],
        params: Mapping[str, Parameter],
        sizes: dict[str, int],
        what: str,
    ) -> list[Any]:
        from . import ops  # late, as above: ops imports the layers, which import this module

        if node.op == "layer":
            return self._call_layer(node.attrs, inputs)
        if node.op == "parameter":
            return [params[node.attrs["name"]].data()]
        if node.op == "constant":
            return [self._constants[_constant_index(node.attrs["name"]) or 0]]
        if node.op == "scalar":
            return [node.attrs["value"]]
        definition = ops.op_def(node.op)
        attrs = dict(node.attrs)
        for name in definition.sizes:
            if name in attrs:
                attrs[name] = resolve(attrs[name], sizes)
        # Sized from the inputs' shapes and the attributes before numpy allocates anything.
        budget.check(budget.op_bytes(node.op, inputs, attrs), what)
        result = hooks.run_op(node.op, inputs, attrs)  # recorded when inputs are autograd's Variables
        return list(result) if definition.returns_list(attrs) else [result]

    def _call_layer(self, attrs: Mapping[str, Any], inputs: list[Any]) -> list[Any]:
        """Call a child block as a ``layer`` node says; its result as the node's output values."""
        args = inputs if attrs.get("args") is None else structure.unflatten(
            {"kind": "list", "items": attrs["args"]}, inputs
        )
        result = self._resolve(attrs["block"])(*args)
        returns = attrs.get("returns", "single")
        if returns == "single":
            return [result]
        if returns == "tree":
            return structure.values_of(attrs["tree"], result)
        if not isinstance(result, (tuple, list)):  # an array would be split along axis 0
            raise InputError(
                f"{self._source_class}: block {attrs['block']!r} returned a "
                f"{type(result).__name__} where the graph expects a {returns}"
            )
        return list(result)

    def get_config(self) -> dict[str, Any]:
        return self.config_from_attributes(
            parameters={n: s.model_dump() for n, s in self._param_specs.items()},
            constants=len(self._constants),
            graph=self._graph.model_dump(mode="json") if self._graph is not None else None,
        )

    def summary_lines(self) -> list[str]:
        lines = super().summary_lines()
        if self._graph is not None:
            lines.append(f"  <graph: {len(self._graph.inputs)} inputs, {len(self._graph.nodes)} nodes>")
        return lines

    def __repr__(self) -> str:
        return super().__repr__().replace(type(self).__name__, f"Graph[{self._source_class}]", 1)


def _constant_index(name: str) -> int | None:
    match = re.fullmatch(r"#const([0-9]{1,9})", name)
    return int(match.group(1)) if match else None


def _check_input(spec: GraphInput, arg: Any, owner: str, sizes: dict[str, int]) -> Any:
    """Check rank and fixed sizes; bind dynamic sizes (a name seen twice must agree)."""
    shape = np.shape(arg)
    shown = ", ".join(str(d) for d in spec.shape)
    shown = f"({shown},)" if len(spec.shape) == 1 else f"({shown})"
    if len(shape) != len(spec.shape):
        raise InputError(f"{owner} input {spec.name!r} expects shape {shown}, got {shape}")
    for want, got in zip(spec.shape, shape, strict=True):
        if isinstance(want, str):
            if sizes.setdefault(want, got) != got:
                raise InputError(
                    f"{owner} input {spec.name!r}: dynamic size {want!r} is {got} here but "
                    f"{sizes[want]} in an earlier input"
                )
        elif want != got:
            raise InputError(f"{owner} input {spec.name!r} expects shape {shown}, got {shape}")
    return arg
