"""Resource limits (io.limits): only positive limits exist, and a trusted file may raise them."""

from __future__ import annotations

import numpy as np
import pytest
from craft import members_of

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


def test_the_default_limits_admit_as_many_tensors_as_they_allow(tmp_path):
    """An archive of ``max_tensors`` tensors, as the writer writes them (names as long as a
    large language model's, 2-D shapes), opens with the default limits: its manifest's bytes
    and nodes are within theirs, with room for longer names and more dimensions."""
    count = Limits().max_tensors
    arrays = {f"model.layers.{i // 10}.self_attn.q_proj.lora_{i % 10}.weight": np.full((1, 1), i, np.float32)
              for i in range(count)}
    path = tmp_path / "many.mpk"
    modelpack.save(path, arrays)
    with modelpack.open(path) as archive:
        assert len(archive.tensors) == count
        assert archive.get_tensor("model.layers.9999.self_attn.q_proj.lora_9.weight").item() == count - 1
    manifest = members_of(path.read_bytes())["manifest.yaml"]
    per_tensor = len(manifest) / count
    assert per_tensor < 0.5 * Limits().max_manifest_bytes / count, per_tensor
