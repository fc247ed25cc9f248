"""MXNet's ``mxnet.context``: ``Context``, ``cpu``, ``gpu``, ``cpu_pinned``, ``num_gpus``,
``current_context``, ``gpu_memory_info``.

>>> from modelpack import context
>>> context.cpu(), context.gpu(1), context.num_gpus()
(cpu(0), gpu(1), 0)
>>> context.Context("cpu", 0) == npx.cpu()                            # doctest: +SKIP
True

A context is modelpack's device name (``nn.devices.Device``, the one home of what a device is
here): ``Context`` is a ``Device`` that also has MXNet's ``device_type``, ``device_id`` and
``device_typeid`` and prints as MXNet prints it (``cpu(0)``), and every ``Device``
(``npx.cpu()``, ``x.ctx``) is an instance of ``Context``, equal to the ``Context`` of the
same name. Every array lives in host memory (see ``nn.devices``): there is no GPU
(``num_gpus()`` is 0, from ``npx``), a GPU context can be named but not used (``with
gpu():``, ``gpu_memory_info`` are refused; placing an array on one is refused where it is
placed), and ``with cpu(0):`` makes ``current_context()`` that context, as in MXNet.
"""

from __future__ import annotations

import threading
from typing import Any

from .errors import UnsupportedFeatureError, UsageError
from .nn.devices import Device, check_device
from .npx import num_gpus

__all__ = ["Context", "cpu", "gpu", "cpu_pinned", "num_gpus", "current_context", "gpu_memory_info"]


class _ContextType(type):
    """``isinstance(x, Context)`` holds for every ``Device``: they are one kind of thing."""

    def __instancecheck__(cls, instance: Any) -> bool:
        return isinstance(instance, Device)


class Context(Device, metaclass=_ContextType):
    """A device: ``Context(device_type, device_id=0)`` or ``Context(other_context)``."""

    devtype2str = {1: "cpu", 2: "gpu", 3: "cpu_pinned", 5: "cpu_shared"}
    devstr2type = {"cpu": 1, "gpu": 2, "cpu_pinned": 3, "cpu_shared": 5}
    _default_ctx = threading.local()

    def __new__(cls, device_type: Any, device_id: int = 0) -> Context:
        if isinstance(device_type, Device):  # a Context or any Device: its name and id
            device_type, _, rest = str(device_type).partition("(")
            device_id = int(rest.rstrip(")"))
        if device_type not in cls.devstr2type:
            raise UsageError(f"unknown device type {device_type!r}; MXNet's are {', '.join(cls.devstr2type)}")
        if isinstance(device_id, bool) or not isinstance(device_id, int) or device_id < 0:
            raise UsageError(f"device_id must be an int >= 0, got {device_id!r}")
        return super().__new__(cls, f"{device_type}({device_id})")

    def __init__(self, device_type: Any, device_id: int = 0) -> None:
        self._old_ctx: Context | None = None

    @property
    def device_type(self) -> str:
        """``'cpu'``, ``'gpu'``, ``'cpu_pinned'`` or ``'cpu_shared'``."""
        return str.partition(self, "(")[0]

    @property
    def device_id(self) -> int:
        return int(str.partition(self, "(")[2].rstrip(")"))

    @property
    def device_typeid(self) -> int:
        return self.devstr2type[self.device_type]

    def __reduce__(self) -> Any:
        return (Context, (self.device_type, self.device_id))

    def __enter__(self) -> Context:
        """Make this the ``current_context()`` until the block ends (a CPU context only)."""
        check_device(self)
        self._old_ctx = current_context()
        Context._default_ctx.value = self
        return self

    def __exit__(self, ptype: Any, value: Any, trace: Any) -> None:
        Context._default_ctx.value = self._old_ctx

    def empty_cache(self) -> None:
        """MXNet frees its cached device memory; numpy caches none."""


def cpu(device_id: int = 0) -> Context:
    """The CPU context (MXNet's ``mx.cpu()``); the same device as ``npx.cpu()``."""
    return Context("cpu", device_id)


def cpu_pinned(device_id: int = 0) -> Context:
    """MXNet's page-locked host memory: host memory, as every array here."""
    return Context("cpu_pinned", device_id)


def gpu(device_id: int = 0) -> Context:
    """A GPU context's name (MXNet makes one without a GPU too); nothing can be placed on it
    here (``num_gpus()`` is 0)."""
    return Context("gpu", device_id)


def gpu_memory_info(device_id: int = 0) -> tuple[int, int]:
    """Refused: there is no GPU (MXNet raises as well when there is none)."""
    raise UsageError(f"gpu_memory_info({device_id}): modelpack computes with numpy on the CPU and has no GPU")


def current_context() -> Context:
    """The context of the innermost ``with ctx:`` block, else ``cpu(0)``."""
    value = getattr(Context._default_ctx, "value", None)
    return Context("cpu", 0) if value is None else value


def __getattr__(name: str) -> Any:
    raise UnsupportedFeatureError.missing(__name__, name, f"context has {', '.join(__all__)}")
