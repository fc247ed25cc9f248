"""The legacy (pre-numpy-mode) ``mxnet.ndarray.NDArray``, with MXNet 1.9.1's semantics, on a
numpy array it shares memory with.

``x.as_nd_ndarray()`` on a modelpack array gives one (no copy, as MXNet) and
``y.as_np_ndarray()`` turns it back into a numpy-mode array (no copy). It is deliberately not
a numpy array: legacy arrays follow their own rules, and where numpy's differ a numpy array
would quietly give numpy's answer. So numpy's functions refuse it (``TypeError`` naming
``as_np_ndarray()``; MXNet refuses mixing the two kinds as well), ``numpy.asarray`` still
reads it, and its operators and methods are MXNet's:

- Results have the operands' dtype. Two arrays must have the same dtype (no promotion); a
  scalar is cast to the array's dtype first (``int32 array * 1.5`` multiplies by 1).
- Comparisons and logical operators give 1 and 0 in that dtype, not booleans; ``/`` of
  integers truncates towards zero; ``%`` takes the divisor's sign, and ``x % 0`` is 0.
- Broadcasting is numpy's. There is no ``//`` or ``@`` (MXNet has none).
- A reduction over everything gives shape (1,), not a 0-d array (``nd.sum(x)``,
  ``x.mean()``); so does indexing every axis with integers (``x[1]`` of a vector).
- ``x[i]`` and ``x[a:b]`` (along the first axis) are views, as in MXNet; other indexing copies.
- ``dtype`` is numpy's scalar type (``numpy.float32``), as MXNet gives it.

The functions (``modelpack.ndarray``/``nd``) and most fluent methods are in ``op``; a legacy
method modelpack leaves out is refused with the numpy-mode way to do it.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as _np

from ..errors import UnsupportedFeatureError, UsageError
from ..nn.devices import NDArray as _NumpyModeArray
from ..nn.devices import check_device, cpu, on_device

__all__ = [
    "NDArray",
    "array",
    "empty",
    "zeros",
    "ones",
    "full",
    "arange",
    "linspace",
    "eye",
    "zeros_like",
    "ones_like",
    "from_numpy_mode",
    "to_numpy_mode",
]

_MIXING = (
    "legacy nd arrays and numpy-mode arrays do not mix (MXNet refuses it too): call x.as_np_ndarray() "
    "to use numpy's functions, or y.as_nd_ndarray() on the other operand"
)

# MXNet's fluent methods modelpack leaves out -> what to do instead (op.py adds the rest)
_LEFT_OUT_METHODS = {
    "attach_grad": "legacy arrays are not recorded by modelpack's autograd; "
    "use x.as_np_ndarray().attach_grad()",
    "backward": "legacy arrays are not recorded by modelpack's autograd; "
    "use numpy-mode arrays (as_np_ndarray())",
    "handle": "there is no C handle: the values are a numpy array (x.asnumpy() copies them)",
    "tostype": "only the default (dense) storage exists",
    "to_dlpack_for_read": "use numpy: x.asnumpy()",
    "to_dlpack_for_write": "use numpy: x.asnumpy()",
}


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (numbers.Number, _np.generic)) and not isinstance(
        value, (complex, _np.complexfloating)
    )


def _scalar_as(dtype: _np.dtype, value: Any) -> Any:
    """``DType(scalar)``, as MXNet's scalar operators cast a Python or numpy scalar (a float
    scalar on an integer array truncates towards zero)."""
    if _np.issubdtype(dtype, _np.integer) and isinstance(value, (float, _np.floating)):
        if not _np.isfinite(value):
            raise UsageError(f"legacy nd: {value} as an integer scalar for an array of {dtype}")
        value = int(value)  # truncates towards zero, as C's cast does
    return _np.array(value).astype(dtype)[()]


class NDArray:
    """A legacy MXNet array (``mxnet.ndarray.NDArray``); see the module's docstring."""

    __slots__ = ("_data", "__weakref__")
    # numpy's binary operators defer to this class's, so ``numpy_array + x`` is refused here
    __array_priority__ = 1000.0

    def __init__(self, data: _np.ndarray) -> None:
        if type(data) is not _np.ndarray:
            data = _np.asarray(data).view(_np.ndarray)
        object.__setattr__(self, "_data", data)

    # --- what it is ------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def dtype(self) -> type:
        """numpy's scalar type (``numpy.float32``), as MXNet gives it."""
        return self._data.dtype.type

    @property
    def size(self) -> int:
        return int(self._data.size)

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def context(self) -> Any:
        return cpu()

    ctx = context

    @property
    def stype(self) -> str:
        return "default"

    @property
    def writable(self) -> bool:
        return bool(self._data.flags.writeable)

    @property
    def grad(self) -> None:
        """None: legacy arrays are not recorded (see ``attach_grad``)."""
        return None

    @property
    def T(self) -> NDArray:
        """The transpose; the array itself below 2 dimensions (MXNet's)."""
        if self.ndim < 2:
            return self
        return NDArray(_np.ascontiguousarray(self._data.T))

    # --- conversions -----------------------------------------------------------------
    def asnumpy(self) -> _np.ndarray:
        """A numpy copy of the values."""
        return self._data.copy()

    def asscalar(self) -> Any:
        """The one value, as a numpy scalar of the array's dtype (ValueError unless the array has
        exactly one element). For a one-element array of two or more dimensions MXNet 1.9.1
        returns the array itself (a bug against its own documentation); here the scalar."""
        if self.size != 1:
            raise ValueError("The current array is not a scalar")
        return self._data.reshape(())[()]

    def as_nd_ndarray(self) -> NDArray:
        """Itself: it is already a legacy array."""
        return self

    def as_np_ndarray(self) -> Any:
        """The numpy-mode array (``modelpack.np``) of the same memory, no copy."""
        return to_numpy_mode(self)

    def astype(self, dtype: Any, copy: bool = True) -> NDArray:
        """The values in ``dtype`` (a copy; the array itself if ``copy=False`` and the dtype is
        already ``dtype``)."""
        dtype = _np.dtype(dtype)
        if not copy and dtype == self._data.dtype:
            return self
        with _np.errstate(invalid="ignore"):  # NaN/inf to an integer: the same value as MXNet, silently
            return NDArray(self._data.astype(dtype))

    def copy(self) -> NDArray:
        return NDArray(self._data.copy())

    def copyto(self, other: Any) -> NDArray:
        """Copy into the legacy array ``other`` (same shape), or to the device ``other``."""
        if isinstance(other, NDArray):
            if other is self:
                return other
            if other.shape != self.shape:
                raise UsageError(f"copyto: shape {self.shape} into an array of shape {other.shape}")
            other._data[...] = self._data
            return other
        check_device(other)
        return self.copy()

    def as_in_context(self, context: Any) -> NDArray:
        """The array itself: it is already where every array is (a GPU is refused)."""
        check_device(context)
        return self

    as_in_ctx = as_in_context

    def detach(self) -> NDArray:
        return NDArray(self._data)

    def wait_to_read(self) -> None:
        """Computation is synchronous; nothing to wait for."""

    def __array__(self, dtype: Any = None, copy: Any = None) -> _np.ndarray:
        """``numpy.asarray(x)`` reads the values (``x.asnumpy()`` copies them)."""
        if copy:
            return self._data.astype(dtype) if dtype is not None else self._data.copy()
        return self._data if dtype is None else self._data.astype(dtype, copy=False)

    def __array_ufunc__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"numpy's ufunc on a legacy nd array: {_MIXING}")

    def __array_function__(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"numpy.{getattr(func, '__name__', func)} on a legacy nd array: {_MIXING}")

    # --- printing, sequence protocol ---------------------------------------------------
    def __repr__(self) -> str:
        shape_info = "x".join(str(d) for d in self.shape)
        return f"\n{self._data}\n<{type(self).__name__} {shape_info} @{self.context}>"

    __str__ = __repr__

    def __len__(self) -> int:
        return self.shape[0]

    def __iter__(self) -> Any:
        for i in range(self.shape[0]):
            yield self[i]

    def __bool__(self) -> bool:
        if self.size == 0:
            return False
        if self.size == 1:
            return bool(self._data.reshape(()))
        raise ValueError("The truth value of an NDArray with multiple elements is ambiguous.")

    __hash__ = object.__hash__

    def __reduce__(self) -> Any:
        return (NDArray, (self._data.copy(),))

    # --- indexing ------------------------------------------------------------------
    def __getitem__(self, key: Any) -> NDArray:
        data = self._data
        if isinstance(key, tuple) and len(key) == 0:
            return self
        if self.ndim == 0 and key == slice(None):
            return self
        if isinstance(key, tuple) and len(key) == self.ndim and all(_is_int(k) for k in key):
            out = self
            for k in key:
                out = out[k]
            return out
        if _is_int(key):
            if self.ndim == 0:
                raise IndexError("too many indices for a 0-d array")
            if key >= self.shape[0] or key < -self.shape[0]:
                raise IndexError(f"index {key} is out of bounds for axis 0 with size {self.shape[0]}")
            key = int(key) % self.shape[0]
            return NDArray(data[key : key + 1] if self.ndim == 1 else data[key])  # a view, as MXNet's _at
        if isinstance(key, slice) and key.step in (None, 1):
            return NDArray(data[key])  # a view, as MXNet's _slice
        if isinstance(key, slice) and key.step == 0:
            raise ValueError("slice step cannot be zero")
        picked = _np.array(data[_index(key)], copy=True)  # MXNet's other indexing copies
        return NDArray(picked.reshape((1,)) if picked.ndim == 0 else picked)

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(value, NDArray):
            value = value._data
        elif isinstance(value, _np.ndarray) or not _is_scalar(value):
            value = _np.asarray(value)
        else:
            value = _scalar_as(self._data.dtype, value)
        self._data[_index(key)] = value

    # --- operators (MXNet's dtype rules; see the module's docstring) ------------------------
    def _binary(self, other: Any, op: str, reflected: bool = False) -> NDArray:
        from . import op as ops

        lhs, rhs = (other, self) if reflected else (self, other)
        return ops.binary(op, lhs, rhs)

    def __add__(self, other: Any) -> NDArray:
        return self._binary(other, "add")

    def __radd__(self, other: Any) -> NDArray:
        return self._binary(other, "add", True)

    def __sub__(self, other: Any) -> NDArray:
        return self._binary(other, "subtract")

    def __rsub__(self, other: Any) -> NDArray:
        return self._binary(other, "subtract", True)

    def __mul__(self, other: Any) -> NDArray:
        return self._binary(other, "multiply")

    def __rmul__(self, other: Any) -> NDArray:
        return self._binary(other, "multiply", True)

    def __truediv__(self, other: Any) -> NDArray:
        return self._binary(other, "divide")

    def __rtruediv__(self, other: Any) -> NDArray:
        return self._binary(other, "divide", True)

    def __mod__(self, other: Any) -> NDArray:
        return self._binary(other, "modulo")

    def __rmod__(self, other: Any) -> NDArray:
        return self._binary(other, "modulo", True)

    def __pow__(self, other: Any) -> NDArray:
        return self._binary(other, "power")

    def __rpow__(self, other: Any) -> NDArray:
        return self._binary(other, "power", True)

    def __eq__(self, other: Any) -> NDArray:  # type: ignore[override]
        return self._binary(other, "equal")

    def __ne__(self, other: Any) -> NDArray:  # type: ignore[override]
        return self._binary(other, "not_equal")

    def __gt__(self, other: Any) -> NDArray:
        return self._binary(other, "greater")

    def __ge__(self, other: Any) -> NDArray:
        return self._binary(other, "greater_equal")

    def __lt__(self, other: Any) -> NDArray:
        return self._binary(other, "lesser")

    def __le__(self, other: Any) -> NDArray:
        return self._binary(other, "lesser_equal")

    def _inplace(self, other: Any, op: str) -> NDArray:
        result = self._binary(other, op)
        if result.shape != self.shape:
            raise UsageError(
                f"in-place {op}: the result's shape {result.shape} is not the array's {self.shape}"
            )
        self._data[...] = result._data
        return self

    def __iadd__(self, other: Any) -> NDArray:
        return self._inplace(other, "add")

    def __isub__(self, other: Any) -> NDArray:
        return self._inplace(other, "subtract")

    def __imul__(self, other: Any) -> NDArray:
        return self._inplace(other, "multiply")

    def __itruediv__(self, other: Any) -> NDArray:
        return self._inplace(other, "divide")

    def __imod__(self, other: Any) -> NDArray:
        return self._inplace(other, "modulo")

    def __neg__(self) -> NDArray:
        return NDArray(_np.negative(self._data))

    def __pos__(self) -> NDArray:
        return self

    def __abs__(self) -> NDArray:
        return NDArray(_np.abs(self._data))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        from . import op as ops

        raise UnsupportedFeatureError(f"NDArray.{name}", _LEFT_OUT_METHODS.get(name) or ops.instead(name))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"legacy NDArray attribute {name!r} cannot be set")


def _is_int(key: Any) -> bool:
    return isinstance(key, (int, _np.integer)) and not isinstance(key, (bool, _np.bool_))


def _index(key: Any) -> Any:
    """An index for the numpy array: legacy arrays as integer index arrays (MXNet takes float
    index arrays, its default dtype), inside tuples too."""
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    if isinstance(key, NDArray):
        return key._data.astype(_np.int64) if not _np.issubdtype(key._data.dtype, _np.integer) else key._data
    if isinstance(key, _np.ndarray) and _np.issubdtype(key.dtype, _np.floating):
        return key.astype(_np.int64)
    return key


# --- between the two kinds of array -------------------------------------------------------
def from_numpy_mode(value: Any) -> NDArray:
    """``x.as_nd_ndarray()`` for a numpy-mode array: a legacy array of the same memory."""
    from ..nn.devices import GradArray

    if isinstance(value, GradArray):
        from ..nn import hooks

        if hooks.active() is not None:
            raise UsageError(
                "as_nd_ndarray() of an array with attach_grad() inside autograd.record(): legacy "
                "arrays are not recorded here; keep to numpy-mode operations while recording"
            )
    if not isinstance(value, _np.ndarray):
        raise UsageError(
            f"as_nd_ndarray() of a {type(value).__name__}: inside autograd.record() or a traced forward the "
            "values are on a tape, and legacy arrays are not recorded; keep to numpy-mode operations there"
        )
    return NDArray(value.view(_np.ndarray))


def to_numpy_mode(value: Any) -> Any:
    """``x.as_np_ndarray()``: a numpy-mode array (``modelpack.np``) of the same memory."""
    if isinstance(value, NDArray):
        return value._data.view(_NumpyModeArray)
    if isinstance(value, _NumpyModeArray):
        return value
    if isinstance(value, _np.ndarray):
        return on_device(value.view(_np.ndarray))
    raise UsageError(f"as_np_ndarray() of a {type(value).__name__}")


# --- creating arrays (MXNet's default dtype: float32) --------------------------------------
def _dtype(dtype: Any) -> _np.dtype:
    return _np.dtype(_np.float32 if dtype is None else dtype)


def _shape(shape: Any) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, (int, _np.integer)) else tuple(int(s) for s in shape)


def array(source_array: Any, ctx: Any = None, dtype: Any = None) -> NDArray:
    """A new legacy array (a copy) of ``source_array``: a legacy or numpy-mode array keeps its
    dtype, anything else (lists, plain numpy arrays) becomes float32 unless ``dtype`` is given."""
    check_device(ctx)
    if isinstance(source_array, NDArray):
        source = source_array._data
        dtype = source.dtype if dtype is None else dtype
    elif isinstance(source_array, _NumpyModeArray):  # MXNet's numpy-mode array is a legacy NDArray too
        source = _np.asarray(source_array)
        dtype = source.dtype if dtype is None else dtype
    else:
        source = source_array
    return NDArray(_np.array(source, dtype=_dtype(dtype), copy=True))


def empty(shape: Any, ctx: Any = None, dtype: Any = None) -> NDArray:
    """MXNet leaves the values uninitialised; here they are zeros."""
    return zeros(shape, ctx, dtype)


def zeros(shape: Any, ctx: Any = None, dtype: Any = None, **kwargs: Any) -> NDArray:
    check_device(ctx)
    return NDArray(_np.zeros(_shape(shape), _dtype(dtype)))


def ones(shape: Any, ctx: Any = None, dtype: Any = None, **kwargs: Any) -> NDArray:
    check_device(ctx)
    return NDArray(_np.ones(_shape(shape), _dtype(dtype)))


def full(shape: Any, val: Any, ctx: Any = None, dtype: Any = _np.float32, out: Any = None) -> NDArray:
    check_device(ctx)
    dtype = _dtype(dtype)
    result = NDArray(_np.full(_shape(shape), _scalar_as(dtype, val), dtype))
    if out is not None:
        out[:] = result
        return out
    return result


def zeros_like(data: NDArray, **kwargs: Any) -> NDArray:
    return NDArray(_np.zeros_like(_legacy(data)._data))


def ones_like(data: NDArray, **kwargs: Any) -> NDArray:
    return NDArray(_np.ones_like(_legacy(data)._data))


def arange(
    start: Any,
    stop: Any = None,
    step: Any = 1.0,
    repeat: int = 1,
    infer_range: Any = None,
    ctx: Any = None,
    dtype: Any = None,
) -> NDArray:
    """``start, start + step, ...`` below ``stop`` (``arange(n)``: 0 .. n-1), each ``repeat``
    times; float32 unless ``dtype``. Computed as MXNet does: ``start + i * step`` in the dtype."""
    check_device(ctx)
    if infer_range is not None:
        raise UsageError("arange: infer_range is for symbols; give stop")
    if stop is None:
        start, stop = 0.0, start
    dtype = _dtype(dtype)
    start, stop, step = float(start), float(stop), float(step)
    if step == 0:
        raise UsageError("arange: step must not be 0")
    count = max(0, int(_np.ceil((stop - start) / step)))
    index = _np.arange(count, dtype=_np.float64).astype(dtype)
    values = index * _scalar_as(dtype, step) + _scalar_as(dtype, start)
    return NDArray(_np.repeat(values.astype(dtype), int(repeat)))


def linspace(
    start: Any, stop: Any, num: int, endpoint: bool = True, ctx: Any = None, dtype: Any = None
) -> NDArray:
    """``num`` evenly spaced values from ``start`` to ``stop`` (included with ``endpoint``),
    float32 unless ``dtype``; ``start + i * step`` in float64, then rounded to the dtype, as
    MXNet computes them (unlike its ``arange``, which computes in the dtype)."""
    check_device(ctx)
    dtype = _dtype(dtype)
    num = int(num)
    step = (float(stop) - float(start)) / ((num - 1 if endpoint else num) or 1)
    values = float(start) + _np.arange(num, dtype=_np.float64) * step
    return NDArray(values.astype(dtype))


def eye(N: int, M: int = 0, k: int = 0, ctx: Any = None, dtype: Any = None, **kwargs: Any) -> NDArray:
    """An N x M (N x N when M is 0) matrix with ones on diagonal ``k``; float32 unless ``dtype``."""
    check_device(ctx)
    return NDArray(_np.eye(int(N), int(M) or None, int(k), dtype=_dtype(dtype)))


def _legacy(value: Any, what: str = "data") -> NDArray:
    """``value`` as a legacy operator takes it: a legacy array (a numpy-mode or plain numpy
    array is refused, as MXNet's legacy operators refuse numpy-mode arrays)."""
    if isinstance(value, NDArray):
        return value
    if isinstance(value, _np.ndarray):
        raise TypeError(f"a legacy nd operator got a numpy array as {what}: {_MIXING}")
    raise TypeError(f"a legacy nd operator takes legacy NDArrays, got {type(value).__name__} as {what}")
