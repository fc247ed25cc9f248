"""``Parameter``: a named array whose shape may be partly unknown until the first forward.

As in Gluon, a dimension of ``0`` means "not known yet" (``Dense(256)`` has weight shape
``(256, 0)`` until it sees an input). ``initialize()`` on such a parameter is *deferred*: the
initializer and random generator are kept and applied once the layer fills in the shape.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np

from .. import random
from ..errors import (
    AutogradError,
    DeferredInitializationError,
    DtypeMismatchError,
    ShapeMismatchError,
    UninitializedParameterError,
    UsageError,
)
from . import hooks, scope
from . import init as init_mod

__all__ = ["Parameter", "GRAD_REQS", "shape_is_known", "shapes_compatible", "parameter_rng"]

# How backward treats a parameter's gradient: replace it, add to it, or none (frozen).
GRAD_REQS = ("write", "add", "null")


def shape_is_known(shape: tuple[int, ...]) -> bool:
    """True when no dimension is the "unknown" marker 0."""
    return all(dim > 0 for dim in shape)


def shapes_compatible(declared: tuple[int, ...], actual: tuple[int, ...]) -> bool:
    """True when ``actual`` fills in ``declared``: same rank, and every known dim equal."""
    return len(declared) == len(actual) and all(d in (0, a) for d, a in zip(declared, actual, strict=False))


def parameter_rng(seed: int | None, name: str) -> np.random.Generator:
    """A generator for one parameter: seeded from (seed, name) so order of creation is irrelevant."""
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])


class Parameter:
    """A layer's array plus what is needed to create it: shape, dtype, initializer.

    ``grad_req="null"`` marks a non-trainable parameter such as BatchNorm's running mean.
    """

    def __init__(
        self,
        name: str = "weight",
        shape: int | tuple[int, ...] | None = None,
        dtype: str | np.dtype | type = "float32",
        init: init_mod.Initializer | str | None = None,
        grad_req: str = "write",
        allow_deferred_init: bool = True,
    ) -> None:
        self.name = name
        # The dotted name under the outermost block; filled in by Block.collect_params().
        self.structured_name = name
        self._shape: tuple[int, ...] = _as_shape(shape)
        self.dtype = np.dtype(dtype)
        self.init = init_mod.create(init)
        self.grad_req = grad_req
        self.allow_deferred_init = allow_deferred_init
        # Gluon's multipliers of the trainer's learning rate and weight decay for this parameter.
        self.lr_mult = 1.0
        self.wd_mult = 1.0
        self._data: np.ndarray | None = None
        self._deferred: tuple[init_mod.Initializer, np.random.Generator] | None = None
        # Run once, on the first read of the data (a memory-mapped archive checks a tensor's
        # CRC-32 when the model first touches it, not when it is loaded).
        self._first_read_check: Callable[[], None] | None = None
        self._grad: np.ndarray | None = None
        # Set by backward, cleared by Trainer.step: a gradient no backward refreshed is stale.
        self.grad_fresh = False

    # -- shape ---------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """The shape, with 0 for each dimension not known yet."""
        return self._shape

    @shape.setter
    def shape(self, new_shape: tuple[int, ...]) -> None:
        """Fill in unknown dimensions; a known dimension may not change."""
        new_shape = _as_shape(new_shape)
        if new_shape == self._shape:
            return
        if not shapes_compatible(self._shape, new_shape):
            raise ShapeMismatchError.of_parameter(
                self.structured_name, f"{self._shape} (0 = not known yet)", new_shape
            )
        self._shape = new_shape
        if self._deferred is not None and shape_is_known(new_shape):
            self._finish_deferred_init()

    # -- gradient ------------------------------------------------------------------------
    @property
    def grad_req(self) -> str:
        """``"write"`` (backward replaces the gradient), ``"add"`` (accumulates; call
        ``zero_grad``) or ``"null"`` (no gradient: the parameter is frozen)."""
        return self._grad_req

    @grad_req.setter
    def grad_req(self, value: str) -> None:
        if value not in GRAD_REQS:
            raise UsageError(f"grad_req must be one of {GRAD_REQS}, got {value!r}")
        self._grad_req = value
        if value == "null":
            self._grad = None

    def grad(self) -> np.ndarray:
        """The gradient of the last ``backward`` (zeros before the first one)."""
        if self._grad_req == "null":
            raise AutogradError(
                f"parameter {self.structured_name!r} has grad_req='null' (frozen): it has no gradient"
            )
        if self._grad is None:
            self._grad = np.zeros_like(self.array())
        return self._grad

    def zero_grad(self) -> None:
        """Set the gradient to zeros (needed between steps with ``grad_req="add"``)."""
        if self._grad is not None:
            self._grad = np.zeros_like(self._grad)

    def _receive_grad(self, grad: np.ndarray, *, owned: bool = False) -> None:
        """Called by ``autograd.backward`` with this parameter's total gradient; ``owned``: no
        one else holds the array, so it is kept as it is where it has our dtype."""
        if self._grad_req == "null":
            return
        if not (owned and grad.dtype == self.dtype and grad.flags.writeable):
            grad = np.array(grad, dtype=self.dtype)  # a fresh, writable array of our dtype
        if self._grad_req == "add" and self._grad is not None:
            grad = self._grad + grad
        self._grad = grad
        self.grad_fresh = True

    # -- data ----------------------------------------------------------------------------
    @property
    def is_initialized(self) -> bool:
        """True once the parameter holds an array."""
        return self._data is not None

    @property
    def is_deferred(self) -> bool:
        """True when ``initialize()`` ran but the shape is still incomplete."""
        return self._data is None and self._deferred is not None

    def data(self, ctx: object = None) -> np.ndarray:
        """The parameter's array; raises a clear error if it has none yet. A forward gets the
        array itself; a script gets it as MXNet's NDArray (a view: writes reach the
        parameter), with ``.grad`` its gradient, as d2l's gradient clipping reads it. (``ctx``
        is accepted for Gluon code and ignored: arrays live in numpy, on the CPU.)"""
        interceptor = hooks.active()
        if interceptor is not None:
            traced = interceptor.read_parameter(self)
            if traced is not None:
                return traced
        array = self.array()
        if scope.in_forward():
            return array
        from .devices import parameter_array  # (late: devices builds on Parameter)

        return parameter_array(self, array)

    # Gluon's per-device views: one device here (the CPU), so one of each (d2l's multi-GPU
    # code reads ``list_ctx()`` to split batches, and ``list_data()`` to copy weights).
    def list_ctx(self) -> list[str]:
        """The devices the parameter lives on: the CPU."""
        from .devices import cpu  # (late: devices builds on Parameter)

        return [cpu()]

    def list_data(self) -> list[np.ndarray]:
        """``[data()]``: the array on each device."""
        return [self.data()]

    def list_grad(self) -> list[np.ndarray]:
        """``[grad()]``: the gradient on each device."""
        return [self.grad()]

    def reset_ctx(self, ctx: object) -> None:
        """Accepted for Gluon code when ``ctx`` names the CPU (nothing moves); a GPU is refused."""
        from .devices import check_device

        check_device(ctx)

    def array(self) -> np.ndarray:
        """The parameter's array itself, a plain numpy array wherever it is asked for (what
        modelpack's own code reads and writes: the Trainer updates it in place, a writer
        saves it); raises a clear error if it has none yet."""
        if self._data is not None:
            self._run_first_read_check()
            return self._data
        if self._deferred is not None:
            raise DeferredInitializationError(
                f"parameter {self.structured_name!r} has shape {self._shape} with unknown "
                "dimensions (0): its initialization is deferred until the layer's first "
                "forward call infers them; call the network on an input first"
            )
        raise UninitializedParameterError(
            f"parameter {self.structured_name!r} has not been initialized; call "
            "initialize() or load_parameters() first"
        )

    def set_data(self, data: np.ndarray) -> None:
        """Replace the array; shape must fit the declared shape and dtype must match."""
        interceptor = hooks.active()
        if interceptor is not None:
            interceptor.write_parameter(self)
        array = np.asarray(data)
        if array.dtype != self.dtype:
            raise DtypeMismatchError.of_parameter(self.structured_name, self.dtype.name, array.dtype.name)
        if not shapes_compatible(self._shape, array.shape):
            raise ShapeMismatchError.of_parameter(self.structured_name, self._shape, array.shape)
        self._shape = tuple(array.shape)
        self._data = array
        self._deferred = None
        self._first_read_check = None

    def check_on_first_read(self, check: Callable[[], None]) -> None:
        """Run ``check`` when the data is first read (used by memory-mapped loading).

        It stays pending until it passes: a check that raised runs again on the next read,
        so a caller that catches the error and retries never gets the damaged array.
        """
        self._first_read_check = check

    def _run_first_read_check(self) -> None:
        check = self._first_read_check
        if check is not None:
            check()  # raises while the data is damaged; cleared only once it has passed
            self._first_read_check = None

    def initialize(
        self,
        init: init_mod.Initializer | str | None = None,
        *,
        force_reinit: bool = False,
        rng: np.random.Generator | None = None,
    ) -> None:
        """Draw first values; the parameter's own initializer wins over ``init`` (as in Gluon)."""
        if self._data is not None and not force_reinit:
            return
        chosen = self.init or init_mod.create(init) or init_mod.Uniform()
        generator = rng if rng is not None else random.generator("init")
        self._data = None
        self._deferred = (chosen, generator)
        if shape_is_known(self._shape):
            self._finish_deferred_init()
        elif not self.allow_deferred_init:
            raise DeferredInitializationError(
                f"parameter {self.structured_name!r} has unknown shape {self._shape} and "
                "does not allow deferred initialization"
            )

    def _finish_deferred_init(self) -> None:
        assert self._deferred is not None
        initializer, generator = self._deferred
        self._data = initializer(self._shape, self.dtype, generator, name=self.structured_name)
        self._deferred = None

    def cast(self, dtype: str | np.dtype) -> None:
        """Change the dtype, converting data if present."""
        if self._data is not None:
            self._run_first_read_check()  # never convert (and so launder) unchecked data
            self._data = self._data.astype(dtype)
        self.dtype = np.dtype(dtype)

    def __repr__(self) -> str:
        return f"Parameter {self.structured_name} (shape={self._shape}, dtype={self.dtype.name})"


def _as_shape(shape: int | tuple[int, ...] | None) -> tuple[int, ...]:
    if shape is None:
        return ()
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(dim) for dim in shape)
