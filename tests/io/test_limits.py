"""Resource limits (io.limits): only positive limits exist, and a trusted file may raise them."""

from __future__ import annotations

import numpy as np
import pytest

import modelpack
from modelpack import Limits
from modelpack.errors import LimitError


@pytest.mark.parametrize("field", ["max_manifest_bytes", "max_manifest_nodes", "max_tensors", "max_total_bytes",
                                   "max_compression_ratio"])
def test_limits_must_be_positive(field):
    with pytest.raises(ValueError, match=f"Limits.{field} must be a positive number, found 0"):
        Limits(**{field: 0})


def test_limits_can_be_raised_for_a_trusted_file(tmp_path):
    modelpack.save(tmp_path / "z", {"zeros": np.zeros(2**21, np.float32)}, compress=True)  # 8 MiB of zeros
    with pytest.raises(LimitError, match=r"member 'zeros\.npy': its compression ratio \(\d+\) is over the limit of 100 \(8388736 bytes from \d+"):
        modelpack.load(tmp_path / "z")
    loaded = modelpack.load(tmp_path / "z", limits=Limits(max_compression_ratio=10_000))
    assert loaded["zeros"].shape == (2**21,)
