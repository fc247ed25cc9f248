"""npy headers that disagree with the manifest or with their own member: refused before the
data is read. Inside an archive the header must say exactly what the manifest implies."""

from __future__ import annotations

import numpy as np
import pytest
from craft import RawEntry, deflate, npy, npy_with_header, raw_zip
from harness import raw_with_bundle, refused

from modelpack.errors import DtypeMismatchError, FormatError, IntegrityError, ShapeMismatchError


def _one(member: bytes, dtype: str = "float32", shape: list[int] | None = None, **fields: object) -> bytes:
    """An archive listing tensor 'w' as (dtype, shape) whose bundle holds ``member`` as w.npy."""
    bundle = raw_zip([RawEntry(b"w.npy", member, **fields)])  # type: ignore[arg-type]
    return raw_with_bundle({"w": (dtype, [4] if shape is None else shape)}, bundle)


def _header(descr: str = "<f4", fortran: bool = False, shape: str = "(4,)") -> str:
    return f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}"


W = r"hostile\.mpk: member 'weights\.npz': member 'w\.npy'"


def test_shape_disagrees(tmp_path):
    refused(tmp_path, _one(npy(np.zeros(5, np.float32))), ShapeMismatchError,
            W + r": the manifest says shape \(4,\), the array header says \(5,\)", inspect=False)


def test_dtype_disagrees(tmp_path):
    refused(tmp_path, _one(npy(np.zeros(4, np.int32))), DtypeMismatchError,
            W + r": the manifest says dtype float32, the array header says int32", inspect=False)


def test_byte_order_disagrees(tmp_path):
    refused(tmp_path, _one(npy(np.zeros(4, ">f4"))), DtypeMismatchError,
            W + r": the array header says byte order '>f4'; archive tensors are little-endian \('<f4'\)", inspect=False)


def test_fortran_order_disagrees(tmp_path):
    member = npy(np.asfortranarray(np.zeros((2, 2), np.float32)))
    refused(tmp_path, _one(member, shape=[2, 2]), FormatError,
            W + r": the array header says Fortran order; archive tensors are C order", inspect=False)


def test_negative_dimension(tmp_path):
    refused(tmp_path, _one(npy_with_header(_header(shape="(-1, 4)"), b"")), FormatError,
            W + r": shape \(-1, 4\) has negative dimensions", inspect=False)


def test_too_many_dimensions(tmp_path):
    shape = "(" + "1, " * 65 + ")"
    refused(tmp_path, _one(npy_with_header(_header(shape=shape), bytes(4))), FormatError,
            W + r": shape \(1, 1, .*\) has negative dimensions or more than 64", inspect=False)


def test_truncated_data(tmp_path):
    refused(tmp_path, _one(npy(np.zeros(4, np.float32))[:-3]), FormatError,
            W + r" is truncated: header says shape \(4,\) of float32 \(16 bytes\), the member holds 13", inspect=False)


def test_bytes_after_the_data(tmp_path):
    refused(tmp_path, _one(npy(np.zeros(4, np.float32)) + b"hidden payload"), FormatError,
            W + r" has bytes after its data: header says shape \(4,\) of float32 \(16 bytes\), the member holds 30",
            inspect=False)


def test_deflate_stream_longer_than_declared(tmp_path):
    plain = npy(np.zeros(4, np.float32))
    member = deflate(plain + b"hidden payload")
    refused(tmp_path, _one(member, method=8, plain=plain), FormatError,
            W + r" decompresses to more than its declared 144 bytes", inspect=False)


def test_corrupt_deflate_stream(tmp_path):
    plain = npy(np.zeros(4, np.float32))
    member = bytearray(deflate(plain))
    member[0] = 0b111  # final block of the reserved (invalid) type 3
    refused(tmp_path, _one(bytes(member), method=8, plain=plain), FormatError,
            W + r": deflate data is corrupt \(Error -3 while decompressing data: invalid block type\)", inspect=False)


def test_crc_mismatch(tmp_path):
    plain = npy(np.zeros(4, np.float32))
    refused(tmp_path, _one(plain, crc=0x12345678), IntegrityError,
            W + r" is damaged: CRC-32 is [0-9a-f]{8}, the zip directory records 12345678", inspect=False)


@pytest.mark.parametrize(
    ("member", "fragment"),
    [
        (b"PK\x03\x04 not an array", r" is not a \.npy array \(no NUMPY magic\)"),
        (b"\x93NUMPY\x03\x00" + b"\x00" * 8, r": unsupported \.npy format version 3\.0"),
        (b"\x93NUMPY\x02\x00\xff\xff\xff\x7f" + b" " * 32, r": \.npy header length 2147483647 is over 10000 bytes"),
        (npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'x': __import__('os')}", bytes(16)),
         r": malformed \.npy header"),
        (npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': " + "(" * 500 + ")" * 500 + "}", b""),
         r": malformed \.npy header"),
        (npy_with_header("[1, 2, 3]", b""), r": malformed \.npy header"),
    ],
    ids=["no-magic", "version-3", "header-length", "code-in-header", "deep-header", "not-a-dict"],
)
def test_malformed_headers(tmp_path, member, fragment):
    refused(tmp_path, _one(member), FormatError, W + fragment, inspect=False)
