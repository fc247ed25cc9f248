"""Gradients of the recurrent layers and cells against PyTorch's: they run on Variables (their
steps are ``nn.functional`` ops, each with its VJP), so this checks that composition end to
end, through time, layers and directions. Float64; tolerance as ``test_autograd_layers.py``
(``rtol=1e-9``) widened to ``1e-8``: gradients through up to 5 steps and 2 layers sum
products of tanh/sigmoid slopes in another order than torch's fused kernels."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_autograd_layers import compare, seeds

from modelpack import nn

torch = pytest.importorskip("torch")

TORCH = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
OURS = {"rnn": nn.rnn.RNN, "lstm": nn.rnn.LSTM, "gru": nn.rnn.GRU}


def _torch_name(name: str) -> str:
    """``l1_i2h_weight`` → ``weight_ih_l1``; ``r0_h2h_bias`` → ``bias_hh_l0_reverse``."""
    direction, kind, what = name[0], name[3:6], name.split("_")[-1]
    return f"{what}_{'ih' if kind == 'i2h' else 'hh'}_l{name[1]}" + ("_reverse" if direction == "r" else "")


@settings(max_examples=12, deadline=None)
@given(mode=st.sampled_from(sorted(TORCH)), layers=st.integers(1, 2), bidirectional=st.booleans(), seed=seeds)
def test_recurrent_layers(mode, layers, bidirectional, seed):
    x = np.random.default_rng(seed).normal(size=(5, 2, 3))  # TNC
    options = {"activation": "tanh"} if mode == "rnn" else {}  # Gluon's RNN defaults to relu, torch's to tanh
    layer = OURS[mode](4, num_layers=layers, bidirectional=bidirectional, dtype="float64", **options)
    reference_layer = TORCH[mode](3, 4, num_layers=layers, bidirectional=bidirectional).double()

    def reference(t: Any, **params: Any) -> Any:
        renamed = {_torch_name(name): value for name, value in params.items()}
        return torch.func.functional_call(reference_layer, renamed, (t,))[0]

    compare(layer, x, reference, seed, rtol=1e-8)


def test_cells_unrolled():
    x = np.random.default_rng(0).normal(size=(2, 3))
    for cell, reference_cell in ((nn.rnn.LSTMCell(4, dtype="float64"), torch.nn.LSTMCell(3, 4)),
                                 (nn.rnn.GRUCell(4, dtype="float64"), torch.nn.GRUCell(3, 4))):
        reference_cell = reference_cell.double()

        class Unrolled(nn.Block):
            def __init__(self, inner: nn.Block) -> None:
                super().__init__()
                self.cell = inner

            def forward(self, step: Any) -> Any:
                states = self.cell.begin_state(batch_size=2)
                for _ in range(3):  # the same input three times: the states carry the history
                    out, states = self.cell(step, states)
                return out

        def reference(t: Any, _ref: Any = reference_cell, **params: Any) -> Any:
            # a torch cell's names have no layer suffix: weight_ih, bias_hh, ...
            renamed = {_torch_name("l0_" + name.split(".")[-1])[:-3]: value for name, value in params.items()}
            state = None
            for _ in range(3):
                state = torch.func.functional_call(_ref, renamed, (t, state))
                out = state[0] if isinstance(state, tuple) else state
            return out

        compare(Unrolled(cell), x, reference, 0, rtol=1e-8)
