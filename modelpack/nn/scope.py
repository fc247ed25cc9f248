"""Which code runs on this thread: a script, a user's forward, or a layer's own.

Layers compute on plain numpy arrays, which their kernels take as they are (a subclass
takes a slower path). Code written for MXNet sees MXNet's arrays instead, as d2l's does: a
custom block's forward gets its inputs, and what the blocks it calls return, as ``NDArray``
views; a script gets the output of the block it calls (``.asnumpy()``, ``int(y)``) and a
parameter's ``data()``, with its ``.grad``, the same way (``devices``). Layers take the plain
array back with ``np.asarray``, which copies nothing.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["in_user_code", "user_code", "in_forward", "in_layer", "outermost"]

_depth = threading.local()  # .custom: custom forwards running; .layers: 1 inside a script's call


def in_user_code() -> bool:
    """Whether a custom block's forward is running on this thread."""
    return getattr(_depth, "custom", 0) > 0


@contextlib.contextmanager
def user_code(entering: bool) -> Iterator[None]:
    """Count a custom forward (``entering``) for ``in_user_code`` while it runs."""
    if not entering:
        yield
        return
    _depth.custom = getattr(_depth, "custom", 0) + 1
    try:
        yield
    finally:
        _depth.custom -= 1


def in_forward() -> bool:
    """Whether any block's forward is running on this thread (else a script is)."""
    return getattr(_depth, "layers", 0) > 0 or getattr(_depth, "custom", 0) > 0


def in_layer() -> bool:
    """Whether a registered block called by a script is running on this thread."""
    return getattr(_depth, "layers", 0) > 0


def outermost(call: Callable[..., Any], *args: Any) -> Any:
    """``call(*args)``, a registered block called by a script, with every block it calls
    nested (``in_layer``, ``in_forward``)."""
    _depth.layers = 1
    try:
        return call(*args)
    finally:
        _depth.layers = 0
