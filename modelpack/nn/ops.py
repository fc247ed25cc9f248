"""The op table: every operation a traced graph may contain, each declared once, here.

An entry is the op's name, its numpy implementation, a strict Pydantic model of its
attributes (so a hostile graph cannot pass anything else), and the numpy functions and ufuncs
that mean it while tracing. Everything else is derived from this table: the tracer's numpy
interception (``tracing.standins``), ``nn.functional`` (``F.<op>`` with numpy's calling
convention), the spec's op list and the graph evaluator. Adding an op is one entry here:

>>> @register_op("negative", numpy=(np.negative,))  # doctest: +SKIP
... def negative(x): return np.negative(x)
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..errors import UnknownOpError
from ..io.npy import SUPPORTED_DTYPES
from . import activations as act
from .graph import SYMBOL_PATTERN

__all__ = ["OpDef", "OPS", "register_op", "op_def", "known_ops", "Call"]

# numpy-style call (positional arrays, then attributes) -> (inputs, attributes)
Call = Callable[..., "tuple[list[Any], dict[str, Any]]"]


class NoAttrs(BaseModel):
    """Ops without attributes."""

    # defer_build: schemas are built on first use, which keeps `import modelpack` quick.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


class _Attrs(NoAttrs):
    pass


@dataclass(frozen=True)
class OpDef:
    """One op: name, numpy implementation, attribute model, and what maps to it.

    ``call`` turns a numpy-style call (``np.sum(x, axis=1)``, ``F.softmax(x, -1)``) into the
    op's inputs and attributes; ``numpy`` lists the numpy ufuncs and functions that tracing
    records as this op; ``methods`` the ``ndarray`` methods with numpy's own signature.
    """

    name: str
    fn: Callable[..., Any]
    attrs: type[BaseModel]
    call: Call
    numpy: tuple[Any, ...] = ()
    methods: tuple[str, ...] = field(default=())


OPS: dict[str, OpDef] = {}


def register_op(
    name: str,
    *,
    attrs: type[BaseModel] = NoAttrs,
    numpy: tuple[Any, ...] = (),
    methods: tuple[str, ...] = (),
    call: Call | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Function decorator adding an op under ``name`` (see ``OpDef`` for the options)."""

    def add(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in OPS:
            raise ValueError(f"op {name!r} is already registered")
        OPS[name] = OpDef(name, fn, attrs, call or _positional_call(name, fn, attrs), numpy, methods)
        return fn

    return add


def op_def(name: str) -> OpDef:
    """The op called ``name``; unknown names get an error listing the known ones."""
    try:
        return OPS[name]
    except (KeyError, TypeError):
        raise UnknownOpError(f"unknown op {name!r}; known ops: {', '.join(known_ops())}") from None


def known_ops() -> list[str]:
    """Registered op names, sorted."""
    return sorted(OPS)


def json_value(value: Any) -> Any:
    """An attribute as the graph stores it: tuples as lists, numpy scalars and dtypes plain."""
    if isinstance(value, (tuple, list)):
        return [json_value(v) for v in value]
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return np.dtype(value).name
    if isinstance(value, np.generic):
        return value.item()
    return value


def _positional_call(name: str, fn: Callable[..., Any], attrs: type[BaseModel]) -> Call:
    """The default call: the implementation's positional parameters are the inputs; the rest
    (positionally in the attribute model's order, or by keyword) are attributes."""
    order = list(attrs.model_fields)
    arity = sum(
        1 for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in order
        and p.default is p.empty
    )

    def call(*args: Any, **kwargs: Any) -> tuple[list[Any], dict[str, Any]]:
        if len(args) < arity or len(args) > arity + len(order):
            raise TypeError(f"{name}() takes {arity} array argument(s) and attributes {order}")
        named = dict(zip(order, args[arity:], strict=False))
        clash = set(named) & set(kwargs)
        unknown = set(kwargs) - set(order)
        if clash or unknown:
            raise TypeError(f"{name}() got unexpected or repeated arguments {sorted(clash | unknown)}")
        return list(args[:arity]), {k: json_value(v) for k, v in {**named, **kwargs}.items()}

    return call


# -- element-wise arithmetic (numpy broadcasting and type promotion) ------------------------

# name -> the ufuncs that mean it (the first is the implementation)
_BINARY: dict[str, tuple[np.ufunc, ...]] = {
    "add": (np.add,),
    "subtract": (np.subtract,),
    "multiply": (np.multiply,),
    "divide": (np.divide, np.true_divide),
    "power": (np.power,),
    "maximum": (np.maximum,),
    "minimum": (np.minimum,),
    "matmul": (np.matmul,),
    "greater": (np.greater,),
    "greater_equal": (np.greater_equal,),
    "less": (np.less,),
    "less_equal": (np.less_equal,),
    "equal": (np.equal,),
    "not_equal": (np.not_equal,),
}
_UNARY: dict[str, tuple[np.ufunc, ...]] = {
    "negative": (np.negative,),
    "abs": (np.absolute,),
    "exp": (np.exp,),
    "log": (np.log,),
    "sqrt": (np.sqrt,),
    "square": (np.square,),
    "sin": (np.sin,),
    "cos": (np.cos,),
}
for _name, _ufuncs in _BINARY.items():
    register_op(_name, numpy=_ufuncs)(lambda a, b, _f=_ufuncs[0]: _f(a, b))
for _name, _ufuncs in _UNARY.items():
    register_op(_name, numpy=_ufuncs)(lambda a, _f=_ufuncs[0]: _f(a))


def _on_floats(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Activation ops compute in a float input's dtype and any other input in float32, as the
    activation layers do (spec/FORMAT.md §3.5), whatever numpy's loops would pick."""

    @functools.wraps(fn)
    def on_floats(x: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(act.float_input(x), *args, **kwargs)

    return on_floats


# Activations are declared in ``activations.ACTIVATIONS``; tanh is also numpy's ufunc.
for _name, _fn in act.ACTIVATIONS.items():
    register_op(_name, numpy=(np.tanh,) if _name == "tanh" else ())(_on_floats(_fn))


@register_op("where", numpy=(np.where,))
def where(condition: np.ndarray, a: Any, b: Any) -> np.ndarray:
    """Element-wise choice, as ``np.where(condition, a, b)``."""
    return np.where(condition, a, b)


class LeakyAttrs(_Attrs):
    alpha: float = 0.01


class EluAttrs(_Attrs):
    alpha: float = 1.0


register_op("leaky_relu", attrs=LeakyAttrs)(_on_floats(act.leaky_relu))
register_op("elu", attrs=EluAttrs)(_on_floats(act.elu))


class AxisAttrs(_Attrs):
    axis: int = -1


@register_op("softmax", attrs=AxisAttrs)
@_on_floats
def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x) / sum(exp(x)) along ``axis``, shifted by the max for stability."""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


@register_op("log_softmax", attrs=AxisAttrs)
@_on_floats
def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """x - logsumexp(x) along ``axis``, computed stably."""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


# -- shape and layout -----------------------------------------------------------------------


class ConcatAttrs(_Attrs):
    axis: int = 0


def _join_call(arrays: Any, axis: int = 0) -> tuple[list[Any], dict[str, Any]]:
    return list(arrays), {"axis": json_value(axis)}


@register_op("concatenate", attrs=ConcatAttrs, numpy=(np.concatenate,), call=_join_call)
def concatenate(*arrays: np.ndarray, axis: int = 0) -> np.ndarray:
    """Join arrays along an existing axis."""
    return np.concatenate(arrays, axis=axis)


@register_op("stack", attrs=ConcatAttrs, numpy=(np.stack,), call=_join_call)
def stack(*arrays: np.ndarray, axis: int = 0) -> np.ndarray:
    """Join arrays along a new axis."""
    return np.stack(arrays, axis=axis)


class ReshapeAttrs(_Attrs):
    # A name is a dynamic input size ("batch", "seq"), bound by the graph's inputs at run time.
    shape: list[int | Annotated[str, Field(pattern=SYMBOL_PATTERN)]]


def _reshape_call(a: Any, shape: Any = None, /, **kwargs: Any) -> tuple[list[Any], dict[str, Any]]:
    target = kwargs.pop("newshape", kwargs.pop("shape", shape))
    if kwargs:
        raise TypeError(f"reshape(): order= and other options are not supported ({sorted(kwargs)})")
    items = target if isinstance(target, (tuple, list)) else (target,)
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in items):
        raise TypeError(f"reshape(): the target shape {target!r} must be made of Python ints")
    return [a], {"shape": [int(d) for d in items]}


@register_op("reshape", attrs=ReshapeAttrs, numpy=(np.reshape,), call=_reshape_call)
def reshape(x: np.ndarray, shape: list[int | str]) -> np.ndarray:
    """Reshape; ``-1`` infers one dimension (size names are resolved by the graph first)."""
    return np.reshape(x, tuple(int(d) for d in shape))


class TransposeAttrs(_Attrs):
    axes: list[int] | None = None


@register_op("transpose", attrs=TransposeAttrs, numpy=(np.transpose,))
def transpose(x: np.ndarray, axes: list[int] | None = None) -> np.ndarray:
    """Permute axes (reverse them when ``axes`` is None)."""
    return np.transpose(x, axes)


@register_op("flatten")
def flatten(x: np.ndarray) -> np.ndarray:
    """Gluon's flatten: (N, a, b, ...) → (N, a·b·...)."""
    return np.reshape(x, (x.shape[0], -1)) if x.ndim else np.reshape(x, (1, 1))


class AxesAttrs(_Attrs):
    axis: int | list[int] | None = None


@register_op("squeeze", attrs=AxesAttrs, numpy=(np.squeeze,))
def squeeze(x: np.ndarray, axis: int | list[int] | None = None) -> np.ndarray:
    """Drop axes of length one."""
    return np.squeeze(x, axis=tuple(axis) if isinstance(axis, list) else axis)


class ExpandAttrs(_Attrs):
    axis: int | list[int]


@register_op("expand_dims", attrs=ExpandAttrs, numpy=(np.expand_dims,))
def expand_dims(x: np.ndarray, axis: int | list[int]) -> np.ndarray:
    """Insert axes of length one."""
    return np.expand_dims(x, tuple(axis) if isinstance(axis, list) else axis)


class CastAttrs(_Attrs):
    dtype: Literal[SUPPORTED_DTYPES]  # type: ignore[valid-type]


@register_op("cast", attrs=CastAttrs)
def cast(x: np.ndarray, dtype: str) -> np.ndarray:
    """Convert to another numeric dtype (``ndarray.astype``)."""
    return np.asarray(x).astype(dtype)


# Constant indices only: a traced index can't be a tensor (that would be data-dependent).
class IndexInt(_Attrs):
    int: Annotated[int, Field(alias="int")]


class IndexSlice(_Attrs):
    slice: list[int | None] = Field(min_length=3, max_length=3)


class IndexNewAxis(_Attrs):
    newaxis: Literal[True]


class IndexEllipsis(_Attrs):
    ellipsis: Literal[True]


IndexItem = IndexInt | IndexSlice | IndexNewAxis | IndexEllipsis


class GetItemAttrs(_Attrs):
    index: list[IndexItem]


def encode_index(index: Any) -> list[dict[str, Any]] | None:
    """A Python index as JSON-able items, or None if it is not made of constants."""
    items = index if isinstance(index, tuple) else (index,)
    encoded: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, (bool, np.bool_)):
            return None
        if isinstance(item, (int, np.integer)):
            encoded.append({"int": int(item)})
        elif isinstance(item, slice):
            parts = [item.start, item.stop, item.step]
            if not all(p is None or isinstance(p, (int, np.integer)) for p in parts):
                return None
            encoded.append({"slice": [None if p is None else int(p) for p in parts]})
        elif item is None:
            encoded.append({"newaxis": True})
        elif item is Ellipsis:
            encoded.append({"ellipsis": True})
        else:
            return None
    return encoded


def decode_index(items: list[Any]) -> tuple[Any, ...]:
    """The inverse of ``encode_index`` (accepts dicts or validated item models)."""
    decoded: list[Any] = []
    for item in items:
        data = item if isinstance(item, dict) else item.model_dump(by_alias=True)
        if "int" in data:
            decoded.append(data["int"])
        elif "slice" in data:
            decoded.append(slice(*data["slice"]))
        elif "newaxis" in data:
            decoded.append(None)
        else:
            decoded.append(Ellipsis)
    return tuple(decoded)


def _getitem_call(x: Any, index: Any) -> tuple[list[Any], dict[str, Any]]:
    encoded = encode_index(index)
    if encoded is None:
        raise TypeError(f"index {index!r} must be built from ints, slices, None and ...")
    return [x], {"index": encoded}


@register_op("getitem", attrs=GetItemAttrs, call=_getitem_call)
def getitem(x: np.ndarray, index: list[Any]) -> np.ndarray:
    """Basic indexing and slicing with constant indices (``x[:, :4]``, ``x[0]``, ``x[..., None]``)."""
    return np.asarray(x[decode_index(index)])


# -- reductions -------------------------------------------------------------------------------


class ReduceAttrs(_Attrs):
    axis: int | list[int] | None = None
    keepdims: bool = False


def _axis(axis: int | list[int] | None) -> int | tuple[int, ...] | None:
    return tuple(axis) if isinstance(axis, list) else axis


def _reduce_call(a: Any, axis: Any = None, keepdims: bool = False) -> tuple[list[Any], dict[str, Any]]:
    return [a], {"axis": json_value(axis), "keepdims": bool(keepdims)}


_REDUCTIONS: dict[str, tuple[Any, ...]] = {
    "sum": (np.sum,), "mean": (np.mean,), "max": (np.max, np.amax), "min": (np.min, np.amin),
}
for _name, _functions in _REDUCTIONS.items():
    register_op(_name, attrs=ReduceAttrs, numpy=_functions, methods=(_name,), call=_reduce_call)(
        lambda x, axis=None, keepdims=False, _f=_functions[0]: np.asarray(
            _f(x, axis=_axis(axis), keepdims=keepdims)
        )
    )
