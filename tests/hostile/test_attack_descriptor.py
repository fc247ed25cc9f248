"""Rules the spec states for data descriptors (zip flag bit 3) and ``.npy`` headers, each
tried with bytes that break exactly that rule: junk passed off as a descriptor, a descriptor
that disagrees or is missing, bit 3 in one header but not the other, a duplicated header key."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from craft import RawEntry, manifest_comment, npy, npy_with_header, raw_zip
from harness import refused, tensors_manifest

import modelpack
from modelpack.errors import FormatError
from modelpack.format.schema import Manifest, TensorInfo, manifest_to_yaml
from modelpack.io.npz import tensor_sha256

ARRAY = np.arange(6, dtype=np.float32)
INDEX = {"w": ("float32", [6])}


def _descriptor(content: bytes, layout: int) -> bytes:
    """A correct data descriptor for stored ``content`` in one of the four layouts (its length)."""
    crc, size = zlib.crc32(content), len(content)
    body = struct.pack("<LLL", crc, size, size) if layout in (12, 16) else struct.pack("<LQQ", crc, size, size)
    return (b"PK\x07\x08" + body) if layout in (16, 24) else body


def _archive_with_tensor(entry: RawEntry) -> bytes:
    manifest = tensors_manifest(INDEX)
    bundle = raw_zip([entry])
    return raw_zip([RawEntry(b"manifest.yaml", manifest), RawEntry(b"weights.npz", bundle)],
                   comment=manifest_comment(manifest))


@pytest.mark.parametrize("layout", [12, 16, 20, 24])
def test_correct_descriptors_are_read(tmp_path, layout):
    content = npy(ARRAY)
    manifest = manifest_to_yaml(Manifest(format="modelpack", format_version="1.1", producer="test", kind="tensors",
                                         layout="dict", weights={
        "w": TensorInfo(dtype="float32", shape=[6], sha256=tensor_sha256(ARRAY))})).encode()
    bundle = raw_zip([RawEntry(b"w.npy", content, flags=0x08, descriptor=_descriptor(content, layout))])
    path = tmp_path / "fine.mpk"
    path.write_bytes(raw_zip([RawEntry(b"manifest.yaml", manifest), RawEntry(b"weights.npz", bundle)],
                             comment=manifest_comment(manifest)))
    assert modelpack.load(path)["w"].tobytes() == ARRAY.tobytes()
    assert modelpack.verify(path).ok


def test_junk_after_a_member_with_bit_3_is_not_a_descriptor(tmp_path):
    content = npy(ARRAY)
    data = _archive_with_tensor(RawEntry(b"w.npy", content, flags=0x08, descriptor=b"#!/bin/sh\nrm -rf/"[:16]))
    refused(tmp_path, data, FormatError,
            r"hostile\.mpk: member 'weights\.npz': the 16 bytes after member 'w\.npy' are not a data descriptor",
            inspect=False)


def test_descriptor_that_disagrees_with_the_directory(tmp_path):
    content = npy(ARRAY)
    wrong = _descriptor(content + b"x", 16)  # CRC-32 and sizes of other bytes
    data = _archive_with_tensor(RawEntry(b"w.npy", content, flags=0x08, descriptor=wrong))
    refused(tmp_path, data, FormatError,
            r"hostile\.mpk: member 'weights\.npz': member 'w\.npy': its data descriptor \(CRC-32 [0-9a-f]{8}, "
            r"sizes 153/153\) disagrees with the zip directory \(CRC-32 [0-9a-f]{8}, sizes 152/152\)", inspect=False)


def test_bit_3_without_a_descriptor(tmp_path):
    data = _archive_with_tensor(RawEntry(b"w.npy", npy(ARRAY), flags=0x08))
    refused(tmp_path, data, FormatError,
            r"member 'w\.npy' sets flag bit 3, but 0 bytes, not a data descriptor \(12, 16, 20 or 24 bytes\), "
            r"lie between its data and the zip directory", inspect=False)


def test_bit_3_only_in_the_local_header(tmp_path):
    """A streaming reader trusts the local header: with bit 3 it would look for a descriptor."""
    entry = RawEntry(b"w.npy", npy(ARRAY), local_flags=0x08, local_zeroed=True)
    refused(tmp_path, _archive_with_tensor(entry), FormatError,
            r"hostile\.mpk: member 'weights\.npz': member 'w\.npy': flag bit 3 \(data descriptor\) is set in its "
            r"local header but not in the zip directory", inspect=False)


def test_bit_3_only_in_the_directory_of_the_archive(tmp_path):
    manifest = tensors_manifest({})
    entries = [RawEntry(b"manifest.yaml", manifest, flags=0x08, local_flags=0), RawEntry(b"weights.npz", raw_zip([]))]
    refused(tmp_path, raw_zip(entries, comment=manifest_comment(manifest)), FormatError,
            r"hostile\.mpk: member 'manifest\.yaml': flag bit 3 \(data descriptor\) is clear in its local header but "
            r"not in the zip directory")


def test_bit_3_with_local_values_that_disagree(tmp_path):
    """Bit 3 lets the local header leave CRC-32 and sizes at zero, not say something else."""
    content = npy(ARRAY)
    entry = RawEntry(b"w.npy", content, flags=0x08, crc=zlib.crc32(content), descriptor=_descriptor(content, 12))
    data = bytearray(_archive_with_tensor(entry))
    local = data.index(b"PK\x03\x04w.npy"[:4], data.index(b"weights.npz") + 11)
    struct.pack_into("<L", data, local + 14, 0xDEADBEEF)
    refused(tmp_path, bytes(data), FormatError,
            r"member 'w\.npy': its local header \(method, encryption, CRC-32, sizes .*\) disagrees with the zip directory",
            inspect=False)


def test_npy_header_with_a_duplicated_key(tmp_path):
    header = "{'descr': '<f4', 'descr': '<f8', 'shape': (6,), }"  # three entries, as the grammar has
    data = _archive_with_tensor(RawEntry(b"w.npy", npy_with_header(header, ARRAY.tobytes())))
    refused(tmp_path, data, FormatError,
            r"hostile\.mpk: member 'weights\.npz': member 'w\.npy': malformed \.npy header: 'descr' twice",
            inspect=False)
