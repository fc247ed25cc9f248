"""Block tree ↔ architecture tree: describe a network as registered layers, and rebuild it.

``describe`` refuses anything the registry cannot reproduce exactly — a Block subclass with a
hand-written ``forward``, a registered layer carrying extra children or parameters — because
an archive must never hold a structure whose loaded forward computes something different.
"""

from __future__ import annotations

from typing import Any

from . import registry
from .errors import DeferredInitializationError, UninitializedParameterError, UnsupportedBlockError
from .nn.block import Block
from .nn.parameter import shapes_compatible
from .schema import LayerNode

__all__ = ["describe", "build", "check_initialized", "check_rebuilds_identically"]


def describe(block: Block, path: str = "") -> LayerNode:
    """The architecture tree of ``block``; raises UnsupportedBlockError naming the culprit."""
    where = f"block {path!r}" if path else "the top-level block"
    type_name = registry.type_name_of(block)
    if type_name is None:
        raise UnsupportedBlockError(
            f"{where} is a {type(block).__name__}, a Block subclass with a hand-written "
            "forward; its computation lives in Python code, which an archive cannot hold "
            "until tracing is available. Build the network from registered layers "
            f"({', '.join(registry.known_layers())}) or save its parameters with "
            "save_parameters()"
        )
    if "forward" in vars(block):
        raise UnsupportedBlockError(f"{where} ({type_name}) has its forward replaced on the instance")
    entry = registry.layer_type(type_name)
    config: dict[str, Any] = block.get_config()  # type: ignore[attr-defined]
    children: dict[str, LayerNode] = {}
    if entry.container:
        for name, child in block.children.items():
            children[name] = describe(child, f"{path}.{name}" if path else name)
    elif block.children:
        raise UnsupportedBlockError(
            f"{where} ({type_name}) has child blocks {list(block.children)} that its "
            "forward never uses; remove them before export"
        )
    return LayerNode(type=type_name, config=config, children=children)


def build(node: LayerNode) -> Block:
    """A fresh, uninitialised Block tree from a validated architecture tree."""
    entry = registry.layer_type(node.type)
    block = entry.build(dict(node.config))
    for name, child in node.children.items():
        block.register_child(build(child), name)
    return block


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


def check_rebuilds_identically(block: Block, node: LayerNode) -> None:
    """The rebuilt tree must have exactly the original's parameter names, shapes and dtypes."""
    original = block.collect_params()
    rebuilt = build(node).collect_params()
    if list(rebuilt) != list(original):
        differing = [n for n in original if n not in rebuilt] + [n for n in rebuilt if n not in original]
        raise UnsupportedBlockError(
            f"cannot export: parameters {differing} differ between the network and what its "
            "registered layers' configs create (were parameters added, or blocks shared, by hand?)"
        )
    for name, param in original.items():
        declared = rebuilt[name]
        if not shapes_compatible(declared.shape, param.shape) or declared.dtype != param.dtype:
            raise UnsupportedBlockError(
                f"cannot export: parameter {name!r} is {param.shape} {param.dtype.name} but its "
                f"layer's config declares {declared.shape} {declared.dtype.name}"
            )
