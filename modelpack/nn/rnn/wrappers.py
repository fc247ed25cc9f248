"""Cells made of cells: ``SequentialRNNCell`` (a stack), ``BidirectionalCell`` (two cells,
one reading the sequence backwards; unroll only), and the modifiers ``DropoutCell``,
``ResidualCell`` and ``ZoneoutCell``, as Gluon 1.9 defines them.

Children keep Gluon's names (``0``, ``1`` …; ``l_cell``/``r_cell``; ``base_cell``), so
parameter names match Gluon's files (``bi.l_cell.i2h_weight``, ``res.base_cell.h2h_bias``).
A container built from an archive starts empty and gets its children attached by the loader.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import Field

from ...errors import InputError, UsageError
from .. import functional as F
from ..block import Block
from ..mode import is_training
from ..registry import LayerConfig, register_layer
from .cells import RecurrentCell, format_sequence, mask_sequence

__all__ = [
    "SequentialRNNCell",
    "BidirectionalCell",
    "DropoutCell",
    "ModifierCell",
    "ResidualCell",
    "ZoneoutCell",
]


class _NoConfig(LayerConfig):
    pass


def _cell(block: Block, name: str) -> RecurrentCell:
    child = block.children.get(name)
    if not isinstance(child, RecurrentCell):
        raise UsageError(f"{type(block).__name__} has no cell {name!r} (got {type(child).__name__})")
    return child


def _cells(block: Block) -> list[RecurrentCell]:
    return [_cell(block, name) for name in block.children]


class _CellGroup(RecurrentCell):
    """Cells side by side or stacked: the states are each child cell's, in order."""

    def state_info(self, batch_size: int = 0) -> list[dict[str, Any]]:
        return [info for cell in _cells(self) for info in cell.state_info(batch_size)]

    def begin_state(
        self, batch_size: int = 0, func: Callable[..., Any] = np.zeros, **kwargs: Any
    ) -> list[Any]:
        return [s for cell in _cells(self) for s in cell.begin_state(batch_size, func, **kwargs)]


@register_layer("SequentialRNNCell", config=_NoConfig, container=True)
class SequentialRNNCell(_CellGroup):
    """Cells stacked: each step feeds one cell's output to the next; states concatenated."""

    def add(self, cell: RecurrentCell) -> None:
        """Append a cell (named by position, "0", "1", ...)."""
        if not isinstance(cell, RecurrentCell):
            raise TypeError(f"SequentialRNNCell.add expects a recurrent cell, got {type(cell).__name__}")
        self.register_child(cell)

    def forward(self, inputs: Any, states: Any = None) -> tuple[Any, list[Any]]:
        if any(isinstance(cell, BidirectionalCell) for cell in _cells(self)):
            raise UsageError("a SequentialRNNCell holding a BidirectionalCell cannot be stepped; use unroll")
        states = self.begin_state(inputs.shape[0]) if states is None else list(states)
        if len(states) != len(self.state_info()):
            raise InputError(f"SequentialRNNCell expects {len(self.state_info())} states, got {len(states)}")
        next_states: list[Any] = []
        used = 0
        for cell in _cells(self):
            count = len(cell.state_info())
            inputs, new = cell(inputs, states[used : used + count])
            used += count
            next_states.extend(new)
        return inputs, next_states

    def _unroll(
        self, length: int, inputs: Any, begin_state: Any, layout: str, merge: bool | None, valid_length: Any
    ) -> tuple[Any, list[Any]]:
        _, _, batch = format_sequence(length, inputs, layout, None)
        states = self.begin_state(batch) if begin_state is None else list(begin_state)
        cells = _cells(self)
        next_states: list[Any] = []
        used = 0
        for i, cell in enumerate(cells):
            count = len(cell.state_info())
            inputs, new = cell.unroll(
                length,
                inputs,
                states[used : used + count],
                layout,
                merge if i == len(cells) - 1 else None,
                valid_length,
            )
            used += count
            next_states.extend(new)
        return inputs, next_states

    def __getitem__(self, index: int) -> RecurrentCell:
        return _cell(self, str(index))

    def __len__(self) -> int:
        return len(self.children)


@register_layer("BidirectionalCell", config=_NoConfig, container=True)
class BidirectionalCell(_CellGroup):
    """``l_cell`` reads the sequence forwards, ``r_cell`` backwards; outputs are concatenated
    along the features, states are ``l_cell``'s then ``r_cell``'s. Unroll only."""

    def __init__(
        self,
        l_cell: RecurrentCell | None = None,
        r_cell: RecurrentCell | None = None,
        output_prefix: str = "bi_",
        prefix: str | None = None,
    ) -> None:
        super().__init__(prefix=prefix)
        if l_cell is not None and r_cell is not None:
            self.register_child(l_cell, "l_cell")
            self.register_child(r_cell, "r_cell")

    def forward(self, inputs: Any, states: Any = None) -> Any:
        raise UsageError("a BidirectionalCell cannot be stepped; use unroll")

    def _unroll(
        self, length: int, inputs: Any, begin_state: Any, layout: str, merge: bool | None, valid_length: Any
    ) -> tuple[Any, list[Any]]:
        steps, axis, batch = format_sequence(length, inputs, layout, False)
        reversed_steps = _reverse(steps, valid_length)
        states = self.begin_state(batch) if begin_state is None else list(begin_state)
        l_cell, r_cell = _cell(self, "l_cell"), _cell(self, "r_cell")
        split = len(l_cell.state_info())
        l_out, l_states = l_cell.unroll(length, steps, states[:split], layout, merge, valid_length)
        r_out, r_states = r_cell.unroll(length, reversed_steps, states[split:], layout, False, valid_length)
        r_out = _reverse(r_out, valid_length)
        if merge is None:
            merge = not isinstance(l_out, (list, tuple))
            l_out, _, _ = format_sequence(None, l_out, layout, merge)
            r_out, _, _ = format_sequence(None, r_out, layout, merge)
        if merge:
            outputs: Any = F.concatenate([l_out, F.stack(list(r_out), axis=axis)], axis=2)
        else:
            outputs = [F.concatenate([a, b], axis=1) for a, b in zip(l_out, r_out, strict=True)]
        if valid_length is not None:
            outputs = mask_sequence(outputs, length, valid_length, axis, merge)
        return outputs, l_states + r_states


def _reverse(steps: list[Any], valid_length: Any) -> list[Any]:
    """The steps in reverse order; with ``valid_length``, only each sequence's valid part."""
    if valid_length is None:
        return list(reversed(steps))
    flipped = F.sequence_reverse(F.stack(list(steps), axis=0), valid_length, True)
    return [flipped[t] for t in range(len(steps))]


class DropoutCellConfig(LayerConfig):
    rate: float = Field(ge=0.0, lt=1.0)
    axes: list[int] = Field(default_factory=list)


@register_layer("DropoutCell", config=DropoutCellConfig)
class DropoutCell(RecurrentCell):
    """Dropout on the inputs while training (states pass through); the identity at inference."""

    def __init__(
        self, rate: float, axes: tuple[int, ...] | list[int] = (), prefix: str | None = None
    ) -> None:
        super().__init__(prefix=prefix)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"DropoutCell rate must be in [0, 1), got {rate}")
        self._rate = float(rate)
        self._axes = [int(a) for a in axes]

    def state_info(self, batch_size: int = 0) -> list[dict[str, Any]]:
        return []

    def forward(self, inputs: Any, states: Any = None) -> tuple[Any, list[Any]]:
        if self._rate and is_training():
            inputs = F.dropout(inputs, p=self._rate, axes=self._axes)
        return inputs, list(states or [])

    def _unroll(
        self, length: int, inputs: Any, begin_state: Any, layout: str, merge: bool | None, valid_length: Any
    ) -> tuple[Any, list[Any]]:
        merged, _, _ = format_sequence(length, inputs, layout, merge)
        if isinstance(merged, (list, tuple)):
            return super()._unroll(length, merged, begin_state, layout, merge, None)
        return self(merged, begin_state or [])

    def __repr__(self) -> str:
        return f"DropoutCell(rate={self._rate}, axes={tuple(self._axes)})"


class ModifierCell(RecurrentCell):
    """A cell that changes what ``base_cell`` computes; states are the base cell's."""

    def __init__(self, base_cell: RecurrentCell | None = None, prefix: str | None = None) -> None:
        super().__init__(prefix=prefix)
        if base_cell is not None:
            self.register_child(base_cell, "base_cell")

    @property
    def base_cell(self) -> RecurrentCell:
        return _cell(self, "base_cell")

    def state_info(self, batch_size: int = 0) -> list[dict[str, Any]]:
        return self.base_cell.state_info(batch_size)

    def begin_state(
        self, batch_size: int = 0, func: Callable[..., Any] = np.zeros, **kwargs: Any
    ) -> list[Any]:
        return self.base_cell.begin_state(batch_size, func, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.children.get('base_cell')!r})"


class ZoneoutCellConfig(LayerConfig):
    zoneout_outputs: float = Field(default=0.0, ge=0.0, lt=1.0)
    zoneout_states: float = Field(default=0.0, ge=0.0, lt=1.0)


@register_layer("ZoneoutCell", config=ZoneoutCellConfig, container=True)
class ZoneoutCell(ModifierCell):
    """Zoneout: while training, each output and state element keeps its previous value with
    probability ``zoneout_outputs``/``zoneout_states``; the base cell at inference."""

    def __init__(
        self,
        base_cell: RecurrentCell | None = None,
        zoneout_outputs: float = 0.0,
        zoneout_states: float = 0.0,
        prefix: str | None = None,
    ) -> None:
        if isinstance(base_cell, BidirectionalCell):
            raise UsageError("a BidirectionalCell cannot be zoned out; wrap the cells inside it instead")
        super().__init__(base_cell, prefix=prefix)
        self._zoneout_outputs, self._zoneout_states = float(zoneout_outputs), float(zoneout_states)
        self._prev_output: Any = None

    def reset(self) -> None:
        super().reset()
        self._prev_output = None

    def forward(self, inputs: Any, states: Any = None) -> tuple[Any, list[Any]]:
        states = self.begin_state(inputs.shape[0]) if states is None else list(states)
        output, new_states = self.base_cell(inputs, states)
        if not is_training():
            return output, new_states
        keep = lambda p, like: F.dropout(F.ones_like(like), p=p)  # noqa: E731  (nonzero: take the new value)
        previous = self._prev_output if self._prev_output is not None else F.zeros_like(output)
        if self._zoneout_outputs:
            output = F.where(keep(self._zoneout_outputs, output), output, previous)
        if self._zoneout_states:
            new_states = [
                F.where(keep(self._zoneout_states, n), n, o) for n, o in zip(new_states, states, strict=True)
            ]
        self._prev_output = output
        return output, new_states

    def __repr__(self) -> str:
        base = self.children.get("base_cell")
        return f"ZoneoutCell(p_out={self._zoneout_outputs}, p_state={self._zoneout_states}, {base!r})"


@register_layer("ResidualCell", config=_NoConfig, container=True)
class ResidualCell(ModifierCell):
    """Adds the input to the base cell's output: ``output = base(x) + x``."""

    def forward(self, inputs: Any, states: Any = None) -> tuple[Any, list[Any]]:
        output, new_states = self.base_cell(inputs, states)
        return output + inputs, new_states

    def _unroll(
        self, length: int, inputs: Any, begin_state: Any, layout: str, merge: bool | None, valid_length: Any
    ) -> tuple[Any, list[Any]]:
        outputs, states = self.base_cell.unroll(
            length, inputs, begin_state, layout, merge, valid_length
        )
        if merge is None:
            merge = not isinstance(outputs, (list, tuple))
        inputs, axis, _ = format_sequence(length, inputs, layout, merge)
        if valid_length is not None:
            inputs = mask_sequence(inputs, length, valid_length, axis, merge)
        if merge:
            return outputs + inputs, states
        return [o + i for o, i in zip(outputs, inputs, strict=True)], states

