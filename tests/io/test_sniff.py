"""What kind of file is this (io.sniff): each kind told from its first bytes (and a zip's member
names), the file position always restored, and a reader's refusal naming the kind and the
reader to use instead."""

from __future__ import annotations

import io
import pickle
import struct

import numpy as np
import pytest
from craft import Unseekable, stored_zip
from models import export_bytes, save_bytes, sequential_mlp

from modelpack.errors import FileKindError
from modelpack.io.sniff import KINDS, is_mxnet, is_safetensors, refuse_other_kind, sniff

MXNET_MAGIC = (0x112).to_bytes(8, "little")


def _npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, a=np.ones(2))
    return buffer.getvalue()


def _npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.arange(3))
    return buffer.getvalue()


SAMPLES = {
    "model-archive": (export_bytes(sequential_mlp(2, inputs=3)), "mpk"),
    "tensor-archive": (save_bytes({"a": np.ones(2)}), "mpk"),
    "npz": (_npz(), "npz"),
    "mxnet": (MXNET_MAGIC + bytes(16), "mxnet"),
    "torch-legacy": (b"\x80\x02\x8a\x0a" + bytes(20), "torch"),  # a pickle starting with a long
    "torch-zip": (stored_zip({"archive/data.pkl": b"\x80\x02.", "archive/version": b"3"}), "torch"),
    "pickle-2": (pickle.dumps([1, 2], protocol=2), "pickle"),
    "pickle-5": (pickle.dumps([1, 2], protocol=5), "pickle"),
    "pickle-0": (pickle.dumps([1, 2], protocol=0), "unknown"),  # text protocol: no marker byte
    "safetensors": (struct.pack("<Q", 2) + b"{}", "safetensors"),
    "safetensors-header-too-long": (struct.pack("<Q", 100 * 2**20) + b"{}", "unknown"),
    "hdf5": (b"\x89HDF\r\n\x1a\n" + bytes(8), "hdf5"),
    "npy": (_npy(), "npy"),
    "gguf": (b"GGUF" + struct.pack("<IQQ", 3, 0, 0), "gguf"),
    "keras": (stored_zip({"metadata.json": b"{}", "config.json": b"{}", "model.weights.h5": b""}), "keras"),
    "zip-with-a-config": (stored_zip({"config.json": b"{}"}), "zip"),
    "other-zip": (stored_zip({"a.txt": b"x"}), "zip"),
    "empty-zip": (stored_zip({}), "zip"),
    "damaged-zip": (stored_zip({"a.npy": b"x"})[:-3], "zip"),  # the strict reader refuses it
    "text": (b"hello world", "unknown"),
    "empty": (b"", "unknown"),
}


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_each_kind_is_told_from_its_bytes_and_the_position_is_restored(sample):
    data, kind = SAMPLES[sample]
    handle = io.BytesIO(data)
    handle.seek(min(3, len(data)))
    assert sniff(handle) is KINDS[kind]
    assert handle.tell() == min(3, len(data))


def test_is_mxnet_reads_the_magic_and_restores_the_position():
    handle = io.BytesIO(b"xx" + MXNET_MAGIC)
    assert not is_mxnet(handle)
    handle = io.BytesIO(MXNET_MAGIC + b"rest")
    handle.seek(5)
    assert is_mxnet(handle) and handle.tell() == 5
    assert not is_mxnet(io.BytesIO(MXNET_MAGIC[:7]))


@pytest.mark.parametrize("data,expected", [(MXNET_MAGIC + b"rest", True), (b"xx" + MXNET_MAGIC, False),
                                           (MXNET_MAGIC[:7], False), (b"", False)])
def test_is_mxnet_on_a_raw_file_reads_by_offset(tmp_path, data, expected):
    """A raw file (what ``load`` opens) is read at offset 0 without moving its position."""
    path = tmp_path / "f"
    path.write_bytes(data)
    with open(path, "rb", buffering=0) as handle:
        handle.seek(min(5, len(data)))
        assert is_mxnet(handle) is expected and handle.tell() == min(5, len(data))


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_is_safetensors_agrees_with_sniff_and_restores_the_position(sample):
    handle = io.BytesIO(SAMPLES[sample][0])
    handle.seek(min(2, len(SAMPLES[sample][0])))
    assert is_safetensors(handle) is (SAMPLES[sample][1] == "safetensors")
    assert handle.tell() == min(2, len(SAMPLES[sample][0]))
    assert is_safetensors(Unseekable()) is False


def test_is_mxnet_leaves_a_stream_that_cannot_seek_alone():
    assert is_mxnet(Unseekable()) is False


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        ("pickle-5", r"^x is a Python pickle, not a modelpack archive; modelpack never unpickles \(that runs "
                     r"code from the file\); unpickle it only if you trust it$"),
        ("npz", r"^x is a parameter file \(\.npz, from save_parameters or numpy\.savez\), not a modelpack "
                r"archive; read it with net\.load_parameters\(path\) on a network of the same architecture, "
                r"or its arrays by name with modelpack\.load\(path\)$"),
        ("hdf5", r"^x is an HDF5 file \(e\.g\. Keras \.h5\), not a modelpack archive; read it with h5py$"),
        ("npy", r"^x is a NumPy array file \(\.npy\), not a modelpack archive; read it with numpy\.load\(path\)$"),
        ("safetensors", r"^x is a safetensors file, not a modelpack archive; read it with net\.load_parameters\(path\) "
                        r"on a modelpack network of the same architecture, modelpack\.interop\.safetensors\."
                        r"read_safetensors\(path\), or `modelpack convert FILE -o OUT\.mpk`$"),
        ("keras", r"^x is a Keras archive \(\.keras\), not a modelpack archive; read it with "
                  r"keras\.saving\.load_model\(path\)$"),
    ],
)
def test_a_file_of_another_kind_is_refused_naming_both_kinds_and_the_way_out(sample, message):
    with pytest.raises(FileKindError, match=message) as refused:
        refuse_other_kind(io.BytesIO(SAMPLES[sample][0]), "x", expected="mpk")
    assert refused.value.kind == SAMPLES[sample][1]  # what a reader that takes it too looks at


@pytest.mark.parametrize("sample", ["model-archive", "text", "other-zip", "damaged-zip"])
def test_the_expected_kind_unknown_files_and_other_zips_are_left_to_the_reader(sample):
    assert refuse_other_kind(io.BytesIO(SAMPLES[sample][0]), "x", expected="mpk") is None
