"""Python's operators as ops of the table, written once for the array stand-ins that record
them (autograd's ``Variable``, tracing's ``Traced``): ``a + b`` is ``add`` of ``[a, b]``,
``2 - a`` is ``subtract`` of ``[2, a]``, ``a == b`` is ``equal``; ``&``, ``|``, ``^`` and ``~``
are numpy's bitwise ufuncs, whose composites take masks (``composites.bitwise_and``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Operators"]

# numpy's bitwise ufuncs, typed loosely: they dispatch to the stand-ins' ``__array_ufunc__``,
# which numpy's stubs do not know.
_AND: Any = np.bitwise_and
_OR: Any = np.bitwise_or
_XOR: Any = np.bitwise_xor
_INVERT: Any = np.invert


class Operators:
    """Arithmetic and comparison operators as ops. A subclass defines ``_operator(op, inputs)``,
    which computes or records op ``op`` (no attributes) of ``inputs``."""

    __slots__ = ()

    def _operator(self, op: str, inputs: list[Any]) -> Any:
        raise NotImplementedError

    def __add__(self, other: Any) -> Any:
        return self._operator("add", [self, other])

    def __radd__(self, other: Any) -> Any:
        return self._operator("add", [other, self])

    def __sub__(self, other: Any) -> Any:
        return self._operator("subtract", [self, other])

    def __rsub__(self, other: Any) -> Any:
        return self._operator("subtract", [other, self])

    def __mul__(self, other: Any) -> Any:
        return self._operator("multiply", [self, other])

    def __rmul__(self, other: Any) -> Any:
        return self._operator("multiply", [other, self])

    def __truediv__(self, other: Any) -> Any:
        return self._operator("divide", [self, other])

    def __rtruediv__(self, other: Any) -> Any:
        return self._operator("divide", [other, self])

    def __pow__(self, other: Any) -> Any:
        return self._operator("power", [self, other])

    def __rpow__(self, other: Any) -> Any:
        return self._operator("power", [other, self])

    def __matmul__(self, other: Any) -> Any:
        return self._operator("matmul", [self, other])

    def __rmatmul__(self, other: Any) -> Any:
        return self._operator("matmul", [other, self])

    def __neg__(self) -> Any:
        return self._operator("negative", [self])

    def __pos__(self) -> Any:
        return self

    def __abs__(self) -> Any:
        return self._operator("abs", [self])

    def __gt__(self, other: Any) -> Any:
        return self._operator("greater", [self, other])

    def __ge__(self, other: Any) -> Any:
        return self._operator("greater_equal", [self, other])

    def __lt__(self, other: Any) -> Any:
        return self._operator("less", [self, other])

    def __le__(self, other: Any) -> Any:
        return self._operator("less_equal", [self, other])

    def __eq__(self, other: Any) -> Any:
        return self._operator("equal", [self, other])

    def __ne__(self, other: Any) -> Any:
        return self._operator("not_equal", [self, other])

    def __and__(self, other: Any) -> Any:
        return _AND(self, other)

    def __rand__(self, other: Any) -> Any:
        return _AND(other, self)

    def __or__(self, other: Any) -> Any:
        return _OR(self, other)

    def __ror__(self, other: Any) -> Any:
        return _OR(other, self)

    def __xor__(self, other: Any) -> Any:
        return _XOR(self, other)

    def __rxor__(self, other: Any) -> Any:
        return _XOR(other, self)

    def __invert__(self) -> Any:
        return _INVERT(self)

    __hash__ = object.__hash__  # == is an op, so identity is the hash
