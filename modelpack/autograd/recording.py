"""Recording mode (``record``, ``pause``, ``train_mode``) and ``backward``, which walks the tape.

While recording, the layer library's hooks (``nn.hooks``) route every block call and
parameter read through a ``Recorder``: a parameter that trains becomes a leaf Variable (one
per parameter per ``record()``), and each block call is dispatched by
``layer_vjps.call_block``. ``backward`` visits each node once, outputs before inputs, and
hands parameters their gradients through ``Parameter.grad_req`` (write, add, or null).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import AutogradError
from ..nn import hooks
from ..nn.devices import on_tape
from ..nn.mode import training
from .variable import Variable, set_recording, value_of

if TYPE_CHECKING:
    from ..nn.block import Block
    from ..nn.parameter import Parameter

__all__ = ["Recorder", "active_recorder", "record", "pause", "train_mode", "predict_mode", "backward"]


class Recorder:
    """What ``nn.hooks`` calls while recording: parameters become leaves, blocks record nodes."""

    sees_real_values = True

    def __init__(self) -> None:
        self.leaves: dict[int, Variable] = {}

    def call_block(self, block: Block, args: tuple[Any, ...]) -> Any:
        from .rules import call_block  # late: the layer rules import the layer library

        return call_block(self, block, tuple(on_tape(arg) for arg in args))

    def read_parameter(self, param: Parameter) -> Any | None:
        """A trained parameter's leaf Variable; None (the plain array) for a frozen one."""
        if param.grad_req == "null":
            return None
        leaf = self.leaves.get(id(param))
        if leaf is None:
            with hooks.suspended():
                leaf = Variable(param.data(), param=param)
            self.leaves[id(param)] = leaf
        return leaf

    def write_parameter(self, param: Parameter) -> None:
        self.leaves.pop(id(param), None)  # new data (set_data) means a new leaf


def active_recorder() -> Recorder | None:
    """The recorder of this thread's current ``record()``, if any."""
    interceptor = hooks.active()
    return interceptor if isinstance(interceptor, Recorder) else None


@contextlib.contextmanager
def _mode(recording: bool, train: bool | None) -> Iterator[None]:
    recorder = (active_recorder() or Recorder()) if recording else None
    mode = training(train) if train is not None else contextlib.nullcontext()
    previous = set_recording(recording)
    try:
        with hooks.intercepting(recorder), mode:
            yield
    finally:
        set_recording(previous)


def record(train_mode: bool = True) -> contextlib.AbstractContextManager[None]:
    """Record the enclosed forward for ``backward``; ``train_mode`` switches Dropout and
    BatchNorm to training behaviour, as MXNet's ``autograd.record`` does.

    >>> with autograd.record():                      # doctest: +SKIP
    ...     loss = loss_fn(net(X), y)
    >>> loss.backward()                              # doctest: +SKIP
    """
    return _mode(True, train_mode)


def pause(train_mode: bool = False) -> contextlib.AbstractContextManager[None]:
    """Stop recording inside ``record()`` (e.g. to compute a metric), in inference mode by default."""
    return _mode(False, train_mode)


def train_mode() -> contextlib.AbstractContextManager[None]:
    """Training behaviour of Dropout and BatchNorm, recording or not."""
    return training(True)


def predict_mode() -> contextlib.AbstractContextManager[None]:
    """Inference behaviour of Dropout and BatchNorm, recording or not."""
    return training(False)


def backward(
    heads: Sequence[Variable], head_grads: Sequence[Any] | None = None, *, retain_graph: bool = False
) -> None:
    """Backpropagate from ``heads`` (with gradients ``head_grads``, ones by default) to every leaf.

    Each parameter reached gets the sum of its gradients in one ``Parameter`` update, so
    ``grad_req="write"`` is right even when the parameter was used several times.
    """
    param_grads = _parameter_gradients(heads, head_grads, retain_graph)
    while param_grads:
        param, grad = param_grads.popitem()[1]
        owned = _references(grad) <= _SOLE  # as a statement: an argument pushed would count
        param._receive_grad(grad, owned=owned)


def _parameter_gradients(
    heads: Sequence[Variable], head_grads: Sequence[Any] | None, retain_graph: bool
) -> dict[int, tuple[Parameter, np.ndarray]]:
    """Each parameter reached and its total gradient; the Variables' gradients filled in.
    (Its own frame: once it returns, none of its locals holds a gradient array.)"""
    grads: dict[int, np.ndarray | None] = {}
    for head, seed in zip(heads, _seed_grads(heads, head_grads), strict=True):
        _accumulate(grads, head, seed)
    param_grads: dict[int, tuple[Parameter, np.ndarray]] = {}
    for variable in _outputs_first(heads):
        grad = grads.pop(id(variable), None)
        if grad is None:
            continue
        node = variable.node
        if node is None:  # a leaf
            if variable.param is not None:
                found = param_grads.get(id(variable.param))
                param_grads[id(variable.param)] = (variable.param, grad if found is None else found[1] + grad)
            else:
                variable.grad = grad if variable.grad is None else variable.grad + grad
            continue
        if node.vjp is None:
            raise AutogradError(
                f"backward reached {node.name} again after an earlier backward freed its graph; "
                "pass retain_graph=True to the first backward"
            )
        parent_grads = node.vjp(grad)
        if not retain_graph:
            node.vjp = None
        for parent, parent_grad in zip(node.parents, parent_grads, strict=True):
            if parent is not None and parent_grad is not None:
                _accumulate(grads, parent, parent_grad)
    return param_grads


def _references(array: np.ndarray) -> int:
    """The references to ``array``: ``_SOLE`` when only the caller's one local holds it."""
    return sys.getrefcount(array) if array.base is None else _SHARED


def _sole_count() -> int:
    array = np.empty(0)  # held by this one local
    return _references(array)


# A parameter takes a gradient array that nothing else holds (a VJP's new product) as it is,
# without the copy that keeps it apart from any other holder (a head gradient the caller
# passed, an array two parameters got, a view): 0.75 ms of the MLP's 15 ms training step.
# The count is calibrated here, through the same calls, not assumed of the interpreter.
_SHARED = 1 << 30
_SOLE = _sole_count()


def _seed_grads(heads: Sequence[Variable], head_grads: Sequence[Any] | None) -> list[np.ndarray]:
    given = list(head_grads) if head_grads is not None else [None] * len(heads)
    if len(given) != len(heads):
        raise AutogradError(f"backward got {len(heads)} heads but {len(given)} head gradients")
    seeds = []
    for head, grad in zip(heads, given, strict=True):
        if not isinstance(head, Variable):
            raise AutogradError(
                f"backward needs a value computed inside autograd.record() from parameters or "
                f"Variables, got {type(head).__name__}"
            )
        seed = np.ones_like(head.value) if grad is None else np.asarray(value_of(grad), dtype=head.dtype)
        if seed.shape != head.shape:
            raise AutogradError(f"head gradient has shape {seed.shape}, but the head has shape {head.shape}")
        seeds.append(seed)
    return seeds


def _accumulate(grads: dict[int, np.ndarray | None], variable: Variable, grad: Any) -> None:
    grad = np.asarray(grad)
    if grad.shape != variable.value.shape:  # a VJP's bug, never the user's: name the op
        made_by = variable.node.name if variable.node is not None else "a leaf"
        raise AutogradError(
            f"internal error: gradient of shape {grad.shape} for a value of shape "
            f"{variable.value.shape} made by {made_by}"
        )
    if grad.dtype != variable.value.dtype and np.issubdtype(variable.value.dtype, np.floating):
        grad = grad.astype(variable.value.dtype)
    previous = grads.get(id(variable))
    grads[id(variable)] = grad if previous is None else previous + grad


def _outputs_first(heads: Sequence[Variable]) -> list[Variable]:
    """Every Variable reachable from the heads, each before the values it was computed from
    (an iterative depth-first search: a deep network cannot exhaust the Python stack)."""
    order: list[Variable] = []
    seen: set[int] = set()
    for head in heads:
        if id(head) in seen:
            continue
        seen.add(id(head))
        stack: list[tuple[Variable, int]] = [(head, 0)]
        while stack:
            variable, index = stack.pop()
            parents = variable.node.parents if variable.node is not None else ()
            if index < len(parents):
                stack.append((variable, index + 1))
                parent = parents[index]
                if parent is not None and id(parent) not in seen:
                    seen.add(id(parent))
                    stack.append((parent, 0))
            else:
                order.append(variable)  # after all its parents
    order.reverse()
    return order

