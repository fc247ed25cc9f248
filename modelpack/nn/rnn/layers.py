"""The fused recurrent layers ``RNN``, ``LSTM`` and ``GRU``: Gluon 1.9's ``gluon.rnn`` layers.

Parameters are named as Gluon names them, ``{l|r}{layer}_{i2h|h2h}_{weight|bias}`` (``r`` for
the backward direction, plus ``h2r_weight`` for a projected LSTM), registered in Gluon's order,
so MXNet parameter files load. ``layout`` is ``"TNC"`` (time-major, the default) or ``"NTC"``;
states are ``(num_layers · directions, N, hidden)``, layer-major, forward direction first.

>>> layer = LSTM(100, num_layers=2, bidirectional=True)  # doctest: +SKIP
>>> out, (h, c) = layer(x, layer.begin_state(batch_size=x.shape[1]))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypedDict

import numpy as np
from pydantic import Field, model_validator

from ...errors import InputError, UsageError
from .. import functional as F
from .. import init as init_mod
from ..activations import FloatDtype
from ..block import Block
from ..mode import is_training
from ..parameter import Parameter
from ..registry import LayerConfig, register_layer
from .steps import GATES, activation, gru_step, input_product, lstm_step, rnn_step

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's own from Python 3.11

__all__ = ["RNN", "LSTM", "GRU"]

Init = init_mod.Initializer | str | None


class Initializers(TypedDict, total=False):
    """The four weight initializers every recurrent layer and cell takes (Gluon's names);
    ``weight_initializers`` gives their defaults."""

    i2h_weight_initializer: Init
    h2h_weight_initializer: Init
    i2h_bias_initializer: Init
    h2h_bias_initializer: Init


class CellOptions(Initializers, total=False):
    """The keyword options every recurrent cell takes (defaults in ``_GatedCell``)."""

    input_size: int
    dtype: str
    prefix: str | None


class LayerOptions(CellOptions, total=False):
    """The keyword options every fused recurrent layer takes (defaults in ``_RNNLayer``)."""

    use_sequence_length: bool


def weight_initializers(
    i2h_weight_initializer: Init = None,
    h2h_weight_initializer: Init = None,
    i2h_bias_initializer: Init = "zeros",
    h2h_bias_initializer: Init = "zeros",
) -> tuple[Init, Init, Init, Init]:
    """The initializers of i2h_weight, h2h_weight, i2h_bias and h2h_bias, in that order: the
    weights the block's default (None), the biases zeros (Gluon's defaults)."""
    return i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer, h2h_bias_initializer


class _RecurrentConfig(LayerConfig):
    hidden_size: int = Field(gt=0)
    num_layers: int = Field(default=1, ge=1, le=1024)
    layout: Literal["TNC", "NTC"] = "TNC"
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    bidirectional: bool = False
    input_size: int = Field(default=0, ge=0)
    dtype: FloatDtype = "float32"
    use_sequence_length: bool = False


class RNNConfig(_RecurrentConfig):
    activation: Literal["relu", "tanh"] = "relu"


class GRUConfig(_RecurrentConfig):
    pass


class LSTMConfig(_RecurrentConfig):
    projection_size: int | None = Field(default=None, gt=0)
    state_clip_min: float | None = None
    state_clip_max: float | None = None
    state_clip_nan: bool = False

    @model_validator(mode="after")
    def _clip_pair(self) -> LSTMConfig:
        if (self.state_clip_min is None) != (self.state_clip_max is None):
            raise ValueError("state_clip_min and state_clip_max go together")
        return self


class _RNNLayer(Block):
    """The shared machinery: parameters, states, the loop over layers, directions and time."""

    l0_i2h_weight: Parameter  # the others are set by name in __init__

    def __init__(
        self,
        mode: str,
        hidden_size: int,
        num_layers: int,
        layout: str,
        dropout: float,
        bidirectional: bool,
        *,
        input_size: int = 0,
        dtype: str = "float32",
        use_sequence_length: bool = False,
        prefix: str | None = None,
        projection_size: int | None = None,
        h2r_weight_initializer: Init = None,
        state_clip: tuple[float, float] | None = None,
        state_clip_nan: bool = False,
        **initializers: Unpack[Initializers],
    ) -> None:
        """``mode`` is the cell kind (``rnn_relu``, ``rnn_tanh``, ``lstm``, ``gru``); the
        projection and state clip options are the LSTM's."""
        inits = weight_initializers(**initializers)  # an unknown option fails before anything is made
        super().__init__(prefix=prefix)
        if layout not in ("TNC", "NTC"):
            raise UsageError(f"invalid layout {layout!r}; must be 'TNC' or 'NTC'")
        if not 0.0 <= dropout < 1.0:
            raise UsageError(f"dropout must be in [0, 1), got {dropout}")
        if int(hidden_size) <= 0 or int(num_layers) <= 0:
            raise UsageError(f"hidden_size and num_layers must be positive, got {hidden_size}, {num_layers}")
        self._hidden_size = int(hidden_size)
        self._num_layers = int(num_layers)
        self._layout = layout
        self._dropout = float(dropout)
        self._dir = 2 if bidirectional else 1
        self._mode = mode
        self._projection_size = int(projection_size) if projection_size else None
        self._state_clip = state_clip
        self._state_clip_nan = bool(state_clip_nan)
        self._dtype = np.dtype(dtype)
        self._use_sequence_length = bool(use_sequence_length)
        gates, hidden = GATES[mode] * self._hidden_size, self._hidden_size
        recurrent = self._projection_size or hidden
        inputs = int(input_size)
        for layer in range(self._num_layers):
            for d in "lr"[: self._dir]:
                shapes = {"i2h_weight": (gates, inputs), "h2h_weight": (gates, recurrent),
                          "i2h_bias": (gates,), "h2h_bias": (gates,)}
                for (kind, shape), init in zip(shapes.items(), inits, strict=True):
                    self._param(f"{d}{layer}_{kind}", shape, init)
                if self._projection_size:
                    self._param(
                        f"{d}{layer}_h2r_weight", (self._projection_size, hidden), h2r_weight_initializer
                    )
            inputs = recurrent * self._dir

    def _param(self, name: str, shape: tuple[int, ...], init: Init) -> None:
        setattr(self, name, Parameter(name, shape=shape, dtype=self._dtype, init=init))

    @property
    def hidden_size(self) -> int:
        return self._hidden_size

    # -- states ------------------------------------------------------------------------------
    def state_info(self, batch_size: int = 0) -> list[dict[str, Any]]:
        """Shape and dtype of each state: h (and c for an LSTM), ``(layers · dirs, N, size)``."""
        layers = self._num_layers * self._dir
        h_size = self._projection_size or self._hidden_size
        info = [{"shape": (layers, batch_size, h_size), "__layout__": "LNC", "dtype": self._dtype.name}]
        if self._mode == "lstm":
            info.append(
                {
                    "shape": (layers, batch_size, self._hidden_size),
                    "__layout__": "LNC",
                    "dtype": self._dtype.name,
                }
            )
        return info

    def begin_state(
        self, batch_size: int = 0, func: Callable[..., Any] = np.zeros, **kwargs: Any
    ) -> list[Any]:
        """Initial states, made by ``func(shape=..., dtype=..., **kwargs)`` (zeros by default);
        Gluon's ``ctx=`` is accepted and ignored."""
        return _begin_state(self.state_info(batch_size), func, kwargs)

    # -- forward -----------------------------------------------------------------------------
    def forward(self, inputs: Any, states: Any = None, sequence_length: Any = None) -> Any:
        """``output`` for ``states=None`` (zeros are used), else ``(output, new_states)``."""
        x = inputs
        if getattr(x, "ndim", None) != 3:
            raise InputError(
                f"{type(self).__name__} expects a 3-D input ({self._layout}), got shape {np.shape(x)}"
            )
        if np.dtype(x.dtype) != self._dtype:
            if np.dtype(x.dtype).kind != "f":
                raise InputError(
                    f"{type(self).__name__} expects floating-point inputs, got {np.dtype(x.dtype)}"
                )
            x = F.cast(x, dtype=self._dtype.name)
        if self._layout == "NTC":
            x = F.swapaxes(x, 0, 1)
        batch = x.shape[1]
        skip_states = states is None
        states = self.begin_state(batch) if states is None else states
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        self._check_states(states, batch)
        if self._use_sequence_length and sequence_length is None:
            raise InputError(f"{type(self).__name__}(use_sequence_length=True) needs sequence_length")
        lengths = sequence_length if self._use_sequence_length else None
        for direction in "lr"[: self._dir]:
            getattr(self, f"{direction}0_i2h_weight").shape = (
                GATES[self._mode] * self._hidden_size,
                x.shape[2],
            )
        h_out, c_out = [], []
        for layer in range(self._num_layers):
            outputs = []
            for d, name in enumerate("lr"[: self._dir]):
                index = layer * self._dir + d
                c0 = states[1][index] if self._mode == "lstm" else None
                out, h, c = self._direction(x, states[0][index], c0, f"{name}{layer}_", d == 1, lengths)
                outputs.append(out)
                h_out.append(h)
                c_out.append(c)
            x = outputs[0] if self._dir == 1 else F.concatenate(outputs, axis=2)
            if self._dropout and layer < self._num_layers - 1 and is_training():
                x = F.dropout(x, p=self._dropout)
        if self._layout == "NTC":
            x = F.swapaxes(x, 0, 1)
        new_states = [F.stack(h_out, axis=0)] + ([F.stack(c_out, axis=0)] if self._mode == "lstm" else [])
        return x if skip_states else (x, new_states)

    def _check_states(self, states: list[Any], batch: int) -> None:
        info = self.state_info(batch)
        if len(states) != len(info):
            raise InputError(f"{type(self).__name__} expects {len(info)} state array(s), got {len(states)}")
        for state, want in zip(states, info, strict=True):
            if tuple(np.shape(state)) != want["shape"]:
                raise InputError(
                    f"invalid recurrent state shape: expecting {want['shape']}, got {tuple(np.shape(state))}"
                )

    def _direction(
        self, xs: Any, h: Any, c: Any, prefix: str, reverse: bool, lengths: Any
    ) -> tuple[Any, Any, Any]:
        """One layer in one direction over the whole sequence → (outputs, last h, last c)."""
        weight = lambda name: getattr(self, prefix + name).data()  # noqa: E731
        i2h = input_product(xs, weight("i2h_weight"), weight("i2h_bias"))
        h2h_weight, h2h_bias = weight("h2h_weight"), weight("h2h_bias")
        h2r = weight("h2r_weight") if self._projection_size else None
        steps = range(xs.shape[0] - 1, -1, -1) if reverse else range(xs.shape[0])
        outputs: list[Any] = [None] * xs.shape[0]
        for t in steps:
            c_new = None
            if self._mode == "lstm":
                h_new, c_new = lstm_step(
                    i2h[t],
                    h,
                    c,
                    h2h_weight,
                    h2h_bias,
                    h2r_weight=h2r,
                    clip=self._state_clip,
                    clip_nan=self._state_clip_nan,
                )
            elif self._mode == "gru":
                h_new = gru_step(i2h[t], h, h2h_weight, h2h_bias)
            else:
                h_new = rnn_step(i2h[t], h, h2h_weight, h2h_bias, activation(self._mode[4:]))
            if lengths is None:
                h, c, outputs[t] = h_new, c_new, h_new
            else:  # past an element's length: its state stays, its output is 0 (as cuDNN)
                valid = F.expand_dims(F.greater(lengths, t), -1)
                h = F.where(valid, h_new, h)
                c = F.where(valid, c_new, c) if c_new is not None else None
                outputs[t] = F.where(valid, h_new, F.zeros_like(h_new))
        return F.stack(outputs, axis=0), h, c

    # -- description ---------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        derived: dict[str, Any] = {"bidirectional": self._dir == 2, "input_size": self.l0_i2h_weight.shape[1]}
        if self._mode == "lstm":
            derived["state_clip_min"], derived["state_clip_max"] = self._state_clip or (None, None)
        elif self._mode.startswith("rnn_"):
            derived["activation"] = self._mode[len("rnn_"):]
        return self.config_from_attributes(**derived)

    def __repr__(self) -> str:
        in_size = self.l0_i2h_weight.shape[1] or None
        text = f"{type(self).__name__}({in_size} -> {self._hidden_size}, {self._layout}"
        if self._num_layers != 1:
            text += f", num_layers={self._num_layers}"
        if self._dropout:
            text += f", dropout={self._dropout}"
        if self._dir == 2:
            text += ", bidirectional"
        return text + ")"


def _begin_state(info: list[dict[str, Any]], func: Callable[..., Any], kwargs: dict[str, Any]) -> list[Any]:
    """States from ``state_info``: Gluon's device and naming arguments are dropped."""
    options = {k: v for k, v in kwargs.items() if k not in ("ctx", "name")}
    states = []
    for item in info:
        spec = {"shape": item["shape"], "dtype": item.get("dtype", "float32"), **options}
        states.append(func(**spec))
    return states


@register_layer("RNN", config=RNNConfig)
class RNN(_RNNLayer):
    """Multi-layer Elman RNN: ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``, act ReLU
    (Gluon's default) or tanh."""

    def __init__(
        self,
        hidden_size: int,
        num_layers: int = 1,
        activation: str = "relu",
        layout: str = "TNC",
        dropout: float = 0,
        bidirectional: bool = False,
        **options: Unpack[LayerOptions],
    ) -> None:
        if activation not in ("relu", "tanh"):
            raise UsageError(f"RNN activation must be 'relu' or 'tanh', got {activation!r}")
        super().__init__(
            "rnn_" + activation, hidden_size, num_layers, layout, dropout, bidirectional, **options
        )


@register_layer("LSTM", config=LSTMConfig)
class LSTM(_RNNLayer):
    """Multi-layer LSTM (gates i, f, c, o). ``projection_size`` projects h (LSTMP:
    ``h_t = W_hr (o ⊙ tanh(c_t))``); ``state_clip_min/max`` bound the cell state after each
    step, as cuDNN does (MXNet's CPU kernel ignores them), and with ``state_clip_nan`` a NaN
    cell state becomes ``state_clip_min`` instead of propagating."""

    def __init__(
        self,
        hidden_size: int,
        num_layers: int = 1,
        layout: str = "TNC",
        dropout: float = 0,
        bidirectional: bool = False,
        *,
        projection_size: int | None = None,
        h2r_weight_initializer: Init = None,
        state_clip_min: float | None = None,
        state_clip_max: float | None = None,
        state_clip_nan: bool = False,
        **options: Unpack[LayerOptions],
    ) -> None:
        if (state_clip_min is None) != (state_clip_max is None):
            raise UsageError("state_clip_min and state_clip_max go together")
        clip = None if state_clip_min is None else (float(state_clip_min), float(state_clip_max))  # type: ignore[arg-type]
        super().__init__(
            "lstm", hidden_size, num_layers, layout, dropout, bidirectional,
            projection_size=projection_size, h2r_weight_initializer=h2r_weight_initializer,
            state_clip=clip, state_clip_nan=state_clip_nan, **options,
        )


@register_layer("GRU", config=GRUConfig)
class GRU(_RNNLayer):
    """Multi-layer GRU (gates r, z, n; the reset gate multiplies ``W_hn h + b_hn``)."""

    def __init__(
        self,
        hidden_size: int,
        num_layers: int = 1,
        layout: str = "TNC",
        dropout: float = 0,
        bidirectional: bool = False,
        **options: Unpack[LayerOptions],
    ) -> None:
        super().__init__("gru", hidden_size, num_layers, layout, dropout, bidirectional, **options)
