"""``Block.summary(x)``: Gluon's table of each layer's output shape and parameter count.

The forward pass runs once with an observer on ``nn.hooks``: every block call is seen as it
returns (so a container's row comes after its children's, as in Gluon), and ``Sequential``
containers, which only pass data along, get no row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import hooks
from .compose import Sequential

if TYPE_CHECKING:
    from .block import Block
    from .parameter import Parameter

__all__ = ["summary_table"]

_RULE, _DOUBLE = "-" * 80, "=" * 80
_ROW = "{:>20}  {:>42} {:>15}"


@dataclass
class _Row:
    layer: str
    shape: str
    params: int
    trainable: int
    shared: int


class _Observer:
    """Records a row per block call (the hooks' interceptor protocol)."""

    sees_real_values = True

    def __init__(self) -> None:
        self.rows: list[_Row] = []
        self._seen: set[int] = set()

    def call_block(self, block: Block, args: tuple[Any, ...]) -> Any:
        output = block.forward(*args)
        if not isinstance(block, Sequential):
            self.rows.append(self._row(block, output))
        return output

    def _row(self, block: Block, output: Any) -> _Row:
        total = trainable = shared = 0
        for param in block._reg_params.values():
            size = param.array().size
            total += size
            trainable += 0 if param.grad_req == "null" else size
            if id(param) in self._seen:
                shared += size
            self._seen.add(id(param))
        name = f"{type(block).__name__}-{len(self.rows) + 1}"
        return _Row(name, _shape_text(output), total, trainable, shared)

    def read_parameter(self, param: Parameter) -> Any | None:
        return None  # the real data

    def write_parameter(self, param: Parameter) -> None:
        pass  # running statistics may update as in any forward


def _shape_text(value: Any) -> str:
    """One output's shape, or the list of shapes of several (nested outputs flattened)."""
    shapes: list[tuple[int, ...]] = []

    def visit(item: Any) -> None:
        if isinstance(item, (list, tuple)):
            for inner in item:
                visit(inner)
        else:
            shapes.append(np.shape(item))

    visit(value)
    return str(shapes[0]) if len(shapes) == 1 else str(shapes)


def summary_table(net: Block, inputs: tuple[Any, ...]) -> str:
    """The summary of ``net`` run on ``inputs``, as text (``Block.summary`` prints it)."""
    observer = _Observer()
    with hooks.intercepting(observer):
        net(*inputs)
    rows = [_Row("Input", _shape_text(inputs), 0, 0, 0), *observer.rows]
    total = sum(row.params for row in rows)
    trainable = sum(row.trainable for row in rows)
    shared = sum(row.shared for row in rows)
    lines = [_RULE, _ROW.format("Layer (type)", "Output Shape", "Param #"), _DOUBLE]
    lines += [_ROW.format(row.layer, row.shape, row.params) for row in rows]
    lines += [
        _DOUBLE,
        "Parameters in forward computation graph, duplicate included",
        f"   Total params: {total}",
        f"   Trainable params: {trainable}",
        f"   Non-trainable params: {total - trainable}",
        f"Shared params in forward computation graph: {shared}",
        f"Unique parameters in model: {total - shared}",
        _RULE,
    ]
    return "\n".join(lines)
