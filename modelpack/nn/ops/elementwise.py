"""Element-wise ops: arithmetic and comparisons (numpy broadcasting and type promotion),
unary functions, the activations, ``where`` and ``clip``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import InputError
from .. import activations as act
from . import Attrs, json_value, on_floats, register_op

# name -> the ufuncs that mean it (the first is the implementation)
_BINARY: dict[str, tuple[np.ufunc, ...]] = {
    "add": (np.add,),
    "subtract": (np.subtract,),
    "multiply": (np.multiply,),
    "divide": (np.divide, np.true_divide),
    "floor_divide": (np.floor_divide,),
    "mod": (np.remainder,),
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
    "logical_and": (np.logical_and,),
    "logical_or": (np.logical_or,),
    "logical_xor": (np.logical_xor,),
    "fmod": (np.fmod,),
}
_UNARY: dict[str, tuple[np.ufunc, ...]] = {
    "negative": (np.negative,),
    "abs": (np.absolute,),
    "exp": (np.exp,),
    "expm1": (np.expm1,),
    "log": (np.log,),
    "log1p": (np.log1p,),
    "sqrt": (np.sqrt,),
    "square": (np.square,),
    "reciprocal": (np.reciprocal,),
    "sign": (np.sign,),
    "floor": (np.floor,),
    "ceil": (np.ceil,),
    "sin": (np.sin,),
    "cos": (np.cos,),
    "tan": (np.tan,),
    "arcsin": (np.arcsin,),
    "arccos": (np.arccos,),
    "arctan": (np.arctan,),
    "sinh": (np.sinh,),
    "cosh": (np.cosh,),
    "arcsinh": (np.arcsinh,),
    "arccosh": (np.arccosh,),
    "arctanh": (np.arctanh,),
    "rint": (np.rint,),
    "logical_not": (np.logical_not,),
}
for _name, _ufuncs in _BINARY.items():
    register_op(_name, numpy=_ufuncs)(lambda a, b, _f=_ufuncs[0]: _f(a, b))
for _name, _ufuncs in _UNARY.items():
    register_op(_name, numpy=_ufuncs)(lambda a, _f=_ufuncs[0]: _f(a))
# Activations are declared in ``activations.ACTIVATIONS``; tanh is also numpy's ufunc.
for _name, _fn in act.ACTIVATIONS.items():
    register_op(_name, numpy=(np.tanh,) if _name == "tanh" else ())(on_floats(_fn))


@register_op("erf")
def erf(x: Any) -> np.ndarray:
    """The error function in float_of(x's dtype), as numpy's ufuncs would take it (numpy has
    no erf); complex values are refused."""
    array = np.asarray(x)
    if array.dtype.kind == "c":
        raise InputError(f"erf is not defined on complex values (got {array.dtype})")
    return act.erf(array.astype(np.result_type(array.dtype, np.float16), copy=False))


@register_op("where", numpy=(np.where,))
def where(condition: np.ndarray, a: Any, b: Any) -> np.ndarray:
    """Element-wise choice, as ``np.where(condition, a, b)``."""
    return np.where(condition, a, b)


class LeakyAttrs(Attrs):
    alpha: float = 0.01


class EluAttrs(Attrs):
    alpha: float = 1.0


register_op("leaky_relu", attrs=LeakyAttrs)(on_floats(act.leaky_relu))
register_op("elu", attrs=EluAttrs)(on_floats(act.elu))


class ClipAttrs(Attrs):
    a_min: float | None = None
    a_max: float | None = None


def _clip_call(
    a: Any, a_min: Any = None, a_max: Any = None, **kwargs: Any
) -> tuple[list[Any], dict[str, Any]]:
    a_min, a_max = kwargs.pop("min", a_min), kwargs.pop("max", a_max)
    if kwargs:
        raise TypeError(f"clip(): unsupported arguments {sorted(kwargs)}")
    for bound in (a_min, a_max):
        if bound is not None and not isinstance(bound, (int, float, np.integer, np.floating)):
            raise TypeError("clip(): the bounds must be numbers (array bounds are not supported)")
    return [a], {
        "a_min": None if a_min is None else float(json_value(a_min)),
        "a_max": None if a_max is None else float(json_value(a_max)),
    }


@register_op("clip", attrs=ClipAttrs, numpy=(np.clip,), methods=("clip",), call=_clip_call)
def clip(x: np.ndarray, a_min: float | None = None, a_max: float | None = None) -> np.ndarray:
    """Limit values to ``[a_min, a_max]`` (either may be None); the dtype is kept."""
    x = np.asarray(x)
    if a_min is None and a_max is None:
        return x.copy()
    low = None if a_min is None else x.dtype.type(a_min) if x.dtype.kind == "f" else a_min
    high = None if a_max is None else x.dtype.type(a_max) if x.dtype.kind == "f" else a_max
    return np.asarray(np.clip(x, low, high))
