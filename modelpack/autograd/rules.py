"""How a registered layer's call becomes one tape node: the rule table and its dispatch.

The forward is the layer's own ``forward`` on plain arrays (so training computes exactly
what inference computes, BatchNorm's running averages included); the layer's rule supplies
the VJP that maps the output's gradient to the input's and to each trained parameter's. The
rules live in ``layer_vjps`` (dense, activations, normalisation, ...) and ``spatial_vjps``
(convolution, pooling, padding). Containers (``Sequential``, ``Concatenate``, ``Graph``),
pass-through layers (``Identity``, ``Lambda``) and custom blocks are not nodes: their
``forward`` runs on Variables, so the layers and ops inside record themselves. A subclass
that overrides ``forward`` is treated as custom.

A rule is ``rule(block, x) -> (out, backward)`` with ``backward(g, wants) -> (grad_x, {param
name: grad})``; ``wants`` names what has a use ("x" and the parameters that train), so a
first layer never computes the gradient of the data and a frozen layer skips its weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..nn import hooks
from ..nn.block import Block
from .variable import Variable, make_node, value_of
from .vjps import OUTPUT_ONLY, VJPS

if TYPE_CHECKING:
    from .recording import Recorder

__all__ = ["RULES", "PASS_THROUGH", "rule", "rule_for", "call_block", "forward", "forward_saving", "data",
           "through_activation"]

Grads = dict[str, np.ndarray]
LayerBackward = Callable[[np.ndarray, frozenset[str]], tuple[Any, Grads]]
Rule = Callable[[Any, Any], tuple[Any, LayerBackward]]
RULES: dict[type[Block], Rule] = {}
# Registered layers whose forward is differentiable as written (it only calls recorded ops).
PASS_THROUGH: set[type[Block]] = set()


def rule(*classes: type[Block]) -> Callable[[Rule], Rule]:
    """Decorator: the rule of ``classes`` (and of their subclasses that keep ``forward``)."""

    def add(fn: Rule) -> Rule:
        for cls in classes:
            RULES[cls] = fn
        return fn

    return add


def rule_for(block: Block) -> Rule | None:
    """The rule of ``block``'s layer class, unless its ``forward`` was replaced."""
    for cls in type(block).__mro__:
        found = RULES.get(cls)
        if found is not None:
            return found if type(block).forward is cls.forward else None  # type: ignore[attr-defined]
    return None


def call_block(recorder: Recorder, block: Block, args: tuple[Any, ...]) -> Any:
    """Run one block call while recording (what ``nn.hooks`` routes ``Block.__call__`` to)."""
    found = rule_for(block)
    if found is None or len(args) != 1:  # (a layer given several inputs raises its own TypeError)
        return block.forward(*args)
    (x,) = args
    out, backward = found(block, value_of(x))
    # Read after the forward: a deferred parameter has its data only now.
    leaves = {name: recorder.read_parameter(param) for name, param in block.params.items()}
    trained = {name: leaf for name, leaf in leaves.items() if isinstance(leaf, Variable)}
    wants = frozenset([*trained, *(["x"] if isinstance(x, Variable) else [])])

    def vjp(grad: np.ndarray) -> list[Any]:
        grad_x, grads = backward(grad, wants)
        return [grad_x, *(grads.get(name) for name in trained)]

    return make_node(type(block).__name__, out, [x, *trained.values()], vjp)


def forward(block: Block, x: Any) -> Any:
    """The layer's own forward on plain arrays (parameters read as arrays)."""
    with hooks.suspended():
        return block.forward(x)


def forward_saving(block: Block, x: Any) -> tuple[Any, Any]:
    """The layer's forward on plain arrays, with what it saved for its backward (a layer whose
    kernel keeps intermediate results, such as convolution's columns, has ``_forward``)."""
    with hooks.suspended():
        return block._forward(x)  # type: ignore[attr-defined]


def data(block: Block, name: str) -> np.ndarray:
    """A parameter's array, not its leaf."""
    with hooks.suspended():
        return block.params[name].array()


def through_activation(name: str | None, grad: np.ndarray, out: np.ndarray, pre: Callable[[], Any]) -> Any:
    """The gradient before a layer's fused activation; ``pre()`` recomputes its input if the
    activation's VJP needs more than its output."""
    if name is None:
        return grad
    x = out if name in OUTPUT_ONLY else pre()
    return VJPS[name](grad, out, [x], {})[0]
