"""The graph format: the models a traced ``forward`` is stored as, and the checks that make a
graph well formed (every value defined once before use, known ops with valid attributes).

``nn.graph.GraphBlock`` runs a graph; ``tracing.record`` writes one; interop's importers
build them. This module holds only data models and their validation: it runs nothing.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..io.npy import FLOAT_DTYPES
from . import structure
from .sizes import SYMBOL_PATTERN, names_in
from .structure import Tree

__all__ = [
    "GraphSpec",
    "GraphNode",
    "GraphInput",
    "GraphOutputs",
    "ParameterSpec",
    "SPECIAL_OPS",
    "constant_name",
    "constant_index",
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

    def pack(self, found: list[Any]) -> Any:
        """What forward returns, from what each name of ``values`` came to (by the graph
        evaluator, or the ONNX writer's names)."""
        if self.kind == "single":
            return found[0]
        if self.kind == "tree":
            return structure.unflatten(self.tree, found)
        if self.kind == "dict":
            return dict(zip(self.keys or [], found, strict=True))
        return tuple(found) if self.kind == "tuple" else found


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


def constant_index(name: str) -> int | None:
    """The k of a constant node's name ``#const<k>``, or None for any other name."""
    match = re.fullmatch(r"#const([0-9]{1,9})", name)
    return int(match.group(1)) if match else None
