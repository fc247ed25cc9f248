"""Where tracing and autograd plug into the layer library, and nothing else.

While a tracer (``modelpack.tracing.record``) or autograd's recorder is active, every
``Block.__call__`` and every ``Parameter.data()``/``set_data()`` is routed through it, so that
``forward`` code written for plain numpy can be recorded. Without one these hooks cost one
lookup. ``run_op`` runs a registered op, or lets an input type that records ops (autograd's
``Variable``, through ``__modelpack_op__``) record it.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .block import Block
    from .parameter import Parameter

__all__ = ["Interceptor", "active", "intercepting", "suspended", "run_op", "op_table"]


class Interceptor(Protocol):
    """What a tracer implements to observe a forward pass."""

    # Whether the values are real arrays (autograd, a summary) rather than stand-ins (tracing a
    # graph for an archive): only then do a block's Gluon forward hooks run around its calls
    # and its custom forward get its inputs as NDArrays (devices.py).
    sees_real_values: bool

    def call_block(self, block: Block, args: tuple[Any, ...]) -> Any: ...

    def read_parameter(self, param: Parameter) -> Any | None: ...

    def write_parameter(self, param: Parameter) -> None: ...


_state = threading.local()


def active() -> Interceptor | None:
    """The tracer observing this thread, if any."""
    return getattr(_state, "interceptor", None)


@contextlib.contextmanager
def intercepting(interceptor: Interceptor | None) -> Iterator[None]:
    """Route block calls and parameter access through ``interceptor`` (None: plain numpy)."""
    previous = active()
    _state.interceptor = interceptor
    try:
        yield
    finally:
        _state.interceptor = previous


def suspended() -> contextlib.AbstractContextManager[None]:
    """Run plain numpy inside an intercepted region (e.g. a layer's own forward)."""
    return intercepting(None)


def run_op(name: str, inputs: Sequence[Any], attrs: Mapping[str, Any]) -> Any:
    """Registered op ``name`` on ``inputs``: recorded by the first input whose type defines
    ``__modelpack_op__``, else its numpy function run directly."""
    for value in inputs:
        record = getattr(type(value), "__modelpack_op__", None)
        if record is not None:
            return record(name, inputs, dict(attrs))
    return op_table().op_def(name).fn(*inputs, **attrs)


@functools.cache
def op_table() -> ModuleType:
    """``nn.ops``, imported on first use: the op set imports the layer library, which imports
    this module (an import statement at each op call cost ~2 µs of a loaded graph's node)."""
    from . import ops

    return ops
