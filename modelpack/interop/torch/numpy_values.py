"""numpy's values inside a ``torch.save`` file (a training script's ``np.float64(0.91)`` or
``np.array([0.485, 0.456, 0.406])`` beside its state_dict), made without numpy's pickle code.

numpy pickles them in two steps, a REDUCE then a BUILD (``unpickler.Pending`` stands for the
object between the two):

- a dtype: ``numpy.dtype(code, align, copy)``, then BUILD ``(3, byte order, None, None, None,
  -1, -1, 0)``; only plain numbers' codes are made (``io.npy.SUPPORTED_DTYPES``: bool,
  integers, float16/32/64, complex); any other (object, strings, structured, datetime, long
  double) is refused by name;
- a scalar: ``numpy._core.multiarray.scalar(dtype, raw bytes)``;
- an array: ``numpy._core.multiarray._reconstruct(numpy.ndarray, (0,), b"b")``, then BUILD
  ``(1, shape, dtype, is_fortran, raw bytes)``; at pickle protocol 5,
  ``numpy._core.numeric._frombuffer(buffer, dtype, shape, order)``.

numpy 1 names the module ``numpy.core``, numpy 2 ``numpy._core``; both are read. At protocol 2
(torch.save's) bytes are written as text that ``_codecs.encode(text, "latin1")`` turns back,
the one call of ``_codecs`` read, and empty bytes as ``__builtin__.bytes()``, with no
arguments. A shape must be at most 64 sizes of 0 or more; its bytes are counted against
``max_total_bytes`` before anything is allocated, and the raw bytes must be exactly that many.
Arrays come back writable, in this machine's byte order (torch.load keeps a big-endian array's),
Fortran-ordered where they were saved so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import FormatError, UnsupportedDtypeError
from ...io.npy import MAX_DIMS, SUPPORTED_DTYPES
from ...io.pages import read_target
from .unpickler import Allowed, Pending, shown

__all__ = ["DTYPES", "NumpyValues", "are_sizes"]

# numpy's pickled dtype code (``dtype.str`` without its byte order) -> the dtype it makes
DTYPES: dict[str, np.dtype] = {np.dtype(name).str[1:]: np.dtype(name) for name in SUPPORTED_DTYPES}
_MODULES = ("numpy.core", "numpy._core")  # numpy 1's name, numpy 2's
_NDARRAY = "numpy.ndarray"
_DTYPE_STATE_TAIL = (None, None, None, -1, -1, 0)  # no subarray, fields, sizes of its own, or flags
_LATIN1 = ("latin1", "latin-1")


def are_sizes(values: Any) -> bool:
    """True for a tuple of ints that may be sizes, strides or offsets read from a file."""
    return isinstance(values, tuple) and all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**62 for v in values
    )


class NumpyValues:
    """The allow-list entries numpy's values need, bound to one file being read: ``where``
    names it in every refusal, ``charge(count, what)`` counts bytes before they are allocated."""

    def __init__(self, where: str, charge: Callable[[int, str], None]) -> None:
        self.where, self.charge = where, charge

    def allowed(self) -> dict[str, Allowed]:
        calls: dict[str, Callable[..., Any]] = {
            "numpy.dtype": self._dtype, "_codecs.encode": self._encode, "__builtin__.bytes": _empty_bytes,
        }
        for module in _MODULES:
            calls[f"{module}.multiarray.scalar"] = self._scalar
            calls[f"{module}.multiarray._reconstruct"] = self._reconstruct
            calls[f"{module}.numeric._frombuffer"] = self._frombuffer
        return {**{name: Allowed(name, call) for name, call in calls.items()}, _NDARRAY: Allowed(_NDARRAY)}

    def _dtype(self, code: Any, align: Any = False, copy: Any = False) -> _Dtype:
        if not isinstance(code, str):
            raise FormatError(f"{self.where}: numpy.dtype is called with {shown(code)}, not a dtype code")
        if code not in DTYPES:
            holds = "Python objects, which are never unpickled" if code[:1] == "O" else "not a plain number"
            raise UnsupportedDtypeError(
                f"{self.where}: a numpy value of dtype {shown(code)} ({holds}) is not read; only bool, "
                "integer, float and complex numpy values are: convert it (e.g. .tolist()) before torch.save"
            )
        return _Dtype(self.where, DTYPES[code])

    def _encode(self, text: Any, encoding: Any) -> bytes:
        """numpy's bytes at protocol 2: ``_codecs.encode(text, "latin1")``, and nothing else."""
        if not isinstance(text, str) or encoding not in _LATIN1:
            raise FormatError(
                f"{self.where}: _codecs.encode is read only as encode(text, 'latin1') (numpy's bytes); "
                f"found encode({shown(text)}, {shown(encoding)})"
            )
        # counted each time: a memoised text may be encoded again and again
        self.charge(len(text), "bytes a pickle spells as text")
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError:
            raise FormatError(f"{self.where}: bytes spelled as text hold a character past U+00FF") from None

    def _scalar(self, dtype: Any, raw: Any = None) -> np.generic:
        dtype = self._known(dtype, "a numpy scalar")
        if not isinstance(raw, bytes) or len(raw) != dtype.itemsize:
            raise FormatError(
                f"{self.where}: a numpy {dtype.name} scalar is made of {_size(raw)}, "
                f"not its {dtype.itemsize} bytes"
            )
        value = np.frombuffer(raw, dtype)
        self._check_bools(value)
        return value[0]

    def _reconstruct(self, cls: Any, shape: Any, tag: Any) -> _Array:
        if not (isinstance(cls, Allowed) and cls.name == _NDARRAY) or shape != (0,) or tag != b"b":
            raise FormatError(
                f"{self.where}: numpy's _reconstruct is called with {shown(cls)}, {shown(shape)}, "
                f"{shown(tag)}; "
                f"only an empty numpy.ndarray, as numpy pickles one ({_NDARRAY}, (0,), b'b'), is read"
            )
        return _Array(self)

    def _frombuffer(self, buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
        if order not in ("C", "F"):
            raise FormatError(f"{self.where}: a numpy array's order is {shown(order)}, not 'C' or 'F'")
        return self.array(shape, dtype, buffer, order == "F")

    def array(self, shape: Any, dtype: Any, raw: Any, fortran: bool) -> np.ndarray:
        """A fresh array of ``shape`` from exactly its ``raw`` bytes, in this machine's byte order."""
        dtype = self._known(dtype, "a numpy array")
        if not (are_sizes(shape) and len(shape) <= MAX_DIMS):
            raise FormatError(
                f"{self.where}: a numpy {dtype.name} array has the shape {shown(shape)}; a shape is at most "
                f"{MAX_DIMS} sizes, each 0 or more"
            )
        nbytes = math.prod(shape) * dtype.itemsize
        self.charge(nbytes, f"a numpy array of shape {shape}")
        if not isinstance(raw, (bytes, bytearray)) or len(raw) != nbytes:
            raise FormatError(
                f"{self.where}: a numpy {dtype.name} array of shape {shape} is {nbytes} bytes; "
                f"its data is {_size(raw)}"
            )
        native = dtype.newbyteorder("=")
        array = read_target(f"{self.where}: a numpy array of shape {shape}", (math.prod(shape),), native)
        array.view(np.uint8)[:] = np.frombuffer(raw, np.uint8)
        if not dtype.isnative:
            array.byteswap(inplace=True)
        self._check_bools(array)
        return array.reshape(shape, order="F" if fortran else "C")

    def _known(self, dtype: Any, what: str) -> np.dtype:
        # Only ``_dtype`` makes a np.dtype in a pickle, and only of DTYPES, so a dtype is one of those.
        if not isinstance(dtype, np.dtype):
            raise FormatError(f"{self.where}: {what}'s dtype is {shown(dtype)}, not a numpy dtype")
        return dtype

    def _check_bools(self, values: np.ndarray) -> None:
        if values.dtype == np.bool_ and values.size and values.view(np.uint8).max() > 1:
            raise FormatError(f"{self.where}: a numpy bool value holds bytes other than 0 and 1")


class _Dtype(Pending):
    """``numpy.dtype(code)`` until BUILD gives its byte order."""

    what = "a numpy dtype"

    def __init__(self, where: str, dtype: np.dtype) -> None:
        self.where, self.dtype = where, dtype

    def build(self, state: Any) -> np.dtype:
        if not (isinstance(state, tuple) and len(state) == 8 and state[0] == 3
                and state[2:] == _DTYPE_STATE_TAIL):
            raise FormatError(
                f"{self.where}: numpy dtype {self.dtype.name} has the state {shown(state)}, not a plain "
                f"number's (3, byte order, {', '.join(map(str, _DTYPE_STATE_TAIL))})"
            )
        order = state[1]
        if order not in ("<", ">", "|") or (order == "|") != (self.dtype.itemsize == 1):
            raise FormatError(f"{self.where}: numpy dtype {self.dtype.name} has the byte order {order!r}")
        return self.dtype if order == "|" else self.dtype.newbyteorder(order)


class _Array(Pending):
    """``numpy._core.multiarray._reconstruct(numpy.ndarray, (0,), b"b")`` until BUILD gives its
    ``(1, shape, dtype, is_fortran, raw bytes)``."""

    what = "a numpy array"

    def __init__(self, values: NumpyValues) -> None:
        self.values = values

    def build(self, state: Any) -> np.ndarray:
        if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1 and type(state[3]) is bool):
            raise FormatError(
                f"{self.values.where}: a numpy array has the state {shown(state)}, not "
                "(1, shape, dtype, is_fortran, raw bytes)"
            )
        _, shape, dtype, fortran, raw = state
        return self.values.array(shape, dtype, raw, fortran)


def _empty_bytes() -> bytes:
    """``__builtin__.bytes()``: how protocol 2 spells empty bytes (an empty array's data)."""
    return b""


def _size(raw: Any) -> str:
    return f"{len(raw)} bytes" if isinstance(raw, (bytes, bytearray)) else f"a {type(raw).__name__}"
