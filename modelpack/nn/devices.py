"""MXNet's device API on arrays, so that d2l's ``X.ctx`` and ``.as_in_ctx(ctx)`` run unchanged.

Every array here lives in host memory and is computed on by numpy, so a device is only a
name (``cpu(0)``) and moving an array is doing nothing. ``DeviceAPI`` gives the attributes to
the three kinds of array a ``forward`` sees: ``NDArray`` (a numpy array view, what a custom
block's inputs become, and what ``modelpack.np`` creates), autograd's ``Variable`` and the
tracer's stand-ins. ``on_device`` makes the view; it copies nothing.

>>> x = on_device(numpy.ones(3)); x.ctx, x.as_in_ctx(cpu()) is x     # doctest: +SKIP
('cpu(0)', True)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import UsageError

__all__ = ["Device", "cpu", "DeviceAPI", "NDArray", "on_device", "check_device", "in_user_code", "user_code"]


class Device(str):
    """A device name (``cpu(0)``); every array lives in host memory."""


def cpu(device_id: int = 0) -> Device:
    """The one device."""
    return Device(f"cpu({device_id})")


def check_device(ctx: Any) -> None:
    """Accept what names the CPU (or None, or a list of them, as Gluon's ``ctx=`` takes);
    refuse a GPU instead of silently computing elsewhere than asked."""
    for one in ctx if isinstance(ctx, (list, tuple)) else [ctx]:
        if one is not None and not str(one).startswith("cpu"):
            raise UsageError(f"device {one!r}: modelpack computes with numpy on the CPU; use npx.cpu()")


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
        raise UsageError(
            "x.attach_grad(): a numpy array cannot carry a gradient; wrap it instead, "
            "x = modelpack.autograd.Variable(x), and read x.grad after backward()"
        )

    def __repr__(self) -> str:
        return repr(np.asarray(self)).replace("array(", "NDArray(", 1)


def on_device(value: Any) -> Any:
    """``value`` with its plain numpy arrays as ``NDArray`` views, inside tuples and lists too
    (a recurrent state); anything else unchanged."""
    if type(value) is np.ndarray:
        return value.view(NDArray)
    if type(value) in (tuple, list):
        return type(value)(on_device(item) for item in value)
    return value


_depth = threading.local()


def in_user_code() -> bool:
    """Whether a custom block's forward is running on this thread."""
    return getattr(_depth, "value", 0) > 0


@contextlib.contextmanager
def user_code(entering: bool) -> Iterator[None]:
    """Count a custom forward (``entering``) for ``in_user_code`` while it runs."""
    if not entering:
        yield
        return
    _depth.value = getattr(_depth, "value", 0) + 1
    try:
        yield
    finally:
        _depth.value -= 1
