"""Reductions: sums, means, extrema, products, variances, and the positions of extrema."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from . import Attrs, as_axis, json_value, register_op


class ReduceAttrs(Attrs):
    axis: int | list[int] | None = None
    keepdims: bool = False


def _reduce_call(a: Any, axis: Any = None, keepdims: bool = False) -> tuple[list[Any], dict[str, Any]]:
    return [a], {"axis": json_value(axis), "keepdims": bool(keepdims)}


_REDUCTIONS: dict[str, tuple[Any, ...]] = {
    "sum": (np.sum,),
    "mean": (np.mean,),
    "max": (np.max, np.amax),
    "min": (np.min, np.amin),
    "prod": (np.prod,),
}
for _name, _functions in _REDUCTIONS.items():
    register_op(_name, attrs=ReduceAttrs, numpy=_functions, methods=(_name,), call=_reduce_call)(
        lambda x, axis=None, keepdims=False, _f=_functions[0]: np.asarray(
            _f(x, axis=as_axis(axis), keepdims=keepdims)
        )
    )


class MomentAttrs(ReduceAttrs):
    ddof: int = Field(default=0, ge=0)


def _moment_call(
    a: Any, axis: Any = None, dtype: Any = None, out: Any = None, ddof: int = 0, keepdims: bool = False
) -> tuple[list[Any], dict[str, Any]]:
    if dtype is not None or out is not None:
        raise TypeError("var()/std(): dtype= and out= are not supported; cast first")
    return [a], {"axis": json_value(axis), "keepdims": bool(keepdims), "ddof": int(ddof)}


@register_op("var", attrs=MomentAttrs, numpy=(np.var,), methods=("var",), call=_moment_call)
def var(
    x: np.ndarray, axis: int | list[int] | None = None, keepdims: bool = False, ddof: int = 0
) -> np.ndarray:
    """Variance (divided by n - ddof), as ``np.var``."""
    return np.asarray(np.var(x, axis=as_axis(axis), keepdims=keepdims, ddof=ddof))


@register_op("std", attrs=MomentAttrs, numpy=(np.std,), methods=("std",), call=_moment_call)
def std(
    x: np.ndarray, axis: int | list[int] | None = None, keepdims: bool = False, ddof: int = 0
) -> np.ndarray:
    """Standard deviation, as ``np.std``."""
    return np.asarray(np.std(x, axis=as_axis(axis), keepdims=keepdims, ddof=ddof))


class ArgAttrs(Attrs):
    axis: int | None = None
    keepdims: bool = False


def _arg_call(
    a: Any, axis: Any = None, out: Any = None, *, keepdims: bool = False
) -> tuple[list[Any], dict[str, Any]]:
    if out is not None:
        raise TypeError("argmax()/argmin(): out= is not supported")
    return [a], {"axis": json_value(axis), "keepdims": bool(keepdims)}


@register_op("argmax", attrs=ArgAttrs, numpy=(np.argmax,), methods=("argmax",), call=_arg_call)
def argmax(x: np.ndarray, axis: int | None = None, keepdims: bool = False) -> np.ndarray:
    """Index (int64) of the first maximum along ``axis`` (of the flattened array for None)."""
    return np.asarray(np.argmax(x, axis=axis, keepdims=keepdims)).astype(np.int64)


@register_op("argmin", attrs=ArgAttrs, numpy=(np.argmin,), methods=("argmin",), call=_arg_call)
def argmin(x: np.ndarray, axis: int | None = None, keepdims: bool = False) -> np.ndarray:
    """Index (int64) of the first minimum along ``axis``."""
    return np.asarray(np.argmin(x, axis=axis, keepdims=keepdims)).astype(np.int64)


class CumAttrs(Attrs):
    axis: int | None = None


def _cum_call(
    a: Any, axis: Any = None, dtype: Any = None, out: Any = None
) -> tuple[list[Any], dict[str, Any]]:
    if dtype is not None or out is not None:
        raise TypeError("cumsum(): dtype= and out= are not supported")
    return [a], {"axis": json_value(axis)}


@register_op("cumsum", attrs=CumAttrs, numpy=(np.cumsum,), methods=("cumsum",), call=_cum_call)
def cumsum(x: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Running sum along ``axis`` (of the flattened array for None)."""
    return np.asarray(np.cumsum(x, axis=axis))
