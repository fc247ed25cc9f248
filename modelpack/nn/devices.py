"""MXNet's ndarray API on numpy arrays, so that d2l's ``X.ctx``, ``.as_in_ctx(ctx)`` and
``x.attach_grad()`` run unchanged.

Every array here lives in host memory and is computed on by numpy, so a device is only a
name (``cpu(0)``) and moving an array is doing nothing. ``DeviceAPI`` gives the attributes to
the three kinds of array a ``forward`` sees: ``NDArray`` (a numpy array view, what a custom
block's inputs become, and what ``modelpack.np`` creates), autograd's ``Variable`` and the
tracer's stand-ins. ``on_device`` makes the view; it copies nothing.

>>> x = on_device(numpy.ones(3)); x.ctx, x.as_in_ctx(cpu()) is x     # doctest: +SKIP
(cpu(0), True)

``x.attach_grad()`` makes ``x`` a ``GradArray``: its data becomes the data of a hidden
``Parameter`` (sharing the memory), so autograd's recorder takes it as a leaf, as it does a
layer's weight, through ``hooks`` (this module never imports autograd), and ``backward`` fills
``x.grad`` by the parameter's ``grad_req``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import AutogradError, UsageError
from . import hooks
from .parameter import Parameter

__all__ = [
    "Device", "cpu", "DeviceAPI", "NDArray", "GradArray", "on_device", "on_tape", "check_device",
    "parameter_array",
]


class Device(str):
    """A device name (``cpu(0)``); every array lives in host memory."""

    def __repr__(self) -> str:  # as MXNet prints a context: cpu(0), not 'cpu(0)'
        return str.__str__(self)


def cpu(device_id: int = 0) -> Device:
    """The one device."""
    return Device(f"cpu({device_id})")


def check_device(ctx: Any) -> None:
    """Accept what names the CPU (or None, or a list of them, as Gluon's ``ctx=`` takes);
    refuse a GPU instead of silently computing elsewhere than asked."""
    for one in ctx if isinstance(ctx, (list, tuple)) else [ctx]:
        if one is not None and not str(one).startswith("cpu"):
            raise UsageError(f"device {one}: modelpack computes with numpy on the CPU; use npx.cpu()")


class DeviceAPI:
    """``ctx``/``context``, ``as_in_ctx``/``as_in_context``, ``wait_to_read``: the device part
    of MXNet's ndarray (numpy 2's own ``device``/``to_device`` are left as numpy defines them)."""

    __slots__ = ()

    @property
    def ctx(self) -> Device:
        return cpu()

    context = ctx

    def as_in_ctx(self, ctx: Any) -> Any:
        """The array itself: it is already where every array is."""
        check_device(ctx)
        return self

    as_in_context = as_in_ctx

    def wait_to_read(self) -> None:
        """Computation is synchronous; nothing to wait for."""

    def as_nd_ndarray(self) -> Any:
        """MXNet's: this array as a legacy ``mxnet.ndarray`` array (``modelpack.ndarray``,
        legacy semantics), sharing its memory; refused for values on an autograd tape."""
        from ..ndarray.ndarray import from_numpy_mode  # (nn never imports ndarray at import time)

        return from_numpy_mode(self)

    def as_np_ndarray(self) -> Any:
        """MXNet's: a numpy-mode array is already one; the array itself."""
        from ..ndarray.ndarray import to_numpy_mode

        return to_numpy_mode(self)


class NDArray(DeviceAPI, np.ndarray):
    """A numpy array with MXNet's device attributes (``ctx``, ``as_in_ctx``, ``asnumpy``, ...).

    Everything else is numpy's own: operations on it give ``NDArray`` results where numpy keeps
    the subclass, and plain arrays where it does not; both compute identically."""

    def asnumpy(self) -> np.ndarray:
        """A plain numpy copy (MXNet's ``asnumpy`` copies too)."""
        return np.array(self, copy=True, subok=False)

    def copyto(self, other: Any) -> Any:
        """Copy into the array ``other``, or to the device ``other`` (a new array)."""
        if isinstance(other, np.ndarray):
            other[...] = self
            return other
        check_device(other)
        return self.copy()

    def attach_grad(self, grad_req: str = "write") -> None:
        """MXNet's: inside ``autograd.record()`` what is computed from this array is recorded,
        and ``backward`` fills ``self.grad`` (zeros until then). The array becomes a
        ``GradArray``; its values stay where they are, so ``x -= lr * x.grad`` updates it."""
        param = Parameter("attach_grad array", shape=self.shape, dtype=self.dtype, grad_req=grad_req)
        param.set_data(np.asarray(self))  # a view: the parameter and the array share memory
        self.__class__ = GradArray
        self.__dict__["_grad_param"] = param

    @property
    def grad(self) -> NDArray | None:
        """None: an array has a gradient only after ``attach_grad()`` (as in MXNet)."""
        return None

    def detach(self) -> NDArray:
        """This array's values off the tape (a view): what is computed from it has no gradient."""
        return self.view(NDArray)

    def __float__(self) -> float:
        """MXNet converts any one-element array (``float(np.array([3.5]))``), numpy only 0-d."""
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def sum(self, axis: Any = None, *args: Any, **kwargs: Any) -> Any:
        """numpy's, also taking MXNet's list of axes (``A.sum(axis=[0, 1])``)."""
        return np.ndarray.sum(self, _axes(axis), *args, **kwargs)

    def mean(self, axis: Any = None, *args: Any, **kwargs: Any) -> Any:
        """numpy's, also taking MXNet's list of axes."""
        return np.ndarray.mean(self, _axes(axis), *args, **kwargs)

    def __repr__(self) -> str:
        return repr(np.asarray(self)).replace("array(", "NDArray(", 1)


def _axes(axis: Any) -> Any:
    return tuple(axis) if isinstance(axis, list) else axis


class GradArray(NDArray):
    """An NDArray after ``attach_grad()``. Outside ``autograd.record()`` it is numpy (results are
    NDArrays, not GradArrays: a result has no gradient of its own). Inside, numpy's functions,
    ufuncs, operators and the methods below run on its tape leaf (as a layer's weight does), so
    they are recorded; a method that is not an op is refused, never run off the tape."""

    @property
    def grad(self) -> NDArray | None:
        """The gradient of the last ``backward`` (zeros before the first one), a view that
        writes go through to; None where there is none (``grad_req="null"``, as in MXNet)."""
        param = self.__dict__.get("_grad_param")
        return None if param is None or param.grad_req == "null" else param.grad().view(NDArray)

    def _leaf(self) -> Any:
        """The tape's Variable for this array while recording, else None."""
        param = self.__dict__.get("_grad_param")
        interceptor = hooks.active()
        if param is None or interceptor is None or not interceptor.sees_real_values:
            return None
        return interceptor.read_parameter(param)

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        taped = _on_tape(inputs)
        if taped is not None:
            return getattr(ufunc, method)(*taped, **kwargs)
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = tuple(_plain(o) for o in out)
        result = getattr(ufunc, method)(*(_plain(i) for i in inputs), **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return on_device(result)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        taped = _on_tape(args)
        if taped is not None:
            return func(*taped, **kwargs)
        return super().__array_function__(func, types, args, kwargs)

    @staticmethod
    def __modelpack_op__(op: str, inputs: Any, attrs: dict[str, Any]) -> Any:
        """An op of the op table (``npx.relu(x)``, ``F.softmax(x)``): on the leaves while
        recording, else on plain arrays (``hooks.run_op`` then finds any other recorder)."""
        taped = _on_tape(inputs)
        return hooks.run_op(op, list(taped) if taped is not None else [_plain(i) for i in inputs], attrs)

    @property
    def T(self) -> Any:
        leaf = self._leaf()
        return np.ndarray.T.__get__(self) if leaf is None else leaf.T


def on_tape(value: Any) -> Any:
    """``value``'s tape leaf when it is an attached array and autograd records; else ``value``
    (for autograd's ops and layer calls, whose other inputs may be attached arrays)."""
    leaf = value._leaf() if isinstance(value, GradArray) else None
    return value if leaf is None else leaf


def _plain(value: Any) -> Any:
    return value.view(np.ndarray) if isinstance(value, GradArray) else value


def _on_tape(values: Any) -> tuple[Any, ...] | None:
    """``values`` with each attached array (also inside a list, as ``np.concatenate`` takes
    them) replaced by its tape leaf, while recording; None when nothing is on a tape."""
    found = False

    def swap(value: Any) -> Any:
        nonlocal found
        if isinstance(value, (list, tuple)):
            return type(value)(swap(item) for item in value)
        leaf = value._leaf() if isinstance(value, GradArray) else None
        if leaf is None:
            return value
        found = True
        return leaf

    swapped = tuple(swap(value) for value in values)
    return swapped if found else None


def _taped_method(name: str) -> Any:
    """GradArray's ``name``: numpy's method, or, while recording, the leaf's (an op) or numpy's
    function of that name on the leaf (an op, or an error naming it: never an untaped result)."""
    plain = getattr(NDArray, name)

    def method(self: GradArray, *args: Any, **kwargs: Any) -> Any:
        leaf = self._leaf()
        if leaf is None:
            return plain(self, *args, **kwargs)
        if hasattr(type(leaf), name):
            return getattr(leaf, name)(*args, **kwargs)
        function = getattr(np, name, None)
        if function is None:
            raise AutogradError(
                f"x.{name}() on an array with attach_grad() inside autograd.record() has no gradient "
                "rule; use numpy's functions and operators (the op set), or x.detach() to cut it"
            )
        return function(leaf, *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    return method


for _name in (
    "__getitem__", "reshape", "transpose", "flatten", "ravel", "squeeze", "swapaxes", "astype", "repeat",
    "sum", "mean", "max", "min", "prod", "std", "var", "cumsum", "dot", "clip", "take", "copy",
):
    setattr(GradArray, _name, _taped_method(_name))


def on_device(value: Any) -> Any:
    """``value`` with its plain numpy arrays as ``NDArray`` views, inside tuples and lists too
    (a recurrent state); anything else unchanged."""
    if type(value) is np.ndarray:
        return value.view(NDArray)
    if type(value) in (tuple, list):
        return type(value)(on_device(item) for item in value)
    return value


def parameter_array(param: Parameter, array: np.ndarray) -> GradArray:
    """``param``'s array as a script gets it from ``data()``: a ``GradArray`` view, so writes
    reach the parameter, ``.grad`` is its gradient (d2l's gradient clipping scales it in
    place), and inside ``autograd.record()`` what is computed from it is recorded on it."""
    view = array.view(GradArray)
    view.__dict__["_grad_param"] = param
    return view
