"""Layers that route data rather than compute it: ``Sequential`` (blocks in a chain),
``Identity``, ``Lambda`` (an op as a layer) and ``Concatenate`` (parallel branches joined
along an axis; Gluon 1.9's ``Concurrent``).

A ``Lambda`` is stored by the name of an op of the op table (``nn.ops``), never by code: a
Lambda around an arbitrary Python function runs, but export refuses it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from ..errors import InputError, UnknownOpError, UnsupportedBlockError, UsageError
from . import budget, functional, fusion, hooks, ops
from .block import Block
from .parameter import Parameter
from .registry import LayerConfig, register_layer

__all__ = ["Sequential", "HybridSequential", "Identity", "Lambda", "HybridLambda", "Concatenate",
           "HybridConcatenate", "Concurrent", "HybridConcurrent"]

# numpy accepts at most 64 dimensions, so no meaningful axis lies outside this range.
Axis = Field(default=-1, ge=-64, le=63)


class SequentialConfig(LayerConfig):
    pass


@register_layer("Sequential", config=SequentialConfig, container=True)
class Sequential(Block):
    """Stacks blocks; ``forward`` feeds each one's output to the next.

    >>> net = Sequential(); net.add(Dense(8, activation="relu"), Dense(2))  # doctest: +SKIP
    """

    def __init__(self, prefix: str | None = None, params: Mapping[str, Parameter] | None = None) -> None:
        super().__init__(prefix=prefix, params=params)

    def add(self, *blocks: Block) -> None:
        """Append blocks; they are named by position ("0", "1", ...)."""
        for block in blocks:
            if not isinstance(block, Block):
                raise TypeError(f"Sequential.add expects Blocks, got {type(block).__name__}")
            self.register_child(block)

    def forward(self, x: Any) -> Any:
        blocks = list(self._children.values())
        for step in fusion.steps(blocks) if fusion.enabled() else blocks:
            x = step(x)
        return x

    def __getitem__(self, key: int | slice) -> Any:
        layers = list(self._children.values())
        if isinstance(key, slice):
            net = type(self)(**self.get_config())
            net.add(*layers[key])
            return net
        return layers[key]

    def __len__(self) -> int:
        return len(self._children)

    def __iter__(self) -> Iterator[Block]:
        return iter(list(self._children.values()))


# Gluon's hybrid variant is the same class (see nn.block.HybridBlock).
HybridSequential = Sequential


class IdentityConfig(LayerConfig):
    pass


@register_layer("Identity", config=IdentityConfig)
class Identity(Block):
    """Returns its input unchanged (a placeholder branch, as in residual blocks)."""

    def forward(self, x: Any) -> Any:
        return x

    def __repr__(self) -> str:
        return "Identity()"


def lambda_op_names() -> list[str]:
    """Ops a Lambda may name: those whose attributes all have defaults (a name alone says it)."""
    names = []
    for name, op in sorted(ops.OPS.items()):
        try:
            op.attrs.model_validate({})
        except ValueError:
            continue
        names.append(name)
    return names


def _op_name(function: Callable[..., Any]) -> str | None:
    """The op a function stands for: an op's implementation, its ``F.<op>``, or a numpy
    function the op table maps to it (``np.tanh``); None for any other callable."""
    for name, op in ops.OPS.items():
        if function is op.fn or function is getattr(functional, name, None) or any(
            function is f for f in op.numpy
        ):
            return name
    return None


class LambdaConfig(LayerConfig):
    # An op name, checked against the op table when validated (ops may be added after import).
    function: str = Field(min_length=1, max_length=64)

    @field_validator("function")
    @classmethod
    def _known_op(cls, value: str) -> str:
        if value not in lambda_op_names():
            raise UsageError(
                f"{value!r} is not an op a Lambda can name; ops: {', '.join(lambda_op_names())}"
            )
        return value


@register_layer("Lambda", config=LambdaConfig)
class Lambda(Block):
    """Wraps an op as a layer: ``Lambda("tanh")``, ``Lambda(np.exp)``, ``Lambda(F.relu)``.

    Any other Python function runs too (``Lambda(lambda x: x * 2)``), but cannot be exported:
    an archive stores op names, never code.
    """

    def __init__(self, function: str | Callable[..., Any], prefix: str | None = None) -> None:
        super().__init__(prefix=prefix)
        op: str | None
        python: Callable[..., Any] | None = None
        if isinstance(function, str):
            if function not in lambda_op_names():
                raise UnknownOpError(
                    f"{type(self).__name__}({function!r}): not an op a Lambda can name; ops: "
                    f"{', '.join(lambda_op_names())}"
                )
            op = function
        elif callable(function):
            op = _op_name(function)
            python = None if op is not None else function
        else:
            raise UsageError(
                f"{type(self).__name__} takes an op name or a function, got {type(function).__name__}"
            )
        self._op = op
        self._python = python
        self._function_name = op or getattr(function, "__name__", type(function).__name__)

    def forward(self, *args: Any) -> Any:
        if self._python is not None:
            return self._call_python(self._python, args)
        op = self._op or ""
        budget.check(budget.op_bytes(op, args, {}), f"its op {op!r}")  # as a graph node's, before numpy
        return hooks.run_op(op, args, {})  # recorded when args are autograd's Variables

    def _call_python(self, function: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        return function(*args)

    def get_config(self) -> dict[str, Any]:
        if self._op is None:
            raise UnsupportedBlockError(
                f"{type(self).__name__} wraps the Python function {self._function_name!r}: an "
                "archive stores op names, never code, so it cannot be exported. Name an op "
                f"instead ({type(self).__name__}('tanh'); ops: {', '.join(lambda_op_names())}), "
                "or call the function in a Block's forward and export with example= to trace it"
            )
        return self.config_from_attributes(function=self._op)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._function_name})"


@register_layer("HybridLambda", config=LambdaConfig)
class HybridLambda(Lambda):
    """Gluon's ``HybridLambda``: as ``Lambda``, but a Python function is called as
    ``function(F, *args)`` with ``F`` = ``nn.functional`` (Gluon's convention)."""

    def __init__(self, function: str | Callable[..., Any], prefix: str | None = None) -> None:
        super().__init__(function, prefix=prefix)
        if callable(function):  # always F first, even for an op's function
            self._op, self._python = None, function

    def _call_python(self, function: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        return function(functional, *args)


class ConcatenateConfig(LayerConfig):
    axis: int = Axis


@register_layer("Concatenate", config=ConcatenateConfig, container=True)
class Concatenate(Sequential):
    """Feeds the same input to every child and joins their outputs along ``axis``.

    >>> block = Concatenate(axis=1); block.add(nn.Dense(3), nn.Dense(4))  # doctest: +SKIP
    """

    def __init__(self, axis: int = -1, prefix: str | None = None) -> None:
        super().__init__(prefix=prefix)
        self._axis = int(axis)

    def forward(self, x: Any) -> np.ndarray:
        outputs = []
        for name, block in self._children.items():
            outputs.append(block(x))  # not np.asarray: outputs may be autograd's recorded Variables
            budget.hold(outputs[-1:], [x], f"the output of child {name!r}")  # kept until joined
        if outputs:
            itemsize = np.result_type(*(out.dtype for out in outputs)).itemsize
            joined = sum(int(np.size(out)) for out in outputs) * itemsize
            budget.charge(joined, "joining its children's outputs")
        if not outputs:
            raise InputError("Concatenate has no children to join")
        ndim = np.ndim(outputs[0])
        if not -ndim <= self._axis < ndim:
            raise InputError(f"Concatenate(axis={self._axis}) cannot join outputs of {ndim} dimensions")
        try:
            return np.concatenate(outputs, axis=self._axis)
        except ValueError as exc:
            shapes = [np.shape(out) for out in outputs]
            raise InputError(
                f"Concatenate(axis={self._axis}): outputs of shapes {shapes} do not join: {exc}"
            ) from None

    def __repr__(self) -> str:
        lines = self.summary_lines()
        head = f"{type(self).__name__}(axis={self._axis})"
        return head if not lines else "{}(\n{}\n)".format(head, "\n".join(lines))


# Gluon 2's hybrid name, and Gluon 1.9's names (gluon.contrib.nn): the same class.
HybridConcatenate = Concurrent = HybridConcurrent = Concatenate
