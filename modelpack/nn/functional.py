"""``F``: every op of the op table as a function, eager on arrays and recorded while tracing.

>>> from modelpack.nn import functional as F
>>> F.softmax(np.array([0.0, 0.0]))  # doctest: +SKIP
array([0.5, 0.5])

The functions are derived from ``modelpack.nn.ops`` (nothing is declared here) and take
numpy's calling convention: ``F.sum(x, axis=1)``, ``F.concatenate([a, b], axis=0)``,
``F.reshape(x, (2, -1))``, plus the ops numpy lacks under MXNet's names (``relu``, ``softmax``,
``gelu``, ``leaky_relu(x, alpha)``, ...). Plain numpy works too inside a traced ``forward``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import ops


def _function(op: ops.OpDef) -> Callable[..., Any]:
    def function(*args: Any, **kwargs: Any) -> Any:
        inputs, attrs = op.call(*args, **kwargs)
        # Late import: tracing sits above nn (it records nn's ops) and must not load with it.
        from ..tracing.standins import apply

        return apply(op.name, inputs, attrs)

    function.__name__ = function.__qualname__ = op.name
    function.__doc__ = op.fn.__doc__
    return function


globals().update({name: _function(op) for name, op in ops.OPS.items()})
__all__ = sorted(ops.OPS)


def __getattr__(name: str) -> Any:  # for type checkers: every op is an attribute
    if name in ("np", "npx"):
        # Gluon 1.x's hybrid_forward(F, x) calls F.npx.relu and F.np.dot: the top-level modules,
        # imported here on first use (they sit above nn, which must not import them at load).
        import importlib

        return importlib.import_module(f"modelpack.{name}")
    raise AttributeError(f"modelpack.nn.functional has no op {name!r}; ops: {', '.join(__all__)}")
