"""Training vs inference mode, like Gluon's ``autograd.record(train_mode=True)``.

Inference is the default: Dropout is the identity and BatchNorm uses its running statistics.
Inside ``with nn.training():`` Dropout drops and BatchNorm normalises with batch statistics
and updates its running averages.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

__all__ = ["training", "is_training"]

_state = threading.local()


def is_training() -> bool:
    """True inside a ``training()`` block on this thread."""
    return bool(getattr(_state, "training", False))


@contextlib.contextmanager
def training(enabled: bool = True) -> Iterator[None]:
    """Run the enclosed forward calls in training (or, with ``False``, inference) mode."""
    previous = is_training()
    _state.training = enabled
    try:
        yield
    finally:
        _state.training = previous
