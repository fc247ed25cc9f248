"""The op table: every operation a traced graph may contain, each declared once, here.

An entry is the op's name, its numpy implementation, a strict Pydantic model of its
attributes (so a hostile graph cannot pass anything else), and the numpy functions, ufuncs
and ``ndarray`` methods that mean it while tracing. Everything else is derived from this
table: the tracer's numpy interception (``tracing.standins``), ``nn.functional`` (``F.<op>``
with numpy's calling convention, or MXNet's ``npx`` one where numpy has no such function),
``modelpack.npx``, the spec's op list and the graph evaluator. Adding an op is one entry:

>>> @register_op("negative", numpy=(np.negative,))  # doctest: +SKIP
... def negative(x): return np.negative(x)

This module holds the table and its machinery; the entries live in one module per family
(``elementwise``, ``layout``, ``indexing``, ``reductions``, ``neural``), imported at the end.
``operators`` writes Python's operators as ops once, for the array stand-ins that record them
(autograd's ``Variable``, tracing's ``Traced``).
``composites`` writes numpy functions that are several ops (``np.linalg.norm``) as numpy code
over the table, for the same stand-ins: recorded as the ops they call, never as an op.
Implementations are pure numpy functions of their inputs and attributes (dropout alone draws
random numbers, in training mode only). The op table may import ``nn``'s activations, sizes
and mode, ``io`` and ``errors``; tables elsewhere keyed by op name (``nn.budget``'s size
rules, autograd's VJPs) are checked against it by ``tests/test_op_tables.py``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from ...errors import UnknownOpError
from ..activations import float_input

__all__ = [
    "OpDef", "OPS", "register_op", "op_def", "known_ops", "Call", "NoAttrs", "Attrs", "json_value",
    "as_axis", "on_floats", "check_elements", "MAX_ELEMENTS",
]

# numpy-style call (positional arrays, then attributes) -> (inputs, attributes)
Call = Callable[..., "tuple[list[Any], dict[str, Any]]"]


class NoAttrs(BaseModel):
    """Ops without attributes."""

    # defer_build: schemas are built on first use, which keeps `import modelpack` quick.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


class Attrs(NoAttrs):
    """Base of the attribute models (strict, closed, frozen)."""


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
    # Attributes that hold sizes (``nn.sizes``): integers, or expressions over dynamic sizes
    # that the graph evaluator resolves before calling ``fn``.
    sizes: tuple[str, ...] = ()
    # For ops that may give a list of arrays: its length for these attributes, or None when
    # ``fn`` gives one array (``topk`` gives a list only for ``ret_typ="both"``).
    outputs: Callable[[dict[str, Any]], int | None] | None = None

    def returns_list(self, attrs: dict[str, Any]) -> bool:
        """True when ``fn`` gives a list of arrays for these attributes."""
        return self.outputs is not None and self.outputs(attrs) is not None

    def output_count(self, attrs: dict[str, Any]) -> int:
        """How many values a node of this op defines."""
        count = self.outputs(attrs) if self.outputs is not None else None
        return 1 if count is None else count


OPS: dict[str, OpDef] = {}


def register_op(
    name: str,
    *,
    attrs: type[BaseModel] = NoAttrs,
    numpy: tuple[Any, ...] = (),
    methods: tuple[str, ...] = (),
    call: Call | None = None,
    sizes: tuple[str, ...] = (),
    outputs: Callable[[dict[str, Any]], int | None] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Function decorator adding an op under ``name`` (see ``OpDef`` for the options)."""

    def add(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in OPS:
            raise ValueError(f"op {name!r} is already registered")
        OPS[name] = OpDef(
            name, fn, attrs, call or _positional_call(name, fn, attrs), numpy, methods, sizes, outputs
        )
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


def on_floats(fn: Callable[..., Any]) -> Callable[..., Any]:
    """For activation-like ops: compute in a float input's dtype and any other input in
    float32, as the activation layers do (spec/FORMAT.md §3.5), whatever numpy's loops would
    pick."""

    @functools.wraps(fn)
    def floats(x: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(float_input(x), *args, **kwargs)

    return floats


# Ops whose output size comes from attributes (a file's numbers, not the input's size) check it
# before allocating: a hostile graph must not ask numpy for terabytes.
MAX_ELEMENTS = 1 << 31


def check_elements(op: str, count: int) -> None:
    """``ValueError`` (the graph reports it as an input error) past ``MAX_ELEMENTS``."""
    if count > MAX_ELEMENTS:
        raise ValueError(f"{op} would make {count} elements, more than the limit of {MAX_ELEMENTS}")


def json_value(value: Any) -> Any:
    """An attribute as the graph stores it: tuples as lists, numpy scalars and dtypes plain."""
    if isinstance(value, (tuple, list)):
        return [json_value(v) for v in value]
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return np.dtype(value).name
    if isinstance(value, np.generic):
        return value.item()
    return value


def as_axis(axis: int | list[int] | None) -> int | tuple[int, ...] | None:
    """An ``axis`` attribute as numpy takes it (a stored list becomes a tuple)."""
    return tuple(axis) if isinstance(axis, list) else axis


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




# The entries, one module per family (each imports the machinery above).
from . import elementwise, indexing, layout, neural, reductions  # noqa: E402, F401
