"""Shared by the tracing tests: export a small block whose ``forward`` is given, expecting a refusal."""

from __future__ import annotations

import io

import numpy as np
import pytest

import modelpack
from modelpack import nn
from modelpack.errors import TraceError

X = np.random.default_rng(0).normal(size=(2, 5))


def refused_export(forward, x, match, error=TraceError, **export_options):
    """Export a block with one child ``fc`` (Dense(3)) whose forward is ``forward(self, x)``;
    it must raise ``error`` matching ``match``."""

    class Bad(nn.Block):
        def __init__(self):
            super().__init__()
            self.fc = nn.Dense(3)

        def forward(self, x):
            return forward(self, x)

    net = Bad()
    net.initialize()
    net.fc(np.ones((1,) + x.shape[1:]))
    with pytest.raises(error, match=match):
        modelpack.export(net, io.BytesIO(), example=x, **export_options)
