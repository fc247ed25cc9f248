"""The npz weight bundle: canonical bytes, numpy compatibility and refusals."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from modelpack import weights
from modelpack.errors import FormatError, UnsupportedDtypeError


def _bundle(arrays, **kwargs):
    buffer = io.BytesIO()
    weights.write_npz(buffer, arrays, **kwargs)
    return buffer


@pytest.mark.parametrize("compress", [False, True])
def test_round_trip_and_numpy_reads_it(compress):
    arrays = {
        "a.weight": np.arange(12, dtype=np.float32).reshape(3, 4),
        "b": np.array(3.5, dtype=np.float16),
        "empty": np.zeros((0, 3), dtype=np.int8),
        "flags": np.array([True, False]),
    }
    buffer = _bundle(arrays, compress=compress)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as loaded:
        assert list(loaded.keys()) == list(arrays)
        for name, value in arrays.items():
            np.testing.assert_array_equal(loaded[name], value)
    buffer.seek(0)
    back = weights.read_npz(buffer, source="mem")
    for name, value in arrays.items():
        assert back[name].dtype == value.dtype and back[name].shape == value.shape
        assert back[name].tobytes() == value.tobytes()
        assert back[name].flags.writeable


def test_same_arrays_same_bytes():
    arrays = {"w": np.ones((2, 2), np.float32)}
    assert _bundle(arrays).getvalue() == _bundle(arrays).getvalue()


def test_big_endian_and_fortran_are_canonicalised():
    value = np.asfortranarray(np.arange(6, dtype=">f8").reshape(2, 3))
    buffer = _bundle({"x": value})
    buffer.seek(0)
    back = weights.read_npz(buffer, source="mem")["x"]
    assert back.dtype == np.dtype("<f8") and back.flags.c_contiguous
    np.testing.assert_array_equal(back, value)
    with zipfile.ZipFile(buffer) as bundle:
        header = bundle.read("x.npy")[:80]
    assert b"'fortran_order': False" in header and b"<f8" in header


def test_object_arrays_refused_at_write():
    with pytest.raises(UnsupportedDtypeError, match="'bad'.*object"):
        _bundle({"bad": np.array([None, 1], dtype=object)})


def test_strings_refused_at_write():
    with pytest.raises(UnsupportedDtypeError, match="'s'"):
        _bundle({"s": np.array(["a"])})


def test_truncated_member_is_format_error():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        raw = io.BytesIO()
        np.lib.format.write_array(raw, np.zeros(100, np.float32))
        bundle.writestr("w.npy", raw.getvalue()[:-40])
    buffer.seek(0)
    with pytest.raises(FormatError, match="'w.npy'.*400 bytes"):
        weights.read_npz(buffer, source="mem")


def test_non_npy_member_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("readme.txt", b"hi")
    buffer.seek(0)
    with pytest.raises(FormatError, match="unexpected member 'readme.txt'"):
        weights.read_npz(buffer, source="mem")


def test_not_a_zip():
    with pytest.raises(FormatError, match="src: not an npz"):
        weights.read_npz(io.BytesIO(b"\x00" * 64), source="src")


def test_encrypted_member_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("w.npy", b"x" * 10)
    raw = bytearray(buffer.getvalue())
    # Set the "encrypted" flag bit in the local and central headers.
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = raw.find(signature)
        raw[at + offset] |= 0x1
    with pytest.raises(FormatError, match="'w.npy' is encrypted"):
        weights.read_npz(io.BytesIO(bytes(raw)), source="mem")


def test_unsupported_compression_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_LZMA) as bundle:
        raw = io.BytesIO()
        np.lib.format.write_array(raw, np.zeros(3))
        bundle.writestr("w.npy", raw.getvalue())
    buffer.seek(0)
    with pytest.raises(FormatError, match="compression method 14"):
        weights.read_npz(buffer, source="mem")
