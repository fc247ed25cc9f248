"""Block tree <-> manifest tree (format.architecture): which blocks export as layers, and what
is refused with the reason."""

from __future__ import annotations

import io

import numpy as np
import pytest
from models import MLP, ready

import modelpack
from modelpack.errors import UnsupportedBlockError


def test_custom_block_without_example_says_how():
    net = ready(MLP(), np.ones((1, 20)))
    with pytest.raises(UnsupportedBlockError, match="Pass example=<input array> to export"):
        modelpack.export(net, io.BytesIO())
