"""The CRC-32 every read checks: ISA-L's when installed, zlib's otherwise, and always zlib's
result (zlib is the reference)."""

from __future__ import annotations

import importlib
import sys
import zlib

import numpy as np
import pytest

from modelpack.io import checksums


@pytest.mark.parametrize("size", [0, 1, 15, 64, 4095, 1 << 20, (1 << 20) + 7])
@pytest.mark.parametrize("start", [0, 1, 0xFFFFFFFF, 0x12345678])
def test_crc32_is_zlibs(size, start):
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8)
    for buffer in (data.tobytes(), memoryview(data), bytearray(data.tobytes())):
        assert checksums.crc32(buffer, start) == zlib.crc32(buffer, start)
        assert checksums.crc32(buffer) == zlib.crc32(buffer)


def test_a_crc_continues_over_pieces():
    data = bytes(range(256)) * 1000
    assert checksums.crc32(data[1000:], checksums.crc32(data[:1000])) == zlib.crc32(data)


def test_isal_is_used_when_installed():
    pytest.importorskip("isal")
    assert checksums.FAST_CRC32


def test_without_isal_zlib_is_used(monkeypatch):
    monkeypatch.setitem(sys.modules, "isal", None)  # an import of it now fails
    try:
        fallback = importlib.reload(checksums)
        assert not fallback.FAST_CRC32
        assert fallback.crc32(b"modelpack", 7) == zlib.crc32(b"modelpack", 7)
        assert fallback.crc32_combine(zlib.crc32(b"model"), zlib.crc32(b"pack"), 4) == zlib.crc32(b"modelpack")
    finally:
        monkeypatch.undo()
        importlib.reload(checksums)


@pytest.mark.parametrize("length2", [0, 1, 7, 4096, 10**6, 2**32 + 5, 2**40 + 3])
def test_crc32_combine_is_zlibs_algebra(length2):
    """The fast combine (ISA-L's) and the Python one agree, on lengths beyond 32 bits too."""
    for crc1, crc2 in [(0, 0), (0xFFFFFFFF, 1), (0x12345678, 0x9ABCDEF0)]:
        assert checksums.crc32_combine(crc1, crc2, length2) == checksums.reference_crc32_combine(crc1, crc2, length2)
    a, b = b"x" * 1000, bytes(range(256)) * (length2 % 50)
    assert checksums.reference_crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)
