"""The legacy ``mxnet.ndarray`` operators, with MXNet 1.9.1's semantics, on numpy.

Each function here is checked against what MXNet 1.9.1 computes
(tests/reference/mxnet_metric_nd.json, written by scripts/make_mxnet_metric_refs.py). The
rules they share (see ``ndarray``'s docstring): results in the input's dtype, operands of one
dtype, scalars cast to it, comparisons as 1/0 of that dtype, reductions over everything giving
shape (1,). Where MXNet's answer for an integer array is an artefact of computing in floating
point (``nd.sqrt`` of int32 truncates, ``nd.exp`` of int32 too, integer ``**`` is rounded
through float), the function takes floating-point arrays only and says so. Any other MXNet
legacy name is refused (``instead`` says what numpy-mode call does it).
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable
from typing import Any

import numpy as _np

from ..errors import UsageError
from ..nn.activations import erf as _erf
from .ndarray import NDArray, _is_scalar, _legacy, _scalar_as, ones_like, zeros_like

_Fn = Callable[..., Any]
FUNCTIONS: dict[str, _Fn] = {}  # legacy name -> function (what ``modelpack.ndarray`` exports)
FLUENT: dict[str, _Fn] = {}  # NDArray method name -> function(self, ...)


def _register(*names: str, fluent: bool = False) -> Callable[[_Fn], _Fn]:
    def add(function: _Fn) -> _Fn:
        for name in names:
            FUNCTIONS[name] = function
            if fluent:
                FLUENT[name] = function
        return function

    return add


def _new(values: Any, dtype: Any) -> NDArray:
    return NDArray(_np.asarray(values).astype(dtype, copy=False))


def _floating(data: NDArray, name: str) -> None:
    if not _np.issubdtype(data._data.dtype, _np.floating):
        raise UsageError(
            f"nd.{name} of a {data._data.dtype} array: MXNet computes it in floating point and truncates "
            f"the result to {data._data.dtype}; cast first (x.astype('float32'))"
        )


# --- elementwise, one operand -------------------------------------------------------------
def _round_half_away(x: _np.ndarray) -> _np.ndarray:
    whole = _np.trunc(x)
    return _np.where(_np.abs(x - whole) >= 0.5, whole + _np.sign(x), whole).astype(x.dtype)


def _rint(x: _np.ndarray) -> _np.ndarray:
    """MXNet's rint: the nearer of floor and ceil, floor on a tie (-0.5 -> -1, 2.5 -> 2); not
    numpy's round-half-to-even."""
    low, high = _np.floor(x), _np.ceil(x)
    return _np.where((x - low) <= (high - x), low, high).astype(x.dtype)


def _sign(x: _np.ndarray) -> _np.ndarray:
    return _np.where(_np.isnan(x), 0, _np.sign(x)).astype(x.dtype) if x.dtype.kind == "f" else _np.sign(x)


def _rounding(numpy_function: _Fn) -> _Fn:
    """ceil/floor/trunc/... : the identity on integers (numpy would give float64)."""
    return lambda x: x.copy() if x.dtype.kind in "iub" else numpy_function(x)


def _dtype_one(x: _np.ndarray) -> Any:
    return x.dtype.type(1)


# name -> (numpy computation, floating-point only)
_UNARY: dict[str, tuple[_Fn, bool]] = {
    "abs": (_np.abs, False),
    "negative": (_np.negative, False),
    "square": (_np.square, False),
    "sign": (_sign, False),
    "ceil": (_rounding(_np.ceil), False),
    "floor": (_rounding(_np.floor), False),
    "trunc": (_rounding(_np.trunc), False),
    "fix": (_rounding(_np.trunc), False),
    "rint": (_rounding(_rint), False),
    "round": (_rounding(_round_half_away), False),
    "relu": (lambda x: _np.maximum(x, x.dtype.type(0)), False),
    "logical_not": (lambda x: _np.logical_not(x).astype(x.dtype), False),
    "identity": (_np.copy, False),
    "sqrt": (_np.sqrt, True),
    "rsqrt": (lambda x: _dtype_one(x) / _np.sqrt(x), True),
    "cbrt": (_np.cbrt, True),
    "rcbrt": (lambda x: _dtype_one(x) / _np.cbrt(x), True),
    "reciprocal": (lambda x: _dtype_one(x) / x, True),
    "exp": (_np.exp, True),
    "expm1": (_np.expm1, True),
    "log": (_np.log, True),
    "log10": (_np.log10, True),
    "log2": (_np.log2, True),
    "log1p": (_np.log1p, True),
    "sin": (_np.sin, True),
    "cos": (_np.cos, True),
    "tan": (_np.tan, True),
    "arcsin": (_np.arcsin, True),
    "arccos": (_np.arccos, True),
    "arctan": (_np.arctan, True),
    "degrees": (_np.degrees, True),
    "radians": (_np.radians, True),
    "sinh": (_np.sinh, True),
    "cosh": (_np.cosh, True),
    "tanh": (_np.tanh, True),
    "arcsinh": (_np.arcsinh, True),
    "arccosh": (_np.arccosh, True),
    "arctanh": (_np.arctanh, True),
    "erf": (_erf, True),
    "sigmoid": (lambda x: _dtype_one(x) / (_dtype_one(x) + _np.exp(-x)), True),
    "softsign": (lambda x: x / (_dtype_one(x) + _np.abs(x)), True),
}
_UNARY_FLUENT = set(_UNARY) - {"negative", "logical_not", "identity", "softsign"}


def _unary(name: str, compute: _Fn, floating: bool) -> _Fn:
    def function(data: Any, out: Any = None, **kwargs: Any) -> NDArray:
        data = _legacy(data)
        if floating:
            _floating(data, name)
        with _np.errstate(all="ignore"):
            result = _new(compute(data._data), data._data.dtype)
        return _out(result, out)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"MXNet's legacy ``nd.{name}``, elementwise, in the array's dtype" + (
        " (floating-point arrays only)." if floating else "."
    )
    return function


for _name, (_compute, _floating_only) in _UNARY.items():
    _register(_name, fluent=_name in _UNARY_FLUENT)(_unary(_name, _compute, _floating_only))
FUNCTIONS["stop_gradient"] = FUNCTIONS["BlockGrad"] = FUNCTIONS["identity"]


def _out(result: NDArray, out: Any) -> NDArray:
    if out is None:
        return result
    if not isinstance(out, NDArray) or out.shape != result.shape:
        raise UsageError("out= must be a legacy NDArray of the result's shape")
    out._data[...] = result._data
    return out


# --- elementwise, two operands ------------------------------------------------------------
def _divide(a: _np.ndarray, b: _np.ndarray) -> _np.ndarray:
    if a.dtype.kind in "iu":
        if _np.any(b == 0):
            raise UsageError("legacy nd: integer division by zero (MXNet's process dies of it)")
        quotient = _np.abs(a) // _np.abs(b)
        return _np.where((a < 0) != (b < 0), -quotient, quotient).astype(a.dtype)
    return _np.true_divide(a, b)


def _modulo(a: _np.ndarray, b: _np.ndarray) -> _np.ndarray:
    """The divisor's sign, as Python's ``%``; ``x % 0`` is 0 (MXNet's)."""
    safe = _np.where(b == 0, _np.ones_like(b), b)
    return _np.where(b == 0, _np.zeros_like(a), _np.remainder(a, safe)).astype(a.dtype)


def _power(a: _np.ndarray, b: _np.ndarray) -> _np.ndarray:
    if a.dtype.kind in "iu":
        raise UsageError(
            "legacy nd: ** of integer arrays is rounded through floating point in MXNet "
            "(5**11 gives 48828124); cast to float first (x.astype('float32'))"
        )
    return _np.power(a, b)


def _compare(numpy_op: _Fn) -> _Fn:
    return lambda a, b: numpy_op(a, b).astype(a.dtype)


def _floating_binary(numpy_op: _Fn, name: str) -> _Fn:
    def compute(a: _np.ndarray, b: _np.ndarray) -> _np.ndarray:
        if a.dtype.kind not in "f":
            raise UsageError(
                f"legacy nd.{name} of {a.dtype} arrays: cast to float first (x.astype('float32'))"
            )
        return numpy_op(a, b)

    return compute


# op -> (numpy computation on two arrays of one dtype, Python operator for two scalars)
_BINARY: dict[str, tuple[_Fn, _Fn | None]] = {
    "add": (_np.add, operator.add),
    "subtract": (_np.subtract, operator.sub),
    "multiply": (_np.multiply, operator.mul),
    "divide": (_divide, operator.truediv),
    "modulo": (_modulo, operator.mod),
    "power": (_power, operator.pow),
    "maximum": (_np.maximum, lambda a, b: a if a > b else b),
    "minimum": (_np.minimum, lambda a, b: a if a < b else b),
    "hypot": (_floating_binary(_np.hypot, "hypot"), math.hypot),
    "equal": (_compare(_np.equal), lambda a, b: 1 if a == b else 0),
    "not_equal": (_compare(_np.not_equal), lambda a, b: 1 if a != b else 0),
    "greater": (_compare(_np.greater), lambda a, b: 1 if a > b else 0),
    "greater_equal": (_compare(_np.greater_equal), lambda a, b: 1 if a >= b else 0),
    "lesser": (_compare(_np.less), lambda a, b: 1 if a < b else 0),
    "lesser_equal": (_compare(_np.less_equal), lambda a, b: 1 if a <= b else 0),
    "logical_and": (_compare(_np.logical_and), lambda a, b: 1 if a and b else 0),
    "logical_or": (_compare(_np.logical_or), lambda a, b: 1 if a or b else 0),
    "logical_xor": (_compare(_np.logical_xor), lambda a, b: 1 if bool(a) != bool(b) else 0),
}


def binary(op: str, lhs: Any, rhs: Any, *, scalars: bool = True, same_shape: bool = False) -> Any:
    """``lhs <op> rhs`` as MXNet's legacy operators compute it (see the module's docstring)."""
    compute, on_scalars = _BINARY[op]
    lhs_scalar, rhs_scalar = _is_scalar(lhs), _is_scalar(rhs)
    if lhs_scalar and rhs_scalar and scalars and on_scalars is not None:
        return on_scalars(lhs, rhs)
    if (lhs_scalar or rhs_scalar) and not scalars:
        raise UsageError(f"legacy nd: this {op} takes two arrays; use nd.{op} for an array and a scalar")
    if lhs_scalar:
        rhs = _legacy(rhs, "rhs")
        a, b = _np.asarray(_scalar_as(rhs._data.dtype, lhs)), rhs._data
    elif rhs_scalar:
        lhs = _legacy(lhs, "lhs")
        a, b = lhs._data, _np.asarray(_scalar_as(lhs._data.dtype, rhs))
    else:
        lhs, rhs = _legacy(lhs, "lhs"), _legacy(rhs, "rhs")
        a, b = lhs._data, rhs._data
        if a.dtype != b.dtype:
            raise UsageError(
                f"legacy nd: {op} of a {a.dtype} and a {b.dtype} array: MXNet refuses mixed dtypes; "
                "cast one with astype"
            )
        if same_shape and a.shape != b.shape:
            raise UsageError(
                f"legacy nd.elemwise_{op}: shapes {a.shape} and {b.shape} differ; use nd.broadcast_*"
            )
        try:
            _np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise UsageError(
                f"legacy nd: {op} of shapes {a.shape} and {b.shape}: they do not broadcast"
            ) from None
    dtype = b.dtype if lhs_scalar else a.dtype
    with _np.errstate(all="ignore"):
        return _new(compute(a, b), dtype)


def _binary_function(op: str, name: str, **options: Any) -> _Fn:
    def function(lhs: Any, rhs: Any, out: Any = None, **kwargs: Any) -> Any:
        return _out(binary(op, lhs, rhs, **options), out)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"MXNet's legacy ``nd.{name}``."
    return function


for _op in _BINARY:
    _register(_op)(_binary_function(_op, _op))
    _register(f"broadcast_{_op}")(_binary_function(_op, f"broadcast_{_op}", scalars=False))
FUNCTIONS["true_divide"] = FUNCTIONS["divide"]
for _alias, _op in {
    "broadcast_plus": "add",
    "broadcast_sub": "subtract",
    "broadcast_minus": "subtract",
    "broadcast_mul": "multiply",
    "broadcast_div": "divide",
    "broadcast_mod": "modulo",
}.items():
    FUNCTIONS[_alias] = _binary_function(_op, _alias, scalars=False)
for _short, _op in {"add": "add", "sub": "subtract", "mul": "multiply", "div": "divide"}.items():
    FUNCTIONS[f"elemwise_{_short}"] = _binary_function(
        _op, f"elemwise_{_short}", scalars=False, same_shape=True
    )
for _name in ("broadcast_subtract", "broadcast_multiply", "broadcast_divide", "broadcast_modulo", "hypot"):
    FUNCTIONS.pop(_name, None)  # (MXNet's broadcast names are the short ones; hypot is broadcast_ only)


@_register("add_n", "ElementWiseSum")
def add_n(*args: Any, **kwargs: Any) -> NDArray:
    """The elementwise sum of arrays of one shape and dtype."""
    if not args:
        raise UsageError("add_n: give at least one array")
    total = _legacy(args[0])
    result = NDArray(total._data.copy())
    for other in args[1:]:
        other = _legacy(other)
        if other.shape != total.shape:
            raise UsageError(f"add_n: shapes {total.shape} and {other.shape} differ")
        result = binary("add", result, other)
    return result


# --- reductions (MXNet: over everything gives shape (1,)) --------------------------------
def _axes(ndim: int, axis: Any, exclude: bool) -> tuple[int, ...]:
    if axis is None or axis == ():
        axes = tuple(range(ndim))
        return () if exclude and axis is not None else axes
    axes_list = [axis] if isinstance(axis, (int, _np.integer)) else list(axis)
    chosen: list[int] = []
    for a in axes_list:
        if not -ndim <= a < ndim:
            raise UsageError(f"axis {a} is out of range for an array of {ndim} dimensions")
        chosen.append(int(a) % ndim)
    if exclude:
        return tuple(a for a in range(ndim) if a not in chosen)
    return tuple(sorted(set(chosen)))


def _at_least_1d(values: _np.ndarray, dtype: Any) -> NDArray:
    values = _np.asarray(values)
    return _new(values.reshape((1,)) if values.ndim == 0 else values, dtype)


def _reduction(name: str, compute: _Fn, *, floating: bool = False, integer_note: str = "") -> _Fn:
    def function(
        data: Any,
        axis: Any = None,
        keepdims: bool = False,
        exclude: bool = False,
        out: Any = None,
        **kwargs: Any,
    ) -> NDArray:
        data = _legacy(data)
        if floating:
            _floating(data, name)
        axes = _axes(data.ndim, axis, exclude)
        values = data._data
        with _np.errstate(all="ignore"):
            result = compute(values, axes, keepdims) if axes else (values.copy())
        return _out(_at_least_1d(result, values.dtype), out)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = (
        f"MXNet's legacy ``nd.{name}(data, axis=None, keepdims=False, exclude=False)``: over "
        "``axis`` (every axis but them with ``exclude``), in the array's dtype; over every axis "
        f"the result has shape (1,).{integer_note}"
    )
    return function


SEQUENTIAL_LIMIT = 1 << 16  # reduced elements per result up to which MXNet's order is replayed


def sequential_reduce(x: _np.ndarray, axes: tuple[int, ...], keepdims: bool, kind: str) -> _np.ndarray:
    """MXNet's CPU reduction of ``x`` over ``axes``, in ``x``'s dtype, replayed in its order:
    each result walks its elements one by one (row-major over the reduced axes).

    ``kind``: ``"sum"`` (Kahan's compensated sum, the compensation dropped when the sum is
    infinite), ``"nansum"`` (the same, NaN skipped), ``"prod"``, ``"nanprod"`` (plain running
    products). Integers wrap in their dtype, so their order does not matter and numpy's own
    reduction gives the same. A result over more than ``SEQUENTIAL_LIMIT`` elements is the
    float64 reduction rounded once to the dtype instead (within an ulp of MXNet's, and the
    replay would cost a Python step per element)."""
    axes = tuple(sorted(axes))
    kept = [a for a in range(x.ndim) if a not in axes]
    count = math.prod(x.shape[a] for a in axes)
    out_shape = (
        tuple(1 if a in axes else x.shape[a] for a in range(x.ndim))
        if keepdims
        else tuple(x.shape[a] for a in kept)
    )
    skip_nan = kind.startswith("nan")
    if x.dtype.kind != "f" or count > SEQUENTIAL_LIMIT:
        reducers: dict[str, _Fn] = {
            "sum": _np.sum,
            "nansum": _np.nansum,
            "prod": _np.prod,
            "nanprod": _np.nanprod,
        }
        numpy_function = reducers[kind]
        wide = _np.float64 if x.dtype.kind == "f" else x.dtype
        return numpy_function(x, axis=axes, dtype=wide).astype(x.dtype).reshape(out_shape)
    rows = _np.transpose(x, kept + list(axes)).reshape(-1, count)
    product = kind.endswith("prod")
    total = _np.full(rows.shape[0], 1 if product else 0, x.dtype)
    residual = _np.zeros(rows.shape[0], x.dtype)
    with _np.errstate(all="ignore"):
        for k in range(count):
            src = rows[:, k]
            if product:
                step = total * src
                total = _np.where(_np.isnan(src), total, step) if skip_nan else step
                continue
            y = src - residual
            t = total + y
            compensation = (t - total) - y
            if skip_nan:
                nan = _np.isnan(src)
                total, residual = _np.where(nan, total, t), _np.where(nan, residual, compensation)
            else:
                total, residual = t, _np.where(_np.isinf(t), x.dtype.type(0), compensation)
    return total.reshape(out_shape)


def _sequential(kind: str) -> _Fn:
    return lambda x, axes, keep: sequential_reduce(x, axes, keep, kind)


def _mean(x: _np.ndarray, axes: tuple[int, ...], keep: bool) -> _np.ndarray:
    """MXNet's: the sum (``sequential_reduce``) divided by the count in the array's dtype."""
    total = sequential_reduce(x, axes, keep, "sum")
    return total / x.dtype.type(math.prod(x.shape[a] for a in axes))


for _name, _compute, _only_float in (
    ("sum", _sequential("sum"), False),
    ("nansum", _sequential("nansum"), False),
    ("prod", _sequential("prod"), False),
    ("nanprod", _sequential("nanprod"), False),
    ("mean", _mean, True),
    ("max", lambda x, axes, keep: _np.max(x, axis=axes, keepdims=keep), False),
    ("min", lambda x, axes, keep: _np.min(x, axis=axes, keepdims=keep), False),
):
    _register(_name, fluent=True)(_reduction(_name, _compute, floating=_only_float))
FUNCTIONS["sum_axis"] = FUNCTIONS["sum"]
FUNCTIONS["max_axis"] = FUNCTIONS["max"]
FUNCTIONS["min_axis"] = FUNCTIONS["min"]


@_register("norm", fluent=True)
def norm(
    data: Any,
    ord: int = 2,
    axis: Any = None,
    out_dtype: Any = None,
    keepdims: bool = False,
    out: Any = None,
    **kwargs: Any,
) -> NDArray:
    """The L2 (``ord=2``) or L1 (``ord=1``) norm over ``axis`` (every axis: shape (1,))."""
    data = _legacy(data)
    _floating(data, "norm")
    if ord not in (1, 2):
        raise UsageError(f"nd.norm: ord is 1 or 2, got {ord!r}")
    axes = _axes(data.ndim, axis, False)
    x = data._data
    wide = x.astype(_np.float64)
    if ord == 1:
        result = _np.sum(_np.abs(wide), axis=axes, keepdims=keepdims)
    else:
        result = _np.sqrt(_np.sum(_np.square(wide), axis=axes, keepdims=keepdims))
    result = _at_least_1d(result, x.dtype)
    if out_dtype is not None:
        result = result.astype(out_dtype)
    return _out(result, out)


def _arg_reduction(name: str, numpy_function: _Fn) -> _Fn:
    def function(
        data: Any, axis: Any = None, keepdims: bool = False, out: Any = None, **kwargs: Any
    ) -> NDArray:
        data = _legacy(data)
        x = data._data
        if axis is None:
            result = numpy_function(x.reshape(-1))
            result = _np.asarray(result).reshape((1,) * x.ndim if keepdims else (1,))
        else:
            result = numpy_function(x, axis=int(axis), keepdims=keepdims)
        return _out(_at_least_1d(result, x.dtype), out)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = (
        f"MXNet's legacy ``nd.{name}(data, axis=None, keepdims=False)``: the index (first of "
        "ties; a NaN counts as the extreme) as a value of the array's dtype (float32 indices "
        "for a float32 array), shape (1,) over everything."
    )
    return function


_register("argmax", fluent=True)(_arg_reduction("argmax", _np.argmax))
_register("argmin", fluent=True)(_arg_reduction("argmin", _np.argmin))


# --- shapes --------------------------------------------------------------------------------
def _legacy_shape(source: tuple[int, ...], spec: tuple[int, ...]) -> tuple[int, ...]:
    """MXNet's reshape codes: 0 copies a dimension, -1 infers one, -2 copies the rest, -3
    merges two, -4 splits one into the next two (one of which may be -1)."""
    out: list[int] = []
    src = list(source)
    i = j = 0
    infer = -1
    while j < len(spec):
        code = spec[j]
        if code == 0:
            if i >= len(src):
                raise UsageError(f"reshape: 0 at position {j} has no input dimension to copy")
            out.append(src[i])
            i += 1
        elif code == -1:
            if infer >= 0:
                raise UsageError("reshape: only one -1 may be inferred")
            infer = len(out)
            out.append(1)
            i += 1
        elif code == -2:
            out.extend(src[i:])
            i = len(src)
        elif code == -3:
            if i + 1 >= len(src):
                raise UsageError("reshape: -3 needs two input dimensions")
            out.append(src[i] * src[i + 1])
            i += 2
        elif code == -4:
            if j + 2 >= len(spec) or i >= len(src):
                raise UsageError("reshape: -4 needs an input dimension and the two sizes after it")
            d0, d1 = spec[j + 1], spec[j + 2]
            if d0 == -1 and d1 == -1:
                raise UsageError("reshape: -4 split into -1 and -1")
            if d0 == -1:
                d0 = src[i] // d1
            elif d1 == -1:
                d1 = src[i] // d0
            if d0 * d1 != src[i]:
                raise UsageError(f"reshape: -4 cannot split {src[i]} into {d0} x {d1}")
            out.extend([d0, d1])
            i += 1
            j += 2
        elif code > 0:
            out.append(code)
            i += 1
        else:
            raise UsageError(f"reshape: unknown code {code}")
        j += 1
    if infer >= 0:
        known = math.prod(d for k, d in enumerate(out) if k != infer)
        total = math.prod(source)
        if known == 0 or total % known:
            raise UsageError(f"reshape: cannot infer -1 reshaping {source} to {spec}")
        out[infer] = total // known
    return tuple(out)


@_register("reshape", "Reshape")
def reshape(data: Any, shape: Any = None, reverse: bool = False, out: Any = None, **kwargs: Any) -> NDArray:
    """MXNet's legacy reshape, its codes (0, -1, -2, -3, -4) and ``reverse`` included; a
    view of the same memory, as MXNet's."""
    data = _legacy(data)
    if shape is None:
        raise UsageError("reshape: give the shape")
    spec = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
    if reverse:
        new = _legacy_shape(data.shape[::-1], spec[::-1])[::-1]
    else:
        new = _legacy_shape(data.shape, spec)
    if math.prod(new) != data.size:
        raise UsageError(f"reshape: {data.shape} ({data.size} elements) cannot become {new}")
    return _out(NDArray(data._data.reshape(new)), out)


def _reshape_method(self: NDArray, *shape: Any, **kwargs: Any) -> NDArray:
    """``x.reshape((2, 3))``, ``x.reshape(2, 3)`` or ``x.reshape(shape=(2, 3), reverse=True)``."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if "shape" in kwargs:
        shape = kwargs.pop("shape")
    return reshape(self, shape, **kwargs)


FLUENT["reshape"] = _reshape_method


@_register("reshape_like")
def reshape_like(lhs: Any, rhs: Any, **kwargs: Any) -> NDArray:
    lhs, rhs = _legacy(lhs), _legacy(rhs, "rhs")
    if kwargs:
        raise UsageError("reshape_like: the begin/end ranges are not supported; use reshape")
    return reshape(lhs, rhs.shape)


FLUENT["reshape_like"] = reshape_like


@_register("transpose")
def transpose(data: Any, axes: Any = None, out: Any = None, **kwargs: Any) -> NDArray:
    """Axes permuted (reversed when ``axes`` is None or empty); a copy, as MXNet's."""
    data = _legacy(data)
    axes = None if axes is None or tuple(axes) == () else tuple(int(a) for a in axes)
    return _out(NDArray(_np.ascontiguousarray(_np.transpose(data._data, axes))), out)


def _transpose_method(self: NDArray, *axes: Any, **kwargs: Any) -> NDArray:
    """``x.transpose()``, ``x.transpose((1, 0))``, ``x.transpose(1, 0)`` or ``x.transpose(axes=...)``."""
    chosen: Any = (
        axes[0] if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))) else axes
    )
    return transpose(self, kwargs.pop("axes", chosen or None), **kwargs)


FLUENT["transpose"] = _transpose_method


@_register("expand_dims", fluent=True)
def expand_dims(data: Any, axis: int, out: Any = None, **kwargs: Any) -> NDArray:
    data = _legacy(data)
    return _out(NDArray(_np.expand_dims(data._data, int(axis))), out)


@_register("squeeze", fluent=True)
def squeeze(data: Any, axis: Any = None, out: Any = None, **kwargs: Any) -> NDArray:
    """Axes of size 1 removed (those of ``axis``); all of them leaves shape (1,)."""
    data = _legacy(data)
    axes = None if axis is None else tuple(int(a) for a in ((axis,) if isinstance(axis, int) else axis))
    result = _np.squeeze(data._data, axis=axes)
    return _out(NDArray(result.reshape((1,)) if result.ndim == 0 else result), out)


@_register("flatten", "Flatten", fluent=True)
def flatten(data: Any, out: Any = None, **kwargs: Any) -> NDArray:
    """MXNet's legacy flatten: (N, everything else), not numpy's one dimension."""
    data = _legacy(data)
    if data.ndim == 0:
        raise UsageError("flatten of a 0-d array")
    return _out(NDArray(data._data.reshape(data.shape[0], -1)), out)


@_register("swapaxes", "SwapAxis", fluent=True)
def swapaxes(data: Any, dim1: int = 0, dim2: int = 0, out: Any = None, **kwargs: Any) -> NDArray:
    data = _legacy(data)
    return _out(NDArray(_np.ascontiguousarray(_np.swapaxes(data._data, int(dim1), int(dim2)))), out)


@_register("flip", "reverse", fluent=True)
def flip(data: Any, axis: Any, out: Any = None, **kwargs: Any) -> NDArray:
    data = _legacy(data)
    axes = (axis,) if isinstance(axis, (int, _np.integer)) else tuple(axis)
    return _out(NDArray(_np.flip(data._data, axis=tuple(int(a) for a in axes)).copy()), out)


@_register("tile", fluent=True)
def tile(data: Any, reps: Any, out: Any = None, **kwargs: Any) -> NDArray:
    data = _legacy(data)
    return _out(NDArray(_np.tile(data._data, tuple(reps) if isinstance(reps, (tuple, list)) else reps)), out)


@_register("repeat", fluent=True)
def repeat(data: Any, repeats: int, axis: Any = None, out: Any = None, **kwargs: Any) -> NDArray:
    data = _legacy(data)
    return _out(NDArray(_np.repeat(data._data, int(repeats), axis=None if axis is None else int(axis))), out)


@_register("clip", fluent=True)
def clip(data: Any, a_min: Any, a_max: Any, out: Any = None, **kwargs: Any) -> NDArray:
    """Values limited to [a_min, a_max] (the bounds cast to the array's dtype; NaN stays)."""
    data = _legacy(data)
    dtype = data._data.dtype
    return _out(_new(_np.clip(data._data, _scalar_as(dtype, a_min), _scalar_as(dtype, a_max)), dtype), out)


def _arrays(data: tuple[Any, ...], what: str) -> list[_np.ndarray]:
    if len(data) == 1 and isinstance(data[0], (list, tuple)):
        data = tuple(data[0])
    if not data:
        raise UsageError(f"{what}: give at least one array")
    arrays = [_legacy(d)._data for d in data]
    if len({a.dtype for a in arrays}) > 1:
        raise UsageError(f"{what}: arrays of one dtype (MXNet refuses mixed dtypes)")
    return arrays


@_register("concat", "Concat", "concatenate")
def concat(*data: Any, dim: int = 1, num_args: Any = None, out: Any = None, **kwargs: Any) -> NDArray:
    """Arrays joined along ``dim`` (MXNet's default: 1, not numpy's 0)."""
    if "axis" in kwargs:  # nd.concatenate(arrays, axis=0): MXNet's other spelling
        dim = kwargs.pop("axis")
    return _out(NDArray(_np.concatenate(_arrays(data, "concat"), axis=int(dim))), out)


def _concatenate(arrays: Any, axis: int = 0, always_copy: bool = True) -> NDArray:
    """MXNet's ``nd.concatenate(arrays, axis=0)`` (a Python list of arrays, axis 0)."""
    return concat(*arrays, dim=axis)


FUNCTIONS["concatenate"] = _concatenate


@_register("stack")
def stack(*data: Any, axis: int = 0, num_args: Any = None, out: Any = None, **kwargs: Any) -> NDArray:
    return _out(NDArray(_np.stack(_arrays(data, "stack"), axis=int(axis))), out)


@_register("split", "SliceChannel", fluent=True)
def split(data: Any, num_outputs: int, axis: int = 1, squeeze_axis: bool = False, **kwargs: Any) -> Any:
    """``num_outputs`` equal parts along ``axis`` (MXNet's default: 1); a list, or the one
    array when ``num_outputs`` is 1."""
    data = _legacy(data)
    parts = _np.split(data._data, int(num_outputs), axis=int(axis))
    if squeeze_axis:
        parts = [_np.squeeze(p, axis=int(axis)) for p in parts]
    result = [NDArray(p.copy()) for p in parts]
    return result[0] if len(result) == 1 else result


@_register("broadcast_to", fluent=True)
def broadcast_to(data: Any, shape: Any, out: Any = None, **kwargs: Any) -> NDArray:
    """Broadcast to ``shape`` (a 0 keeps that dimension)."""
    data = _legacy(data)
    shape = tuple(int(s) for s in shape)
    offset = len(shape) - data.ndim
    shape = tuple(data.shape[k - offset] if s == 0 and k >= offset else s for k, s in enumerate(shape))
    return _out(NDArray(_np.broadcast_to(data._data, shape).copy()), out)


@_register("broadcast_like", fluent=True)
def broadcast_like(lhs: Any, rhs: Any, out: Any = None, **kwargs: Any) -> NDArray:
    if kwargs:
        raise UsageError("broadcast_like: lhs_axes/rhs_axes are not supported; use broadcast_to")
    return broadcast_to(lhs, _legacy(rhs, "rhs").shape, out=out)


@_register("broadcast_axis", "broadcast_axes", fluent=True)
def broadcast_axis(data: Any, axis: Any = (), size: Any = (), out: Any = None, **kwargs: Any) -> NDArray:
    data = _legacy(data)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    sizes = (size,) if isinstance(size, int) else tuple(size)
    shape = list(data.shape)
    for a, s in zip(axes, sizes, strict=False):
        if shape[a] != 1:
            raise UsageError(f"broadcast_axis: axis {a} has size {shape[a]}, not 1")
        shape[a] = int(s)
    return _out(NDArray(_np.broadcast_to(data._data, tuple(shape)).copy()), out)


FLUENT["broadcast_axes"] = FUNCTIONS["broadcast_axis"]


@_register("slice_axis", fluent=True)
def slice_axis(data: Any, axis: int, begin: int, end: Any, out: Any = None, **kwargs: Any) -> NDArray:
    data = _legacy(data)
    index = [slice(None)] * data.ndim
    index[int(axis)] = slice(int(begin), None if end is None else int(end))
    return _out(NDArray(data._data[tuple(index)].copy()), out)


@_register("cast", "Cast")
def cast(data: Any, dtype: Any, out: Any = None, **kwargs: Any) -> NDArray:
    """The values in ``dtype`` (float to integer truncates towards zero)."""
    return _out(_legacy(data).astype(dtype), out)


@_register("where")
def where(condition: Any, x: Any, y: Any, out: Any = None, **kwargs: Any) -> NDArray:
    """``x`` where ``condition`` is non-zero, else ``y`` (of ``x``'s shape; a 1-D condition
    picks rows)."""
    condition, x, y = _legacy(condition, "condition"), _legacy(x, "x"), _legacy(y, "y")
    if x.shape != y.shape or x._data.dtype != y._data.dtype:
        raise UsageError(
            f"where: x and y have one shape and dtype, got {x.shape} {x.dtype} and {y.shape} {y.dtype}"
        )
    mask = condition._data != 0
    if condition.shape != x.shape:
        if condition.ndim != 1 or condition.shape[0] != x.shape[0]:
            raise UsageError(f"where: condition of shape {condition.shape} for x of shape {x.shape}")
        mask = mask.reshape((-1,) + (1,) * (x.ndim - 1))
    return _out(NDArray(_np.where(mask, x._data, y._data)), out)


@_register("dot")
def dot(
    lhs: Any, rhs: Any, transpose_a: bool = False, transpose_b: bool = False, out: Any = None, **kwargs: Any
) -> NDArray:
    """MXNet's legacy dot: ``lhs``'s last axis (first, with ``transpose_a``) against ``rhs``'s
    first axis (last, with ``transpose_b``); two vectors give shape (1,)."""
    lhs, rhs = _legacy(lhs, "lhs"), _legacy(rhs, "rhs")
    a, b = lhs._data, rhs._data
    if a.dtype != b.dtype:
        raise UsageError(f"dot of {a.dtype} and {b.dtype}: MXNet refuses mixed dtypes")
    if a.ndim == 0 or b.ndim == 0:
        raise UsageError("dot of a 0-d array")
    if transpose_a:
        a2, a_shape = a.reshape(a.shape[0], -1).T, a.shape[1:]
    else:
        a2, a_shape = a.reshape(-1, a.shape[-1]), a.shape[:-1]
    if transpose_b:
        b2, b_shape = b.reshape(-1, b.shape[-1]).T, b.shape[:-1]
    else:
        b2, b_shape = b.reshape(b.shape[0], -1), b.shape[1:]
    if a2.shape[1] != b2.shape[0]:
        raise UsageError(
            f"dot: shapes {a.shape} and {b.shape} do not match (transpose_a={transpose_a}, "
            f"transpose_b={transpose_b})"
        )
    result = (a2 @ b2).reshape(a_shape + b_shape)
    return _out(_at_least_1d(result, a.dtype), out)


@_register("batch_dot")
def batch_dot(
    lhs: Any, rhs: Any, transpose_a: bool = False, transpose_b: bool = False, out: Any = None, **kwargs: Any
) -> NDArray:
    """Matrix products of (B, N, M) arrays, batch by batch."""
    lhs, rhs = _legacy(lhs, "lhs"), _legacy(rhs, "rhs")
    a, b = lhs._data, rhs._data
    if a.ndim != 3 or b.ndim != 3 or a.dtype != b.dtype:
        raise UsageError(
            f"batch_dot: two 3-d arrays of one dtype, got {a.shape} {a.dtype} and {b.shape} {b.dtype}"
        )
    a = _np.swapaxes(a, 1, 2) if transpose_a else a
    b = _np.swapaxes(b, 1, 2) if transpose_b else b
    return _out(_new(_np.matmul(a, b), a.dtype), out)


def _indices(index: NDArray, size: int, mode: str, what: str) -> _np.ndarray:
    values = index._data
    if values.dtype.kind == "f":
        values = _np.trunc(values)
    values = values.astype(_np.int64)
    if mode == "clip":
        return _np.clip(values, 0, size - 1)
    if mode == "wrap":
        return _np.mod(values, size)
    if mode == "raise":
        if _np.any((values < 0) | (values >= size)):
            raise IndexError(f"{what}: index out of range for a dimension of size {size}")
        return values
    raise UsageError(f"{what}: mode is 'clip', 'wrap' or 'raise', got {mode!r}")


@_register("pick", fluent=True)
def pick(
    data: Any,
    index: Any,
    axis: Any = -1,
    keepdims: bool = False,
    mode: str = "clip",
    out: Any = None,
    **kwargs: Any,
) -> NDArray:
    """The element at ``index`` along ``axis`` (``index`` has ``data``'s shape without it)."""
    data, index = _legacy(data), _legacy(index, "index")
    if axis is None:
        raise UsageError("pick: axis=None is not supported; flatten first")
    x = data._data
    axis = int(axis) % x.ndim
    expected = x.shape[:axis] + x.shape[axis + 1 :]
    shape = index.shape
    if shape != expected and shape != x.shape[:axis] + (1,) + x.shape[axis + 1 :]:
        raise UsageError(
            f"pick: index of shape {shape} for data {x.shape} along axis {axis} (expected {expected})"
        )
    if mode not in ("clip", "wrap"):
        raise UsageError(f"pick: mode is 'clip' or 'wrap', got {mode!r}")
    idx = _indices(index, x.shape[axis], mode, "pick").reshape(expected)
    result = _np.take_along_axis(x, _np.expand_dims(idx, axis), axis)
    return _out(NDArray(result if keepdims else result.squeeze(axis)), out)


@_register("take", fluent=True)
def take(a: Any, indices: Any, axis: int = 0, mode: str = "clip", out: Any = None, **kwargs: Any) -> NDArray:
    """Slices of ``a`` along ``axis`` at ``indices`` (MXNet's default mode: 'clip')."""
    a, indices = _legacy(a, "a"), _legacy(indices, "indices")
    axis = int(axis) % a.ndim
    idx = _indices(indices, a.shape[axis], mode, "take")
    return _out(NDArray(_np.take(a._data, idx, axis=axis)), out)


@_register("one_hot", fluent=True)
def one_hot(
    indices: Any,
    depth: int,
    on_value: float = 1.0,
    off_value: float = 0.0,
    dtype: Any = "float32",
    out: Any = None,
    **kwargs: Any,
) -> NDArray:
    """(…, depth) rows with ``on_value`` at each index (an index outside [0, depth) gives a
    row of ``off_value``)."""
    indices = _legacy(indices, "indices")
    values = indices._data
    idx = (_np.trunc(values) if values.dtype.kind == "f" else values).astype(_np.int64)
    dtype = _np.dtype(dtype)
    result = _np.full(values.shape + (int(depth),), _scalar_as(dtype, off_value), dtype)
    inside = (idx >= 0) & (idx < int(depth))
    positions = _np.nonzero(inside)
    result[positions + (idx[positions],)] = _scalar_as(dtype, on_value)
    return _out(NDArray(result), out)


def _softmax_core(x: _np.ndarray, axis: int, temperature: Any) -> tuple[_np.ndarray, _np.ndarray]:
    if temperature is not None:
        x = x / x.dtype.type(temperature)
    shifted = x - _np.max(x, axis=axis, keepdims=True)
    return shifted, _np.sum(_np.exp(shifted), axis=axis, keepdims=True, dtype=x.dtype)


def _softmax_checks(data: NDArray, name: str, kwargs: dict[str, Any]) -> None:
    _floating(data, name)
    if kwargs.get("use_length") or kwargs.get("length") is not None:
        raise UsageError(
            f"nd.{name}: use_length/length are not supported; use npx.{name}(x, length=...) on a "
            "numpy-mode array"
        )


@_register("softmax", fluent=True)
def softmax(
    data: Any, axis: int = -1, temperature: Any = None, dtype: Any = None, out: Any = None, **kwargs: Any
) -> NDArray:
    data = _legacy(data)
    _softmax_checks(data, "softmax", kwargs)
    with _np.errstate(all="ignore"):
        shifted, total = _softmax_core(data._data, int(axis), temperature)
        result = _new(_np.exp(shifted) / total, data._data.dtype)
    return _out(result if dtype is None else result.astype(dtype), out)


@_register("log_softmax", fluent=True)
def log_softmax(
    data: Any, axis: int = -1, temperature: Any = None, dtype: Any = None, out: Any = None, **kwargs: Any
) -> NDArray:
    data = _legacy(data)
    _softmax_checks(data, "log_softmax", kwargs)
    with _np.errstate(all="ignore"):
        shifted, total = _softmax_core(data._data, int(axis), temperature)
        result = _new(shifted - _np.log(total), data._data.dtype)
    return _out(result if dtype is None else result.astype(dtype), out)


def _order(x: _np.ndarray, axis: Any, is_ascend: bool) -> tuple[_np.ndarray, int | None]:
    if axis is None:
        x, axis = x.reshape(-1), 0
    axis = int(axis)
    order = _np.argsort(x if is_ascend else -x, axis=axis, kind="stable")
    return order, axis


@_register("sort", fluent=True)
def sort(data: Any, axis: Any = -1, is_ascend: bool = True, out: Any = None, **kwargs: Any) -> NDArray:
    data = _legacy(data)
    x = data._data if axis is not None else data._data.reshape(-1)
    order, axis = _order(x, axis, is_ascend)
    return _out(NDArray(_np.take_along_axis(x, order, axis)), out)


@_register("argsort", fluent=True)
def argsort(
    data: Any, axis: Any = -1, is_ascend: bool = True, dtype: Any = "float32", out: Any = None, **kwargs: Any
) -> NDArray:
    """The sorting indices (ties in their order), as ``dtype`` (MXNet's default: float32)."""
    data = _legacy(data)
    order, _ = _order(data._data, axis, is_ascend)
    return _out(_new(order, _np.dtype(dtype)), out)


@_register("topk", fluent=True)
def topk(
    data: Any,
    axis: Any = -1,
    k: int = 1,
    ret_typ: str = "indices",
    is_ascend: bool = False,
    dtype: Any = "float32",
    **kwargs: Any,
) -> Any:
    """The ``k`` largest (smallest with ``is_ascend``) along ``axis``: their indices (as
    ``dtype``), ``"value"``, ``"both"`` ([values, indices]) or ``"mask"``."""
    data = _legacy(data)
    x = data._data
    if axis is None:
        x, axis = x.reshape(-1), 0
    axis = int(axis) % x.ndim
    k = int(k)
    if not 0 < k <= x.shape[axis]:
        raise UsageError(f"topk: k={k} for an axis of size {x.shape[axis]}")
    order, _ = _order(x, axis, is_ascend)
    index = _np.take(order, _np.arange(k), axis=axis)
    values = _np.take_along_axis(x, index, axis)
    if ret_typ == "indices":
        return NDArray(index.astype(_np.dtype(dtype)))
    if ret_typ == "value":
        return NDArray(values)
    if ret_typ == "both":
        return [NDArray(values), NDArray(index.astype(_np.dtype(dtype)))]
    if ret_typ == "mask":
        mask = _np.zeros_like(x)
        _np.put_along_axis(mask, index, x.dtype.type(1), axis)
        return NDArray(mask)
    raise UsageError(f"topk: ret_typ is 'indices', 'value', 'both' or 'mask', got {ret_typ!r}")


FUNCTIONS["zeros_like"] = zeros_like
FUNCTIONS["ones_like"] = ones_like
FLUENT["zeros_like"] = zeros_like
FLUENT["ones_like"] = ones_like


def waitall() -> None:
    """Computation is synchronous; nothing to wait for."""


FUNCTIONS["waitall"] = waitall


# --- what is left out -----------------------------------------------------------------------
_ON_NUMPY_MODE = "on a numpy-mode array (x.as_np_ndarray())"
_INSTEAD = {
    "random": f"draw with np.random {_ON_NUMPY_MODE} (modelpack.np.random)",
    "save": "save with npx.save (it writes a list or a dict of arrays)",
    "load": "load with npx.load (it reads MXNet's nd.save files too)",
    "linalg": f"use np.linalg {_ON_NUMPY_MODE}",
    "sparse": "only dense arrays exist",
    "contrib": "MXNet's contrib operators are not provided",
    "image": "use gluon.data.vision.transforms",
    "Activation": f"use npx.activation {_ON_NUMPY_MODE}, or nd.relu / nd.sigmoid / nd.tanh",
    "FullyConnected": "use gluon.nn.Dense, or npx.fully_connected on numpy-mode arrays",
    "Convolution": "use gluon.nn.Conv2D (and its relatives)",
    "Pooling": "use gluon.nn.MaxPool2D / AvgPool2D (and their relatives)",
    "BatchNorm": "use gluon.nn.BatchNorm",
    "Dropout": "use gluon.nn.Dropout or npx.dropout on numpy-mode arrays",
    "Embedding": "use gluon.nn.Embedding or npx.embedding on numpy-mode arrays",
    "SequenceMask": f"use npx.sequence_mask {_ON_NUMPY_MODE}",
    "LeakyReLU": f"use npx.leaky_relu {_ON_NUMPY_MODE}",
    "LayerNorm": f"use npx.layer_norm {_ON_NUMPY_MODE}",
    "slice": f"index the array (x[a:b, c:d]), or use slice_axis; or np's indexing {_ON_NUMPY_MODE}",
    "moveaxis": f"use np.moveaxis {_ON_NUMPY_MODE}",
    "cumsum": f"use np.cumsum {_ON_NUMPY_MODE}",
    "diag": f"use np.diag {_ON_NUMPY_MODE}",
    "gamma": "use scipy.special.gamma on x.asnumpy() (numpy has no gamma function)",
    "gammaln": "use scipy.special.gammaln on x.asnumpy() (numpy has no gammaln)",
    "erfinv": "use scipy.special.erfinv on x.asnumpy() (numpy has no erfinv)",
    "smooth_l1": f"use npx.smooth_l1 {_ON_NUMPY_MODE}",
    "softmax_cross_entropy": "use gluon.loss.SoftmaxCrossEntropyLoss",
    "shuffle": f"use np.random.shuffle {_ON_NUMPY_MODE}",
    "split_v2": f"use np.split {_ON_NUMPY_MODE}",
    "np": "use modelpack.np (numpy mode)",
    "numpy": "use modelpack.np (numpy mode)",
    "npx": "use modelpack.npx",
    "numpy_extension": "use modelpack.npx",
    "Softmax": "use nd.softmax, or gluon.loss.SoftmaxCrossEntropyLoss for the loss",
    "SoftmaxOutput": "use nd.softmax, or gluon.loss.SoftmaxCrossEntropyLoss for the loss",
    "SoftmaxActivation": "use nd.softmax",
    "softmin": "use nd.softmax(-x)",
    "RNN": "use gluon.rnn's layers (rnn.RNN, rnn.LSTM, rnn.GRU)",
    "Pad": f"use np.pad {_ON_NUMPY_MODE}",
    "pad": f"use np.pad {_ON_NUMPY_MODE}",
    "from_numpy": "use nd.array(a) (a copy), or modelpack.np.asarray(a).as_nd_ndarray()",
    "load_frombuffer": "load with npx.load",
    "shape_array": "use x.shape",
    "size_array": "use x.size",
    "MakeLoss": "a loss is any array autograd.backward() starts from (modelpack.autograd)",
    "make_loss": "a loss is any array autograd.backward() starts from (modelpack.autograd)",
}


def instead(name: str) -> str:
    """What to use for MXNet's legacy ``name`` that modelpack leaves out."""
    if name in _INSTEAD:
        return _INSTEAD[name]
    if name.startswith(("random_", "sample_")) or name in ("uniform", "normal", "randint", "multinomial"):
        return _INSTEAD["random"]
    if name.endswith("_update"):
        return "optimizer updates are gluon.Trainer's (modelpack.gluon.Trainer)"
    if name.startswith("linalg_"):
        return _INSTEAD["linalg"]
    from .. import npx

    if name in npx.__all__:
        return f"use npx.{name} {_ON_NUMPY_MODE}"
    if hasattr(_np, name):
        return f"use np.{name} {_ON_NUMPY_MODE} (numpy's semantics, which may differ from legacy nd's)"
    return (
        f"use modelpack.np / npx {_ON_NUMPY_MODE} or gluon.nn's layers; modelpack.ndarray.FUNCTIONS "
        "lists the legacy operators provided"
    )


def _fluent(name: str, function: _Fn) -> _Fn:
    @functools.wraps(function)
    def method(self: NDArray, *args: Any, **kwargs: Any) -> Any:
        return function(self, *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    return method


for _name, _function in FLUENT.items():
    if _name in ("reshape", "transpose"):
        setattr(NDArray, _name, _function)
    else:
        setattr(NDArray, _name, _fluent(_name, _function))
