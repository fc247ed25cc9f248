"""The .npy header parser and writer (io.npy), through their own API: every header numpy writes
for a supported dtype is read exactly, odd but valid layouts too, and each refusal the hostile
suite does not reach (it sends bad headers through whole archives) is checked here directly."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from craft import npy, npy_with_header
from hypothesis import given, settings
from hypothesis import strategies as st

from modelpack.errors import FormatError, UnsupportedDtypeError
from modelpack.io.npy import (
    FLOAT_DTYPES,
    MAX_DIMS,
    SUPPORTED_DTYPES,
    canonical_array,
    check_storable,
    npy_header,
    read_header,
)
from modelpack.io.zipio import STORED, Member, MemberReader, Source

WHERE = r"t\.npz: member 'w\.npy'"
GRAMMAR = r": malformed \.npy header \(not the grammar of the format\): \".*"  # then a part of the header


def _reader(member: bytes) -> MemberReader:
    """A reader of ``member`` as the stored member 'w.npy' of a file called t.npz."""
    source = Source.whole(io.BytesIO(member), where="t.npz")
    return MemberReader(source, Member("w.npy", STORED, 0, zlib.crc32(member), len(member), len(member), 0, 0))


def _header(descr: str = "'<f4'", fortran: str = "False", shape: str = "(2,)") -> str:
    return f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}}}"


class Want:
    """What the manifest says about a tensor (the fields ``read_header`` checks)."""

    def __init__(self, dtype: str, shape: list[int]) -> None:
        self.dtype, self.shape, self.sha256 = dtype, shape, None


# -- valid headers ----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(SUPPORTED_DTYPES), st.lists(st.integers(0, 3), max_size=5), st.booleans(),
       st.sampled_from("<>"))
def test_every_header_numpy_writes_is_read_exactly(dtype, shape, fortran, order):
    array = np.zeros(shape, np.dtype(dtype).newbyteorder(order))
    if fortran:
        array = np.asfortranarray(array)
    reader = _reader(npy(array))
    got_shape, got_fortran, got_dtype = read_header(reader, None)
    assert got_shape == array.shape and got_dtype == array.dtype
    assert got_fortran == (array.flags.f_contiguous and not array.flags.c_contiguous)
    assert reader.remaining == array.nbytes  # positioned exactly at the data


def test_version_2_headers_and_other_layouts_of_the_grammar_are_read():
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.arange(3, dtype=np.int16), version=(2, 0))
    assert read_header(_reader(buffer.getvalue()), None) == ((3,), False, np.dtype("<i2"))
    for header in ["{'shape': (3,), 'fortran_order': False, 'descr': '<i2'}",
                   '{"descr": "<i2", "fortran_order": False, "shape": (3,),}',  # double quotes, trailing comma
                   "{'descr': '<i2', 'fortran_order': False, 'shape': ( 3 , )}"]:
        assert read_header(_reader(npy_with_header(header, bytes(6))), None) == ((3,), False, np.dtype("<i2")), header


@pytest.mark.parametrize(
    ("header", "data", "expected"),
    [
        (_header(shape="()"), bytes(4), ((), np.dtype("<f4"))),
        (_header(shape="(0, 5)"), b"", ((0, 5), np.dtype("<f4"))),
        (_header(descr="'|b1'", shape="(3,)"), bytes(3), ((3,), np.dtype(bool))),
        (_header(shape="(" + "1, " * MAX_DIMS + ")"), bytes(4), ((1,) * MAX_DIMS, np.dtype("<f4"))),
    ],
    ids=["0-d", "zero-size", "bool", "max-dims"],
)
def test_edge_shapes_are_read(header, data, expected):
    reader = _reader(npy_with_header(header, data))
    shape, _, dtype = read_header(reader, None)
    assert (shape, dtype) == expected and reader.remaining == len(data)


def test_a_header_that_says_what_the_manifest_says_is_accepted():
    member = npy(np.zeros((2, 3), np.float32))
    assert read_header(_reader(member), Want("float32", [2, 3])) == ((2, 3), False, np.dtype("<f4"))


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("member", "error", "message"),
    [
        (b"\x93NUM", FormatError, WHERE + r" is not a \.npy array \(no NUMPY magic\)$"),
        (b"\x93NUMPY\x01\x00\x50\x00" + b" " * 10, FormatError,
         WHERE + r": \.npy header length 80 is over 10000 bytes or beyond the member$"),
        (b"\x93NUMPY\x02\x00\x50\x00", FormatError,  # a 4-byte length field cut short
         WHERE + r": \.npy header length 80 is over 10000 bytes or beyond the member$"),
        (npy_with_header(_header(shape="(2.0,)"), bytes(8)), FormatError,
         WHERE + GRAMMAR + r"'shape': \(2\.0,\)\}"),
        (npy_with_header(_header(shape="(True,)"), bytes(4)), FormatError,
         WHERE + GRAMMAR + r"'shape': \(True,\)\}"),
        (npy_with_header(_header(shape="[2]"), bytes(8)), FormatError,
         WHERE + GRAMMAR + r"'shape': \[2\]\}"),
        (npy_with_header(_header(shape="(02,)"), bytes(8)), FormatError,
         WHERE + GRAMMAR + r"'shape': \(02,\)\}"),
        (npy_with_header(_header(fortran="0"), bytes(8)), FormatError,
         WHERE + GRAMMAR + r"'fortran_order': 0,"),
        (npy_with_header(_header(fortran="'False'"), bytes(8)), FormatError,
         WHERE + r": malformed \.npy header: fortran_order is \"'False'\"$"),
        (npy_with_header("{'descr': '<f4', 'shape': (2,)}", bytes(8)), FormatError,
         WHERE + GRAMMAR + r"\{'descr': '<f4', 'shape': \(2,\)\}"),
        (npy_with_header("{'descr': '<f4', 'descr': '<f4', 'shape': (2,)}", bytes(8)), FormatError,
         WHERE + r": malformed \.npy header: 'descr' twice$"),
        (npy_with_header(_header(descr="'=f4'"), bytes(8)), UnsupportedDtypeError,
         WHERE + r" has dtype '=f4' \(not a supported number type\), which modelpack never loads \(supported: "
                 r"bool, int8, .*, complex128\)$"),
        (npy_with_header(_header(descr="4"), bytes(8)), FormatError,
         WHERE + GRAMMAR + r"\{'descr': 4,"),
        (npy_with_header(_header(shape="()"), b""), FormatError,
         WHERE + r" is truncated: header says shape \(\) of float32 \(4 bytes\), the member holds 0 bytes of data$"),
    ],
    ids=["short-magic", "length-beyond-member", "length-field-cut", "float-dim", "bool-dim", "list-shape",
         "leading-zero", "int-fortran", "string-fortran", "missing-key", "key-twice", "native-order", "int-descr",
         "0-d-without-data"],
)
def test_refusals_name_the_member_and_the_problem(member, error, message):
    with pytest.raises(error, match=message) as caught:
        read_header(_reader(member), None)
    assert type(caught.value) is error


# -- writing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", SUPPORTED_DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3)])
def test_written_header_is_numpys_own(dtype, shape):
    array = np.zeros(shape, dtype)
    header = npy_header(array)
    assert npy(array).startswith(header) and len(header) % 64 == 0
    assert read_header(_reader(header + array.tobytes()), Want(dtype, list(shape)))[0] == shape


def test_canonical_array_is_c_ordered_little_endian_and_keeps_0_d():
    fortran = np.asfortranarray(np.arange(6, dtype=">i4").reshape(2, 3))
    canonical = canonical_array(fortran)
    assert canonical.dtype == np.dtype("<i4") and canonical.flags.c_contiguous
    assert canonical.tolist() == fortran.tolist()
    scalar = canonical_array(np.array(1.5, ">f8"))
    assert scalar.shape == () and scalar.dtype == np.dtype("<f8") and scalar.item() == 1.5
    plain = np.ones(3, np.float32)
    assert canonical_array(plain) is plain  # the common case costs nothing


@pytest.mark.parametrize(
    ("array", "shown"),
    [
        (np.array([None]), "object"),
        (np.array(["text"]), "<U4"),
        (np.zeros(1, [("a", "<f4")]), r"\[\('a', '<f4'\)\]"),
        (np.zeros(1, "datetime64[s]"), r"datetime64\[s\]"),
        (np.zeros(1, np.longdouble), str(np.dtype(np.longdouble))),  # float128 on x86-64
    ],
    ids=["object", "text", "structured", "datetime", "longdouble"],
)
def test_check_storable_refuses_what_needs_pickle_or_is_no_number(array, shown):
    with pytest.raises(UnsupportedDtypeError, match=rf"^tensor 'x' has dtype {shown}, which cannot be stored; "
                       r"supported dtypes: bool, int8, int16, int32, int64, uint8, uint16, uint32, uint64, "
                       r"float16, float32, float64, complex64, complex128$"):
        check_storable("tensor 'x'", array)


def test_check_storable_accepts_every_supported_dtype():
    for dtype in SUPPORTED_DTYPES:
        check_storable("t", np.zeros(2, dtype))
    assert set(FLOAT_DTYPES) <= set(SUPPORTED_DTYPES)
