"""Block tree ↔ architecture tree: describe a network as registered layers, and rebuild it.

Registered layers describe themselves by their config. Custom Blocks (a hand-written
``forward``) are described by the graph tracing recorded for them (type ``Graph``); without
a trace they are refused. ``describe`` also refuses anything the registry cannot reproduce
exactly — a registered layer carrying extra children or parameters — because an archive must
never hold a structure whose loaded forward computes something different. A parameter used in
several places (a shared block, Gluon's ``params=``) is stored once and recorded as ties.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError

from ..errors import (
    DeferredInitializationError,
    FormatError,
    ModelpackError,
    SchemaError,
    UninitializedParameterError,
    UnsupportedBlockError,
)
from ..io.limits import Limits
from ..io.npy import FLOAT_DTYPES
from ..nn import registry
from ..nn.block import Block
from ..nn.budget import ActivationBudget, limit_activations
from ..nn.graph import GraphBlock, GraphConfig
from ..nn.graph_spec import constant_name
from ..nn.parameter import shapes_compatible
from ..nn.parameter_dict import ParameterDict
from ..nn.ties import apply_ties, find_ties
from .schema import LayerNode, Manifest, describe_errors, model_weights

if TYPE_CHECKING:  # (tracing is needed to export a custom forward, never to load)
    from ..tracing.record import TraceResult

__all__ = [
    "describe",
    "describe_for_export",
    "build",
    "build_model",
    "build_model_with_params",
    "limit_loaded",
    "parameter_problems",
    "attach_constants",
    "check_initialized",
    "check_rebuilds_identically",
    "check_backed",
]


def describe(
    block: Block,
    path: str = "",
    *,
    traces: TraceResult | None = None,
    constants: dict[str, np.ndarray] | None = None,
) -> LayerNode:
    """The architecture tree of ``block``; graph constants are added to ``constants`` by name."""
    where = f"block {path!r}" if path else "the top-level block"
    constants = constants if constants is not None else {}
    children = {
        name: describe(child, f"{path}.{name}" if path else name, traces=traces, constants=constants)
        for name, child in block.children.items()
    }
    type_name = registry.type_name_of(block)
    if "forward" in vars(block):
        raise UnsupportedBlockError(
            f"{where} ({type(block).__name__}) has its forward replaced on the instance"
        )
    if type_name is None:
        return _describe_custom(block, path, where, traces, constants, children)
    entry = registry.layer_type(type_name)
    if isinstance(block, GraphBlock):
        for index, array in enumerate(block.constants):
            constants[constant_name(path, index)] = array
    if children and not entry.container:
        raise UnsupportedBlockError(
            f"{where} ({type_name}) has child blocks {list(children)} that its forward never "
            "uses; remove them before export"
        )
    return _node(where, type_name, block.get_config(), children)


def _node(where: str, type_name: str, config: dict[str, Any], children: dict[str, LayerNode]) -> LayerNode:
    """The LayerNode the reader would validate; a config or a child name it would refuse
    (NaN where a bound applies, a '.' in a name, ...) is refused here, before any writing."""
    try:
        return LayerNode(type=type_name, config=config, children=children)
    except ValidationError as exc:
        raise UnsupportedBlockError(
            f"cannot export {where} ({type_name}): a reader would refuse it: {describe_errors(exc, 'layer')}"
        ) from None


def _describe_custom(
    block: Block,
    path: str,
    where: str,
    traces: TraceResult | None,
    constants: dict[str, np.ndarray],
    children: dict[str, LayerNode],
) -> LayerNode:
    if traces is None:
        raise UnsupportedBlockError(
            f"{where} is a {type(block).__name__}, a Block subclass with a hand-written forward; "
            "its computation lives in Python code. Pass example=<input array> to export() to "
            "trace it into a graph of registered ops, or build the network from registered "
            f"layers ({', '.join(registry.known_layers())})"
        )
    trace = traces.for_block(block)
    parameters: dict[str, Any] = {}
    for name, param in block.params.items():
        if param.dtype.name not in FLOAT_DTYPES:
            raise UnsupportedBlockError(f"{where}: parameter {name!r} has non-float dtype {param.dtype}")
        parameters[name] = {
            "shape": list(param.shape),
            "dtype": param.dtype.name,
            "trainable": param.grad_req != "null",
        }
    try:
        config = GraphConfig(
            source_class=type(block).__name__,
            parameters=parameters,
            constants=len(trace.constants) if trace else 0,
            graph=trace.spec if trace else None,
        )
    except ValidationError as exc:
        raise UnsupportedBlockError(
            f"cannot export {where} ({type(block).__name__}): a reader would refuse its graph: "
            f"{describe_errors(exc)}"
        ) from None
    if trace is not None:
        for index, array in enumerate(trace.constants):
            constants[constant_name(path, index)] = array
    return _node(where, "Graph", config.model_dump(mode="json"), children)


def build(node: LayerNode, *, source: str = "<architecture>", path: str = "") -> Block:
    """A fresh, uninitialised Block tree from a validated architecture tree.

    A layer refusing a config its schema let through is a SchemaError naming ``source``
    (configs should refuse everything their layers do; this is the net under that rule), as
    is a graph naming a block, parameter or constant that does not exist.
    """
    where = f"block {path!r}" if path else "the top-level block"
    entry = registry.layer_type(node.type)
    try:
        block = entry.build(dict(node.config))
    except ValueError as exc:
        raise SchemaError(
            f"{source}: the architecture cannot be built: {where} ({node.type}): {exc}"
        ) from exc
    for name, child in node.children.items():
        block.register_child(build(child, source=source, path=f"{path}.{name}" if path else name), name)
    if isinstance(block, GraphBlock):
        try:
            block.check_references()
        except SchemaError as exc:
            raise SchemaError(f"{source}: {where} (Graph): {exc}") from None
    return block


def build_model(
    tree: LayerNode, arrays: dict[str, np.ndarray], source: str, ties: dict[str, str] | None = None
) -> Block:
    """A model from its architecture and arrays: graph constants first, then the shared
    parameters tied, then parameters."""
    return build_model_with_params(tree, arrays, source, ties)[0]


def build_model_with_params(
    tree: LayerNode, arrays: dict[str, np.ndarray], source: str, ties: dict[str, str] | None = None
) -> tuple[Block, ParameterDict]:
    """``build_model``'s model and its parameters, collected once (a mapped load goes on to
    give each its first-read check; collecting them again costs ~10 µs a layer)."""
    net = build(tree, source=f"{source}: manifest.yaml")
    if ties:  # (no tie: nothing to check, no walk of the parameters)
        apply_ties(net, ties, f"{source}: manifest.yaml")
    params = net.collect_params()  # (once: set_parameters would collect them again)
    try:
        parameters = attach_constants(net, arrays, source)
        params.assign(parameters, source=source, model=type(net).__name__)  # = net.set_parameters
    except ModelpackError as exc:
        raise FormatError(f"{source}: weights do not fit the architecture: {exc}") from exc
    for name, param in params.items():
        check_backed(name, param.shape, source)
    return net, params


def limit_loaded(net: Block, source: str, limits: Limits, file_bytes: int) -> None:
    """Bound what the forward of a model a file described may allocate (loaded from an
    archive, or a graph imported from ONNX or MXNet): what the file describes may ask for far
    more memory at run time than it holds, so each size is refused before it is allocated."""
    limit_activations(net, ActivationBudget(source, limits, model_bytes=file_bytes))


def check_backed(name: str, shape: tuple[int, ...], source: str) -> None:
    """A parameter's sizes must be backed by its bytes: a config's 0 matches any stored size
    (spec §3.2), so a zero-size dimension would let 0 bytes stand for a layer of any size
    (Dense(units=2**30) with a weight of shape (2**30, 0)) that cannot run."""
    if 0 in shape:
        raise FormatError(
            f"{source}: parameter {name!r} has shape {tuple(shape)}, with a zero-size "
            "dimension: a layer with no weights to back its sizes cannot run"
        )


def describe_for_export(
    net: Block, traces: TraceResult | None
) -> tuple[LayerNode, dict[str, np.ndarray], dict[str, str]]:
    """The tree, every array and the ties an archive of ``net`` holds, after every check
    that the loaded model will be exactly ``net``: described, initialised, rebuilt identically."""
    constants: dict[str, np.ndarray] = {}
    tree = describe(net, traces=traces, constants=constants)
    check_initialized(net)
    ties = find_ties(net)
    check_rebuilds_identically(net, tree, ties)
    arrays = {name: param.array() for name, param in net.collect_params().items()}
    return tree, {**arrays, **constants}, ties


def attach_constants(net: Block, arrays: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """Give each graph block its constants; return the remaining arrays (the parameters)."""
    remaining = dict(arrays)
    for path, block in net.named_blocks():
        if isinstance(block, GraphBlock):
            names = [constant_name(path, i) for i in range(block.constant_count)]
            missing = [n for n in names if n not in remaining]
            if missing:
                raise FormatError(f"{source}: graph constants {missing} are missing from the weights")
            block.set_constants([remaining.pop(n) for n in names])
    return remaining


def check_initialized(block: Block) -> None:
    """Refuse export of parameters with no data, naming every one of them."""
    params = block.collect_params()
    deferred = [name for name, p in params.items() if p.is_deferred]
    missing = [name for name, p in params.items() if not p.is_initialized and not p.is_deferred]
    if deferred:
        raise DeferredInitializationError(
            f"cannot export: parameters {deferred} have unknown shapes (deferred "
            "initialization); call the network on an example input first"
        )
    if missing:
        raise UninitializedParameterError(
            f"cannot export: parameters {missing} are not initialized; call initialize() "
            "or load_parameters() first"
        )


def check_rebuilds_identically(block: Block, node: LayerNode, ties: dict[str, str] | None = None) -> None:
    """The rebuilt tree must have exactly the original's parameter names, shapes and dtypes."""
    original = block.collect_params()
    rebuilt_net = build(node)  # new Parameters: the network's are untouched
    apply_ties(rebuilt_net, ties or {}, "the rebuilt network")
    rebuilt = rebuilt_net.collect_params()
    if list(rebuilt) != list(original):
        differing = [n for n in original if n not in rebuilt] + [n for n in rebuilt if n not in original]
        raise UnsupportedBlockError(
            f"cannot export: parameters {differing} differ between the network and what its "
            "registered layers' configs create (were parameters added to a registered layer by hand?)"
        )
    for name, param in original.items():
        declared = rebuilt[name]
        if not shapes_compatible(declared.shape, param.shape) or declared.dtype != param.dtype:
            raise UnsupportedBlockError(
                f"cannot export: parameter {name!r} is {param.shape} {param.dtype.name} but its "
                f"layer's config declares {declared.shape} {declared.dtype.name}"
            )


def parameter_problems(manifest: Manifest, where: str, source: str) -> list[str]:
    """What ``verify`` reports of the architecture: the parameters it creates must be exactly
    the listed tensors (graph constants aside), with their dtypes and shapes, each backed by
    bytes. ``where`` names the manifest, ``source`` the file."""
    assert manifest.architecture is not None
    try:
        net = build(manifest.architecture, source=where)
        apply_ties(net, manifest.ties or {}, where)
    except ModelpackError as exc:
        return [str(exc)]
    problems = []
    params = net.collect_params()
    constants = _constant_names(net)
    listed = {name: info for name, info in model_weights(manifest).items() if name not in constants}
    for name, param in params.items():
        info = listed.get(name)
        if info is None:
            problems.append(f"{where}: the architecture has parameter {name!r}, which `weights` lacks")
        elif info.dtype != param.dtype.name or not shapes_compatible(param.shape, tuple(info.shape)):
            problems.append(
                f"{where}: parameter {name!r} is {param.dtype.name} {param.shape} in the architecture, "
                f"{info.dtype} {tuple(info.shape)} in the weights index"
            )
        else:
            try:
                check_backed(name, tuple(info.shape), source)
            except ModelpackError as exc:
                problems.append(str(exc))
    problems += [f"{where}: tensor {name!r} is not a parameter of the architecture"
                 for name in listed if name not in params]
    problems += [f"{where}: the graph reads constant {name!r}, which `weights` lacks"
                 for name in sorted(constants - set(manifest.weights))]
    return problems


def _constant_names(net: Block) -> set[str]:
    """Bundle names of graph constants (``P#const<k>``), which are not parameters."""
    names: set[str] = set()
    for path, block in net.named_blocks():
        if isinstance(block, GraphBlock):
            names.update(constant_name(path, i) for i in range(block.constant_count))
    return names
