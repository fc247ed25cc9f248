"""``ReflectionPad2D``: pads the two spatial axes of NCHW input by mirroring the border."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import Field, model_validator

from ..errors import InputError, UsageError
from . import budget
from .activations import float_input
from .block import Block
from .conv import MAX_SPATIAL, as_tuple, check_rank
from .registry import LayerConfig, register_layer

__all__ = ["ReflectionPad2D"]

# MXNet's pad_width: (before, after) for each of the four NCHW axes; batch and channel get none.
PadWidth = Annotated[list[Annotated[int, Field(ge=0, le=MAX_SPATIAL)]], Field(min_length=8, max_length=8)]


class ReflectionPad2DConfig(LayerConfig):
    padding: PadWidth = [0] * 8

    @model_validator(mode="after")
    def _spatial_only(self) -> ReflectionPad2DConfig:
        if any(self.padding[:4]):
            raise UsageError(f"padding {self.padding} may only pad the last two axes (H and W)")
        return self


@register_layer("ReflectionPad2D", config=ReflectionPad2DConfig)
class ReflectionPad2D(Block):
    """Pads H and W by reflecting the input at its edges (the edge itself is not repeated).

    ``padding`` is an int (the same on all four sides) or MXNet's 8-number ``pad_width``:
    ``(0, 0, 0, 0, top, bottom, left, right)``. Each pad must be smaller than the size it
    mirrors, as MXNet and PyTorch require.
    """

    def __init__(self, padding: int | tuple[int, ...] = 0, prefix: str | None = None) -> None:
        super().__init__(prefix=prefix)
        if isinstance(padding, (int, np.integer)):
            padding = (0, 0, 0, 0, *(int(padding),) * 4)
        self._padding = as_tuple(padding, 8, "padding")
        if any(self._padding[:4]) or min(self._padding) < 0:
            raise UsageError(f"padding {self._padding} may only pad the last two axes, by non-negative sizes")

    def forward(self, x: Any) -> np.ndarray:
        array = float_input(x)
        check_rank(array, 2, "ReflectionPad2D")
        pads = [self._padding[i:i + 2] for i in range(0, 8, 2)]
        for (before, after), size in zip(pads[2:], array.shape[2:], strict=True):
            if max(before, after) >= size:
                raise InputError(
                    f"ReflectionPad2D: padding {(before, after)} must be smaller than the size "
                    f"{size} it mirrors (input shape {array.shape})"
                )
        padded_shape = [size + sum(pad) for size, pad in zip(array.shape, pads, strict=True)]
        budget.charge(budget.nbytes(padded_shape, array.dtype), "its output")
        return np.pad(array, pads, mode="reflect")

    def __repr__(self) -> str:
        return f"ReflectionPad2D(padding={self._padding})"
