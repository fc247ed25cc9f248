"""modelpack.convert's dispatch (``interop.convert``): a file is told apart by its first bytes,
and one that convert does not read is refused saying what it is, not handed to a converter
whose complaint would be about something else."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from torch_writer import state_dict_file

import modelpack
from modelpack import nn
from modelpack.errors import FileKindError
from modelpack.interop.convert import source_kind

READS = r"not a file convert reads \(ONNX models, PyTorch, safetensors and MXNet files\)"


def _dense() -> nn.Dense:
    net = nn.Dense(2, in_units=3)
    net.initialize(seed=0)
    return net


def _torch_file() -> bytes:
    return state_dict_file({"weight": np.ones((2, 3), np.float32), "bias": np.zeros(2, np.float32)})


def test_kinds_are_told_apart(tmp_path):
    (tmp_path / "w.pt").write_bytes(_torch_file())
    (tmp_path / "net-symbol.json").write_text('{"nodes": [], "heads": []}')
    assert source_kind(tmp_path / "w.pt") == "torch"
    assert source_kind(tmp_path / "net-symbol.json") == "mxnet"  # text: the MXNet converter reads it


def test_a_damaged_zip_is_refused_with_what_the_zip_reader_found(tmp_path):
    data = bytearray(_torch_file())
    last_entry = data.rindex(b"PK\x01\x02")
    struct.pack_into("<H", data, last_entry + 28, 0xFFFF)  # its name's length: past the directory
    (tmp_path / "w.pt").write_bytes(bytes(data))
    with pytest.raises(FileKindError, match=rf"w\.pt: zip directory entry \d+ runs past the directory; a zip that "
                                            rf"cannot be read is {READS}$"):
        modelpack.convert(tmp_path / "w.pt", architecture=_dense())


def test_a_file_of_another_kind_is_refused_with_its_reader(tmp_path):
    modelpack.save(tmp_path / "t.mpk", {"w": np.ones(2, np.float32)})
    with pytest.raises(FileKindError, match=rf"t\.mpk is a modelpack archive, {READS}; read it with modelpack\.load\(path\), "
                                            rf"or its weights with net\.load_parameters\(path\)$"):
        modelpack.convert(tmp_path / "t.mpk", architecture=_dense())
    np.save(tmp_path / "a.npy", np.ones(2))
    with pytest.raises(FileKindError, match=rf"a\.npy is a NumPy array file \(\.npy\), {READS}; read it with numpy\.load"):
        modelpack.convert(tmp_path / "a.npy", architecture=_dense())
