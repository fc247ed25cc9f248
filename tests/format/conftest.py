"""The archive most format tests read or corrupt: a small MLP exported to ``tmp_path/net.mpk``."""

from __future__ import annotations

import pytest
from models import sequential_mlp

import modelpack


@pytest.fixture
def exported(tmp_path):
    path = tmp_path / "net.mpk"
    modelpack.export(sequential_mlp(16, 4, inputs=8), path)
    return path
