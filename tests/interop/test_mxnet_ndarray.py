"""MXNet's NDArray files read without MXNet: every committed file reads to exactly what MXNet
returned; hostile files are refused, naming the file and the field, before allocating."""

from __future__ import annotations

import io
import re
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from fuzzing import time_bound
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from mxnet_writer import FLAGS, ndarray_file, record, save

from modelpack.errors import FormatError, LimitError, ModelpackError, UnsupportedDtypeError
from modelpack.interop.mxnet import ndarray
from modelpack.io.limits import Limits

DATA = Path(__file__).resolve().parent.parent / "data" / "mxnet"
EXPECTED = sorted(p.name[: -len(".expected.npz")] for p in DATA.glob("*.expected.npz"))


def _same(got: np.ndarray, want: np.ndarray) -> bool:
    return got.dtype == want.dtype and got.shape == want.shape and got.tobytes() == want.tobytes()


# -- what MXNet wrote ---------------------------------------------------------------------------


def test_reference_set_is_complete():
    # the script's whole output is committed: a file missing here would silently skip checks
    assert {"x-file", "x-files", "mydict", "dtypes-np", "dtypes-legacy", "scalar", "empty", "v1-list",
            "v0-dict", "list-np", "list-legacy"} <= set(EXPECTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_reads_what_mxnet_returned(name):
    """Same container (list or dict), same keys in order, bitwise-equal arrays."""
    with np.load(DATA / f"{name}.expected.npz") as expected:
        kind = str(expected["__kind__"])
        want = {key: expected[key] for key in expected.files if key != "__kind__"}
    got = ndarray.load(DATA / name)
    assert kind == ("dict" if isinstance(got, dict) else "list")
    items = list(got.items()) if isinstance(got, dict) else [(str(i), a) for i, a in enumerate(got)]
    assert [key for key, _ in items] == list(want)
    for key, array in items:
        assert _same(array, want[key]), (key, array, want[key])


def test_chapter_files_load_as_npx_load_returns_them():
    x = np.arange(4, dtype=np.float32)
    [x_file] = ndarray.load(DATA / "x-file")
    assert _same(x_file, x)
    x2, y2 = ndarray.load(DATA / "x-files")
    assert _same(x2, x) and _same(y2, np.zeros(4, np.float32))
    mydict = ndarray.load(DATA / "mydict")
    assert isinstance(mydict, dict) and list(mydict) == ["x", "y"]
    assert _same(mydict["x"], x) and _same(mydict["y"], np.zeros(4, np.float32))


def test_every_dtype_and_layout_is_covered():
    seen = {(e.layout, e.dtype) for name in ("dtypes-np", "dtypes-legacy", "v1-list", "v0-dict")
            for e in ndarray.scan(DATA / name).entries}
    for dtype in ("float32", "float64", "float16", "uint8", "int32", "int8", "int64", "bool", "bfloat16"):
        assert ("numpy", dtype) in seen
    assert {("legacy", "bfloat16"), ("v1", "float64"), ("v0", "int32")} <= seen


def test_bfloat16_is_widened_exactly():
    index, arrays = ndarray.read_arrays(DATA / "dtypes-np")
    entry = next(e for e in index.entries if e.dtype == "bfloat16")
    raw = np.frombuffer((DATA / "dtypes-np").read_bytes()[entry.offset: entry.offset + entry.nbytes], "<u2")
    widened = arrays[index.entries.index(entry)]
    assert widened.dtype == np.float32
    assert np.array_equal(widened.view(np.uint32) >> 16, raw) and not np.any(widened.view(np.uint32) & 0xFFFF)


def test_gluon_parameter_files_are_named_and_scanned_without_data():
    index = ndarray.scan(DATA / "mlp.params")
    assert index.named
    assert [(e.name, e.shape, e.layout) for e in index.entries] == [
        ("hidden.weight", (256, 20), "numpy"), ("hidden.bias", (256,), "numpy"),
        ("output.weight", (10, 256), "numpy"), ("output.bias", (10,), "numpy"),
    ]
    assert index.total_bytes == 4 * (256 * 20 + 256 + 10 * 256 + 10)
    names = [e.name for e in ndarray.scan(DATA / "legacy-cnn-0000.params").entries]
    assert names[:2] == ["arg:conv4_weight", "arg:conv4_bias"] and "aux:batchnorm3_running_var" in names


def test_writer_matches_mxnet_byte_for_byte():
    """The test writer is an independent description of the format: MXNet agrees with it."""
    x = np.arange(4, dtype=np.float32)
    assert save({"x": x, "y": np.zeros(4, np.float32)}) == (DATA / "mydict").read_bytes()
    assert save([x]) == (DATA / "x-file").read_bytes()
    legacy = ndarray.load(DATA / "list-legacy")
    assert save(legacy, layout="legacy") == (DATA / "list-legacy").read_bytes()


def test_file_objects_and_streams():
    data = (DATA / "mydict").read_bytes()
    assert list(ndarray.load(io.BytesIO(data))) == ["x", "y"]

    class Stream(io.RawIOBase):  # no seek, no tell
        def __init__(self) -> None:
            self.inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:  # type: ignore[override]
            return self.inner.readinto(buffer)

    assert _same(ndarray.load(Stream())["x"], np.arange(4, dtype=np.float32))


def test_sniffing():
    assert ndarray.is_ndarray_file(DATA / "mlp.params")
    assert not ndarray.is_ndarray_file(DATA / "mlp-symbol.json")
    assert not ndarray.is_ndarray_file(DATA / "mlp-input.npy")
    assert not ndarray.is_ndarray_file(DATA / "no-such-file")


# -- round trip through the independent writer -------------------------------------------------

_DTYPES = [d for d in FLAGS if d != "bfloat16"]


@st.composite
def _arrays(draw, layout: str) -> tuple[np.ndarray, str]:
    dtype = draw(st.sampled_from([*_DTYPES, "bfloat16"]))
    legacy = layout == "legacy"  # a legacy record cannot say 0-d or empty
    shape = draw(hnp.array_shapes(min_dims=1 if legacy else 0, max_dims=4, min_side=1 if legacy else 0,
                                  max_side=5))
    array = draw(hnp.arrays("uint16" if dtype == "bfloat16" else dtype, shape))
    return array, dtype


@given(data=st.data(), layout=st.sampled_from(["numpy", "legacy", "v1", "v0"]), named=st.booleans())
def test_round_trip(tmp_path_factory, data, layout, named):
    pairs = data.draw(st.lists(_arrays(layout), max_size=4))
    names = data.draw(st.lists(st.text(max_size=8), min_size=len(pairs), max_size=len(pairs), unique=True))
    blob = ndarray_file([record(a, layout=layout, dtype=d) for a, d in pairs], names if named else None)
    loaded = ndarray.load(io.BytesIO(blob))
    assert isinstance(loaded, dict) == (named and bool(pairs))
    arrays = list(loaded.values()) if isinstance(loaded, dict) else loaded
    if isinstance(loaded, dict):
        assert list(loaded) == names
    assert len(arrays) == len(pairs)
    for got, (want, dtype) in zip(arrays, pairs, strict=True):
        if dtype == "bfloat16":
            assert got.dtype == np.float32 and np.array_equal(got.view(np.uint32) >> 16, want)
        else:
            assert _same(got, want.astype(want.dtype.newbyteorder("=")))


# -- hostile files ------------------------------------------------------------------------------


def refused(tmp_path: Path, data: bytes, error: type[ModelpackError], fragment: str,
            limits: Limits | None = None) -> str:
    """``load`` raises exactly ``error``, naming the file and matching ``fragment``, within
    1 s and 1 MiB of allocations, and ``scan`` agrees."""
    path = tmp_path / "hostile.params"
    path.write_bytes(data)
    for call in (ndarray.load, ndarray.scan):
        tracemalloc.start()
        try:
            with time_bound(1.0), pytest.raises(ModelpackError) as caught:
                call(path, limits=limits or Limits())
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert type(caught.value) is error, caught.value
        message = str(caught.value)
        assert str(path) in message and re.search(fragment, message), message
        assert peak < 2**20, peak
    return message


ONE = record(np.arange(3, dtype=np.float32))


@pytest.mark.parametrize("name", ["mydict", "dtypes-np", "dtypes-legacy", "v1-list", "v0-dict", "empty"])
def test_truncated_at_every_byte(tmp_path, name):
    data = (DATA / name).read_bytes()
    fields = r"(the NDArray list header|the array count|array \d+: (the record magic|the storage type|the dimension count|the shape|the device|the type flag|the data \(\w+, shape \([0-9, ]*\)\))|the name count|name \d+(: the length)?) (needs \d+ bytes but the file ends \d+ bytes later|is \d+, but)"
    for end in range(len(data)):
        refused(tmp_path, data[:end], FormatError, fields)


def test_truncation_names_the_field(tmp_path):
    data = (DATA / "mydict").read_bytes()  # header 24, two records of 48 (data at 32), names 25
    assert "array 1: the storage type needs 4 bytes but the file ends 2 bytes later" in refused(
        tmp_path, data[:24 + 48 + 6], FormatError, "")
    assert "array 0: the data (float32, shape (4,)) needs 16 bytes but the file ends 3 bytes later" in refused(
        tmp_path, data[:24 + 32 + 3], FormatError, "")
    assert "name 1 needs 1 bytes but the file ends 0 bytes later" in refused(tmp_path, data[:-1], FormatError, "")


@pytest.mark.parametrize("name, kind", [("sparse-csr", "csr"), ("sparse-rsp", "row_sparse")])
def test_sparse_storage_written_by_mxnet_is_refused(tmp_path, name, kind):
    refused(tmp_path, (DATA / name).read_bytes(), FormatError, f"array 0 uses {kind} storage; modelpack reads dense")


def test_unknown_storage_type(tmp_path):
    refused(tmp_path, ndarray_file([record(np.zeros(2), storage=7)]), FormatError, "unknown storage type 7")


def test_bad_list_magic(tmp_path):
    refused(tmp_path, ndarray_file([ONE], magic=0x113), FormatError, "not an MXNet NDArray file: list magic is 0x113")


def test_bad_record_magic(tmp_path):
    data = ndarray_file([struct.pack("<I", 0xDEADBEEF) + ONE[4:]])
    refused(tmp_path, data, FormatError, r"array 0: the record magic 0xdeadbeef is neither an NDArray magic")


@pytest.mark.parametrize("flag", [13, -1, 2**31 - 1])
def test_bad_type_flag(tmp_path, flag):
    refused(tmp_path, ndarray_file([record(np.zeros(2, np.float32), flag=flag)]), UnsupportedDtypeError,
            f"array 0 has type flag {flag}, which is not a known MXNet dtype")


def test_lying_shape_would_allocate_huge(tmp_path):
    huge = record(np.zeros(1, np.float32), shape=(2**20, 2**20, 2**10))
    refused(tmp_path, ndarray_file([huge]), FormatError, r"array 0: the data \(float32, shape \(1048576, 1048576, 1024\)\) needs 4503599627370496 bytes")
    overflow = record(np.zeros(1, np.float32), shape=(2**62,) * 8, layout="legacy")
    refused(tmp_path, ndarray_file([overflow]), FormatError, "array 0: the data")


def test_declared_data_over_the_limit(tmp_path):
    data = ndarray_file([ONE, ONE])
    refused(tmp_path, data, LimitError, r"array 1: the data declared so far, in bytes, \(24\) is over the limit of 20; pass limits=modelpack.Limits\(max_total_bytes=\.\.\.\)",
            limits=Limits(max_total_bytes=20))


def test_lying_array_count(tmp_path):
    refused(tmp_path, ndarray_file([ONE], count=2**40), LimitError, r"the array count \(1099511627776\) is over the limit of 100000; pass limits=modelpack.Limits\(max_tensors=")
    refused(tmp_path, ndarray_file([ONE], count=1000), FormatError, "the array count is 1000, but 1000 records need more than")


@pytest.mark.parametrize("ndim, fragment", [(40, "the dimension count is 40, expected 0 to 32"),
                                            (-5, "the dimension count is -5")])
def test_bad_dimension_count(tmp_path, ndim, fragment):
    refused(tmp_path, ndarray_file([record(np.zeros(2), ndim=ndim)]), FormatError, fragment)


def test_negative_dimension(tmp_path):
    refused(tmp_path, ndarray_file([record(np.zeros(2), shape=(2, -1))]), FormatError,
            r"shape \(2, -1\) has an unknown")


@pytest.mark.parametrize("layout, shape", [("numpy", None), ("legacy", ())])
def test_uninitialised_array(tmp_path, layout, shape):
    rec = record(np.zeros(()), layout=layout, ndim=-1 if layout == "numpy" else 0, shape=())
    refused(tmp_path, ndarray_file([rec]), FormatError, "array 0 has no shape")


def test_legacy_zero_dimension(tmp_path):  # MXNet fails on it too
    refused(tmp_path, ndarray_file([record(np.zeros((0, 3)), layout="legacy")]), FormatError,
            r"shape \(0, 3\) has an unknown \(negative, or in a legacy record zero\) dimension")


def test_bad_utf8_name(tmp_path):
    refused(tmp_path, ndarray_file([ONE], [b"ok\xff"]), FormatError, "name 0 is not valid UTF-8: invalid start byte at byte 2")


@pytest.mark.parametrize("count", [2, 5])
def test_name_count_mismatch(tmp_path, count):
    refused(tmp_path, ndarray_file([ONE], ["a"], name_count=count), FormatError,
            f"the name count is {count}, but the file holds 1 arrays")


def test_lying_name_length(tmp_path):
    refused(tmp_path, ndarray_file([ONE], ["a"], name_lengths=[2**50]), FormatError,
            "name 0: the length is 1125899906842624 bytes, over 65536")
    refused(tmp_path, ndarray_file([ONE], ["a"], name_lengths=[60000]), FormatError,
            "name 0 needs 60000 bytes but the file ends 1 bytes later")


def test_duplicate_names(tmp_path):
    refused(tmp_path, ndarray_file([ONE, ONE], ["w", "w"]), FormatError, "name 1 \\('w'\\) appears twice")


def test_trailing_bytes(tmp_path):
    refused(tmp_path, ndarray_file([ONE]) + b"\0", FormatError, "1 unexpected bytes after the names")


def test_bool_bytes_other_than_zero_and_one(tmp_path):
    bad = record(np.zeros(3, np.bool_), data=b"\x00\x01\x02")
    path = tmp_path / "bool.params"
    path.write_bytes(ndarray_file([bad]))
    with pytest.raises(FormatError, match="array 0 is bool but holds bytes other than 0 and 1"):
        ndarray.load(path)


def test_an_array_without_memory_is_refused_naming_the_file_and_the_array(tmp_path, monkeypatch):
    from modelpack.io import pages

    def starved(shape, dtype):
        raise MemoryError

    path = tmp_path / "w.params"
    path.write_bytes(save({"a": np.zeros(3, np.float32), "b": np.ones(5, np.float32)}))
    monkeypatch.setattr(pages, "fresh_array", starved)
    with pytest.raises(ModelpackError, match=r"w\.params: array 0: out of memory for its 12 bytes"):
        ndarray.load(path)
