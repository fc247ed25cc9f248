"""One time step of each recurrent mode, shared by the fused layers and the cells.

Gate order is MXNet's (and cuDNN's, and PyTorch's): LSTM ``[i, f, c, o]`` (input, forget,
candidate, output), GRU ``[r, z, n]`` (reset, update, new). The GRU applies the reset gate
to the recurrent product *after* its bias, ``n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))``,
and mixes ``h' = (1 - z) ⊙ n + z ⊙ h``. Written with ``nn.functional`` ops only, so the same
code runs on arrays, is recorded by autograd, and traces.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import functional as F

__all__ = ["GATES", "input_product", "rnn_step", "lstm_step", "gru_step", "activation"]

# mode -> gates per hidden unit (the first axis of i2h/h2h weights is gates × hidden)
GATES = {"rnn_relu": 1, "rnn_tanh": 1, "lstm": 4, "gru": 3}


def activation(name: str) -> Callable[[Any], Any]:
    """The op called ``name`` (``relu``, ``tanh``, ``sigmoid``, ...)."""
    return getattr(F, name)


def input_product(x: Any, weight: Any, bias: Any) -> Any:
    """``x · weightᵀ + bias`` over the last axis (every time step at once for a layer)."""
    return F.fully_connected(x, weight, bias, flatten=False)


def _gate(gates: Any, index: int, count: int) -> Any:
    size = gates.shape[-1] // count
    return gates[..., index * size : (index + 1) * size]


def rnn_step(i2h: Any, h: Any, h2h_weight: Any, h2h_bias: Any, act: Callable[[Any], Any]) -> Any:
    """Elman step: ``act(i2h + W_hh h + b_hh)``."""
    return act(i2h + input_product(h, h2h_weight, h2h_bias))


def lstm_step(
    i2h: Any,
    h: Any,
    c: Any,
    h2h_weight: Any,
    h2h_bias: Any,
    *,
    act: Callable[[Any], Any] = F.tanh,
    recurrent_act: Callable[[Any], Any] = F.sigmoid,
    h2r_weight: Any = None,
    clip: tuple[float, float] | None = None,
    clip_nan: bool = False,
) -> tuple[Any, Any]:
    """LSTM step → (h, c); ``h2r_weight`` projects h (LSTMP); ``clip`` bounds the cell state
    (and with ``clip_nan`` a NaN cell state becomes the lower bound)."""
    gates = i2h + input_product(h, h2h_weight, h2h_bias)
    in_gate = recurrent_act(_gate(gates, 0, 4))
    forget_gate = recurrent_act(_gate(gates, 1, 4))
    candidate = act(_gate(gates, 2, 4))
    out_gate = recurrent_act(_gate(gates, 3, 4))
    c = forget_gate * c + in_gate * candidate
    if clip is not None:
        bounded = F.clip(c, clip[0], clip[1])
        c = F.where(c != c, clip[0], bounded) if clip_nan else bounded
    h = out_gate * act(c)
    if h2r_weight is not None:
        h = F.fully_connected(h, h2r_weight, None, no_bias=True, flatten=False)
    return h, c


def gru_step(i2h: Any, h: Any, h2h_weight: Any, h2h_bias: Any) -> Any:
    """GRU step (reset after the recurrent product, as MXNet, cuDNN and PyTorch)."""
    h2h = input_product(h, h2h_weight, h2h_bias)
    reset = F.sigmoid(_gate(i2h, 0, 3) + _gate(h2h, 0, 3))
    update = F.sigmoid(_gate(i2h, 1, 3) + _gate(h2h, 1, 3))
    new = F.tanh(_gate(i2h, 2, 3) + reset * _gate(h2h, 2, 3))
    return (1 - update) * new + update * h
