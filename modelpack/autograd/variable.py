"""``Variable``: an array on the tape, and how numpy code on it becomes recorded ops.

A Variable holds its numpy value and the ``Node`` that made it: the node's parents and one
vector-Jacobian product (VJP). Operators, numpy ufuncs, numpy functions and ndarray methods
map to ops by the op table (``modelpack.nn.ops``: each op's ``numpy``, ``methods`` and
numpy-style ``call``), as tracing's stand-ins do; ``apply`` runs the op's numpy function on
plain values and, while recording, adds a node with the op's VJP from ``vjps.VJPS``.
numpy functions made of several ops (``nn.ops.composites``: ``np.linalg.norm``) record as
those ops; questions whose answers are booleans or integers (``all``, ``argsort``, ``isnan``)
are answered on the value, as no gradient flows through them. Anything else that would turn
a Variable into a plain array while recording is refused, because the gradient would be lost
without a word.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import AutogradError, UnknownOpError, UnsupportedFeatureError
from ..nn import ops
from ..nn.devices import DeviceAPI, on_device, on_tape
from ..nn.ops.composites import COMPOSITES, METHOD_COMPOSITES, UFUNC_COMPOSITES
from ..nn.ops.operators import Operators
from .vjps import CAPTURE, VJPS

if TYPE_CHECKING:
    from ..nn.parameter import Parameter

__all__ = ["Variable", "Node", "Backward", "is_recording", "set_recording", "value_of", "make_node", "apply"]

# A VJP maps the output's gradient to one gradient (or None) per parent, in order.
Backward = Callable[[np.ndarray], Sequence[Any]]

_state = threading.local()


def is_recording() -> bool:
    """True inside ``autograd.record()`` (and not inside a ``pause()`` within it) on this thread."""
    return bool(getattr(_state, "recording", False))


def set_recording(recording: bool) -> bool:
    """Switch recording on this thread; returns the previous setting (for ``recording.py``)."""
    previous = is_recording()
    _state.recording = recording
    return previous


class Node:
    """One recorded operation: its name (for messages), its parents and its VJP."""

    __slots__ = ("name", "parents", "vjp")

    def __init__(self, name: str, parents: Sequence[Variable | None], vjp: Backward) -> None:
        self.name = name
        self.parents = tuple(parents)
        self.vjp: Backward | None = vjp


def value_of(value: Any) -> Any:
    """The numpy value of a Variable; anything else unchanged."""
    return value.value if isinstance(value, Variable) else value


def make_node(name: str, value: Any, inputs: Sequence[Any], vjp: Backward) -> Any:
    """``value`` as a Variable made by ``name`` from ``inputs`` (one gradient per input from
    ``vjp``), or the plain value when not recording or when no input is a Variable."""
    if not is_recording():
        return value
    parents = [item if isinstance(item, Variable) else None for item in inputs]
    if all(parent is None for parent in parents):
        return value
    return Variable(value, node=Node(name, parents, vjp))


def apply(op: str, inputs: Sequence[Any], attrs: dict[str, Any]) -> Any:
    """Run registered op ``op`` on the inputs' values; record it if an input is a Variable (or
    an array with ``attach_grad()``, whose leaf it then is)."""
    definition = ops.op_def(op)
    if is_recording():
        inputs = [on_tape(item) for item in inputs]
    values = [value_of(item) for item in inputs]
    capture = CAPTURE.get(op)
    context = {**attrs, **capture(attrs)} if capture is not None and is_recording() else attrs
    out = definition.fn(*values, **attrs)
    vjp = VJPS[op]
    if not definition.returns_list(attrs):
        return make_node(op, out, inputs, lambda grad: vjp(grad, out, values, context))
    # Several outputs (split, topk): each is a node; its VJP sees zeros for the others (the
    # input gradients of the outputs add up, as the op's VJP is linear in the gradients).
    def one_output(i: int) -> Backward:
        return lambda grad: vjp(
            [grad if j == i else np.zeros_like(o) for j, o in enumerate(out)], out, values, context
        )

    return [make_node(f"{op}[{i}]", value, inputs, one_output(i)) for i, value in enumerate(out)]


class Variable(Operators, DeviceAPI):
    """An array on the tape: a numpy value and the node that made it (None for a leaf).

    ``Variable(x)`` makes a leaf whose gradient ``backward`` stores in ``.grad`` (MXNet's
    ``x.attach_grad()``). Outside ``record()`` operations give plain numpy arrays.

    >>> x = autograd.Variable(np.array([1.0, 2.0]))    # doctest: +SKIP
    >>> with autograd.record(): y = (x * x).sum()     # doctest: +SKIP
    >>> y.backward(); x.grad                          # doctest: +SKIP
    array([2., 4.])
    """

    __array_priority__ = 1000
    __slots__ = ("value", "node", "param", "grad", "__weakref__")

    def __init__(self, value: Any, *, node: Node | None = None, param: Parameter | None = None) -> None:
        self.value: np.ndarray = np.asarray(value)
        self.node = node
        self.param = param
        self.grad: np.ndarray | None = None

    # -- static facts ------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.value.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.value.dtype

    @property
    def ndim(self) -> int:
        return int(self.value.ndim)

    @property
    def size(self) -> int:
        return int(self.value.size)

    def __len__(self) -> int:
        return len(self.value)

    def __repr__(self) -> str:
        made_by = f"made by {self.node.name}" if self.node is not None else "leaf"
        return f"Variable({self.value!r}, {made_by})"

    # -- leaving the tape: explicitly, or by numpy outside record() ----------------------------
    def asnumpy(self) -> np.ndarray:
        """A copy of the value, detached from the tape (MXNet's ``asnumpy``)."""
        return self.value.copy()

    def detach(self) -> np.ndarray:
        """The value as a plain array: what is computed from it is not recorded."""
        return self.value

    def item(self) -> Any:
        return self.value.item()

    asscalar = item

    def __float__(self) -> float:
        return float(self.value)

    def __int__(self) -> int:
        return int(self.value)

    def __bool__(self) -> bool:
        return bool(self.value)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if is_recording():
            raise AutogradError(
                "converting a Variable to a plain numpy array inside autograd.record() would cut "
                "it from the tape and lose its gradient silently; use the op set (numpy operators "
                "and ufuncs, modelpack.nn.functional), or .detach() to cut it on purpose"
            )
        return self.value if dtype is None else self.value.astype(dtype)

    def __setitem__(self, key: Any, value: Any) -> None:
        raise AutogradError("in-place assignment to a Variable cannot be differentiated; build a new value")

    # -- gradients ---------------------------------------------------------------------------
    def backward(self, out_grad: Any = None, retain_graph: bool = False, train_mode: bool = True) -> None:
        """Backpropagate from this value; a non-scalar gets ones as its gradient (as in MXNet).

        ``train_mode`` is accepted for MXNet's signature: the VJPs use what the forward saved."""
        from .recording import backward  # late: recording imports this module

        backward([self], None if out_grad is None else [out_grad], retain_graph=retain_graph)

    # -- operators: Operators' (in-place forms fall back to them and build a new Variable) -----
    def _operator(self, op: str, inputs: list[Any]) -> Any:
        return apply(op, inputs, {})

    def __getitem__(self, index: Any) -> Any:
        return _call("getitem", f"indexing a Variable with {index!r}", self, index)

    # -- methods -------------------------------------------------------------------------------
    @property
    def T(self) -> Any:
        return apply("transpose", [self], {"axes": None})

    def reshape(self, *shape: Any, **kwargs: Any) -> Any:
        target = shape[0] if len(shape) == 1 else shape
        return _call("reshape", "Variable.reshape", self, target, **kwargs)

    def transpose(self, *axes: Any) -> Any:
        target = axes[0] if len(axes) == 1 else axes
        return apply("transpose", [self], {"axes": list(target) if target not in (None, ()) else None})

    def flatten(self) -> Any:
        return apply("reshape", [self], {"shape": [-1]})

    def swapaxes(self, axis1: int, axis2: int) -> Any:
        """numpy's (d2l's ``d2l.swapaxes``, on RNN outputs and attention states)."""
        return _call("swapaxes", "Variable.swapaxes", self, axis1, axis2)

    def astype(self, dtype: Any, copy: bool = True) -> Any:
        return apply("cast", [self], {"dtype": np.dtype(dtype).name})

    def __getattr__(self, name: str) -> Any:
        """The op table's ``ndarray`` methods (``x.argmax(axis=1)``, ``x.clip(0, 1)``, ...: each
        op's ``methods``, numpy's signature), and the queries whose result is boolean or integer
        (``x.all()``, ``x.argsort()``, ``x.tolist()``): they carry no gradient, so computing them
        on the value loses none. Other ``ndarray`` names are refused, naming why."""
        op = _METHOD_OPS.get(name)
        if op is not None:
            return functools.partial(_call, op.name, f"Variable.{name}", self)
        query = _QUERY_METHODS.get(name)
        if query is not None:
            return functools.partial(_query, query, self)
        composite = METHOD_COMPOSITES.get(name)
        if composite is not None:  # x.ravel(), x.round(2): numpy code over ops, recorded as those
            return functools.partial(composite, self)
        if name.startswith("__") or not hasattr(np.ndarray, name):
            raise AttributeError(f"'Variable' object has no attribute {name!r}")
        raise UnsupportedFeatureError(
            f"Variable.{name}()",
            f"it is not in the op set, {_NO_GRADIENT}; use numpy's functions and operators on it "
            f"(the op set), or x.detach() to cut it from the tape on purpose",
        )

    # -- numpy dispatch --------------------------------------------------------------------------
    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        op = _UFUNCS.get(ufunc)
        if method == "__call__" and not kwargs and ufunc in _QUERY_UFUNCS:
            return _query(ufunc, *inputs)
        composite = UFUNC_COMPOSITES.get(ufunc)
        if method == "__call__" and not kwargs and op is None and composite is not None:
            return composite(*inputs)  # numpy code over ops (np.trunc): recorded as those
        if method != "__call__" or kwargs or op is None:
            name = getattr(ufunc, "__name__", ufunc)
            what = f"numpy.{name}" + ("" if method == "__call__" else f".{method}")
            options = f" with {', '.join(sorted(kwargs))}" if kwargs else ""
            what = f"{what}{options} on a Variable"
            raise UnknownOpError.not_an_op(what, _NO_GRADIENT, known=ops.known_ops())
        return apply(op, list(inputs), {})

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        if func in _SHAPE_QUERIES:  # static facts: no op, nothing to record
            return func(*(value_of(a) for a in args), **kwargs)
        if func in _QUERY_FUNCTIONS:
            return _query(func, *args, **kwargs)
        composite = COMPOSITES.get(func)
        if composite is not None:  # numpy code over ops (np.linalg.norm): recorded as those
            return composite(*args, **kwargs)
        name = f"numpy.{getattr(func, '__name__', func)}"
        op = _FUNCTIONS.get(func)
        if op is None:
            raise UnknownOpError.not_an_op(f"{name} on a Variable", _NO_GRADIENT, known=ops.known_ops())
        return _call(op.name, name, *args, **kwargs)

    # -- for op dispatch by modelpack (nn.hooks.run_op) -------------------------------------------
    @staticmethod
    def __modelpack_op__(op: str, inputs: Sequence[Any], attrs: dict[str, Any]) -> Any:
        return apply(op, inputs, attrs)


_NO_GRADIENT = "so it has no gradient"


def _call(op: str, what: str, *args: Any, **kwargs: Any) -> Any:
    """Apply ``op`` called numpy's way (``OpDef.call`` sorts inputs from attributes)."""
    try:
        inputs, attrs = ops.OPS[op].call(*args, **kwargs)
    except TypeError as exc:
        raise UnknownOpError.not_an_op(what, _NO_GRADIENT, detail=str(exc), as_called=True) from None
    return apply(op, inputs, attrs)


# numpy's ufuncs and functions that mean an op, derived from the op table.
_UFUNCS: dict[Any, str] = {f: op.name for op in ops.OPS.values() for f in op.numpy if isinstance(f, np.ufunc)}
_FUNCTIONS: dict[Any, ops.OpDef] = {
    f: op for op in ops.OPS.values() for f in op.numpy if not isinstance(f, np.ufunc)
}
_METHOD_OPS: dict[str, ops.OpDef] = {m: op for op in ops.OPS.values() for m in op.methods}
_SHAPE_QUERIES = (np.shape, np.ndim, np.size)

# Questions about values whose answers are booleans or integers (positions, counts, tests):
# no gradient can flow through them, so they are computed on the values, not recorded
# (d2l's ``accuracy`` takes ``argmax`` (an op) and compares; a loop tests ``(x > 0).all()``).
_QUERY_FUNCTIONS = frozenset({
    np.all, np.any, np.argsort, np.nonzero, np.flatnonzero, np.argwhere, np.count_nonzero,
    np.array_equal, np.array_equiv, np.allclose, np.isclose,
})
_QUERY_UFUNCS = frozenset({np.isnan, np.isinf, np.isfinite, np.signbit})
_QUERY_METHODS: dict[str, Callable[..., Any]] = {
    "all": np.all, "any": np.any, "argsort": np.argsort, "nonzero": np.nonzero,
    "tolist": np.ndarray.tolist,
}


def _query(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``function`` on the values of its arguments (Variables among them), as MXNet arrays."""

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return type(value)(plain(item) for item in value)
        return value_of(value)

    result = function(*(plain(a) for a in args), **{k: plain(v) for k, v in kwargs.items()})
    return on_device(np.asarray(result) if isinstance(result, np.generic) else result)
