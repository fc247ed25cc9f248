"""What every operator of ``npx_ops`` does to its arguments before computing.

- ``refuse_tracing``: inside a traced ``forward`` (``modelpack.tracing``) the operator is
  refused with ``TraceError``: it is not an op of the op table, so no stored graph can hold it,
  and computing it on the example would bake one input's result into the graph.
- ``value``: the numpy array under a Variable (autograd's recorded value), an ``NDArray``
  (one with ``attach_grad()`` too) or anything numpy takes.
- ``sizes`` and ``floats``: MXNet's ``TShape`` and ``Tuple<float>`` arguments, where a number
  means a tuple of one (``kernel=3`` is a 1-D kernel, as in MXNet).
"""

from __future__ import annotations

import numbers
import os
import traceback
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..autograd.variable import Variable, value_of
from ..errors import TraceError, UsageError
from ..nn import hooks
from ..nn.devices import GradArray
from ..tracing.standins import first_traced

__all__ = ["refuse_tracing", "value", "is_variable", "sizes", "floats", "number", "no_out"]


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def refuse_tracing(op: str, arrays: Sequence[Any], instead: str) -> None:
    """Raise ``TraceError`` if a tracer is recording a ``forward`` or an input is a stand-in,
    naming the caller's line as tracing's own refusals do."""
    interceptor = hooks.active()
    tracing = interceptor is not None and not interceptor.sees_real_values
    if tracing or first_traced(list(arrays)) is not None:
        raise TraceError(f"cannot trace npx.{op}: it is not an op of the op table, so no stored graph can "
                         f"hold it; {instead}{_caller()}")


def _caller() -> str:
    """`` (at file:line: code)`` of the innermost frame outside modelpack, if any."""
    for frame in reversed(traceback.extract_stack()):
        path = os.path.abspath(frame.filename)
        if not path.startswith(_PACKAGE + os.sep) and "<frozen" not in path:
            return f" (at {frame.filename}:{frame.lineno}: {(frame.line or '').strip()})"
    return ""


def value(op: str, name: str, array: Any, *, ndim: int | None = None) -> np.ndarray:
    """The numpy array under ``array`` (a Variable's value, an NDArray as plain numpy)."""
    if array is None:
        raise UsageError(f"npx.{op}: {name} is required")
    plain = value_of(array)
    if isinstance(plain, GradArray):
        plain = plain.view(np.ndarray)
    result = np.asarray(plain)
    if result.dtype == object or not (np.issubdtype(result.dtype, np.number) or result.dtype == bool):
        raise UsageError(f"npx.{op}: {name} must be a numeric array, got dtype {result.dtype}")
    if ndim is not None and result.ndim != ndim:
        raise UsageError(f"npx.{op}: {name} must be {ndim}-D, got shape {result.shape}")
    return result


def is_variable(array: Any) -> bool:
    """Whether ``array`` is on autograd's tape (a Variable: recorded, or a leaf)."""
    return isinstance(array, Variable)


def sizes(op: str, name: str, given: Any, *, minimum: int) -> tuple[int, ...]:
    """MXNet's ``TShape`` argument: None or () for unset, an int for one axis, else one int per
    axis, each at least ``minimum``."""
    if given is None:
        return ()
    items = (given,) if _is_int(given) else given
    if isinstance(items, (str, bytes)) or not isinstance(items, (Sequence, np.ndarray)):
        raise UsageError(f"npx.{op}: {name} must be an int or a tuple of ints, got {given!r}")
    values = tuple(items)
    if not all(_is_int(v) for v in values):
        raise UsageError(f"npx.{op}: {name} must be an int or a tuple of ints, got {given!r}")
    result = tuple(int(v) for v in values)
    if any(v < minimum for v in result):
        raise UsageError(f"npx.{op}: {name} must be at least {minimum} on every axis, got {result}")
    return result


def floats(op: str, name: str, given: Any, *, length: int | None = None) -> tuple[float, ...]:
    """MXNet's ``Tuple<float>`` argument: a number for a tuple of one, else a sequence of them
    (as float32, the precision MXNet reads them in); ``length`` if it must have that many."""
    items = (given,) if _is_number(given) else given
    if isinstance(items, (str, bytes)) or not isinstance(items, (Sequence, np.ndarray)):
        raise UsageError(f"npx.{op}: {name} must be a number or a sequence of numbers, got {given!r}")
    values = tuple(items)
    if not all(_is_number(v) for v in values):
        raise UsageError(f"npx.{op}: {name} must be a number or a sequence of numbers, got {given!r}")
    if length is not None and len(values) != length:
        raise UsageError(f"npx.{op}: {name} must have {length} values, got {len(values)}: {given!r}")
    return tuple(float(np.float32(v)) for v in values)


def number(op: str, name: str, given: Any) -> float:
    """A float argument, as float32 (MXNet's ``float`` parameters)."""
    if not _is_number(given):
        raise UsageError(f"npx.{op}: {name} must be a number, got {given!r}")
    return float(np.float32(given))


def no_out(op: str, out: Any) -> None:
    """MXNet's ``out=`` (write into a given array) is not offered: assign the result instead."""
    if out is not None:
        raise UsageError(f"npx.{op}: out= is not supported; assign the result (y = npx.{op}(...))")


def _is_int(value: Any) -> bool:
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    real = isinstance(value, (numbers.Real, np.floating, np.integer))
    return real and not isinstance(value, (bool, np.bool_))
