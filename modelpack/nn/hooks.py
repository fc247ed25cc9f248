"""Where tracing plugs into the layer library, and nothing else.

While a tracer is active (``modelpack.tracing.record``), every ``Block.__call__`` and every
``Parameter.data()``/``set_data()`` is routed through it, so that ``forward`` code written
for plain numpy can be recorded as a graph. Without a tracer these hooks cost one lookup.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .block import Block
    from .parameter import Parameter

__all__ = ["Interceptor", "active", "intercepting", "suspended"]


class Interceptor(Protocol):
    """What a tracer implements to observe a forward pass."""

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
