"""Recurrent cells: one time step per call, ``cell(x, states) -> (output, new_states)``, and
``unroll`` for a whole sequence. ``RNNCell``, ``LSTMCell`` and ``GRUCell`` as Gluon 1.9
defines them (parameters ``i2h_weight``, ``h2h_weight``, ``i2h_bias``, ``h2h_bias``).

``unroll`` is plain Python over the op set: called inside a traced ``forward`` it records one
call of the cell per step, so a model written with cells exports like one with layers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from ...errors import InputError
from .. import functional as F
from ..activations import ActivationName, FloatDtype
from ..block import Block
from ..parameter import Parameter
from ..registry import LayerConfig, register_layer
from .layers import CellOptions, Initializers, _begin_state, weight_initializers
from .steps import GATES, activation, gru_step, input_product, lstm_step, rnn_step

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's own from Python 3.11

__all__ = ["RecurrentCell", "RNNCell", "LSTMCell", "GRUCell"]


class RecurrentCell(Block):
    """Base of the cells: states, ``begin_state``, ``unroll``."""

    def state_info(self, batch_size: int = 0) -> list[dict[str, Any]]:
        """Shape (and layout) of each state the cell carries between steps."""
        raise NotImplementedError

    def begin_state(
        self, batch_size: int = 0, func: Callable[..., Any] = np.zeros, **kwargs: Any
    ) -> list[Any]:
        """Initial states, made by ``func(shape=..., dtype=..., **kwargs)`` (zeros by default)."""
        return _begin_state(self.state_info(batch_size), func, {"dtype": self._state_dtype(), **kwargs})

    def _state_dtype(self) -> str:
        params = list(self.collect_params().values())
        return params[0].dtype.name if params else "float32"

    def reset(self) -> None:
        """Forget what a previous ``unroll`` left (zoneout's last output)."""
        for child in self.children.values():
            if isinstance(child, RecurrentCell):
                child.reset()

    def forward(self, inputs: Any, states: Any = None) -> Any:
        """One step; ``states=None`` starts from ``begin_state``."""
        raise NotImplementedError

    def unroll(
        self,
        length: int,
        inputs: Any,
        begin_state: Any = None,
        layout: str = "NTC",
        merge_outputs: bool | None = None,
        valid_length: Any = None,
    ) -> tuple[Any, list[Any]]:
        """Run ``length`` steps over ``inputs`` (an array in ``layout``, or a list of steps).

        Returns ``(outputs, states)``: outputs stacked along the time axis when
        ``merge_outputs`` (a list of steps when False; as given when None). With
        ``valid_length`` each sequence's states are those of its last valid step and its
        outputs past it are 0.
        """
        self.reset()
        return self._unroll(length, inputs, begin_state, layout, merge_outputs, valid_length)

    def _unroll(
        self, length: int, inputs: Any, begin_state: Any, layout: str, merge: bool | None, valid_length: Any
    ) -> tuple[Any, list[Any]]:
        """``unroll`` after ``reset``, with the same arguments (``merge`` is ``merge_outputs``):
        one step at a time. Cells made of cells override this."""
        steps, axis, batch = format_sequence(length, inputs, layout, False)
        states = self.begin_state(batch) if begin_state is None else begin_state
        outputs, history = [], []
        for step in steps:
            output, states = self(step, states)
            outputs.append(output)
            if valid_length is not None:
                history.append(states)
        if valid_length is not None:
            states = [
                F.sequence_last(F.stack(list(s), axis=0), valid_length, True, axis=0)
                for s in zip(*history, strict=True)
            ]
            outputs = mask_sequence(outputs, length, valid_length, axis, True)
        merged, _, _ = format_sequence(length, outputs, layout, merge)
        return merged, states


def format_sequence(length: int | None, inputs: Any, layout: str, merge: bool | None) -> tuple[Any, int, int]:
    """Gluon's ``_format_sequence``: inputs as a list of steps (``merge=False``), one array
    stacked along the time axis (``merge=True``), or as given (None); with the time axis and
    the batch size."""
    if layout not in ("NTC", "TNC"):
        raise InputError(f"invalid layout {layout!r}; must be 'NTC' or 'TNC'")
    axis, batch_axis = layout.find("T"), layout.find("N")
    if isinstance(inputs, (list, tuple)):
        if length is not None and len(inputs) != length:
            raise InputError(f"unroll(length={length}) got {len(inputs)} steps")
        batch = inputs[0].shape[0]
        return (F.stack(list(inputs), axis=axis) if merge is True else list(inputs)), axis, batch
    if getattr(inputs, "ndim", 0) < 2:
        raise InputError(f"unroll expects a sequence in layout {layout}, got shape {np.shape(inputs)}")
    batch = inputs.shape[batch_axis]
    if merge is False:
        if length is not None and length != inputs.shape[axis]:
            raise InputError(f"unroll(length={length}) got {inputs.shape[axis]} steps along axis {axis}")
        index = (slice(None),) * axis
        return [inputs[index + (t,)] for t in range(inputs.shape[axis])], axis, batch
    return inputs, axis, batch


def mask_sequence(data: Any, length: int, valid_length: Any, axis: int, merge: bool | None) -> Any:
    """Outputs past each sequence's valid length set to 0 (list in, list out unless merged)."""
    stacked = F.stack(list(data), axis=axis) if isinstance(data, (list, tuple)) else data
    masked = F.sequence_mask(stacked, valid_length, True, axis=axis)
    if merge:
        return masked
    index = (slice(None),) * axis
    return [masked[index + (t,)] for t in range(length)]


class _CellConfig(LayerConfig):
    hidden_size: int = Field(gt=0)
    input_size: int = Field(default=0, ge=0)
    dtype: FloatDtype = "float32"


class RNNCellConfig(_CellConfig):
    activation: ActivationName = "tanh"


class LSTMCellConfig(_CellConfig):
    activation: ActivationName = "tanh"
    recurrent_activation: ActivationName = "sigmoid"


class GRUCellConfig(_CellConfig):
    pass


class _GatedCell(RecurrentCell):
    """A cell with i2h/h2h weights and biases of ``gates × hidden_size`` rows."""

    _mode: Literal["rnn", "lstm", "gru"]
    i2h_weight: Parameter
    h2h_weight: Parameter
    i2h_bias: Parameter
    h2h_bias: Parameter

    def __init__(
        self,
        hidden_size: int,
        *,
        input_size: int = 0,
        dtype: str = "float32",
        prefix: str | None = None,
        **initializers: Unpack[Initializers],
    ) -> None:
        inits = weight_initializers(**initializers)  # an unknown option fails before anything is made
        super().__init__(prefix=prefix)
        if int(hidden_size) <= 0:
            raise ValueError(f"hidden_size must be positive, got {hidden_size}")
        self._hidden_size = int(hidden_size)
        self._dtype = np.dtype(dtype)
        rows = GATES.get(self._mode, 1) * self._hidden_size
        shapes = [(rows, int(input_size)), (rows, self._hidden_size), (rows,), (rows,)]
        for name, shape, init in zip(
            ("i2h_weight", "h2h_weight", "i2h_bias", "h2h_bias"), shapes, inits, strict=True
        ):
            setattr(self, name, Parameter(name, shape=shape, dtype=self._dtype, init=init))

    def state_info(self, batch_size: int = 0) -> list[dict[str, Any]]:
        count = 2 if self._mode == "lstm" else 1
        return [{"shape": (batch_size, self._hidden_size), "__layout__": "NC"} for _ in range(count)]

    def _products(self, inputs: Any, states: Any) -> tuple[Any, list[Any]]:
        """``W_ih x + b_ih`` and the checked states (zeros for None)."""
        if getattr(inputs, "ndim", 0) < 2:
            raise InputError(
                f"{type(self).__name__} expects a batch of inputs (N, C), got shape {np.shape(inputs)}"
            )
        batch = inputs.shape[0]
        states = self.begin_state(batch) if states is None else states
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        info = self.state_info(batch)
        if len(states) != len(info) or any(
            tuple(np.shape(s)) != i["shape"] for s, i in zip(states, info, strict=False)
        ):
            raise InputError(
                f"{type(self).__name__} expects states of shapes {[i['shape'] for i in info]}, got "
                f"{[tuple(np.shape(s)) for s in states]}"
            )
        x = F.flatten(inputs) if inputs.ndim > 2 else inputs
        if np.dtype(x.dtype) != self._dtype:
            x = F.cast(x, dtype=self._dtype.name)
        self.i2h_weight.shape = (self.i2h_weight.shape[0], x.shape[1])
        return input_product(x, self.i2h_weight.data(), self.i2h_bias.data()), states

    def get_config(self) -> dict[str, Any]:
        return self.config_from_attributes(input_size=self.i2h_weight.shape[1])

    def __repr__(self) -> str:
        in_size = self.i2h_weight.shape[1] or None
        return f"{type(self).__name__}({in_size} -> {self.i2h_weight.shape[0]})"


@register_layer("RNNCell", config=RNNCellConfig)
class RNNCell(_GatedCell):
    """Elman cell: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``; the output is h'."""

    _mode = "rnn"

    def __init__(
        self,
        hidden_size: int,
        activation: str = "tanh",
        **options: Unpack[CellOptions],
    ) -> None:
        super().__init__(hidden_size, **options)
        self._activation = activation

    def forward(self, inputs: Any, states: Any = None) -> tuple[Any, list[Any]]:
        i2h, (h,) = self._products(inputs, states)
        out = rnn_step(i2h, h, self.h2h_weight.data(), self.h2h_bias.data(), activation(self._activation))
        return out, [out]


@register_layer("LSTMCell", config=LSTMCellConfig)
class LSTMCell(_GatedCell):
    """LSTM cell (gates i, f, c, o); states ``[h, c]``; the output is h."""

    _mode = "lstm"

    def __init__(
        self,
        hidden_size: int,
        *,
        activation: str = "tanh",
        recurrent_activation: str = "sigmoid",
        **options: Unpack[CellOptions],
    ) -> None:
        super().__init__(hidden_size, **options)
        self._activation = activation
        self._recurrent_activation = recurrent_activation

    def forward(self, inputs: Any, states: Any = None) -> tuple[Any, list[Any]]:
        i2h, (h, c) = self._products(inputs, states)
        h, c = lstm_step(
            i2h,
            h,
            c,
            self.h2h_weight.data(),
            self.h2h_bias.data(),
            act=activation(self._activation),
            recurrent_act=activation(self._recurrent_activation),
        )
        return h, [h, c]


@register_layer("GRUCell", config=GRUCellConfig)
class GRUCell(_GatedCell):
    """GRU cell (gates r, z, n, as MXNet's GRUCell and PyTorch's GRUCell); the output is h'."""

    _mode = "gru"

    def __init__(
        self,
        hidden_size: int,
        **options: Unpack[CellOptions],
    ) -> None:
        super().__init__(hidden_size, **options)

    def forward(self, inputs: Any, states: Any = None) -> tuple[Any, list[Any]]:
        i2h, (h,) = self._products(inputs, states)
        out = gru_step(i2h, h, self.h2h_weight.data(), self.h2h_bias.data())
        return out, [out]
