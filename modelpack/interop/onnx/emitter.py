"""What every ONNX exporter step shares: the graph being written and the values flowing in it.

A ``Value`` is an ONNX value name plus what it holds on two sample inputs (the example, and the
example with every dynamic size grown by one). Emitters read ranks and dtypes from the
samples, and ``static_dims`` tells which sizes are fixed (equal in both runs) — so no emitter
bakes a dynamic size into the file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from numpy.typing import DTypeLike
from onnx import helper, numpy_helper

from ...errors import UnsupportedBlockError
from ...nn.sizes import parse

__all__ = ["Value", "Emitter", "onnx_dtype", "Symbols", "Emit", "OpEmitter"]

# symbol -> (ONNX name of the graph input that binds it, axis)
Symbols = Mapping[str, tuple[str, int]]


@dataclass
class Value:
    """An ONNX value and its numpy samples (a Python scalar for a graph's ``scalar`` node)."""

    name: str
    samples: tuple[Any, Any]

    @property
    def sample(self) -> Any:
        return self.samples[0]

    @property
    def is_scalar(self) -> bool:
        return not isinstance(self.samples[0], np.ndarray)

    @property
    def dtype(self) -> np.dtype:
        return np.asarray(self.samples[0]).dtype

    @property
    def ndim(self) -> int:
        return int(np.ndim(self.samples[0]))

    def static_dims(self) -> list[int | None]:
        """Each size, or None where it follows a dynamic input size."""
        a, b = np.shape(self.samples[0]), np.shape(self.samples[1])
        return [x if x == y else None for x, y in zip(a, b, strict=True)]


def onnx_dtype(dtype: np.dtype | str) -> int:
    return int(helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))


@dataclass
class Emitter:
    """Collects nodes and initializers; hands out unique value names."""

    where: str
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    taken: set[str] = field(default_factory=set)
    _constants: dict[tuple[str, bytes, tuple[int, ...]], str] = field(default_factory=dict)

    def fresh(self, hint: str) -> str:
        name, counter = hint, 1
        while name in self.taken:
            counter += 1
            name = f"{hint}_{counter}"
        self.taken.add(name)
        return name

    def node(self, op_type: str, inputs: list[str], hint: str = "", **attrs: Any) -> str:
        """Add a node with one output; returns the output's name."""
        out = self.fresh(hint or op_type.lower())
        self.nodes.append(
            helper.make_node(op_type, inputs, [out], name=self.fresh(f"/{out}/{op_type}"), **attrs)
        )
        return out

    def initializer(self, array: np.ndarray, name: str) -> str:
        """A named tensor in the file (a parameter keeps its structured name)."""
        name = self.fresh(name)
        # np.array, not np.ascontiguousarray: that makes a 0-d array 1-d
        self.initializers.append(numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def constant(self, value: Any, dtype: DTypeLike | None = None) -> str:
        """A small constant (shapes, axes, scalars), shared when the same value recurs."""
        array = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.tobytes(), array.shape)
        if key not in self._constants:
            self._constants[key] = self.initializer(array, "const")
        return self._constants[key]

    def ints(self, values: list[int] | tuple[int, ...]) -> str:
        return self.constant(np.asarray(list(values), dtype=np.int64))

    def as_dtype(self, value: Value, dtype: np.dtype) -> str:
        """``value`` as an ONNX tensor of ``dtype``: a constant for a scalar, else a Cast if needed."""
        if value.is_scalar:
            return self.constant(value.sample, dtype)
        if value.dtype == dtype:
            return value.name
        return self.node("Cast", [value.name], "cast", to=onnx_dtype(dtype))

    def size(self, dim: int | str, symbols: Symbols) -> str:
        """A size as a 1-element int64 tensor: a constant, or a size expression (``nn.sizes``)
        computed from the graph inputs' shapes, so a dynamic size is never written as a number."""
        if not isinstance(dim, str):
            return self.ints([int(dim)])
        expr = parse(dim)
        missing = [n for n in expr.names if n not in symbols]
        if missing:
            raise self.refuse(f"size {dim!r} uses {missing}, which no graph input carries")
        value = ""
        for name in expr.names:
            source, axis = symbols[name]
            size = self.node("Shape", [source], f"size_{name}", start=axis, end=axis + 1)
            value = size if not value else self.node("Mul", [value, size])
        if expr.scale != 1:
            value = self.node("Mul", [value, self.ints([expr.scale])])
        if expr.divisor != 1:
            value = self.node("Div", [value, self.ints([expr.divisor])])
        if expr.offset:
            value = self.node("Add", [value, self.ints([expr.offset])])
        return value

    def shape(self, dims: list[int | str] | tuple[int | str, ...], symbols: Symbols) -> str:
        """A shape (sizes or size expressions) as a 1-D int64 tensor."""
        if all(not isinstance(d, str) for d in dims):
            return self.ints([int(d) for d in dims])
        pieces: list[str] = []
        run: list[int] = []
        for dim in dims:
            if isinstance(dim, str):
                if run:
                    pieces.append(self.ints(run))
                    run = []
                pieces.append(self.size(dim, symbols))
            else:
                run.append(int(dim))
        if run:
            pieces.append(self.ints(run))
        return pieces[0] if len(pieces) == 1 else self.node("Concat", pieces, "shape", axis=0)

    def dim(self, value: str, axis: int) -> str:
        """One size of a value, as a 1-element int64 tensor (read at run time)."""
        bounds = {"start": axis} if axis == -1 else {"start": axis, "end": axis + 1}
        return self.node("Shape", [value], "dim", **bounds)

    def refuse(self, what: str) -> UnsupportedBlockError:
        return UnsupportedBlockError(f"{self.where}: {what}")


# (emitter, the op's inputs cast by its policy, attrs, the input Values, the result, symbols)
# -> the ONNX name of the result (a list of names for an op with several outputs)
Emit = Callable[[Emitter, list[str], dict[str, Any], list[Value], Value, Symbols], "str | list[str]"]


@dataclass(frozen=True)
class OpEmitter:
    """How one op is written: its input casting policy and the function writing its nodes.

    ``cast``: "result" (inputs cast to the result's dtype: arithmetic, reductions), "common"
    (to their common dtype: comparisons) or "none" (as they are: shape and index ops).
    """

    cast: str
    emit: Emit


def cast_as(cast: str, emits: dict[str, Emit]) -> dict[str, OpEmitter]:
    """Table entries for ops that share one casting policy (see ``OpEmitter``)."""
    return {name: OpEmitter(cast, emit) for name, emit in emits.items()}
