"""What every ONNX exporter step shares: the graph being written and the values flowing in it.

A ``Value`` is an ONNX value name plus what it holds on two sample inputs (the example, and the
example with every dynamic size grown by one). Emitters read ranks and dtypes from the
samples, and ``static_dims`` tells which sizes are fixed (equal in both runs) — so no emitter
bakes a dynamic size into the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ...errors import UnsupportedBlockError

__all__ = ["Value", "Emitter", "onnx_dtype"]


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
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def constant(self, value: Any, dtype: np.dtype | str | None = None) -> str:
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

    def refuse(self, what: str) -> UnsupportedBlockError:
        return UnsupportedBlockError(f"{self.where}: {what}")
