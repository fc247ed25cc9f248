"""``modelpack.nn.rnn``: Gluon 1.9's ``gluon.rnn`` — recurrent layers and cells, in numpy.

- ``layers``: the fused ``RNN``, ``LSTM`` and ``GRU`` (``l0_i2h_weight`` …, ``layout``,
  ``num_layers``, ``bidirectional``, ``dropout``, ``begin_state``, ``use_sequence_length``),
  and the keyword options layers and cells share (``Initializers``, ``CellOptions``,
  ``LayerOptions``);
- ``cells``: ``RNNCell``, ``LSTMCell``, ``GRUCell`` (one step per call, ``unroll``);
- ``wrappers``: ``SequentialRNNCell``, ``BidirectionalCell``, ``DropoutCell``,
  ``ResidualCell``, ``ZoneoutCell``;
- ``steps``: the per-step math both share, written with ``nn.functional`` ops.

Each is a registered layer type, so a model using them exports declaratively; MXNet parameter
files of them load (``Block.load_parameters``). It imports only ``nn``.

>>> from modelpack.nn import rnn
>>> layer = rnn.GRU(64, num_layers=2)
"""

from __future__ import annotations

from .cells import GRUCell, LSTMCell, RecurrentCell, RNNCell
from .layers import GRU, LSTM, RNN
from .wrappers import (
    BidirectionalCell,
    DropoutCell,
    ModifierCell,
    ResidualCell,
    SequentialRNNCell,
    ZoneoutCell,
)

# Gluon's hybrid spellings: modelpack has no separate hybrid (symbolic) mode.
HybridRecurrentCell = RecurrentCell
HybridSequentialRNNCell = SequentialRNNCell

__all__ = [
    "RNN",
    "LSTM",
    "GRU",
    "RecurrentCell",
    "HybridRecurrentCell",
    "RNNCell",
    "LSTMCell",
    "GRUCell",
    "SequentialRNNCell",
    "HybridSequentialRNNCell",
    "BidirectionalCell",
    "DropoutCell",
    "ModifierCell",
    "ResidualCell",
    "ZoneoutCell",
]
