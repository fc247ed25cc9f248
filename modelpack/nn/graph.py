"""``Graph``: a block whose forward is a recorded dataflow graph instead of Python code.

Tracing (``modelpack.tracing.record``) turns a custom Block's ``forward`` into a ``GraphConfig``;
loading an archive turns that config back into a ``GraphBlock`` that owns the same child
layers under the same names (so ``collect_params()`` and ``load_parameters`` match the
original class) and evaluates the nodes in order. Nothing is ever imported or executed from
the file: every node is a registered op, a call to a child block, a parameter, a constant
tensor from the weight bundle, or a scalar. The graph's data models are in ``nn.graph_spec``.
At inference, a convolution's node, the BatchNorm's that alone reads its value and the ReLU's
that alone reads that run as one step, the last two in place (``nn.fusion`` finds the chains
and holds the rules; this module runs them).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from ..errors import FormatError, InputError, SchemaError
from . import budget, fusion, hooks, structure
from .block import Block
from .graph_spec import GraphInput, GraphNode, GraphSpec, ParameterSpec, constant_index
from .parameter import Parameter
from .registry import LayerConfig, register_layer
from .sizes import resolve

__all__ = ["GraphBlock", "GraphConfig"]

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
        self._chains: list[fusion.Chain] | None = None  # the graph's fusable chains, found on first use
        self._labels: list[str] | None = None  # each node's name in messages, made on first use
        self._dead: list[tuple[str, ...]] | None = None  # _last_reads, found on first use

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
    def graph(self) -> GraphSpec | None:
        """The recorded computation (its inputs, nodes and outputs), read-only use."""
        return self._graph

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
                index = constant_index(node.attrs["name"])
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
        if self._labels is None:  # (formatted once: a string per node per call cost ~0.3 µs)
            self._labels = [f"graph node {position} ({node.op})" for position, node in enumerate(graph.nodes)]
        labels = self._labels
        if self._dead is None:
            self._dead = _last_reads(graph)
        dead = self._dead
        held: dict[str, int] = {}  # the bytes the budget counts for each value
        fused = self._fused(graph) if fusion.enabled() else {}
        skipped: set[int] = set()
        for position, node in enumerate(graph.nodes):
            if position in skipped:  # (computed by a fused chain)
                continue
            inputs = [values[name] for name in node.inputs]
            what = labels[position]
            names = node.outputs
            try:
                chain = fused.get(position)
                if chain is None:
                    results = self._run(node, inputs, params, sizes, what)
                else:
                    results, names = [chain.run(inputs[0])], [chain.output]
                    skipped.update(chain.later)
            except (ValueError, TypeError, IndexError, ArithmeticError) as exc:
                # numpy refusing the op (shapes that do not broadcast, a bad axis, a scalar
                # that does not fit the array's dtype): say where.
                raise InputError(
                    f"{self._source_class}: graph node {position} ({node.op}) cannot run on these "
                    f"inputs: {exc}"
                ) from exc
            counted = budget.hold(results, inputs, what)  # kept until no later node reads them
            if len(results) != len(names):
                raise InputError(
                    f"{self._source_class}: graph node {position} ({node.op}) gave {len(results)} "
                    f"values where the graph names {len(names)}"
                )
            for name, result, size in zip(names, results, counted, strict=True):
                values[name] = result
                if size:
                    held[name] = size
            inputs = results = []  # (so that the values let go below are freed)
            for done in (position, *(chain.later if chain is not None else ())):
                _let_go(values, held, dead[done])
        return graph.outputs.pack([values[name] for name in graph.outputs.values])

    def _fused(self, graph: GraphSpec) -> dict[int, _Fused]:
        """The chains that fuse on this call, by their first node's position: the blocks are
        looked up and checked at each call (a child may be replaced, a hook added)."""
        if self._chains is None:
            self._chains = fusion.graph_chains(graph)
        found: dict[int, _Fused] = {}
        taken: set[int] = set()
        for chain in self._chains:
            if chain.conv in taken or chain.norm in taken:
                continue
            conv, norm = (self._resolve(graph.nodes[p].attrs["block"]) for p in (chain.conv, chain.norm))
            if not fusion.foldable(conv, norm):
                continue
            relu = chain.relu is not None and (
                graph.nodes[chain.relu].op == "relu"
                or fusion.is_relu(self._resolve(graph.nodes[chain.relu].attrs["block"])))
            later = (chain.norm, chain.relu) if relu and chain.relu is not None else (chain.norm,)
            output = graph.nodes[later[-1]].outputs[0]
            found[chain.conv] = _Fused(fusion.in_place_step(conv, norm, relu), output, later)
            taken.update((chain.conv, *later))
        return found

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
        if node.op == "layer":
            return self._call_layer(node.attrs, inputs)
        if node.op == "parameter":
            return [params[node.attrs["name"]].data()]
        if node.op == "constant":
            return [self._constants[constant_index(node.attrs["name"]) or 0]]
        if node.op == "scalar":
            return [node.attrs["value"]]
        definition = hooks.op_table().op_def(node.op)
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


def _let_go(values: dict[str, Any], held: dict[str, int], names: tuple[str, ...]) -> None:
    """Drop ``names`` from a running graph's values; the budget stops counting an array only
    when this frees it (no view of it, autograd's tape or the caller still holds it)."""
    for name in names:
        value = values.pop(name, None)
        size = held.pop(name, 0)
        if size and sys.getrefcount(value) <= 2:  # (the name ``value`` and this call's argument)
            budget.release(size)


def _last_reads(graph: GraphSpec) -> list[tuple[str, ...]]:
    """For each node, the values it is the last to read (not the graph's outputs): the forward
    drops them after it, so that numpy reuses their memory for the next arrays, as a Block's
    own forward does when its locals go (holding every value to the end ran a loaded
    ResNet's forward slower than the Block it was traced from)."""
    last: dict[str, int] = {}
    for position, node in enumerate(graph.nodes):
        for name in node.inputs:
            last[name] = position
    for name in graph.outputs.values:
        last.pop(name, None)
    dead: list[list[str]] = [[] for _ in graph.nodes]
    for name, position in last.items():
        dead[position].append(name)
    return [tuple(names) for names in dead]


@dataclass(frozen=True)
class _Fused:
    """A chain fused on this call: its step, the value it gives and the later nodes it runs."""

    run: fusion.Step
    output: str
    later: tuple[int, ...]


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
