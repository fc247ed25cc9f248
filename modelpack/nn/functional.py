"""``F``: the functional ops forward code may use; eager on arrays, recorded while tracing.

>>> from modelpack.nn import functional as F
>>> F.softmax(np.array([0.0, 0.0]))  # doctest: +SKIP
array([0.5, 0.5])

Plain numpy works too inside a traced ``forward`` (``np.concatenate``, ``x @ w``, ``x[:, :4]``,
``np.tanh``, ...) for the ops in ``modelpack.nn.ops``; these functions add the ones numpy lacks
(``relu``, ``softmax``, ``gelu``, ...) under MXNet's names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "add",
    "subtract",
    "multiply",
    "divide",
    "negative",
    "matmul",
    "power",
    "maximum",
    "minimum",
    "exp",
    "log",
    "sqrt",
    "abs",
    "where",
    "relu",
    "sigmoid",
    "tanh",
    "softrelu",
    "softsign",
    "gelu",
    "silu",
    "leaky_relu",
    "elu",
    "softmax",
    "log_softmax",
    "concatenate",
    "stack",
    "reshape",
    "transpose",
    "flatten",
    "squeeze",
    "expand_dims",
    "cast",
    "sum",
    "mean",
    "max",
    "min",
]


def _apply(op: str, inputs: list[Any], attrs: dict[str, Any] | None = None) -> Any:
    from ..tracing.standins import apply  # late: traced imports the op set, which imports the layer library

    return apply(op, inputs, attrs or {})


def add(a: Any, b: Any) -> Any:
    """a + b."""
    return _apply("add", [a, b])


def subtract(a: Any, b: Any) -> Any:
    """a - b."""
    return _apply("subtract", [a, b])


def multiply(a: Any, b: Any) -> Any:
    """a * b."""
    return _apply("multiply", [a, b])


def divide(a: Any, b: Any) -> Any:
    """a / b."""
    return _apply("divide", [a, b])


def negative(a: Any) -> Any:
    """-a."""
    return _apply("negative", [a])


def matmul(a: Any, b: Any) -> Any:
    """a @ b."""
    return _apply("matmul", [a, b])


def power(a: Any, b: Any) -> Any:
    """a ** b."""
    return _apply("power", [a, b])


def maximum(a: Any, b: Any) -> Any:
    """Element-wise maximum."""
    return _apply("maximum", [a, b])


def minimum(a: Any, b: Any) -> Any:
    """Element-wise minimum."""
    return _apply("minimum", [a, b])


def exp(a: Any) -> Any:
    """e ** a."""
    return _apply("exp", [a])


def log(a: Any) -> Any:
    """Natural logarithm."""
    return _apply("log", [a])


def sqrt(a: Any) -> Any:
    """Square root."""
    return _apply("sqrt", [a])


def abs(a: Any) -> Any:  # noqa: A001 - numpy's name
    """|a|."""
    return _apply("abs", [a])


def where(condition: Any, a: Any, b: Any) -> Any:
    """a where condition holds, else b."""
    return _apply("where", [condition, a, b])


def relu(x: Any) -> Any:
    """max(x, 0)."""
    return _apply("relu", [x])


def sigmoid(x: Any) -> Any:
    """1 / (1 + exp(-x))."""
    return _apply("sigmoid", [x])


def tanh(x: Any) -> Any:
    """Hyperbolic tangent."""
    return _apply("tanh", [x])


def softrelu(x: Any) -> Any:
    """log(1 + exp(x))."""
    return _apply("softrelu", [x])


def softsign(x: Any) -> Any:
    """x / (1 + |x|)."""
    return _apply("softsign", [x])


def gelu(x: Any) -> Any:
    """Exact GELU."""
    return _apply("gelu", [x])


def silu(x: Any) -> Any:
    """x * sigmoid(x)."""
    return _apply("silu", [x])


def leaky_relu(x: Any, alpha: float = 0.01) -> Any:
    """x if x > 0 else alpha * x."""
    return _apply("leaky_relu", [x], {"alpha": float(alpha)})


def elu(x: Any, alpha: float = 1.0) -> Any:
    """x if x > 0 else alpha * (exp(x) - 1)."""
    return _apply("elu", [x], {"alpha": float(alpha)})


def softmax(x: Any, axis: int = -1) -> Any:
    """Softmax along ``axis``."""
    return _apply("softmax", [x], {"axis": int(axis)})


def log_softmax(x: Any, axis: int = -1) -> Any:
    """Log-softmax along ``axis``."""
    return _apply("log_softmax", [x], {"axis": int(axis)})


def concatenate(arrays: Sequence[Any], axis: int = 0) -> Any:
    """Join along an existing axis."""
    return _apply("concatenate", list(arrays), {"axis": int(axis)})


def stack(arrays: Sequence[Any], axis: int = 0) -> Any:
    """Join along a new axis."""
    return _apply("stack", list(arrays), {"axis": int(axis)})


def reshape(x: Any, shape: Sequence[int]) -> Any:
    """Reshape (``-1`` infers a dimension)."""
    return _apply("reshape", [x], {"shape": [int(d) for d in shape]})


def transpose(x: Any, axes: Sequence[int] | None = None) -> Any:
    """Permute axes."""
    return _apply("transpose", [x], {"axes": None if axes is None else [int(a) for a in axes]})


def flatten(x: Any) -> Any:
    """(N, a, b, ...) → (N, a·b·...), as Gluon's ``F.flatten``."""
    return _apply("flatten", [x])


def squeeze(x: Any, axis: int | Sequence[int] | None = None) -> Any:
    """Drop length-one axes."""
    return _apply("squeeze", [x], {"axis": _axis(axis)})


def expand_dims(x: Any, axis: int | Sequence[int]) -> Any:
    """Insert a length-one axis."""
    return _apply("expand_dims", [x], {"axis": _axis(axis)})


def cast(x: Any, dtype: str) -> Any:
    """Convert to ``dtype``."""
    import numpy as np

    return _apply("cast", [x], {"dtype": np.dtype(dtype).name})


def sum(x: Any, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Sum over ``axis`` (all axes by default)."""
    return _apply("sum", [x], {"axis": _axis(axis), "keepdims": bool(keepdims)})


def mean(x: Any, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Any:
    """Mean over ``axis``."""
    return _apply("mean", [x], {"axis": _axis(axis), "keepdims": bool(keepdims)})


def max(x: Any, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Maximum over ``axis``."""
    return _apply("max", [x], {"axis": _axis(axis), "keepdims": bool(keepdims)})


def min(x: Any, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Minimum over ``axis``."""
    return _apply("min", [x], {"axis": _axis(axis), "keepdims": bool(keepdims)})


def _axis(axis: int | Sequence[int] | None) -> int | list[int] | None:
    if axis is None or isinstance(axis, int):
        return axis
    return [int(a) for a in axis]
