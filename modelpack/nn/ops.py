"""The registry of functional operations a traced graph may contain.

Each op is a plain numpy function of its input arrays plus keyword attributes, and a strict
Pydantic model of those attributes (so a hostile graph cannot pass anything else). The same
functions run eagerly (``modelpack.nn.functional``), while tracing (they are what a recorded
node means), and when a loaded graph is evaluated — one implementation, three uses.

>>> @register_op("negative")  # doctest: +SKIP
... def negative(x): return np.negative(x)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..errors import UnknownOpError
from ..io.npz import SUPPORTED_DTYPES
from . import activations as act

__all__ = ["OpDef", "OPS", "register_op", "op_def", "known_ops"]


class NoAttrs(BaseModel):
    """Ops without attributes."""

    # defer_build: schemas are built on first use, which keeps `import modelpack` quick.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


class _Attrs(NoAttrs):
    pass


@dataclass(frozen=True)
class OpDef:
    """One registered operation: name, numpy implementation, attribute model."""

    name: str
    fn: Callable[..., Any]
    attrs: type[BaseModel]


OPS: dict[str, OpDef] = {}


def register_op(
    name: str, *, attrs: type[BaseModel] = NoAttrs
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Function decorator adding an op under ``name``."""

    def add(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in OPS:
            raise ValueError(f"op {name!r} is already registered")
        OPS[name] = OpDef(name, fn, attrs)
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


# -- element-wise arithmetic (numpy broadcasting and type promotion) ------------------------

for _name, _ufunc in {
    "add": np.add,
    "subtract": np.subtract,
    "multiply": np.multiply,
    "divide": np.divide,
    "power": np.power,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "matmul": np.matmul,
    "greater": np.greater,
    "greater_equal": np.greater_equal,
    "less": np.less,
    "less_equal": np.less_equal,
    "equal": np.equal,
    "not_equal": np.not_equal,
}.items():
    register_op(_name)(lambda a, b, _f=_ufunc: _f(a, b))

for _name, _ufunc in {
    "negative": np.negative,
    "abs": np.abs,
    "exp": np.exp,
    "log": np.log,
    "sqrt": np.sqrt,
    "square": np.square,
    "sin": np.sin,
    "cos": np.cos,
}.items():
    register_op(_name)(lambda a, _f=_ufunc: _f(a))

for _name in ("relu", "sigmoid", "tanh", "softrelu", "softsign", "gelu", "silu"):
    register_op(_name)(act.ACTIVATIONS[_name])


@register_op("where")
def where(condition: np.ndarray, a: Any, b: Any) -> np.ndarray:
    """Element-wise choice, as ``np.where(condition, a, b)``."""
    return np.where(condition, a, b)


class AlphaAttrs(_Attrs):
    alpha: float


register_op("leaky_relu", attrs=AlphaAttrs)(act.leaky_relu)
register_op("elu", attrs=AlphaAttrs)(act.elu)


class AxisAttrs(_Attrs):
    axis: int = -1


@register_op("softmax", attrs=AxisAttrs)
def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x) / sum(exp(x)) along ``axis``, shifted by the max for stability."""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


@register_op("log_softmax", attrs=AxisAttrs)
def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """x - logsumexp(x) along ``axis``, computed stably."""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


# -- shape and layout -----------------------------------------------------------------------


class ConcatAttrs(_Attrs):
    axis: int = 0


@register_op("concatenate", attrs=ConcatAttrs)
def concatenate(*arrays: np.ndarray, axis: int = 0) -> np.ndarray:
    """Join arrays along an existing axis."""
    return np.concatenate(arrays, axis=axis)


@register_op("stack", attrs=ConcatAttrs)
def stack(*arrays: np.ndarray, axis: int = 0) -> np.ndarray:
    """Join arrays along a new axis."""
    return np.stack(arrays, axis=axis)


class ReshapeAttrs(_Attrs):
    # A name is a dynamic input size ("batch", "seq"), bound by the graph's inputs at run time.
    shape: list[int | Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")]]


@register_op("reshape", attrs=ReshapeAttrs)
def reshape(x: np.ndarray, shape: list[int | str]) -> np.ndarray:
    """Reshape; ``-1`` infers one dimension (size names are resolved by the graph first)."""
    return np.reshape(x, tuple(int(d) for d in shape))


class TransposeAttrs(_Attrs):
    axes: list[int] | None = None


@register_op("transpose", attrs=TransposeAttrs)
def transpose(x: np.ndarray, axes: list[int] | None = None) -> np.ndarray:
    """Permute axes (reverse them when ``axes`` is None)."""
    return np.transpose(x, axes)


@register_op("flatten")
def flatten(x: np.ndarray) -> np.ndarray:
    """Gluon's flatten: (N, a, b, ...) → (N, a·b·...)."""
    return np.reshape(x, (x.shape[0], -1)) if x.ndim else np.reshape(x, (1, 1))


class AxesAttrs(_Attrs):
    axis: int | list[int] | None = None


@register_op("squeeze", attrs=AxesAttrs)
def squeeze(x: np.ndarray, axis: int | list[int] | None = None) -> np.ndarray:
    """Drop axes of length one."""
    return np.squeeze(x, axis=tuple(axis) if isinstance(axis, list) else axis)


class ExpandAttrs(_Attrs):
    axis: int | list[int]


@register_op("expand_dims", attrs=ExpandAttrs)
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


@register_op("getitem", attrs=GetItemAttrs)
def getitem(x: np.ndarray, index: list[Any]) -> np.ndarray:
    """Basic indexing and slicing with constant indices (``x[:, :4]``, ``x[0]``, ``x[..., None]``)."""
    return np.asarray(x[decode_index(index)])


# -- reductions -------------------------------------------------------------------------------


class ReduceAttrs(_Attrs):
    axis: int | list[int] | None = None
    keepdims: bool = False


def _axis(axis: int | list[int] | None) -> int | tuple[int, ...] | None:
    return tuple(axis) if isinstance(axis, list) else axis


for _name, _reduce in {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min}.items():
    register_op(_name, attrs=ReduceAttrs)(
        lambda x, axis=None, keepdims=False, _f=_reduce: np.asarray(
            _f(x, axis=_axis(axis), keepdims=keepdims)
        )
    )
