"""The npz weight bundle: canonical bytes, numpy compatibility and refusals."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from typing import NamedTuple

import numpy as np
import pytest

from modelpack import Limits
from modelpack.errors import (
    DtypeMismatchError,
    FormatError,
    IntegrityError,
    LimitError,
    UnsupportedDtypeError,
)
from modelpack.io import npz as weights
from modelpack.io.npz_write import write_npz
from modelpack.io.zipio import Source


def _bundle(arrays, **kwargs):
    buffer = io.BytesIO()
    write_npz(buffer, arrays, **kwargs)
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


@pytest.mark.parametrize("writer", [np.savez, np.savez_compressed])
def test_reads_what_numpy_writes(tmp_path, writer):
    arrays = {"a": np.arange(5, dtype=np.int64), "b.c": np.eye(3, dtype=np.float16), "big": np.zeros((2, 2), ">f8")}
    writer(tmp_path / "n.npz", **arrays)
    with open(tmp_path / "n.npz", "rb") as handle:
        back = weights.read_npz(handle, source="n.npz")
    assert list(back) == list(arrays)
    for name, value in arrays.items():
        np.testing.assert_array_equal(back[name], value)
    assert back["big"].dtype == np.dtype("=f8")


def test_expected_index_is_strict_about_byte_order():
    buffer = io.BytesIO()
    np.savez(buffer, x=np.zeros(2, ">f4"))
    assert weights.read_npz(io.BytesIO(buffer.getvalue()), source="mem")["x"].dtype == np.dtype("=f4")
    expected = {"x": type("T", (), {"dtype": "float32", "shape": [2], "sha256": None})()}
    with pytest.raises(DtypeMismatchError, match=r"mem: member 'x\.npy': the array header says byte order '>f4'"):
        weights.read_npz(io.BytesIO(buffer.getvalue()), source="mem", expected=expected)


def test_tensor_sha256_is_of_canonical_bytes():
    value = np.asfortranarray(np.arange(6, dtype=">u2").reshape(2, 3))
    assert weights.tensor_sha256(value) == hashlib.sha256(np.arange(6, dtype="<u2").tobytes()).hexdigest()
    assert weights.tensor_sha256(np.array(True)) == hashlib.sha256(b"\x01").hexdigest()


def test_bundle_limits():
    buffer = _bundle({str(i): np.zeros(3, np.uint8) for i in range(3)})
    with pytest.raises(LimitError, match=r"mem: its number of tensors \(3\) is over the limit of 2"):
        weights.read_npz(io.BytesIO(buffer.getvalue()), source="mem", limits=Limits(max_tensors=2))


class _Want(NamedTuple):
    dtype: str
    shape: list[int]
    sha256: str | None


def _read_runs(tmp_path, arrays, *, data=None, wants=None, integrity=weights.Integrity.CRC32):
    """``read_written_runs`` over every tensor of ``arrays``' bundle (or of ``data``)."""
    path = tmp_path / "b.npz"
    path.write_bytes(_bundle(arrays).getvalue() if data is None else data)
    with open(path, "rb", buffering=0) as handle:
        source = Source.whole(handle, where="b.npz")
        members = weights.Bundle(source).members
        names = list(arrays)
        if wants is None:
            wants = [_Want(a.dtype.name, list(a.shape), weights.tensor_sha256(a)) for a in arrays.values()]
        return weights.read_written_runs(source, handle.fileno(), [members[n] for n in names], names, wants,
                                         integrity=integrity)


def test_small_tensors_following_one_another_are_read_in_runs(tmp_path, monkeypatch):
    """Members of at most RUN_MEMBER_BYTES that fit in a run together are read with one
    positioned read; a larger one is left to read_written (None), and ends the run."""
    monkeypatch.setattr(weights, "RUN_BYTES", 4096)
    monkeypatch.setattr(weights, "RUN_MEMBER_BYTES", 1500)
    arrays = {f"t{i}": np.full(250, i, np.float32) for i in range(12)}  # about 1.2 KB a member
    arrays["medium"] = np.ones(500, np.float32)  # 2.1 KB: it would fit in a run
    arrays.update({"after": np.arange(5, dtype=np.int16), "last": np.zeros(2, np.int8)})
    reads = []
    preadv = os.preadv
    monkeypatch.setattr(os, "preadv", lambda fd, bufs, at: reads.append(at) or preadv(fd, bufs, at))
    got = _read_runs(tmp_path, arrays)
    assert got[12] is None  # "medium"
    for (name, array), back in zip(arrays.items(), got, strict=True):
        assert name == "medium" or (back.dtype, back.shape, back.tobytes()) == (array.dtype, array.shape,
                                                                                array.tobytes())
    assert len(reads) == 4 + 1  # three members a run, then "after" and "last" together


def test_what_read_written_leaves_to_the_exact_path_is_none_in_a_run(tmp_path):
    """A damaged member (its CRC-32), one of another size than its entry says and one of the
    same size but another header give None; the others of their run are read."""
    arrays = {"a": np.arange(10, dtype=np.float32), "b": np.ones(10, np.float32), "c": np.zeros(3, np.int8),
              "d": np.zeros(10, np.float32), "e": np.ones(2, np.int8)}
    data = bytearray(_bundle(arrays).getvalue())
    at = data.index(np.ones(10, np.float32).tobytes())
    data[at] ^= 1  # b's first data byte
    wants = [_Want("float32", [10], None), _Want("float32", [10], None), _Want("int8", [4], None),
             _Want("int8", [40], None), _Want("int8", [2], None)]  # d: as many bytes, under another header
    got = _read_runs(tmp_path, arrays, data=bytes(data), wants=wants)
    assert [array is None for array in got] == [False, True, True, True, False]
    assert got[0].tobytes() == arrays["a"].tobytes() and got[4].tobytes() == arrays["e"].tobytes()


def test_a_run_the_file_ends_inside_is_left_to_the_exact_path(tmp_path, monkeypatch):
    arrays = {"a": np.arange(10, dtype=np.float32), "b": np.ones(10, np.float32)}
    monkeypatch.setattr(os, "preadv", lambda fd, bufs, at: 0)
    assert _read_runs(tmp_path, arrays) == [None, None]


def test_a_tensor_read_in_a_run_is_checked_against_its_sha256_when_asked(tmp_path):
    arrays = {"a": np.arange(10, dtype=np.float32), "b": np.ones(10, np.float32)}
    wants = [_Want("float32", [10], weights.tensor_sha256(arrays["a"])), _Want("float32", [10], "0" * 64)]
    assert _read_runs(tmp_path, arrays, wants=wants)[1].tobytes() == arrays["b"].tobytes()  # CRC-32 only
    with pytest.raises(IntegrityError, match=r"b\.npz: member 'b\.npy': tensor 'b' is damaged: its SHA-256 is "
                       r"[0-9a-f]{64}, the manifest records 0{64}"):
        _read_runs(tmp_path, arrays, wants=wants, integrity=weights.Integrity.SHA256)


def test_deflated_members_are_left_to_the_exact_path_unread(tmp_path, monkeypatch):
    arrays = {"a": np.arange(10, dtype=np.float32), "b": np.ones(10, np.float32)}
    data = _bundle(arrays, compress=True).getvalue()
    reads = []
    preadv = os.preadv
    monkeypatch.setattr(os, "preadv", lambda fd, bufs, at: reads.append(at) or preadv(fd, bufs, at))
    assert _read_runs(tmp_path, arrays, data=data) == [None, None]
    assert reads == []


def test_members_out_of_file_order_are_each_read_alone(tmp_path, monkeypatch):
    """A run takes members each after the last in the file; asked for in reverse (another
    writer's manifest order), each is a run of its own, read whole."""
    arrays = {f"t{i}": np.full(3, i, np.float32) for i in range(4)}
    reversed_arrays = dict(reversed(list(arrays.items())))
    path = tmp_path / "b.npz"
    path.write_bytes(_bundle(arrays).getvalue())
    reads = []
    preadv = os.preadv
    monkeypatch.setattr(os, "preadv", lambda fd, bufs, at: reads.append(at) or preadv(fd, bufs, at))
    got = _read_runs(tmp_path, reversed_arrays, data=path.read_bytes())
    assert [a.tobytes() for a in got] == [a.tobytes() for a in reversed_arrays.values()]
    assert len(reads) == 4


def test_a_larger_member_between_small_ones_is_not_read_with_them(tmp_path, monkeypatch):
    """Runs are cut at a member too large for one: the small ones on either side are read
    each in a run of its own, not in one read that takes the large one's bytes too."""
    monkeypatch.setattr(weights, "RUN_MEMBER_BYTES", 1500)
    arrays = {"before": np.ones(10, np.float32), "large": np.zeros(1000, np.float32), "after": np.ones(3, np.int8)}
    reads = []
    preadv = os.preadv
    monkeypatch.setattr(os, "preadv",
                        lambda fd, bufs, at: reads.append(sum(len(memoryview(b)) for b in bufs)) or preadv(fd, bufs, at))
    got = _read_runs(tmp_path, arrays)
    assert got[1] is None and got[2].tobytes() == arrays["after"].tobytes()
    assert len(reads) == 2 and max(reads) < 1000


def test_a_run_without_memory_for_a_tensor_leaves_it_to_the_exact_path(tmp_path, monkeypatch):
    """A tensor's copy out of its run that runs out of memory gives None (the exact path then
    reads it, or words the refusal), not a MemoryError from inside the run."""
    frombuffer = np.frombuffer

    def starved(buffer, *args, **kwargs):
        if isinstance(buffer, memoryview):  # (the run's copies; the directory's bytes pass)
            raise MemoryError
        return frombuffer(buffer, *args, **kwargs)

    arrays = {"a": np.arange(10, dtype=np.float32), "b": np.ones(10, np.float32)}
    monkeypatch.setattr(np, "frombuffer", starved)
    assert _read_runs(tmp_path, arrays) == [None, None]


def test_a_tensor_without_memory_for_its_one_read_is_read_the_located_way(tmp_path, monkeypatch):
    """``read_written`` out of memory gives None, and ``get_tensor`` reads the tensor where the
    bundle's directory locates it."""
    import modelpack

    array = np.arange(300, dtype=np.float32)
    modelpack.save(tmp_path / "t.mpk", {"a": array, "b": np.ones(2)})

    def starved(shape, dtype):
        raise MemoryError

    monkeypatch.setattr(weights, "fresh_array", starved)
    with modelpack.open(tmp_path / "t.mpk") as archive:
        assert archive.get_tensor("a").tobytes() == array.tobytes()
