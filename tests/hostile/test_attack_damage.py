"""Damaged weights are never served: one flipped bit in a tensor's data, read in every mode,
and read again after the first IntegrityError (a server that catches the error and retries)."""

from __future__ import annotations

import numpy as np
import pytest

import modelpack
from modelpack import nn
from modelpack.errors import IntegrityError

DAMAGED = r"damaged\.mpk: member 'weights\.npz': member '0\.weight\.npy' is damaged: CRC-32"


def _flip_weight_bit(data: bytes, weight: np.ndarray) -> bytes:
    at = data.find(weight.tobytes())
    assert at > 0 and data.find(weight.tobytes(), at + 1) < 0
    out = bytearray(data)
    out[at + 1] ^= 0x01
    return bytes(out)


@pytest.fixture
def damaged_model(tmp_path):
    net = nn.Sequential()
    net.add(nn.Dense(3, in_units=4), nn.Dense(2, in_units=3))
    net.initialize(seed=0)
    path = tmp_path / "damaged.mpk"
    modelpack.export(net, path)
    path.write_bytes(_flip_weight_bit(path.read_bytes(), net[0].weight.data()))
    return path


def test_mapped_model_refuses_every_retry(damaged_model):
    mapped = modelpack.load(damaged_model, mmap=True)  # nothing read yet: loads
    for _ in range(3):
        with pytest.raises(IntegrityError, match=DAMAGED):
            mapped(np.ones((1, 4), np.float32))
    for _ in range(2):  # reading the parameter directly, or converting it, fails as well
        with pytest.raises(IntegrityError, match=DAMAGED):
            mapped[0].weight.data()
        with pytest.raises(IntegrityError, match=DAMAGED):
            mapped[0].weight.cast("float64")
    assert mapped[0].weight.dtype == np.float32  # the failed cast changed nothing


def test_mapped_model_check_passes_once_then_stays_quiet(tmp_path):
    net = nn.Sequential()
    net.add(nn.Dense(2, in_units=4))
    net.initialize(seed=0)
    modelpack.export(net, tmp_path / "fine.mpk")
    mapped = modelpack.load(tmp_path / "fine.mpk", mmap=True)
    x = np.ones((1, 4), np.float32)
    assert mapped(x).tobytes() == mapped(x).tobytes() == net(x).tobytes()
    assert mapped[0].weight._first_read_check is None  # passed, so not run on every read


@pytest.mark.parametrize("mode", ["load", "load-sha256", "open", "open-mmap", "read-all-mmap"])
def test_every_read_mode_refuses_every_retry(damaged_model, mode):
    def attempt():
        if mode == "load":
            return modelpack.load(damaged_model)
        if mode == "load-sha256":
            return modelpack.load(damaged_model, integrity="sha256")
        with modelpack.open(damaged_model) as archive:
            if mode == "open":
                return archive.get_tensor("0.weight")
            if mode == "open-mmap":
                return archive.get_tensor("0.weight", mmap=True)
            return archive.read_all(mmap=True)

    for _ in range(3):
        with pytest.raises(IntegrityError, match=DAMAGED):
            attempt()


def test_mapped_tensor_archive_refuses_damage(tmp_path):
    array = np.arange(64, dtype=np.float32)
    path = tmp_path / "damaged.mpk"
    modelpack.save(path, {"0.weight": array})
    path.write_bytes(_flip_weight_bit(path.read_bytes(), array))
    for _ in range(2):
        with pytest.raises(IntegrityError, match=DAMAGED):
            modelpack.load(path, mmap=True)
