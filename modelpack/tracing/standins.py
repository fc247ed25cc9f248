"""Stand-ins for arrays while tracing: ``Traced`` values that record what is done to them.

A ``Traced`` carries a graph value name and the real value of the example, so shapes are
known and every recorded op is also computed. Operators, numpy ufuncs and array functions
(``__array_ufunc__``/``__array_function__``) and ``nn.functional`` calls on stand-ins become
nodes; anything that would turn one into plain Python data (``bool()``, ``float()``,
``np.asarray``) raises ``TraceError`` naming the operation and the source line,
because the graph would silently bake in this one example's value. A ``for`` loop over a
stand-in is unrolled along its first axis.
"""

from __future__ import annotations

import os
import traceback
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import TraceError
from ..nn import hooks, ops
from ..nn.devices import DeviceAPI
from ..nn.ops.composites import COMPOSITES, METHOD_COMPOSITES, UFUNC_COMPOSITES, conjugate
from ..nn.ops.operators import Operators

if TYPE_CHECKING:
    from .record import GraphBuilder

__all__ = ["Traced", "refuse", "apply", "first_traced"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_NUMPY_DIR = os.path.dirname(os.path.abspath(np.__file__))


def _source_line() -> str:
    """``file:line: code`` of the innermost frame outside modelpack and numpy, if any."""
    for frame in reversed(traceback.extract_stack()):
        path = os.path.abspath(frame.filename)
        if not path.startswith((_PACKAGE_DIR, _NUMPY_DIR)) and "<frozen" not in path:
            return f" (at {frame.filename}:{frame.lineno}: {(frame.line or '').strip()})"
    return ""


def refuse(what: str, why: str) -> TraceError:
    """A TraceError naming the operation, the reason and the user's source line."""
    return TraceError(f"cannot trace {what}: {why}{_source_line()}")


# numpy's ufuncs and array functions that tracing records, derived from the op table.
_UFUNC_OPS: dict[Any, str] = {
    f: op.name for op in ops.OPS.values() for f in op.numpy if isinstance(f, np.ufunc)
}
_FUNCTION_OPS: dict[Any, ops.OpDef] = {
    f: op for op in ops.OPS.values() for f in op.numpy if not isinstance(f, np.ufunc)
}
_METHOD_OPS: dict[str, ops.OpDef] = {m: op for op in ops.OPS.values() for m in op.methods}
_SHAPE_QUERIES = (np.shape, np.ndim, np.size)


def _call(op: ops.OpDef, what: str, *args: Any, **kwargs: Any) -> Any:
    """Record ``op`` called numpy's way; a call the op cannot express is refused, named."""
    try:
        inputs, attrs = op.call(*args, **kwargs)
    except TypeError as exc:
        raise refuse(what, str(exc)) from None
    return _record(op.name, inputs, attrs)


class Traced(Operators, DeviceAPI):
    """A stand-in for an array while tracing: a named graph value plus its real value.

    Supports numpy's operators, ufuncs and array functions from the op set; everything that
    would turn it into plain Python data (``bool()``, ``float()``, ``.item()``) is refused,
    because the graph would silently bake in this one example's value.
    """

    __array_priority__ = 1000

    def __init__(self, graph: GraphBuilder, name: str, value: Any, *, parameter: str | None = None) -> None:
        self._graph = graph
        self._name = name
        self._value = value
        self._parameter = parameter

    # -- what is safe to read: static facts of the example ----------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(np.shape(self._value))

    @property
    def dtype(self) -> np.dtype:
        return np.asarray(self._value).dtype

    @property
    def ndim(self) -> int:
        return int(np.ndim(self._value))

    @property
    def size(self) -> int:
        return int(np.size(self._value))

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.size * self.itemsize

    @property
    def real(self) -> Any:
        """A real value's real part: itself (complex values have no ops)."""
        return conjugate(self)

    def __len__(self) -> int:
        return len(self._value)

    def __repr__(self) -> str:
        return f"Traced({self._name}, shape={self.shape}, dtype={self.dtype})"

    # -- refused: data-dependent Python -----------------------------------------------------
    def __bool__(self) -> bool:
        raise refuse(
            "bool() of a traced value",
            "Python control flow that depends on tensor values cannot be recorded as a graph; "
            "use np.where or a layer instead",
        )

    def __float__(self) -> float:
        raise refuse("float() of a traced value", "it would bake this example's value into the graph")

    def __int__(self) -> int:
        raise refuse("int() of a traced value", "it would bake this example's value into the graph")

    def __index__(self) -> int:
        raise refuse("using a traced value as an index", "indices must be constants")

    def __iter__(self) -> Any:
        """``for x in X``: unrolled, one ``X[i]`` per step along axis 0 (the example's length,
        so a loop over a dynamic axis is refused when the sizes grow)."""
        if self.ndim == 0:
            raise refuse("iterating over a 0-d traced value", "it has no axis to loop over")
        self._graph.loops.append((_source_line(), self.shape[0]))
        return iter([self[i] for i in range(self.shape[0])])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise refuse(
            "converting a traced value to a plain numpy array",
            "numpy code outside the op set would run on raw data and be baked into the graph",
        )

    def item(self, *args: Any) -> Any:
        raise refuse("ndarray.item()", "it would bake this example's value into the graph")

    def tolist(self) -> Any:
        raise refuse("ndarray.tolist()", "it would bake this example's value into the graph")

    def __setitem__(self, key: Any, value: Any) -> None:
        what = (
            f"in-place assignment to parameter {self._parameter!r}"
            if self._parameter
            else "in-place assignment (x[...] = ...)"
        )
        raise refuse(what, "in-place changes cannot be recorded; build a new value instead")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        op = _METHOD_OPS.get(name)  # x.sum(axis=1), ...: methods with numpy's own signature
        if op is not None:
            return lambda *args, **kwargs: _call(op, f"ndarray.{name}", self, *args, **kwargs)
        composite = METHOD_COMPOSITES.get(name)
        if composite is not None:  # x.ravel(), x.round(2): numpy code over ops
            return lambda *args, **kwargs: composite(self, *args, **kwargs)
        raise refuse(f"ndarray.{name}", f"it is not in the op set ({', '.join(ops.known_ops())})")

    # -- operators: Operators', and // and % ---------------------------------------------------
    def _operator(self, op: str, inputs: list[Any]) -> Any:
        return _record(op, inputs, {})

    def __floordiv__(self, other: Any) -> Any:
        return _record("floor_divide", [self, other], {})

    def __rfloordiv__(self, other: Any) -> Any:
        return _record("floor_divide", [other, self], {})

    def __mod__(self, other: Any) -> Any:
        return _record("mod", [self, other], {})

    def __rmod__(self, other: Any) -> Any:
        return _record("mod", [other, self], {})

    def _inplace(self, op: str, other: Any) -> Any:
        if self._parameter is not None:
            raise refuse(
                f"in-place {op} on parameter {self._parameter!r}", "parameters must not change during forward"
            )
        return _record(op, [self, other], {})

    def __iadd__(self, other: Any) -> Any:
        return self._inplace("add", other)

    def __isub__(self, other: Any) -> Any:
        return self._inplace("subtract", other)

    def __imul__(self, other: Any) -> Any:
        return self._inplace("multiply", other)

    def __itruediv__(self, other: Any) -> Any:
        return self._inplace("divide", other)

    def __getitem__(self, index: Any) -> Any:
        return _call(ops.OPS["getitem"], "indexing", self, index)

    # -- methods ------------------------------------------------------------------------------
    @property
    def T(self) -> Any:
        return _record("transpose", [self], {"axes": None})

    def reshape(self, *shape: Any, **kwargs: Any) -> Any:
        target = shape[0] if len(shape) == 1 else shape
        return _call(ops.OPS["reshape"], "ndarray.reshape", self, target, **kwargs)

    def transpose(self, *axes: Any) -> Any:
        target = axes[0] if len(axes) == 1 else axes
        return _record("transpose", [self], {"axes": list(target) if target not in (None, ()) else None})

    def flatten(self) -> Any:
        return _record("reshape", [self], {"shape": [-1]})

    def astype(self, dtype: Any, **kwargs: Any) -> Any:
        if kwargs:
            raise refuse("ndarray.astype", "only the dtype argument is supported")
        return _record("cast", [self], {"dtype": np.dtype(dtype).name})


    # -- numpy dispatch -----------------------------------------------------------------------
    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        name = f"numpy.{getattr(ufunc, '__name__', ufunc)}"
        if method != "__call__":
            raise refuse(f"{name}.{method}", "only plain ufunc calls are in the op set")
        if "out" in kwargs:
            raise refuse(f"{name}(..., out=...)", "in-place changes cannot be recorded")
        if kwargs:
            raise refuse(name, f"unsupported arguments {sorted(kwargs)}")
        op = _UFUNC_OPS.get(ufunc)
        if op is None:
            composite = UFUNC_COMPOSITES.get(ufunc)
            if composite is not None:  # numpy code over ops (np.isnan): traced as those
                return composite(*inputs)
            raise refuse(name, f"it is not in the op set ({', '.join(ops.known_ops())})")
        return _record(op, list(inputs), {})

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        module = getattr(func, "__module__", "numpy") or "numpy"
        name = f"{module}.{func.__name__}"
        if func in _SHAPE_QUERIES:  # static facts of the example, as x.shape (sizes followed)
            return func(*(a._value if isinstance(a, Traced) else a for a in args), **kwargs)
        composite = COMPOSITES.get(func)
        if composite is not None:  # numpy code over ops (np.linalg.norm): traced as those
            return composite(*args, **kwargs)
        op = _FUNCTION_OPS.get(func)
        if op is None:
            raise refuse(name, f"it is not in the op set ({', '.join(ops.known_ops())})")
        return _call(op, name, *args, **kwargs)


def first_traced(values: Any) -> Traced | None:
    for value in values:
        if isinstance(value, Traced):
            return value
        if isinstance(value, (list, tuple)):
            found = first_traced(value)
            if found is not None:
                return found
    return None


def _record(op: str, inputs: list[Any], attrs: dict[str, Any]) -> Any:
    """Record ``op`` in the graph its traced inputs belong to (called by operators and F)."""
    traced = first_traced(inputs)
    if traced is None:  # pragma: no cover - callers only get here with a stand-in
        return ops.op_def(op).fn(*inputs, **attrs)
    return traced._graph.add_op(op, inputs, attrs)


def apply(op: str, inputs: list[Any], attrs: dict[str, Any]) -> Any:
    """Run ``op`` eagerly, or record it if any input is a stand-in (used by ``nn.functional``)."""
    if first_traced(inputs) is not None:
        return _record(op, inputs, attrs)
    return hooks.run_op(op, inputs, attrs)  # plain arrays, or autograd's Variables
